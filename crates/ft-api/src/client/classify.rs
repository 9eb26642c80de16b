//! One HTTP exchange and what its answer means for the request loop: [`Outcome`] (decoded
//! body, retry with backoff, 429, 401, or fail at once), and the header parsing it needs
//! (`Retry-After`, the rate-limit headers the pacer learns from). The answer's arrival is
//! reported to the pacer here, with its rate-limit headers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::FtClient;
use crate::error::{ApiError, BODY_SNIPPET_CHARS, truncate};
use crate::pacer::{RateHeaders, Ticket};

/// A response read in full.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// How one HTTP exchange ended.
pub(crate) enum Outcome {
    Ok(Response),
    /// Worth retrying with backoff.
    Retryable {
        reason: String,
        error: ApiError,
    },
    /// A 429: wait and repeat, not counted as a failed attempt.
    TooMany {
        retry_after: Option<Duration>,
    },
    /// A 401 from an API endpoint.
    Unauthorized,
    /// Fails at once.
    Fatal(ApiError),
}

impl FtClient {
    /// Sends one request and classifies the answer. `api` is false for the token endpoint.
    pub(crate) async fn exchange(
        &self,
        ticket: Ticket<'_>,
        req: reqwest::RequestBuilder,
        endpoint: &str,
        attempt: u32,
        api: bool,
    ) -> Outcome {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return transport_outcome(endpoint, attempt, e),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        ticket.answered(&rate_headers(&headers), api);
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return transport_outcome(endpoint, attempt, e),
        };
        let snippet = || truncate(&String::from_utf8_lossy(&body), BODY_SNIPPET_CHARS);
        let request_id = header_str(&headers, "x-request-id").map(str::to_string);
        match status {
            200..=299 => Outcome::Ok(Response {
                status,
                headers,
                body,
            }),
            429 => Outcome::TooMany {
                retry_after: header_str(&headers, RETRY_AFTER.as_str())
                    .and_then(|v| parse_retry_after(v, self.inner.clock.utc())),
            },
            401 if api => Outcome::Unauthorized,
            403 if is_html(&headers, &body) => Outcome::Retryable {
                reason: "HTML 403 challenge".into(),
                error: ApiError::Challenge {
                    endpoint: endpoint.to_string(),
                    attempt,
                },
            },
            500..=599 => Outcome::Retryable {
                reason: format!("HTTP {status}"),
                error: ApiError::Status {
                    endpoint: endpoint.to_string(),
                    status,
                    attempt,
                    body: snippet(),
                    request_id,
                },
            },
            _ => Outcome::Fatal(ApiError::Status {
                endpoint: endpoint.to_string(),
                status,
                attempt,
                body: snippet(),
                request_id,
            }),
        }
    }
}

pub(crate) fn transport_outcome(endpoint: &str, attempt: u32, e: reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Retryable {
            reason: "timeout".into(),
            error: ApiError::Timeout {
                endpoint: endpoint.to_string(),
                attempt,
            },
        };
    }
    // The URL is stripped: a query never holds a secret today, but errors must never risk it.
    let e = e.without_url();
    let message = error_chain(&e);
    Outcome::Retryable {
        reason: format!("transport error: {message}"),
        error: ApiError::Transport {
            endpoint: endpoint.to_string(),
            attempt,
            message,
            source: e,
        },
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn is_html(headers: &HeaderMap, body: &[u8]) -> bool {
    header_str(headers, "content-type").is_some_and(|c| c.contains("text/html"))
        || body.trim_ascii_start().starts_with(b"<")
}

/// `Retry-After` in seconds (fractions tolerated) or as an HTTP date.
pub(crate) fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    (when - now)
        .to_std()
        .ok()
        .map(|d| d.min(Duration::from_secs(3600)))
}

pub(crate) fn rate_headers(h: &HeaderMap) -> RateHeaders {
    let num = |name: &str| header_str(h, name).and_then(|v| v.trim().parse::<u32>().ok());
    RateHeaders {
        secondly_limit: num("x-secondly-ratelimit-limit"),
        secondly_remaining: num("x-secondly-ratelimit-remaining"),
        hourly_limit: num("x-hourly-ratelimit-limit"),
        hourly_remaining: num("x-hourly-ratelimit-remaining"),
        app_id: header_str(h, "x-application-id").map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc2822("Sat, 28 Nov 2026 18:00:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 18:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
