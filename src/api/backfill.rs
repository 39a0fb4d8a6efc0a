//! `POST /runs/crons/{cron_id}/backfill`: fire a cron's past instants in a range, as if
//! the schedule had fired them (cronhook's own; see `store::backfill`).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use entity::states::Overlap;

use super::crons::check_overlap;
use super::error::ErrorBody;
use super::extract::{JsonBody, parse_uuid};
use super::{ApiError, ApiResult, AppState};
use crate::auth::Caller;
use crate::runs::spec::cron_run;
use crate::schedule::{Dst, Schedule, parse_timezone};
use crate::time::{Millis, iso, now_ms, parse_instant, to_datetime};

/// The most instants one request fires.
pub const MAX_INSTANTS: usize = 10_000;

/// Instants counted at most when a range holds too many (to name how many).
const COUNT_LIMIT: usize = 100_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(backfill))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CronBackfillRequest)]
struct BackfillRequest {
    /// The first instant of the range (included).
    #[schema(format = DateTime)]
    start_time: String,
    /// The end of the range (excluded); instants still to come are left to the schedule.
    #[schema(format = DateTime)]
    end_time: String,
    /// Stateless crons: how the instants share the cron with each other and with its
    /// active runs (default `buffer_all`: one after another, in order).
    overlap: Option<Overlap>,
    /// Only answer what would be fired.
    #[serde(default)]
    dry_run: bool,
}

/// What a backfill fired (or, with `dry_run`, would fire).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CronBackfill {
    #[schema(format = Uuid)]
    pub cron_id: String,
    /// Instants fired: queued as runs or, under the overlap policy, recorded `skipped`.
    pub instants: u64,
    #[schema(format = DateTime)]
    pub first: Option<String>,
    #[schema(format = DateTime)]
    pub last: Option<String>,
    /// Of `instants`, those recorded `skipped` under the overlap policy.
    pub skipped: u64,
    /// Instants of the range already in the cron's history, left alone.
    pub already_fired: u64,
    pub dry_run: bool,
    /// With `dry_run`: the instants, in order.
    #[schema(value_type = Option<Vec<String>>, format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<Vec<String>>,
}

/// Backfill a cron.
///
/// Fires every instant of the cron's schedule in [`start_time`, `end_time`) that is past
/// and not in its history yet, in order, each recorded `backfilled` with its own
/// `scheduled_for`. At most 10,000 instants per request. Once answered, every instant is
/// queued (durably); a stateless cron's runs follow `overlap`, a thread cron's join its
/// thread's queue.
#[utoipa::path(
    post,
    path = "/runs/crons/{cron_id}/backfill",
    tag = "crons",
    operation_id = "backfill_cron",
    params(("cron_id" = String, Path, format = Uuid, description = "The cron's id")),
    request_body = BackfillRequest,
    responses(
        (status = 200, description = "What was fired", body = CronBackfill),
        (status = 404, description = "No such cron", body = ErrorBody),
        (status = 409, description = "Instants of the range were fired meanwhile (send it again)", body = ErrorBody),
        (status = 422, description = "Invalid range or overlap, or more than 10,000 instants", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
async fn backfill(
    State(state): State<AppState>,
    caller: Caller,
    Path(cron_id): Path<String>,
    JsonBody(request): JsonBody<BackfillRequest>,
) -> ApiResult<Json<CronBackfill>> {
    let cron_id = parse_uuid(&cron_id, "cron")?;
    let start = instant("start_time", &request.start_time)?;
    let end = instant("end_time", &request.end_time)?;
    if start >= end {
        return Err(ApiError::invalid(format!(
            "start_time: '{}' is not before end_time '{}'",
            request.start_time, request.end_time
        )));
    }
    let cron = state.store.get_cron(&cron_id, &caller.scope()).await?;
    check_overlap(request.overlap, cron.thread_id.is_some()).map_err(ApiError::invalid)?;
    let now = now_ms();
    let instants = instants_between(&cron, start, end.min(now))?;
    let first = instants.first().map(|&at| iso(at));
    let last = instants.last().map(|&at| iso(at));
    if request.dry_run {
        return Ok(Json(CronBackfill {
            cron_id,
            instants: instants.len() as u64,
            first,
            last,
            skipped: 0,
            already_fired: 0,
            dry_run: true,
            scheduled_for: Some(instants.iter().map(|&at| iso(at)).collect()),
        }));
    }
    let graph_id = state.graph_of(&cron.assistant_id);
    let make_run = |cron: &entity::cron::Model, instant: Millis| {
        cron_run(cron, graph_id.clone(), instant, now, now)
    };
    let overlap = request.overlap.unwrap_or(Overlap::BufferAll);
    let done = state
        .store
        .backfill(&cron, &instants, overlap, &make_run, now)
        .await?;
    for run_id in &done.stopping {
        state.control.cancel(run_id);
    }
    state.control.wake();
    crate::metrics::instants("backfilled", done.queued);
    crate::metrics::instants("skipped", done.skipped);
    Ok(Json(CronBackfill {
        cron_id,
        instants: done.queued + done.skipped,
        first,
        last,
        skipped: done.skipped,
        already_fired: done.already_fired,
        dry_run: false,
        scheduled_for: None,
    }))
}

fn instant(field: &str, text: &str) -> ApiResult<Millis> {
    parse_instant(text)
        .map(|at| at.timestamp_millis())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "{field}: '{text}' is not an ISO-8601 date-time (e.g. '2026-12-05T00:00:00Z')"
            ))
        })
}

/// The cron's instants in [start, end), not past its end time; 422 beyond `MAX_INSTANTS`.
fn instants_between(
    cron: &entity::cron::Model,
    start: Millis,
    end: Millis,
) -> ApiResult<Vec<Millis>> {
    let schedule = Schedule::parse(&cron.schedule)?;
    let zone = parse_timezone(cron.timezone.as_deref())?;
    let end = cron.end_time.map_or(end, |last| end.min(last + 1));
    let mut instants = Vec::new();
    let mut cursor = to_datetime(start - 1);
    while let Some(next) = schedule.next_after(cursor, zone, Dst::of(cron)) {
        let at = next.timestamp_millis();
        if at >= end || instants.len() == COUNT_LIMIT {
            break;
        }
        instants.push(at);
        cursor = next;
    }
    if instants.len() > MAX_INSTANTS {
        let count = if instants.len() == COUNT_LIMIT {
            format!("more than {COUNT_LIMIT}")
        } else {
            instants.len().to_string()
        };
        return Err(ApiError::invalid(format!(
            "The range holds {count} instants of '{}'; a backfill fires at most {MAX_INSTANTS}: split it",
            cron.schedule
        )));
    }
    Ok(instants)
}
