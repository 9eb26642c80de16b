//! One page of a list endpoint, with the raw JSON of every item and the request's metadata.

use std::time::Duration;

use serde_json::value::RawValue;

/// What happened while fetching one response: useful for logs, progress and resume decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// The path that was requested, e.g. `/v2/campus/1/users`.
    pub endpoint: String,
    /// The final HTTP status.
    pub status: u16,
    /// HTTP requests sent for this call (429 answers and the 401 replay included).
    pub attempts: u32,
    /// `attempts - 1`: requests that were repeats.
    pub retries: u32,
    /// Time spent waiting for the pacer, for `Retry-After` and in backoff.
    pub waited: Duration,
    /// Whether the token had to be refreshed during this call (after a 401 or on expiry).
    pub token_refreshed: bool,
    /// The server's `X-Request-Id` of the final response.
    pub request_id: Option<String>,
}

/// The `Link` header's relations (absolute URLs, as sent by the server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// `rel="first"`.
    pub first: Option<String>,
    /// `rel="prev"`.
    pub prev: Option<String>,
    /// `rel="next"`.
    pub next: Option<String>,
    /// `rel="last"`.
    pub last: Option<String>,
}

impl Links {
    /// Parses an RFC 8288 `Link` header such as `<https://…?page=2>; rel="next", <…>; rel="last"`.
    pub fn parse(header: &str) -> Links {
        let mut links = Links::default();
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let Some(target) = pieces.next() else {
                continue;
            };
            let target = target.trim();
            let Some(url) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
                continue;
            };
            for attr in pieces {
                let attr = attr.trim();
                let Some(rel) = attr.strip_prefix("rel=") else {
                    continue;
                };
                let rel = rel.trim_matches('"');
                for r in rel.split_whitespace() {
                    let slot = match r {
                        "first" => &mut links.first,
                        "prev" => &mut links.prev,
                        "next" => &mut links.next,
                        "last" => &mut links.last,
                        _ => continue,
                    };
                    *slot = Some(url.to_string());
                }
            }
        }
        links
    }
}

/// An item of a page that could not be decoded into the model, kept as received (see
/// [`crate::FtClient::get_page_lenient`]).
#[derive(Debug, Clone)]
pub struct RejectedItem {
    /// Its position in the page.
    pub index: usize,
    /// Its `id`, when the raw JSON has an integer one.
    pub id: Option<i64>,
    /// The item's JSON exactly as received.
    pub raw: Box<RawValue>,
    /// What is wrong with it: the field's path and the decoder's message.
    pub error: String,
}

/// One page of results.
#[derive(Debug)]
pub struct Page<T> {
    /// The decoded items, in the server's order.
    pub items: Vec<T>,
    /// Each item's JSON exactly as received, same order and length as `items`, so a store can
    /// keep what the server sent even for fields the model does not know.
    pub raw: Vec<Box<RawValue>>,
    /// The page number (from `X-Page`, else the request).
    pub page: u32,
    /// The effective page size (from `X-Per-Page`, else the request); the API may clamp it.
    pub per_page: u32,
    /// The total number of items over all pages (`X-Total`), when the server sent it.
    pub total: Option<u64>,
    /// Pagination links.
    pub links: Links,
    /// How the page was fetched.
    pub meta: RequestMeta,
    /// Items that could not be decoded (always empty from [`crate::FtClient::get_page`], which
    /// fails on the first one instead).
    pub rejected: Vec<RejectedItem>,
}

impl<T> Page<T> {
    /// Whether another page may follow: this page was full (rejected items count: the server
    /// sent them) and, when known, the total says more items exist.
    pub fn has_more(&self) -> bool {
        let sent = self.items.len() + self.rejected.len();
        if sent == 0 || (sent as u64) < u64::from(self.per_page) {
            return false;
        }
        match self.total {
            Some(total) => u64::from(self.page) * u64::from(self.per_page) < total,
            None => true,
        }
    }

    /// The number of pages implied by `X-Total` and the page size.
    pub fn total_pages(&self) -> Option<u64> {
        let per = u64::from(self.per_page.max(1));
        self.total.map(|t| t.div_ceil(per))
    }
}

impl<T> IntoIterator for Page<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_header() {
        let h = r#"<https://api.intra.42.fr/v2/users?page=1&per_page=2>; rel="first", <https://api.intra.42.fr/v2/users?page=3&per_page=2>; rel="next", <https://api.intra.42.fr/v2/users?page=11469&per_page=2>; rel="last""#;
        let l = Links::parse(h);
        assert_eq!(
            l.next.as_deref(),
            Some("https://api.intra.42.fr/v2/users?page=3&per_page=2")
        );
        assert!(l.last.unwrap().contains("11469"));
        assert!(l.first.is_some());
        assert!(l.prev.is_none());
    }

    fn page(n: usize, page: u32, per_page: u32, total: Option<u64>) -> Page<u8> {
        Page {
            items: vec![0; n],
            raw: Vec::new(),
            page,
            per_page,
            total,
            links: Links::default(),
            meta: RequestMeta::default(),
            rejected: Vec::new(),
        }
    }

    #[test]
    fn has_more_uses_fullness_and_total() {
        assert!(page(100, 1, 100, Some(250)).has_more());
        assert!(!page(50, 3, 100, Some(250)).has_more());
        assert!(!page(100, 2, 100, Some(200)).has_more());
        assert!(page(100, 2, 100, None).has_more());
        assert!(!page(0, 1, 100, None).has_more());
        assert_eq!(page(100, 1, 100, Some(250)).total_pages(), Some(3));
    }
}
