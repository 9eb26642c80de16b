//! JSON decoding with serde paths, snippets and schema-drift detection.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use crate::error::{ApiError, truncate};
use crate::event::ClientEvent;
use crate::page::RejectedItem;

/// How many characters of an offending item a decode error quotes.
const SNIPPET_CHARS: usize = 200;

/// Reports unknown fields once per (endpoint pattern, field path).
#[derive(Debug, Default)]
pub(crate) struct DriftLog {
    seen: Mutex<HashSet<(String, String)>>,
}

impl DriftLog {
    fn report(&self, endpoint: &str, fields: Vec<String>, events: &broadcast::Sender<ClientEvent>) {
        if fields.is_empty() {
            return;
        }
        let pattern = endpoint_pattern(endpoint);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for field in fields {
            let field = normalise_field(&field);
            if seen.insert((pattern.clone(), field.clone())) {
                tracing::warn!(
                    endpoint = %pattern,
                    field = %field,
                    "schema drift: the API sent a field the models do not know (kept in the raw JSON)"
                );
                let _ = events.send(ClientEvent::SchemaDrift {
                    endpoint: pattern.clone(),
                    field,
                });
            }
        }
    }
}

/// `/v2/campus/1/users` → `/v2/campus/:id/users`, so drift is reported once per endpoint kind.
pub(crate) fn endpoint_pattern(endpoint: &str) -> String {
    let path = endpoint.split('?').next().unwrap_or(endpoint);
    path.split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit() || c == ',') {
                ":id"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sequence indices are dropped from drift paths (`cursus_users.3.foo` → `cursus_users[].foo`),
/// and so are the `?` steps serde_ignored inserts for `Option` fields.
fn normalise_field(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('.') {
        // serde_ignored marks a step through an `Option` with `?`; it carries no information.
        if seg == "?" {
            continue;
        }
        if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
            out.push_str("[]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// Decodes one JSON value as `T`, collecting unknown fields.
fn decode_value<T: DeserializeOwned>(
    endpoint: &str,
    json: &str,
    prefix: &str,
    unknown: &mut Vec<String>,
) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let mut on_ignored = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let ignored = serde_ignored::Deserializer::new(&mut de, &mut on_ignored);
    let value: T = serde_path_to_error::deserialize(ignored).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            if prefix.is_empty() {
                ".".to_string()
            } else {
                prefix.to_string()
            }
        } else {
            format!(
                "{prefix}{}",
                if prefix.is_empty() {
                    path
                } else {
                    format!(".{path}")
                }
            )
        };
        ApiError::Decode {
            endpoint: endpoint.to_string(),
            path,
            message: e.inner().to_string(),
            snippet: truncate(json, SNIPPET_CHARS),
        }
    })?;
    de.end().map_err(|e| ApiError::Decode {
        endpoint: endpoint.to_string(),
        path: if prefix.is_empty() {
            ".".into()
        } else {
            prefix.into()
        },
        message: e.to_string(),
        snippet: truncate(json, SNIPPET_CHARS),
    })?;
    Ok(value)
}

fn body_str<'a>(endpoint: &str, body: &'a [u8]) -> Result<&'a str, ApiError> {
    std::str::from_utf8(body).map_err(|e| ApiError::Decode {
        endpoint: endpoint.to_string(),
        path: ".".into(),
        message: format!("the body is not UTF-8: {e}"),
        snippet: truncate(&String::from_utf8_lossy(body), SNIPPET_CHARS),
    })
}

/// Splits a list body into its items' raw JSON; a body that is not a JSON array is an error
/// quoting it.
fn split_list(endpoint: &str, body: &[u8]) -> Result<Vec<Box<RawValue>>, ApiError> {
    let text = body_str(endpoint, body)?;
    serde_json::from_str(text).map_err(|e| ApiError::Decode {
        endpoint: endpoint.to_string(),
        path: ".".into(),
        message: format!("expected a JSON array: {e}"),
        snippet: truncate(text, SNIPPET_CHARS),
    })
}

/// Decoded items, their raw JSON, and the items set aside.
pub(crate) type Lenient<T> = (Vec<T>, Vec<Box<RawValue>>, Vec<RejectedItem>);

/// Decodes a list body into typed items plus each item's raw JSON.
///
/// The body is first split into raw items, then each item is decoded on its own, so an error
/// names the item (`[3].id`) and quotes that item, and `raw` is exactly what was received.
/// When `lenient`, an item that does not decode is set aside with its error instead of
/// failing the page (a body that is not a JSON array still fails). Returns the decoded items
/// with their raw JSON, and the rejected ones (none when strict).
pub(crate) fn decode_items<T: DeserializeOwned>(
    endpoint: &str,
    body: &[u8],
    drift: &DriftLog,
    events: &broadcast::Sender<ClientEvent>,
    lenient: bool,
) -> Result<Lenient<T>, ApiError> {
    let all = split_list(endpoint, body)?;
    let (mut items, mut raw, mut rejected) = (
        Vec::with_capacity(all.len()),
        Vec::with_capacity(all.len()),
        Vec::new(),
    );
    let mut unknown = Vec::new();
    for (index, r) in all.into_iter().enumerate() {
        match decode_value::<T>(endpoint, r.get(), &format!("[{index}]"), &mut unknown) {
            Ok(item) => {
                items.push(item);
                raw.push(r);
            }
            Err(e) if !lenient => return Err(e),
            Err(e) => {
                #[derive(serde::Deserialize)]
                struct IdOnly {
                    id: i64,
                }
                let id = serde_json::from_str::<IdOnly>(r.get()).ok().map(|v| v.id);
                let error = match &e {
                    ApiError::Decode { path, message, .. } => format!("{path}: {message}"),
                    other => other.to_string(),
                };
                rejected.push(RejectedItem {
                    index,
                    id,
                    raw: r,
                    error,
                });
            }
        }
    }
    drift.report(endpoint, unknown, events);
    Ok((items, raw, rejected))
}

