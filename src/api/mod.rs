//! The HTTP API: one router per resource, thin handlers. Each handler parses and validates
//! its input, calls one store operation, and shapes the response like LangGraph's.

mod assistants;
pub mod auth;
mod backfill;
pub(crate) mod crons;
pub mod docs;
pub mod error;
pub mod extract;
mod fields;
mod history;
mod meta;
mod runs;
pub(crate) mod sse;
mod threads;
pub(crate) mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{Map, Value};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::runs::Control;
use crate::runs::events::EventHub;
use crate::scheduler::SchedulerHandle;
use crate::store::assistants::assistant_id_for_graph;
use crate::store::{Page, SortOrder, Store};
use crate::webhooks::Outbox;
use crate::webhooks::policy::{SystemResolver, UrlPolicy};
pub use crons::Cron;
pub use error::{ApiError, ApiResult};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    /// Live events of runs executing in this process.
    pub hub: EventHub,
    /// Wake-ups for the local workers.
    pub control: Control,
    /// Wake-ups for the local scheduler.
    pub scheduler: SchedulerHandle,
    /// Wake-ups for the local webhook delivery pool.
    pub outbox: Outbox,
    /// Which webhook URLs are accepted.
    pub webhook_policy: Arc<UrlPolicy>,
    /// The daemon's own address: relative webhook URLs resolve against it.
    pub self_url: url::Url,
    /// Configured API keys (none: every caller is trusted).
    pub api_keys: Arc<crate::auth::ApiKeys>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Cancelled when a shutdown starts: new requests get 503 from then on.
    pub draining: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// The graph behind the assistant `assistant_id` (empty when none is configured).
    pub fn graph_of(&self, assistant_id: &str) -> String {
        self.config
            .graphs
            .keys()
            .find(|graph| {
                crate::store::assistants::assistant_id_for_graph(graph).to_string() == assistant_id
            })
            .cloned()
            .unwrap_or_default()
    }

    /// The id of the assistant named by `id_or_graph` (an assistant id or a graph name).
    /// Assistants are exactly the configured graphs, so no query is needed.
    pub fn assistant_id(&self, id_or_graph: &str) -> Option<String> {
        let wanted = uuid::Uuid::parse_str(id_or_graph).ok();
        self.config.graphs.keys().find_map(|graph| {
            let id = assistant_id_for_graph(graph);
            (wanted == Some(id) || (wanted.is_none() && graph == id_or_graph))
                .then(|| id.to_string())
        })
    }

    /// A cron was created with its first instant at `next_run_at`: the local scheduler
    /// reads it at once when that instant may come before the scheduler's next refresh
    /// (every `[scheduler] refresh_interval`) reads it; a later one is left to that refresh.
    /// Each wake-up re-reads every cron changed in the refresh's look-back (2 s), so waking
    /// for every create of a series cost more than the insert itself.
    pub fn cron_created(&self, next_run_at: Option<i64>) {
        let refresh = self.config.scheduler.refresh_interval.as_millis() as i64;
        let soon = crate::time::now_ms() + refresh + 2_000;
        if next_run_at.is_some_and(|at| at <= soon) {
            self.scheduler.cron_changed();
        }
    }

    /// Refuses a webhook URL the policy does not allow (form, then DNS), with the reason.
    pub async fn check_webhook(&self, url: &str) -> ApiResult<()> {
        self.webhook_policy
            .vet(url, &self.self_url, &SystemResolver)
            .await
            .map(|_| ())
            .map_err(|err| ApiError::invalid(err.to_string()))
    }
}

/// Every route with its description: each resource's router registers its handlers with
/// `routes!`, which reads their `#[utoipa::path]` annotations.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::root())
        .merge(meta::router())
        .merge(assistants::router())
        .merge(threads::router())
        .merge(crons::router())
        .merge(history::router())
        .merge(backfill::router())
        .merge(runs::router())
        .merge(webhooks::router())
        .merge(docs::router())
}

