//! A typed builder for the 42 API's query string: `filter`, `range`, `sort` and pagination.

use std::fmt::Display;

use chrono::{DateTime, SecondsFormat, Utc};

/// The page size used when a query does not set one (the API's maximum).
pub const DEFAULT_PER_PAGE: u32 = 100;

/// Query parameters for a list endpoint.
///
/// Each setter replaces an earlier value for the same key, so a query can be reused with a
/// different `page`. Values are URL-encoded when the request is built.
///
/// ```
/// use ft_api::Query;
/// let q = Query::new().filter("user_id", [1, 2, 3]).range("id", 101, 200).sort(["id"]);
/// assert_eq!(
///     q.to_query_string(),
///     "filter%5Buser_id%5D=1%2C2%2C3&range%5Bid%5D=101%2C200&sort=id"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    params: Vec<(String, String)>,
}

impl Query {
    /// An empty query (page 1, 100 per page when sent as a list request).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a raw parameter, replacing any earlier value for `key`.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(key.into(), value.into());
        self
    }

    /// `filter[field]=a,b,c`: items whose `field` equals any of the values.
    pub fn filter<I>(self, field: &str, values: I) -> Self
    where
        I: IntoIterator,
        I::Item: Display,
    {
        let joined = join(values);
        self.param(format!("filter[{field}]"), joined)
    }

    /// `range[field]=min,max`: items whose `field` lies between the bounds.
    pub fn range(self, field: &str, min: impl Display, max: impl Display) -> Self {
        self.param(format!("range[{field}]"), format!("{min},{max}"))
    }

    /// `range[field]=from,to` with RFC 3339 UTC timestamps (millisecond precision, `Z` suffix),
    /// the form the API is known to accept.
    pub fn range_time(self, field: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        self.range(field, rfc3339(from), rfc3339(to))
    }

    /// `sort=f1,-f2`: ascending by default, a leading `-` sorts descending.
    pub fn sort<I>(self, fields: I) -> Self
    where
        I: IntoIterator,
        I::Item: Display,
    {
        let joined = join(fields);
        self.param("sort", joined)
    }

    /// The page size (the API clamps it to 100).
    pub fn per_page(self, n: u32) -> Self {
        self.param("per_page", n.to_string())
    }

    /// The 1-based page number.
    pub fn page(self, n: u32) -> Self {
        self.param("page", n.to_string())
    }

    /// The value set for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The page number set, or 1.
    pub fn page_number(&self) -> u32 {
        self.get("page").and_then(|v| v.parse().ok()).unwrap_or(1)
    }

    /// The page size set, or [`DEFAULT_PER_PAGE`].
    pub fn page_size(&self) -> u32 {
        self.get("per_page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_PER_PAGE)
    }

    /// All parameters in insertion order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.params
    }

    /// The URL-encoded query string (without the leading `?`).
    pub fn to_query_string(&self) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            ser.append_pair(k, v);
        }
        ser.finish()
    }

    /// The same query with `page` and `per_page` filled in with their defaults if unset.
    pub(crate) fn with_paging_defaults(&self) -> Query {
        let mut q = self.clone();
        if q.get("per_page").is_none() {
            q = q.per_page(DEFAULT_PER_PAGE);
        }
        if q.get("page").is_none() {
            q = q.page(1);
        }
        q
    }

    fn set(&mut self, key: String, value: String) {
        if let Some(slot) = self.params.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.params.push((key, value));
        }
    }
}

/// Formats a timestamp the way 42 clients send it: `2024-01-01T00:00:00.000Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn join<I>(values: I) -> String
where
    I: IntoIterator,
    I::Item: Display,
{
    values
        .into_iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn builds_filters_ranges_and_sorts() {
        let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2024, 1, 2, 12, 30, 0).unwrap();
        let q = Query::new()
            .filter("user_id", [1, 2, 3])
            .range("id", 101, i64::MAX)
            .range_time("updated_at", from, to)
            .sort(["id", "-created_at"])
            .per_page(50)
            .page(3);
        assert_eq!(q.get("filter[user_id]"), Some("1,2,3"));
        assert_eq!(q.get("range[id]"), Some("101,9223372036854775807"));
        assert_eq!(
            q.get("range[updated_at]"),
            Some("2024-01-01T00:00:00.000Z,2024-01-02T12:30:00.000Z")
        );
        assert_eq!(q.get("sort"), Some("id,-created_at"));
        assert_eq!(q.page_number(), 3);
        assert_eq!(q.page_size(), 50);
    }

    #[test]
    fn setters_replace_and_defaults_apply() {
        let q = Query::new().page(2).page(5);
        assert_eq!(q.pairs().len(), 1);
        assert_eq!(q.page_number(), 5);
        let d = Query::new().with_paging_defaults();
        assert_eq!(d.get("per_page"), Some("100"));
        assert_eq!(d.get("page"), Some("1"));
    }
}
