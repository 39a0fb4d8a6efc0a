//! `GET /runs/crons/{cron_id}/history`: what became of each scheduled instant of a cron (and
//! of each manual trigger), newest first. cronhook's own; LangGraph keeps no history.

use axum::extract::{Path, State};
use axum::response::Response;
use sea_orm::Iterable;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use entity::cron_fire;
use entity::states::{DeliveryStatus, FireOutcome, RunStatus};

use super::error::ErrorBody;
use super::extract::{QueryParams, one_of, parse_uuid};
use super::{ApiError, ApiResult, AppState, page_response, paging};
use crate::auth::Caller;
use crate::scheduler::MisfirePolicy;
use crate::store::history::HistoryFilter;
use crate::time::{Millis, iso, parse_instant};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(history))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Page size, 1–1000.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 10)]
    limit: i64,
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    offset: i64,
    /// Only entries with this `fire`.
    #[param(value_type = Option<FireOutcome>, inline)]
    fire: Option<String>,
    /// Only entries whose run ended (or stands) so.
    #[param(value_type = Option<RunStatus>, inline)]
    run_status: Option<String>,
    /// Only entries covering an instant at or after this (ISO-8601).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only entries whose instant is before this (ISO-8601).
    #[param(format = DateTime)]
    until: Option<String>,
}

fn default_limit() -> i64 {
    10
}

/// A cron's history, newest first.
///
/// One entry per scheduled instant of the cron, whatever happened to it (fired, missed under
/// the misfire policy, rejected by a busy thread), plus one per manual trigger; instants
/// missed in a row are one entry. Each says how its run ended and how its webhook went; it
/// outlives the run and its thread, and goes with the cron.
#[utoipa::path(
    get,
    path = "/runs/crons/{cron_id}/history",
    tag = "crons",
    operation_id = "cron_history",
    params(
        ("cron_id" = String, Path, format = Uuid, description = "The cron's id"),
        HistoryQuery,
    ),
    responses(
        (status = 200, description = "A page of the cron's history, newest first",
            body = Vec<HistoryEntry>, headers(
                ("x-pagination-total" = u64, description = "Items before this page plus those on it (one more when there are more)"),
                ("x-pagination-next" = u64, description = "The offset of the next page, when there is one"),
            )),
        (status = 404, description = "No such cron", body = ErrorBody),
        (status = 422, description = "Invalid id or query", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(cron_id): Path<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> ApiResult<Response> {
    let cron_id = parse_uuid(&cron_id, "cron")?;
    let (limit, offset) = paging(query.limit, query.offset)?;
    let instant = |field: &str, text: Option<String>| -> ApiResult<Option<Millis>> {
        text.map(|text| {
            parse_instant(&text)
                .map(|at| at.timestamp_millis())
                .ok_or_else(|| {
                    ApiError::invalid(format!("{field}: '{text}' is not an ISO-8601 instant"))
                })
        })
        .transpose()
    };
    let filter = HistoryFilter {
        fire: query
            .fire
            .map(|text| one_of("fire", &text, FireOutcome::iter().map(|f| (f, f.as_str()))))
            .transpose()?,
        run_status: query
            .run_status
            .map(|text| {
                one_of(
                    "run_status",
                    &text,
                    RunStatus::iter().map(|s| (s, s.as_str())),
                )
            })
            .transpose()?,
        since: instant("since", query.since)?,
        until: instant("until", query.until)?,
    };
    let page = state
        .store
        .cron_history(&cron_id, &caller.scope(), &filter, limit, offset)
        .await?;
    Ok(page_response(page, HistoryEntry::from, &None))
}

/// What became of one scheduled instant of a cron (or a run of missed ones, or a manual
/// trigger).
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    #[schema(format = Uuid)]
    pub cron_id: String,
    /// The instant (the first one of a `missed` entry); null for a manual trigger.
    #[schema(format = DateTime)]
    pub scheduled_for: Option<String>,
    /// A `missed` entry's last instant; null for the others.
    #[schema(format = DateTime)]
    pub last_scheduled_for: Option<String>,
    /// How many instants the entry covers (1 but for `missed` entries).
    pub count: i64,
    /// `scheduled` (a thread cron's instant recorded ahead of it: its run is queued at the
    /// instant, under the thread's multitask strategy), `fired` (its run was queued),
    /// `missed` (given up under `misfire_policy`), `rejected`
    /// (its thread was busy under `multitask_strategy: reject`, or gone), `skipped` (the
    /// cron's earlier run was still active under its `overlap`), `backfilled` (fired by a
    /// backfill request) or `triggered` (a manual trigger).
    pub fire: FireOutcome,
    /// The policy that decided a `missed` entry; null for the others.
    pub misfire_policy: Option<MisfirePolicy>,
    /// When the entry was written (a stateless cron's runs, and a thread cron's instants,
    /// are written `prefire` ahead).
    #[schema(format = DateTime)]
    pub fired_at: String,
    /// Null when nothing ran, and while the instant is `scheduled`.
    #[schema(format = Uuid)]
    pub run_id: Option<String>,
    /// Null when nothing ran.
    pub run_status: Option<RunStatus>,
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    /// When the run was due to start: the instant plus the cron's jitter; null without
    /// jitter (due at the instant).
    #[schema(format = DateTime)]
    pub due_at: Option<String>,
    /// How late the run started: its start minus when it was due (a trigger's: its time).
    pub lateness_ms: Option<i64>,
    /// Its end minus its start.
    pub duration_ms: Option<i64>,
    /// Why the run failed, cut to 1 KiB; null otherwise.
    pub error: Option<HistoryError>,
    /// The run's webhook, when it had one.
    pub webhook: Option<HistoryWebhook>,
}

/// A failed run's error, as its history entry keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryError {
    pub error: String,
    pub message: String,
}