/// The API's routes behind the key gate, with `ungated` (the console, which checks its own
/// logins) beside them; both share the outer layers (request ids, tracing, time limit,
/// drain).
pub fn router(state: AppState, ungated: Router<AppState>) -> Router {
    let max_body = state.config.server.max_body_bytes;
    let gate = auth::Gate {
        keys: state.api_keys.clone(),
        metrics_public: state.config.metrics.public,
        docs_public: state.config.docs.public,
    };
    let (routes, mut doc) = api().split_for_parts();
    docs::finish(&mut doc);
    routes
        .layer(Extension(docs::Document::new(&doc)))
        .fallback(|| async { ApiError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            gate,
            auth::require_key,
        ))
        .merge(ungated)
        .layer(axum::middleware::from_fn_with_state(
            state.config.server.request_timeout,
            time_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.draining.clone(),
            refuse_when_draining,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// A handler that panics answers 500 and is logged; the daemon and its other requests go on.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
}

/// Answers 408 when a request takes longer than `server.request_timeout`. Streams, waits
/// and joins last as long as their run, so they are exempt.
async fn time_limit(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if ["/stream", "/wait", "/join"]
        .iter()
        .any(|suffix| path.ends_with(suffix))
    {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request took longer than {}",
                humantime::format_duration(limit)
            ),
        )
        .into_response(),
    }
}

/// During a shutdown, new requests (readiness probes included) are refused so load
/// balancers and clients move on; requests already in flight go on.
async fn refuse_when_draining(
    axum::extract::State(draining): axum::extract::State<tokio_util::sync::CancellationToken>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !draining.is_cancelled() {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cronhook is shutting down; retry shortly (or on another replica)",
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    headers.insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from_static("5"),
    );
    response
}

/// Each request's span: its id (the caller's `x-request-id`, or a new one, echoed back),
/// method and path (never the query or headers, which may hold secrets), and the identity
/// once the key is checked.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        request_id,
        method = %request.method(),
        path = request.uri().path(),
        identity = tracing::field::Empty,
    )
}

/// The `limit` of a search body that gives none, as in LangGraph.
fn default_limit() -> i64 {
    10
}

/// Checks a page's `limit` (1–1000) and `offset` (≥ 0) and returns them as store values.
pub fn paging(limit: i64, offset: i64) -> ApiResult<(u64, u64)> {
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: {limit} is out of range: must be between 1 and 1000"
        )));
    }
    if offset < 0 {
        return Err(ApiError::invalid(format!(
            "offset: {offset} is less than the minimum of 0"
        )));
    }
    Ok((limit as u64, offset as u64))
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SortOrder)]
pub enum SortOrderParam {
    Asc,
    Desc,
}

impl From<SortOrderParam> for SortOrder {
    fn from(order: SortOrderParam) -> Self {
        match order {
            SortOrderParam::Asc => SortOrder::Asc,
            SortOrderParam::Desc => SortOrder::Desc,
        }
    }
}

impl AppState {
    /// A `metadata` (or `values`) filter with at most `[limits] max_filter_keys` keys: each
    /// key is one condition of the query.
    pub fn filter(
        &self,
        field: &str,
        filter: Option<Map<String, Value>>,
    ) -> ApiResult<Option<Map<String, Value>>> {
        check_filter(field, filter, self.config.limits.max_filter_keys)
    }

    /// Refuses a list of more than `[limits] max_batch` items.
    pub fn check_batch(&self, field: &str, len: usize) -> ApiResult<()> {
        let cap = self.config.limits.max_batch;
        if len > cap {
            return Err(ApiError::invalid(format!(
                "{field}: {len} items; at most {cap} are allowed in one request ([limits] max_batch)"
            )));
        }
        Ok(())
    }
}

