//! The HTTP side of the ops commands: one request to the daemon's REST API, its answer or
//! an [`OpsError`] that says what went wrong and what to do.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::ApiKey;

/// Everything that can fail in an ops command. Each variant has one exit code.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A flag or argument clap could not check on its own.
    #[error("{0}")]
    Usage(String),
    /// A file given to the command is not valid (or cannot be written as asked).
    #[error("{0}")]
    Input(String),
    #[error("not found: {detail}")]
    NotFound { detail: String },
    #[error("{status}: {detail} — check --api-key or CRONHOOK_API_KEY (a key allowed to do this)")]
    Unauthorized { status: StatusCode, detail: String },
    #[error("rejected ({status}): {detail}")]
    Rejected { status: StatusCode, detail: String },
    #[error(
        "cannot reach cronhook at {url}: {reason} — is the daemon running? set --url or CRONHOOK_URL"
    )]
    Unreachable { url: String, reason: String },
    #[error("cronhook at {url} failed ({status}): {detail} — see the daemon's log")]
    Server {
        url: String,
        status: StatusCode,
        detail: String,
    },
    #[error("unexpected answer from {url}: {detail} — is --url a cronhook daemon?")]
    Unexpected { url: String, detail: String },
}

impl OpsError {
    /// The exit code scripts rely on (see `EXIT_CODES`).
    pub fn exit_code(&self) -> u8 {
        match self {
            OpsError::Usage(_) => 2,
            OpsError::NotFound { .. } => 3,
            OpsError::Unauthorized { .. } => 4,
            OpsError::Rejected { .. } | OpsError::Input(_) => 5,
            OpsError::Unreachable { .. }
            | OpsError::Server { .. }
            | OpsError::Unexpected { .. } => 6,
        }
    }
}

pub type OpsResult<T> = Result<T, OpsError>;

/// A successful answer: its JSON body (null when empty) and its headers.
#[derive(Debug)]
pub struct Answer {
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    /// `X-Pagination-Next`, the offset of the next page, when there is one.
    pub fn next_offset(&self) -> Option<&str> {
        self.headers
            .get("x-pagination-next")
            .and_then(|v| v.to_str().ok())
    }

    /// `X-Pagination-Total`.
    pub fn total(&self) -> Option<&str> {
        self.headers
            .get("x-pagination-total")
            .and_then(|v| v.to_str().ok())
    }
}

/// Talks to one daemon.
pub struct Client {
    http: reqwest::Client,
    /// The base URL without a trailing slash, as the user gave it (minus any password).
    base: String,
    timeout: Duration,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    pub fn new(url: &url::Url, api_key: Option<&ApiKey>) -> OpsResult<Client> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OpsError::Usage(format!(
                "--url: '{}' is not an http:// or https:// URL",
                url.scheme()
            )));
        }
        let mut headers = HeaderMap::new();
        // An empty CRONHOOK_API_KEY (as env files leave it) means no key.
        if let Some(key) = api_key.filter(|key| !key.expose().is_empty()) {
            let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
                OpsError::Usage(
                    "--api-key / CRONHOOK_API_KEY: not usable as an HTTP header value \
                     (control or non-ASCII characters)"
                        .into(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5))
            .timeout(TIMEOUT)
            .user_agent(concat!("cronhook-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| OpsError::Usage(format!("cannot set up the HTTP client: {err}")))?;
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        Ok(Client {
            http,
            base: shown.as_str().trim_end_matches('/').to_string(),
            timeout: TIMEOUT,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> OpsResult<Answer> {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> OpsResult<Answer> {
        self.send(Method::POST, path, &[], body).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> OpsResult<Answer> {
        self.send(Method::PATCH, path, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> OpsResult<Answer> {
        self.send(Method::DELETE, path, &[], None).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> OpsResult<Answer> {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&serde_urlencoded::to_string(query).map_err(|err| {
                OpsError::Usage(format!("cannot encode the query string: {err}"))
            })?);
        }
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| self.transport(&err))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|err| self.transport(&err))?;
        if status.is_success() {
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|err| OpsError::Unexpected {
                    url: self.base.clone(),
                    detail: format!("{status} with a body that is not JSON ({err})"),
                })?
            };
            return Ok(Answer { body, headers });
        }
        Err(self.failure(status, &bytes))
    }

    /// An error answer: its status decides the kind, its `detail` is what the user reads.
    fn failure(&self, status: StatusCode, bytes: &[u8]) -> OpsError {
        let detail = detail(status, bytes);
        match status.as_u16() {
            404 => OpsError::NotFound { detail },
            401 | 403 => OpsError::Unauthorized { status, detail },
            400..=499 => OpsError::Rejected { status, detail },
            500..=599 => OpsError::Server {
                url: self.base.clone(),
                status,
                detail,
            },
            _ => OpsError::Unexpected {
                url: self.base.clone(),
                detail: format!("{status}: {detail}"),
            },
        }
    }

    /// A request that got no answer: connection refused, DNS, timeout, a broken body.
    fn transport(&self, err: &reqwest::Error) -> OpsError {
        let reason = if err.is_timeout() {
            format!("no answer within {}s", self.timeout.as_secs())
        } else {
            root_cause(err)
        };
        OpsError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
}

/// The server's `detail` (LangGraph's error body), else a short piece of the body, else the
/// status's reason.
fn detail(status: StatusCode, bytes: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        match value.get("detail") {
            Some(Value::String(text)) => return text.clone(),
            Some(other) if !other.is_null() => return other.to_string(),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no detail").to_string();
    }
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short.replace(['\n', '\r'], " ")
}

/// The innermost cause, in lower case words ("connection refused"), without the URL.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut source: &(dyn std::error::Error + 'static) = err;
    while let Some(next) = source.source() {
        source = next;
    }
    if let Some(io) = source.downcast_ref::<std::io::Error>() {
        return match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset".into(),
            std::io::ErrorKind::TimedOut => "connection timed out".into(),
            _ => strip_os_error(&io.to_string()),
        };
    }
    strip_os_error(&source.to_string())
}

fn strip_os_error(text: &str) -> String {
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => text,
    };
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_prefers_the_servers_detail() {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        assert_eq!(
            detail(status, br#"{"detail": "bad schedule"}"#),
            "bad schedule"
        );
        assert_eq!(detail(status, b""), "Unprocessable Entity");
        assert_eq!(detail(status, b"oops\nthere"), "oops there");
    }

    #[test]
    fn exit_codes_per_status() {
        let client =
            Client::new(&"http://127.0.0.1:1/".parse().expect("url"), None).expect("client");
        let code = |status: u16| {
            client
                .failure(StatusCode::from_u16(status).expect("status"), b"{}")
                .exit_code()
        };
        assert_eq!(code(404), 3);
        assert_eq!(code(401), 4);
        assert_eq!(code(403), 4);
        assert_eq!(code(400), 5);
        assert_eq!(code(409), 5);
        assert_eq!(code(422), 5);
        assert_eq!(code(500), 6);
        assert_eq!(code(503), 6);
        assert_eq!(client.base(), "http://127.0.0.1:1");
    }

    #[test]
    fn the_api_key_stays_out_of_debug_output() {
        let key: ApiKey = "s3cret-key".parse().expect("key");
        assert!(!format!("{key:?}").contains("s3cret"));
        let url = "http://127.0.0.1:1".parse().expect("url");
        let bad: ApiKey = "s3cret\nkey".parse().expect("key");
        let err = Client::new(&url, Some(&bad)).err().expect("refused");
        assert_eq!(err.exit_code(), 2);
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
