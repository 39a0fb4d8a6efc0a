//! The webhook delivery log (cronhook's own endpoints; LangGraph has none): list deliveries,
//! read one with its attempts, queue one again.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use sea_orm::Iterable;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use entity::states::{DeliveryKind, DeliveryStatus};
use entity::{attempt, delivery};

use super::error::ErrorBody;
use super::extract::{QueryParams, one_of, parse_uuid};
use super::{ApiResult, AppState, page_response, paging};
use crate::auth::Caller;
use crate::store::deliveries::DeliveryFilter;
use crate::time::iso;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read))
        .routes(routes!(retry))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the deliveries of this run.
    #[param(format = Uuid)]
    run_id: Option<String>,
    /// Only the deliveries of this cron's runs.
    #[param(format = Uuid)]
    cron_id: Option<String>,
    #[param(value_type = Option<DeliveryStatus>, inline)]
    status: Option<String>,
    /// Only run webhooks (`run`) or only alerts (`alert`).
    #[param(value_type = Option<DeliveryKind>, inline)]
    kind: Option<String>,
    /// Page size, 1–1000.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 10)]
    limit: i64,
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    offset: i64,
}

fn default_limit() -> i64 {
    10
}

/// List webhook deliveries, newest first.
#[utoipa::path(
    get,
    path = "/webhooks/deliveries",
    tag = "webhooks",
    operation_id = "list_deliveries",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = Vec<Delivery>, headers(
            ("x-pagination-total" = u64, description = "Items before this page plus those on it (one more when there are more)"),
            ("x-pagination-next" = u64, description = "The offset of the next page, when there is one"),
        )),
        (status = 422, description = "Invalid query", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let (limit, offset) = paging(query.limit, query.offset)?;
    let status = query
        .status
        .map(|text| {
            let statuses = DeliveryStatus::iter().map(|status| (status, status.as_str()));
            one_of("status", &text, statuses)
        })
        .transpose()?;
    let kind = query
        .kind
        .map(|text| {
            let kinds = DeliveryKind::iter().map(|kind| (kind, kind.as_str()));
            one_of("kind", &text, kinds)
        })
        .transpose()?;
    let filter = DeliveryFilter {
        run_id: query.run_id.map(|id| parse_uuid(&id, "run")).transpose()?,
        cron_id: query
            .cron_id
            .map(|id| parse_uuid(&id, "cron"))
            .transpose()?,
        status,
        kind,
        scope: caller.scope(),
    };
    let page = state.store.list_deliveries(&filter, limit, offset).await?;
    Ok(page_response(page, Delivery::from, &None))
}

/// Get a delivery, with its payload and every attempt.
#[utoipa::path(
    get,
    path = "/webhooks/deliveries/{delivery_id}",
    tag = "webhooks",
    operation_id = "get_delivery",
    params(("delivery_id" = String, Path, format = Uuid, description = "The delivery's id")),
    responses(
        (status = 200, description = "The delivery", body = DeliveryDetail),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(delivery_id): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    let delivery_id = parse_uuid(&delivery_id, "delivery")?;
    let (delivery, attempts) = state
        .store
        .get_delivery(&delivery_id, &caller.scope())
        .await?;
    let attempt_log = attempts
        .into_iter()
        .map(|attempt| Attempt::seen_by(attempt, caller.admin))
        .collect();
    Ok(Json(DeliveryDetail {
        payload: delivery.payload.clone(),
        delivery: Delivery::from(delivery),
        attempt_log,
    }))
}

/// Send a delivery again.
///
/// It goes back to `pending`, due now, whatever its status was.
#[utoipa::path(
    post,
    path = "/webhooks/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    operation_id = "retry_delivery",
    params(("delivery_id" = String, Path, format = Uuid, description = "The delivery's id")),
    responses(
        (status = 200, description = "The delivery, queued again", body = Delivery),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(delivery_id): Path<String>,
) -> ApiResult<Json<Delivery>> {
    let delivery_id = parse_uuid(&delivery_id, "delivery")?;
    let delivery = state
        .store
        .retry_delivery(&delivery_id, &caller.scope())
        .await?;
    state.outbox.wake();
    Ok(Json(Delivery::from(delivery)))
}

/// A webhook delivery: a run's end, sent to its webhook URL (`kind` `run`), or an alert
/// sent to an `[[alerts.routes]]` URL (`kind` `alert`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Delivery {
    #[schema(format = Uuid)]
    delivery_id: String,
    kind: DeliveryKind,
    /// The run (null for an alert no run raised: `instant_missed`).
    #[schema(format = Uuid)]
    run_id: Option<String>,
    #[schema(format = Uuid)]
    thread_id: Option<String>,
    #[schema(format = Uuid)]
    cron_id: Option<String>,
    /// The webhook URL.
    url: String,
    status: DeliveryStatus,
    /// Attempts made so far.
    attempts: i32,
    /// When the next attempt is due (pending deliveries only).
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    /// The receiver's last HTTP status; null when it did not answer.
    last_status_code: Option<i32>,
    last_error: Option<String>,
    /// The identity owning the run (empty without API keys, and for alerts).
    user_id: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// A delivery with the body it sends and every attempt.
#[derive(Serialize, ToSchema)]
struct DeliveryDetail {
    #[serde(flatten)]
    delivery: Delivery,
    /// The body: for a run webhook the run as it ended (`webhook_sent_at` is added per
    /// attempt); for an alert the body as sent.
    payload: Value,
    attempt_log: Vec<Attempt>,
}

/// One attempt of a delivery.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryAttempt)]
struct Attempt {
    /// 1 for the first.
    attempt: i32,
    #[schema(format = DateTime)]
    attempted_at: String,
    /// The receiver's HTTP status; null when no answer came.
    status_code: Option<i32>,
    latency_ms: f64,
    error: Option<String>,
    /// The first KiB of the answer's body; shown to admin identities only (a receiver's
    /// answer may come from a service only the daemon can reach), null for others.
    response_body: Option<String>,
}

impl From<delivery::Model> for Delivery {
    fn from(delivery: delivery::Model) -> Delivery {
        Delivery {
            next_attempt_at: (delivery.status == DeliveryStatus::Pending)
                .then(|| iso(delivery.next_attempt_at)),
            delivery_id: delivery.delivery_id,
            kind: delivery.kind,
            run_id: Some(delivery.run_id).filter(|id| !id.is_empty()),
            thread_id: Some(delivery.thread_id).filter(|id| !id.is_empty()),
            cron_id: delivery.cron_id,
            url: delivery.url,
            status: delivery.status,
            attempts: delivery.attempts,
            last_status_code: delivery.last_status_code,
            last_error: delivery.last_error,
            user_id: delivery.user_id.unwrap_or_default(),
            created_at: iso(delivery.created_at),
            updated_at: iso(delivery.updated_at),
        }
    }
}

impl Attempt {
    /// The attempt as `admin` or not sees it: the receiver's answer only for an admin (see
    /// `response_body`).
    fn seen_by(attempt: attempt::Model, admin: bool) -> Attempt {
        Attempt {
            attempt: attempt.attempt,
            attempted_at: iso(attempt.attempted_at),
            status_code: attempt.status_code,
            latency_ms: attempt.latency_us as f64 / 1000.0,
            error: attempt.error,
            response_body: attempt.response_body.filter(|_| admin),
        }
    }
}
