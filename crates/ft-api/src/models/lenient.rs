//! Field deserializers that accept the API's variations without losing information.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Deserializer, de};

/// A nullable timestamp: RFC 3339 with any offset (converted to UTC), or a bare date
/// (`2024-01-31`, read as midnight UTC). Anything else is an error, never a silent `None`.
pub fn opt_timestamp<'de, D>(d: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Some(date.and_time(NaiveTime::MIN).and_utc()));
    }
    Err(de::Error::custom(format!("invalid timestamp {s:?}")))
}

/// A nullable string that some API versions send as a number (`pool_year`).
pub fn opt_string_or_number<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::S(s) => s,
        Either::I(i) => i.to_string(),
        Either::F(f) => f.to_string(),
    }))
}
