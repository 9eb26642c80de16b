//! Pacing and retry settings.

use std::time::Duration;

/// The request budget the application is allowed by the server.
///
/// These are the *server's* limits; the pacer derives safe bucket parameters from them (see
/// `pacer.rs`), so configure the real limits here, not a reduced rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Requests allowed in any one-second window (42 default: 2).
    pub per_second: u32,
    /// Requests allowed in any window of length `hour` (42 default: 1200).
    pub per_hour: u32,
    /// The length of the "hour" window (3600 s; tests compress it).
    pub hour: Duration,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_second: 2,
            per_hour: 1200,
            hour: Duration::from_secs(3600),
        }
    }
}

/// Bounds for retrying transport errors, timeouts, 5xx answers and Cloudflare challenges.
///
/// A 429 is not a failed attempt: it waits for `Retry-After` and does not count against
/// `max_attempts`, but it does count against `max_elapsed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per request, the first one included (so 1 means "never retry").
    pub max_attempts: u32,
    /// Total time a request may spend in retries and rate waits before it fails.
    pub max_elapsed: Duration,
    /// The first backoff ceiling; it doubles per failed attempt (full jitter below it).
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            max_elapsed: Duration::from_secs(600),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}