/// A run's webhook delivery, as its history entry keeps it: `pending` until it settles.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryWebhook {
    #[schema(format = Uuid)]
    pub delivery_id: String,
    pub status: DeliveryStatus,
    /// Attempts made when it settled (0 while pending).
    pub attempts: i32,
}

impl From<cron_fire::Model> for HistoryEntry {
    fn from(entry: cron_fire::Model) -> HistoryEntry {
        let triggered = entry.outcome == FireOutcome::Triggered;
        let text = |error: &Value, key: &str| {
            error
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        HistoryEntry {
            scheduled_for: (!triggered).then(|| iso(entry.scheduled_for)),
            last_scheduled_for: entry.last_scheduled_for.map(iso),
            count: entry.instants,
            fire: entry.outcome,
            misfire_policy: entry
                .misfire_policy
                .as_deref()
                .and_then(MisfirePolicy::parse),
            fired_at: iso(entry.fired_at),
            // The run comes to be at the instant.
            run_id: entry
                .run_id
                .filter(|_| entry.outcome != FireOutcome::Scheduled),
            run_status: entry.run_status,
            started_at: entry.started_at.map(iso),
            ended_at: entry.ended_at.map(iso),
            due_at: entry.due_at.map(iso),
            lateness_ms: entry
                .started_at
                .map(|at| at - entry.due_at.unwrap_or(entry.scheduled_for)),
            duration_ms: entry.started_at.zip(entry.ended_at).map(|(s, e)| e - s),
            error: entry.error.as_ref().map(|error| HistoryError {
                error: text(error, "error"),
                message: text(error, "message"),
            }),
            webhook: entry.delivery_id.map(|delivery_id| HistoryWebhook {
                delivery_id,
                status: entry.webhook_status.unwrap_or(DeliveryStatus::Pending),
                attempts: entry.webhook_attempts.unwrap_or_default(),
            }),
            cron_id: entry.cron_id,
        }
    }
}
