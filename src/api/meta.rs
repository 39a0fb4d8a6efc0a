//! Health and information endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::{ApiError, ApiResult, AppState};
use crate::auth::Caller;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ok))
        .routes(routes!(info))
        .routes(routes!(metrics))
}

/// Ready.
#[derive(Serialize, ToSchema)]
struct Readiness {
    ok: bool,
}

/// How long readiness waits for the database: a database cut off by the network can take
/// seconds to fail a query (address resolution, retransmissions), and a probe wants an answer.
const PING_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

/// Readiness: 200 once the database is migrated and answering within a second.
///
/// Open to every caller, with or without an API key. During a shutdown it answers 503.
#[utoipa::path(
    get,
    path = "/ok",
    tag = "meta",
    operation_id = "ok",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness, example = json!({"ok": true})),
        (status = 503, description = "The database does not answer within 1 s (or a shutdown is under way)", body = ErrorBody),
    )
)]
async fn ok(State(state): State<AppState>) -> ApiResult<Json<Readiness>> {
    // Whatever the failure, a probe's answer is the same: not ready, because of the database.
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable; retry shortly",
        )
    };
    match tokio::time::timeout(PING_DEADLINE, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: the database does not answer");
            return Err(unavailable());
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer within 1 s");
            return Err(unavailable());
        }
    }
    Ok(Json(Readiness { ok: true }))
}

/// About this daemon.
#[derive(Serialize, ToSchema)]
struct Info {
    /// Always `cronhook`.
    name: String,
    /// cronhook's version.
    version: String,
    /// `sqlite` or `postgres`.
    backend: String,
    /// The configured graphs (one assistant each).
    graphs: Vec<String>,
    flags: InfoFlags,
    features: InfoFeatures,
    caller: InfoCaller,
}

/// Who the request's API key belongs to (cronhook's addition).
#[derive(Serialize, ToSchema)]
struct InfoCaller {
    /// The key's identity; null without API keys.
    identity: Option<String>,
    /// Sees and changes every identity's crons, threads and deliveries.
    admin: bool,
}

/// LangGraph's capability flags, as the SDKs read them.
#[derive(Serialize, ToSchema)]
struct InfoFlags {
    assistants: bool,
    crons: bool,
    /// Always false.
    langsmith: bool,
}

/// What this daemon's configuration turns on.
#[derive(Serialize, ToSchema)]
struct InfoFeatures {
    /// API keys are configured (every route but `/ok` needs one).
    auth: bool,
    /// Webhooks are sent (`http.disable_webhooks` is false).
    webhooks: bool,
    /// Webhooks are signed (Standard Webhooks).
    webhook_signing: bool,
    /// `/metrics` is open without a key.
    metrics_public: bool,
}

/// Version, storage backend, graphs and the features turned on.
#[utoipa::path(
    get,
    path = "/info",
    tag = "meta",
    operation_id = "info",
    responses((status = 200, description = "About this daemon", body = Info))
)]
async fn info(State(state): State<AppState>, caller: Caller) -> Json<Info> {
    let config = &state.config;
    Json(Info {
        name: "cronhook".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        backend: state.store.backend().name().into(),
        graphs: config.graphs.keys().cloned().collect(),
        flags: InfoFlags {
            assistants: true,
            crons: true,
            langsmith: false,
        },
        features: InfoFeatures {
            auth: !state.api_keys.is_empty(),
            webhooks: !config.http.disable_webhooks,
            webhook_signing: !config.webhooks.signing.secrets.is_empty(),
            metrics_public: config.metrics.public,
        },
        caller: InfoCaller {
            identity: caller.identity,
            admin: caller.admin,
        },
    })
}

/// Prometheus metrics (text exposition format).
///
/// Needs an API key unless `metrics.public = true` in the configuration.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    responses((
        status = 200,
        description = "Prometheus text format, version 0.0.4",
        body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    ))
)]
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&state.metrics, queue_depths(&state).await),
    )
}

/// The queue depths for a scrape; a scrape still answers (with the last depths) when the
/// database does not.
async fn queue_depths(state: &AppState) -> Option<crate::metrics::QueueDepths> {
    state
        .store
        .queue_depths()
        .await
        .inspect_err(|err| tracing::warn!(error = %err, "queue depths unavailable for /metrics"))
        .ok()
}
