//! Checks of single values: the API URL, the database URL, the `[freshness]` table.

use std::path::PathBuf;
use std::time::Duration;

use ft_store::{DatabaseUrl, Freshness};
use url::Url;

use super::DEFAULT_API_URL;
use super::error::{ConfigError, Origin};
use super::layers::Raw;

pub(super) fn parse_api_url(raw: Option<Raw>) -> Result<(Url, Url), ConfigError> {
    let raw = raw.unwrap_or(Raw {
        value: DEFAULT_API_URL.to_owned(),
        origin: Origin::Default,
    });
    let invalid = |reason: String| ConfigError::Invalid {
        origin: raw.origin.clone(),
        reason,
    };
    let trimmed = raw.value.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| {
        invalid(format!(
            "{trimmed:?} is not a URL ({e}); expected https://HOST"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!(
            "{trimmed:?} is not an http(s) URL; expected https://HOST"
        )));
    }
    if url.password().is_some() || !url.username().is_empty() {
        return Err(invalid(
            "the API URL must not carry credentials; use FT42_CLIENT_ID and FT42_CLIENT_SECRET"
                .to_owned(),
        ));
    }
    let token_url = Url::parse(&format!("{trimmed}/oauth/token"))
        .map_err(|e| invalid(format!("cannot derive the token URL: {e}")))?;
    Ok((url, token_url))
}

/// Parses the database URL once ([`DatabaseUrl`]); the error names the setting and never shows
/// a password.
pub(super) fn parse_database_url(raw: &Raw) -> Result<DatabaseUrl, ConfigError> {
    DatabaseUrl::parse(&raw.value).map_err(|e| ConfigError::Invalid {
        origin: raw.origin.clone(),
        reason: match e {
            ft_store::StoreError::BadUrl { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// The `[freshness]` table: resource = "duration" (e.g. `achievements_users = "2h"`), on top of
/// the defaults of [`Freshness`], with the schedule's `grace`. Unknown resources and bad
/// durations are errors.
pub(super) fn parse_freshness(
    table: Option<&std::collections::BTreeMap<String, String>>,
    path: Option<&std::path::Path>,
    grace: Duration,
) -> Result<Freshness, ConfigError> {
    let mut out = Freshness::with_grace(grace);
    let Some(table) = table else {
        return Ok(out);
    };
    let known = ft_sync::resources();
    for (resource, value) in table {
        let origin = Origin::File {
            key: "freshness",
            path: path.map(PathBuf::from).unwrap_or_default(),
        };
        if !known.contains(&resource.as_str()) {
            return Err(ConfigError::Invalid {
                origin,
                reason: format!(
                    "unknown resource {resource:?} in [freshness]; expected one of: {}",
                    known.join(", ")
                ),
            });
        }
        let d = match value.trim() {
            "0" | "always" => Duration::ZERO,
            v => humantime::parse_duration(v).map_err(|e| ConfigError::Invalid {
                origin,
                reason: format!(
                    "[freshness] {resource} = {v:?} is not a duration ({e}); write e.g. \"30m\", \"2h\" or \"0\""
                ),
            })?,
        };
        out.set(resource.clone(), d);
    }
    Ok(out)
}

/// The `[look_back]` table: how far before its watermark a listing's delta starts, per
/// resource (e.g. `locations = "12h"`: sessions are often recorded late), on top of the
/// engine's defaults ([`ft_sync::default_look_back`]). Only listings with a delta window take
/// one; unknown resources and bad durations are errors.
pub(super) fn parse_look_back(
    table: Option<&std::collections::BTreeMap<String, String>>,
    path: Option<&std::path::Path>,
) -> Result<std::collections::BTreeMap<String, Duration>, ConfigError> {
    let mut out = ft_sync::default_look_back();
    let Some(table) = table else {
        return Ok(out);
    };
    let known = ft_sync::windowed_resources();
    for (resource, value) in table {
        let origin = Origin::File {
            key: "look_back",
            path: path.map(PathBuf::from).unwrap_or_default(),
        };
        if !known.contains(&resource.as_str()) {
            return Err(ConfigError::Invalid {
                origin,
                reason: format!(
                    "{resource:?} in [look_back] has no delta window; expected one of: {}",
                    known.join(", ")
                ),
            });
        }
        let d = humantime::parse_duration(value.trim()).map_err(|e| ConfigError::Invalid {
            origin,
            reason: format!(
                "[look_back] {resource} = {value:?} is not a duration ({e}); write e.g. \"10m\" or \"6h\""
            ),
        })?;
        out.insert(resource.clone(), d);
    }
    Ok(out)
}
