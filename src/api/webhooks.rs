//! The webhook delivery log (cronhook's own endpoints; LangGraph has none): list deliveries,
//! read one with its attempts, queue one again.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use entity::{attempt, delivery};

use super::extract::{QueryParams, parse_uuid};
use super::{ApiError, ApiResult, AppState, Paging, page_response};
use crate::auth::Caller;
use crate::store::deliveries::{DELIVERED, DeliveryFilter, FAILED, PENDING};
use crate::time::iso;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/deliveries", get(list))
        .route("/webhooks/deliveries/{delivery_id}", get(read))
        .route("/webhooks/deliveries/{delivery_id}/retry", post(retry))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    run_id: Option<String>,
    cron_id: Option<String>,
    status: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    10
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let (limit, offset) = Paging::validate(query.limit, query.offset)?;
    if let Some(status) = &query.status
        && ![PENDING, DELIVERED, FAILED].contains(&status.as_str())
    {
        return Err(ApiError::invalid(format!(
            "status: '{status}' is not one of 'pending', 'delivered', 'failed'"
        )));
    }
    let filter = DeliveryFilter {
        run_id: query.run_id.map(|id| parse_uuid(&id, "run")).transpose()?,
        cron_id: query
            .cron_id
            .map(|id| parse_uuid(&id, "cron"))
            .transpose()?,
        status: query.status,
        scope: caller.scope(),
    };
    let page = state.store.list_deliveries(&filter, limit, offset).await?;
    Ok(page_response(page, |d| render_delivery(&d), &None))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(delivery_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let delivery_id = parse_uuid(&delivery_id, "delivery")?;
    let (delivery, attempts) = state
        .store
        .get_delivery(&delivery_id, &caller.scope())
        .await?;
    let mut body = render_delivery(&delivery);
    body["payload"] = delivery.payload.clone();
    body["attempt_log"] = attempts.iter().map(render_attempt).collect();
    Ok(Json(body))
}

async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(delivery_id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let delivery_id = parse_uuid(&delivery_id, "delivery")?;
    let delivery = state
        .store
        .retry_delivery(&delivery_id, &caller.scope())
        .await?;
    state.outbox.wake();
    Ok(Json(render_delivery(&delivery)))
}

fn render_delivery(delivery: &delivery::Model) -> Value {
    json!({
        "delivery_id": delivery.delivery_id,
        "run_id": delivery.run_id,
        "thread_id": delivery.thread_id,
        "cron_id": delivery.cron_id,
        "url": delivery.url,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": (delivery.status == PENDING).then(|| iso(delivery.next_attempt_at)),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "user_id": delivery.user_id.clone().unwrap_or_default(),
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
    })
}

fn render_attempt(attempt: &attempt::Model) -> Value {
    json!({
        "attempt": attempt.attempt,
        "attempted_at": iso(attempt.attempted_at),
        "status_code": attempt.status_code,
        "latency_ms": attempt.latency_us as f64 / 1000.0,
        "error": attempt.error,
        "response_body": attempt.response_body,
    })
}
