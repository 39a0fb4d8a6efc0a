//! API-key authentication: every request but `/ok` (and `/metrics` when configured public,
//! and Swagger UI with the OpenAPI document unless `[docs] public = false`) must carry a
//! configured key, as `x-api-key` (what the official SDKs send) or
//! `Authorization: Bearer`. The caller it identifies travels in the request's extensions.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::auth::{ApiKeys, Caller, Refusal};

/// What the middleware needs: the keys, and which paths are open.
#[derive(Clone)]
pub struct Gate {
    pub keys: Arc<ApiKeys>,
    pub metrics_public: bool,
    /// Swagger UI, its files and the OpenAPI document (no data) are served without a key.
    pub docs_public: bool,
}

/// The paths of Swagger UI and the document: the page, its files, and `/` (a redirect).
fn is_docs_path(path: &str) -> bool {
    path == "/"
        || path == super::docs::OPENAPI_PATH
        || path == "/docs"
        || path.starts_with("/docs/")
}

pub async fn require_key(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    if gate.keys.is_empty() {
        request.extensions_mut().insert(Caller::anonymous());
        return next.run(request).await;
    }
    let path = request.uri().path();
    if path == "/ok"
        || (gate.metrics_public && path == "/metrics")
        || (gate.docs_public && is_docs_path(path))
    {
        return next.run(request).await;
    }
    let Some(presented) = presented_key(request.headers()) else {
        return unauthorized("Missing API key: send it in the x-api-key header");
    };
    match gate.keys.admit(presented) {
        Ok(caller) => {
            tracing::Span::current().record("identity", caller.identity.as_deref());
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(Refusal::Unknown) => unauthorized("Invalid API key"),
        Err(Refusal::RateLimited(wait)) => too_many_requests(wait),
    }
}

/// 429 with the whole seconds to wait (at least one) in `Retry-After`.
fn too_many_requests(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "Too many requests for this API key: retry in {seconds} s ([limits] requests_per_second)"
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    response
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn unauthorized(detail: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// The caller the middleware identified; routes it leaves open have none, and see
    /// nothing owned.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "Missing API key"))
    }
}
