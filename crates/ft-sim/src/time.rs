//! Timestamps: the simulator keeps every instant as milliseconds since the Unix epoch (UTC) and
//! renders them the way the 42 API does.

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};

/// Milliseconds since the Unix epoch, UTC.
pub(crate) type Ms = i64;

pub(crate) const SECOND: Ms = 1_000;
pub(crate) const HOUR: Ms = 3_600 * SECOND;
pub(crate) const DAY: Ms = 24 * HOUR;

/// Renders `2017-11-22T13:41:00.825Z`, the API's UTC format.
pub(crate) fn fmt_utc(ms: Ms) -> String {
    to_datetime(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Renders a timestamp in a campus's fixed offset (`2025-10-24T00:00:00.000+02:00`), as the API
/// does for `anonymize_date` and `data_erasure_date`.
pub(crate) fn fmt_offset(ms: Ms, offset_minutes: i32) -> String {
    let offset = FixedOffset::east_opt(offset_minutes * 60)
        .unwrap_or(FixedOffset::east_opt(0).expect("zero offset"));
    to_datetime(ms)
        .with_timezone(&offset)
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// Converts milliseconds to a `DateTime<Utc>` (saturating at the representable range).
pub(crate) fn to_datetime(ms: Ms) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Parses an RFC 3339 timestamp (`Z`, an offset, optional fraction) into milliseconds.
///
/// A date alone (`2024-01-01`) is accepted as midnight UTC, because clients write ranges that way.
pub(crate) fn parse_timestamp(text: &str) -> Option<Ms> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.timestamp_millis());
    }
    // A `+` in an offset often arrives decoded as a space when the client did not encode it.
    if let Some((head, tail)) = text.rsplit_once(' ')
        && tail.len() == 5
        && tail.as_bytes()[2] == b':'
        && let Ok(parsed) = DateTime::parse_from_rfc3339(&format!("{head}+{tail}"))
    {
        return Some(parsed.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_api() {
        let ms = parse_timestamp("2017-11-22T13:41:00.825Z").expect("parses");
        assert_eq!(fmt_utc(ms), "2017-11-22T13:41:00.825Z");
        assert_eq!(fmt_offset(ms, 120), "2017-11-22T15:41:00.825+02:00");
    }

    #[test]
    fn parses_offsets_dates_and_rejects_garbage() {
        let z = parse_timestamp("2024-01-01T00:00:00Z").expect("Z");
        assert_eq!(parse_timestamp("2024-01-01T01:00:00+01:00"), Some(z));
        assert_eq!(parse_timestamp("2024-01-01T01:00:00 01:00"), Some(z));
        assert_eq!(parse_timestamp("2024-01-01"), Some(z));
        assert_eq!(parse_timestamp("2024-01-01T00:00:00.000Z"), Some(z));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2024-13-01T00:00:00Z"), None);
    }
}
