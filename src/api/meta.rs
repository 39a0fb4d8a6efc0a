//! Health and information endpoints.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiResult, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ok", get(ok))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
}

/// Readiness: 200 once the database is migrated and answering.
async fn ok(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store.ping().await?;
    Ok(Json(json!({ "ok": true })))
}

async fn info(State(state): State<AppState>) -> Json<Value> {
    let config = &state.config;
    Json(json!({
        "name": "cronhook",
        "version": env!("CARGO_PKG_VERSION"),
        "backend": state.store.backend().name(),
        "graphs": config.graphs.keys().collect::<Vec<_>>(),
        // LangGraph's flags, as the SDKs read them.
        "flags": {"assistants": true, "crons": true, "langsmith": false},
        "features": {
            "auth": !state.api_keys.is_empty(),
            "webhooks": !config.http.disable_webhooks,
            "webhook_signing": !config.webhooks.signing.secrets.is_empty(),
            "metrics_public": config.metrics.public,
        },
    }))
}

/// Prometheus text format (see `crate::metrics` for the names).
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&state.metrics, &state.store).await,
    )
}