/// Refuses a filter of more than `cap` keys, naming the setting that sets the cap.
pub fn check_filter(
    field: &str,
    filter: Option<Map<String, Value>>,
    cap: usize,
) -> ApiResult<Option<Map<String, Value>>> {
    match filter {
        Some(map) if map.len() > cap => Err(ApiError::invalid(format!(
            "{field}: filters on {} keys; at most {cap} are allowed ([limits] max_filter_keys)",
            map.len()
        ))),
        other => Ok(other),
    }
}

/// Checks a `select` list against the resource's fields.
pub fn validate_select(select: &Option<Vec<String>>, allowed: &[&str]) -> ApiResult<()> {
    if let Some(columns) = select {
        // Each selected key is looked for in every item of the answer: a list longer than
        // the fields would only repeat them, at a cost that grows with its length.
        if columns.len() > allowed.len() {
            return Err(ApiError::invalid(format!(
                "select: {} columns given; at most {} (each field once)",
                columns.len(),
                allowed.len()
            )));
        }
        let invalid: Vec<&String> = columns
            .iter()
            .filter(|c| !allowed.contains(&c.as_str()))
            .collect();
        if !invalid.is_empty() {
            // Python's list repr, as LangGraph words it.
            let quoted = |names: &mut dyn Iterator<Item = &str>| {
                names
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ApiError::invalid(format!(
                "Invalid select columns: [{}]. Expected: {{{}}}",
                quoted(&mut invalid.iter().map(|s| s.as_str())),
                quoted(&mut allowed.iter().copied())
            )));
        }
    }
    Ok(())
}

/// The schema of a `select` list: some of the resource's fields.
pub fn select_schema(fields: &[&str]) -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .enum_values(Some(fields.iter().copied())),
        )
        .description(Some("Only these keys of each item (default: all)."))
        .build()
}

/// Keeps only the selected keys (all when no selection).
pub fn project(object: Map<String, Value>, select: &Option<Vec<String>>) -> Value {
    match select {
        Some(columns) if !columns.is_empty() => Value::Object(
            object
                .into_iter()
                .filter(|(key, _)| columns.iter().any(|c| c == key))
                .collect(),
        ),
        _ => Value::Object(object),
    }
}

/// A search answer: the JSON list of the API objects `render` makes of the rows, plus
/// LangGraph's pagination headers.
pub fn page_response<T, O: serde::Serialize>(
    page: Page<T>,
    render: impl Fn(T) -> O,
    select: &Option<Vec<String>>,
) -> Response {
    let count = page.items.len() as u64;
    let mut headers = HeaderMap::new();
    let next = page.offset + count;
    if page.has_more {
        headers.insert("x-pagination-next", HeaderValue::from(next));
        headers.insert("x-pagination-total", HeaderValue::from(next + 1));
    } else {
        headers.insert("x-pagination-total", HeaderValue::from(next));
    }
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|item| match to_json(&render(item)) {
            Value::Object(map) => project(map, select),
            other => other,
        })
        .collect();
    (headers, axum::Json(items)).into_response()
}

/// The `Location` (when given) and `Content-Location` headers of a run's responses. Run
/// paths are ASCII, so a value that does not fit a header is skipped rather than an error.
pub fn locations(location: Option<&str>, content_location: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        headers.insert(axum::http::header::LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(content_location) {
        headers.insert(axum::http::header::CONTENT_LOCATION, value);
    }
    headers
}

pub use crate::runs::payload::{object, to_json};

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_router_goes_on() {
        async fn boom() -> &'static str {
            panic!("a bug in a handler")
        }
        let app: Router = Router::new()
            .route("/boom", axum::routing::get(boom))
            .route("/fine", axum::routing::get(|| async { "fine" }))
            .layer(CatchPanicLayer::custom(panic_response));
        let request = |path: &str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("request")
        };
        let response = app.clone().oneshot(request("/boom")).await.expect("answer");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], br#"{"detail":"Internal error"}"#);
        let response = app.oneshot(request("/fine")).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
    }
}