/// Decodes a single-object body.
pub(crate) fn decode_one<T: DeserializeOwned>(
    endpoint: &str,
    body: &[u8],
    drift: &DriftLog,
    events: &broadcast::Sender<ClientEvent>,
) -> Result<T, ApiError> {
    let text = body_str(endpoint, body)?;
    let mut unknown = Vec::new();
    let v = decode_value::<T>(endpoint, text, "", &mut unknown)?;
    drift.report(endpoint, unknown, events);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{CursusUser, User};

    fn chan() -> broadcast::Sender<ClientEvent> {
        broadcast::channel(16).0
    }

    #[test]
    fn patterns_and_fields() {
        assert_eq!(
            endpoint_pattern("/v2/campus/1/users"),
            "/v2/campus/:id/users"
        );
        assert_eq!(endpoint_pattern("/v2/users/jdoe"), "/v2/users/jdoe");
        assert_eq!(normalise_field("cursus_users.3.foo"), "cursus_users[].foo");
    }

    #[test]
    fn lenient_decoding_sets_bad_items_aside_with_their_position_id_and_reason() {
        let body =
            br#"[{"id":1,"login":"a"},{"id":2,"login":42},{"login":"c"},{"id":4,"login":"d"}]"#;
        let (items, raw, rejected) =
            decode_items::<User>("/v2/users", body, &DriftLog::default(), &chan(), true).unwrap();
        assert_eq!(items.iter().map(|u| u.id).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(raw.len(), 2);
        let seen: Vec<(usize, Option<i64>)> = rejected.iter().map(|r| (r.index, r.id)).collect();
        assert_eq!(seen, [(1, Some(2)), (2, None)]);
        assert!(
            rejected[0].error.starts_with("[1].login: invalid type"),
            "{}",
            rejected[0].error
        );
        assert_eq!(rejected[0].raw.get(), r#"{"id":2,"login":42}"#);
        assert!(
            rejected[1].error.contains("missing field `id`"),
            "{}",
            rejected[1].error
        );
        // A body that is not a list still fails.
        assert!(
            decode_items::<User>("/v2/users", b"{", &DriftLog::default(), &chan(), true).is_err()
        );
    }

    #[test]
    fn missing_id_is_an_error_naming_the_item() {
        let body = br#"[{"id":1,"login":"a"},{"login":"b"}]"#;
        let err = decode_items::<User>("/v2/users", body, &DriftLog::default(), &chan(), false)
            .unwrap_err();
        match err {
            ApiError::Decode {
                path,
                snippet,
                message,
                ..
            } => {
                assert_eq!(path, "[1]");
                assert!(message.contains("missing field `id`"), "{message}");
                assert!(snippet.contains("\"b\""), "{snippet}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn nested_type_error_has_a_path() {
        let body = br#"[{"id":1,"cursus":{"id":"twenty-one"}}]"#;
        let err = decode_items::<CursusUser>(
            "/v2/cursus_users",
            body,
            &DriftLog::default(),
            &chan(),
            false,
        )
        .unwrap_err();
        match err {
            ApiError::Decode { path, .. } => assert_eq!(path, "[0].cursus.id"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_fields_are_reported_once_and_raw_is_kept() {
        let tx = chan();
        let mut rx = tx.subscribe();
        let drift = DriftLog::default();
        let body = br#"[{"id":1,"shiny":true,"image":{"link":null,"versions":{"huge":"x"}}},{"id":2,"shiny":false}]"#;
        let (items, raw, _) =
            decode_items::<User>("/v2/campus/7/users", body, &drift, &tx, false).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            raw[0].get(),
            r#"{"id":1,"shiny":true,"image":{"link":null,"versions":{"huge":"x"}}}"#
        );
        let _ = decode_items::<User>("/v2/campus/9/users", body, &drift, &tx, false).unwrap();
        let mut fields = Vec::new();
        while let Ok(ClientEvent::SchemaDrift { endpoint, field }) = rx.try_recv() {
            assert_eq!(endpoint, "/v2/campus/:id/users");
            fields.push(field);
        }
        fields.sort();
        assert_eq!(fields, ["image.versions.huge", "shiny"]);
    }

    #[test]
    fn malformed_json_quotes_the_body() {
        let err = decode_items::<User>(
            "/v2/users",
            b"[{\"id\":1,",
            &DriftLog::default(),
            &chan(),
            false,
        )
        .unwrap_err();
        assert!(
            matches!(err, ApiError::Decode { ref snippet, .. } if snippet.starts_with("[{\"id\":1,"))
        );
    }
}
