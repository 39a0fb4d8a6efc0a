//! One delivery attempt: re-check the URL, shape and sign the body, POST it, and judge
//! the answer. Knows nothing of the store.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use url::Url;

use entity::delivery;
use entity::states::DeliveryKind;

use super::retry::{Verdict, parse_retry_after, verdict};
use super::{Settings, WEBHOOK_SENT_AT};
use crate::time::{iso, now_ms};

/// The first bytes of an answer kept in the delivery log.
const KEPT_RESPONSE_BYTES: usize = 1024;

/// How one attempt went.
#[derive(Debug)]
pub struct AttemptOutcome {
    pub attempted_at: i64,
    pub status_code: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub verdict: Verdict,
}

/// The HTTP client for webhook calls: no proxy from the environment, no redirects, and a
/// resolver that only yields addresses the URL policy allows.
pub fn client(settings: &Settings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(std::sync::Arc::new(super::policy::VettingResolver {
            policy: settings.policy.clone(),
        }))
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .tcp_nodelay(true)
        .user_agent(concat!("cronhook/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The body for one attempt: the stored run payload, stamped with `webhook_sent_at`, cut
/// to `allowed_fields`; an alert's payload as it is.
pub fn body(settings: &Settings, delivery: &delivery::Model, sent_at: i64) -> Vec<u8> {
    if delivery.kind == DeliveryKind::Alert {
        return serde_json::to_vec(&delivery.payload).unwrap_or_default();
    }
    let stamped = Stamped {
        payload: delivery.payload.as_object(),
        sent_at: iso(sent_at),
        allowed: settings.allowed_fields.as_ref(),
    };
    serde_json::to_vec(&stamped).unwrap_or_default()
}

/// A run payload with this attempt's `webhook_sent_at`, serialized straight from the stored
/// payload (no copy of it per attempt; docs/benchmarks.md has the measurement).
struct Stamped<'a> {
    payload: Option<&'a Map<String, Value>>,
    sent_at: String,
    allowed: Option<&'a HashSet<String>>,
}

impl Serialize for Stamped<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let kept = |key: &str| self.allowed.is_none_or(|allowed| allowed.contains(key));
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.payload.into_iter().flatten() {
            if key != WEBHOOK_SENT_AT && kept(key) {
                map.serialize_entry(key, value)?;
            }
        }
        if kept(WEBHOOK_SENT_AT) {
            map.serialize_entry(WEBHOOK_SENT_AT, &self.sent_at)?;
        }
        map.end()
    }
}

pub async fn attempt(
    client: &reqwest::Client,
    settings: &Settings,
    base: &Url,
    delivery: &delivery::Model,
) -> AttemptOutcome {
    let attempted_at = now_ms();
    let started = Instant::now();
    let refused = |error: String| AttemptOutcome {
        attempted_at,
        status_code: None,
        latency: started.elapsed(),
        error: Some(error),
        response_body: None,
        verdict: Verdict::Failed,
    };
    let target = match settings.policy.check_form(&delivery.url, base) {
        Ok(target) => target,
        Err(err) => return refused(format!("refused by the URL policy: {err}")),
    };
    let body = body(settings, delivery, attempted_at);
    let mut request = client
        .post(target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in &settings.headers {
        request = request.header(name.clone(), value.clone());
    }
    if let Some(signer) = &settings.signer {
        let timestamp = attempted_at / 1000;
        request = request
            .header("webhook-id", &delivery.delivery_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signer.sign(&delivery.delivery_id, timestamp, &body),
            );
    }
    let mut response = match request.body(body).send().await {
        Ok(response) => response,
        Err(err) => {
            return AttemptOutcome {
                attempted_at,
                status_code: None,
                latency: started.elapsed(),
                error: Some(describe(&err)),
                response_body: None,
                verdict: Verdict::Retry(None),
            };
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let mut kept = Vec::new();
    while kept.len() < KEPT_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(KEPT_RESPONSE_BYTES);
    let verdict = verdict(status, retry_after);
    let error = match verdict {
        Verdict::Delivered => None,
        _ if status.is_redirection() => Some(format!("HTTP {status} (redirects are not followed)")),
        _ => Some(format!("HTTP {status}")),
    };
    AttemptOutcome {
        attempted_at,
        status_code: Some(status.as_u16()),
        latency: started.elapsed(),
        error,
        response_body: (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()),
        verdict,
    }
}

/// A transport error with its causes (reqwest's own text says little: "error sending
/// request").
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stamped(payload: &Value, allowed: Option<&HashSet<String>>) -> String {
        let stamped = Stamped {
            payload: payload.as_object(),
            sent_at: "2026-12-07T12:00:00+00:00".into(),
            allowed,
        };
        String::from_utf8(serde_json::to_vec(&stamped).unwrap()).unwrap()
    }

    #[test]
    fn the_payload_keeps_its_keys_in_order_and_gets_webhook_sent_at_last() {
        let payload = json!({"run_id": "r", "status": "success", "values": {"b": 1, "a": [2]}});
        assert_eq!(
            stamped(&payload, None),
            r#"{"run_id":"r","status":"success","values":{"b":1,"a":[2]},"webhook_sent_at":"2026-12-07T12:00:00+00:00"}"#
        );
        let stale = json!({"webhook_sent_at": "old", "run_id": "r"});
        assert_eq!(
            stamped(&stale, None),
            r#"{"run_id":"r","webhook_sent_at":"2026-12-07T12:00:00+00:00"}"#,
            "one webhook_sent_at, this attempt's"
        );
        assert_eq!(
            stamped(&json!(null), None),
            r#"{"webhook_sent_at":"2026-12-07T12:00:00+00:00"}"#
        );
    }

    #[test]
    fn allowed_fields_cut_the_payload_and_the_stamp() {
        let payload = json!({"run_id": "r", "status": "success", "kwargs": {}});
        let allowed: HashSet<String> = ["status".to_string()].into();
        assert_eq!(stamped(&payload, Some(&allowed)), r#"{"status":"success"}"#);
        let allowed: HashSet<String> = ["run_id".to_string(), WEBHOOK_SENT_AT.to_string()].into();
        assert_eq!(
            stamped(&payload, Some(&allowed)),
            r#"{"run_id":"r","webhook_sent_at":"2026-12-07T12:00:00+00:00"}"#
        );
    }
}
