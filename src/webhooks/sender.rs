//! One delivery attempt: re-check the URL, shape and sign the body, POST it, and judge
//! the answer. Knows nothing of the store.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use url::Url;

use entity::delivery;
use entity::states::DeliveryKind;

use super::Settings;
use super::retry::{Verdict, parse_retry_after, verdict};
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
    let mut payload = match &delivery.payload {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    payload.insert("webhook_sent_at".into(), json!(iso(sent_at)));
    if let Some(allowed) = &settings.allowed_fields {
        payload.retain(|key, _| allowed.contains(key));
    }
    serde_json::to_vec(&payload).unwrap_or_default()
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
