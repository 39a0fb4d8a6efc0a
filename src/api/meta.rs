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
}

/// Readiness: 200 once the database is migrated and answering.
async fn ok(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store.ping().await?;
    Ok(Json(json!({ "ok": true })))
}

async fn info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "name": "cronhook",
        "version": env!("CARGO_PKG_VERSION"),
        "backend": state.store.backend().name(),
        "graphs": state.config.graphs.keys().collect::<Vec<_>>(),
    }))
}
