//! Request extractors that turn bad input into `ApiError`s with LangGraph's codes:
//! malformed JSON and invalid fields → 422, oversized bodies → 413.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::ApiError;

/// A JSON body whose top-level keys may not be `null` (LangGraph's schemas refuse them).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawJson(value) = RawJson::from_request(req, state).await?;
        reject_nulls(&value, &[])?;
        typed(&value).map(JsonBody)
    }
}

/// A JSON body as a value, for handlers that keep the body itself (a cron's payload).
pub struct RawJson(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "Request body is too large")
            } else {
                ApiError::new(status, rejection.body_text())
            }
        })?;
        parse_value(&bytes).map(RawJson)
    }
}

/// Refuses top-level `null`s except for the keys where null means something (`allowed`).
pub fn reject_nulls(value: &serde_json::Value, allowed: &[&str]) -> Result<(), ApiError> {
    if let serde_json::Value::Object(map) = value
        && let Some((key, _)) = map
            .iter()
            .find(|(key, v)| v.is_null() && !allowed.contains(&key.as_str()))
    {
        return Err(ApiError::invalid(format!("{key}: null is not allowed")));
    }
    Ok(())
}

/// Parses a JSON body into a value; bad syntax (or no body) is "Invalid JSON". Nesting
/// deeper than serde_json's limit (128) is bad syntax too, so no body reaches recursion
/// deeper than that. A NUL character is refused here, once for every body: PostgreSQL
/// cannot store it in text or jsonb, and SQLite's JSON paths refuse it.
pub fn parse_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::invalid("Invalid JSON in request body"))?;
    if let Some(path) = nul_at(&value) {
        return Err(ApiError::invalid(format!(
            "{path}: the NUL character (\\u0000) is not allowed in strings or keys"
        )));
    }
    Ok(value)
}

/// Where the first NUL character is in `value`'s strings and keys (`.` for the top level).
fn nul_at(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => Some(".".into()),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            nul_at(item).map(|inner| join_path(&format!("[{index}]"), &inner))
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(key.escape_default().to_string());
            }
            nul_at(item).map(|inner| join_path(key, &inner))
        }),
        _ => None,
    }
}

fn join_path(outer: &str, inner: &str) -> String {
    match inner {
        "." => outer.to_string(),
        _ if inner.starts_with('[') => format!("{outer}{inner}"),
        _ => format!("{outer}.{inner}"),
    }
}

/// Deserializes an already-parsed JSON value into `T`, naming the field that is wrong.
pub fn typed<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = strip_position(&err.into_inner().to_string());
        if path == "." || path.is_empty() {
            ApiError::invalid(message)
        } else {
            ApiError::invalid(format!("{path}: {message}"))
        }
    })
}

/// serde_json appends " at line 1 column 17": noise for an API caller.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

/// Query parameters, with LangGraph's 422 for bad values.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(QueryParams)
            .map_err(|err| ApiError::invalid(format!("Invalid query parameters: {err}")))
    }
}

/// Parses a path id, answering LangGraph's `Invalid <what> ID: must be a UUID`.
pub fn parse_uuid(value: &str, what: &str) -> Result<String, ApiError> {
    Uuid::parse_str(value)
        .map(|uuid| uuid.to_string())
        .map_err(|_| ApiError::invalid(format!("Invalid {what} ID: must be a UUID")))
}

/// Parses a query value that must name one of `names`, answering which ones it may be.
pub fn one_of<T>(
    field: &str,
    text: &str,
    names: impl IntoIterator<Item = (T, &'static str)>,
) -> Result<T, ApiError> {
    let mut known = Vec::new();
    for (value, name) in names {
        if name == text {
            return Ok(value);
        }
        known.push(format!("'{name}'"));
    }
    Err(ApiError::invalid(format!(
        "{field}: '{text}' is not one of {}",
        known.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        limit: Option<u32>,
    }

    fn parse(bytes: &[u8]) -> Result<Sample, ApiError> {
        let value = parse_value(bytes)?;
        reject_nulls(&value, &[])?;
        typed(&value)
    }

    #[test]
    fn syntax_and_field_errors_are_told_apart() {
        assert_eq!(
            parse(b"").unwrap_err().detail,
            "Invalid JSON in request body"
        );
        let err = parse(b"{not json").unwrap_err();
        assert_eq!(err.detail, "Invalid JSON in request body");
        let err = parse(br#"{"limit": "ten"}"#).unwrap_err();
        assert!(
            err.detail.starts_with("limit: invalid type"),
            "{}",
            err.detail
        );
        let err = parse(br#"{"limitt": 1}"#).unwrap_err();
        assert!(
            err.detail.contains("unknown field `limitt`"),
            "{}",
            err.detail
        );
        let err = parse(br#"{"limit": null}"#).unwrap_err();
        assert_eq!(err.detail, "limit: null is not allowed");
        assert_eq!(parse(b"{}").expect("empty object").limit, None);
    }

    #[test]
    fn nul_characters_are_refused_with_their_place() {
        let err = parse_value(br#"{"metadata": {"\u0000": 1}}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            err.detail.starts_with("metadata.\\u{0}: "),
            "{}",
            err.detail
        );
        let err = parse_value(br#"{"input": {"a": [1, "x\u0000"]}}"#).unwrap_err();
        assert!(err.detail.starts_with("input.a[1]: "), "{}", err.detail);
        let err = parse_value(br#""\u0000""#).unwrap_err();
        assert!(err.detail.starts_with(".: "), "{}", err.detail);
        parse_value(br#"{"input": {"a": "\u0001 fine"}}"#).expect("other control characters pass");
    }

    #[test]
    fn nesting_beyond_the_parser_limit_is_invalid_json() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            parse_value(deep.as_bytes()).unwrap_err().detail,
            "Invalid JSON in request body"
        );
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        parse_value(fine.as_bytes()).expect("100 levels parse");
    }

    #[test]
    fn uuids_are_normalised() {
        assert_eq!(
            parse_uuid("6BA7B821-9DAD-11D1-80B4-00C04FD430C8", "cron").expect("valid"),
            "6ba7b821-9dad-11d1-80b4-00c04fd430c8"
        );
        assert_eq!(
            parse_uuid("nope", "cron").unwrap_err().detail,
            "Invalid cron ID: must be a UUID"
        );
    }
}
