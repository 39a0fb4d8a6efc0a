//! `/runs/crons` and `/threads/{id}/runs/crons`: store, validate, search crons.
//!
//! A cron's `payload` is its create body as sent (LangGraph keeps it whole), with
//! `assistant_id` resolved and `config.configurable.cron_id` added; PATCH merges into it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use entity::cron;
use entity::states::{DstGap, DstRepeat, Overlap, RunStatus};

use super::error::ErrorBody;
use super::extract::{JsonBody, QueryParams, RawJson, parse_uuid, reject_nulls, typed};
use super::fields::{Durability, MultitaskStrategy, Nodes, OnCompletion, RunConfig, StreamModes};
use super::{
    ApiError, ApiResult, AppState, SortOrderParam, object, page_response, paging, validate_select,
};
use crate::auth::Caller;
use crate::runs::payload::Run;
use crate::runs::spec::cron_run;
use crate::schedule::jitter;
use crate::schedule::{Dst, Schedule, parse_timezone};
use crate::scheduler::MisfirePolicy;
use crate::store::SortOrder;
use crate::store::crons::{CronFilter, CronSort};
use crate::store::fires::RUN_LIMIT_REACHED;
use crate::time::{Millis, iso, now_ms, parse_instant, to_datetime};

/// The longest `pause_note` taken, in bytes.
const MAX_PAUSE_NOTE: usize = 1024;

const FIELDS: &[&str] = &[
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
    "misfire_policy",
    "catchup_window_seconds",
    "last_run_status",
    "last_run_at",
    "consecutive_failures",
    "pause_note",
    "pause_after_failures",
    "overlap",
    "jitter_seconds",
    "remaining_runs",
    "paused_until",
    "dst_repeat",
    "dst_gap",
];

/// The cron's own settings (cronhook's additions), not its runs': kept out of the payload.
const CRON_SETTINGS: &[&str] = &[
    "pause_after_failures",
    "overlap",
    "jitter_seconds",
    "remaining_runs",
    "paused_until",
    "dst_repeat",
    "dst_gap",
];

fn select_schema() -> utoipa::openapi::schema::Array {
    super::select_schema(FIELDS)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_stateless))
        .routes(routes!(create_for_thread))
        .routes(routes!(create_for_thread_alias))
        .routes(routes!(search))
        .routes(routes!(count))
        .routes(routes!(get_one, patch, delete))
        .routes(routes!(trigger))
        .routes(routes!(next))
}

/// Fire a cron now.
///
/// The run is queued at once, outside the schedule (which does not move).
#[utoipa::path(
    post,
    path = "/runs/crons/{cron_id}/trigger",
    tag = "crons",
    operation_id = "trigger_cron",
    params(("cron_id" = String, Path, format = Uuid, description = "The cron's id")),
    responses(
        (status = 200, description = "The queued run", body = Run),
        (status = 404, description = "No such cron (or its thread is gone)", body = ErrorBody),
        (status = 409, description = "The thread is busy and the cron's `multitask_strategy` is `reject`", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
pub(crate) async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    Path(cron_id): Path<String>,
) -> ApiResult<Json<Run>> {
    let cron_id = parse_uuid(&cron_id, "cron")?;
    let cron = state.store.get_cron(&cron_id, &caller.scope()).await?;
    let now = now_ms();
    let graph_id = state.graph_of(&cron.assistant_id);
    let run = cron_run(&cron, graph_id, now, now, now);
    let run_id = run.run_id.clone();
    state.hub.open(&run_id);
    let run = match state.store.trigger(&cron, run, now).await {
        Ok(run) => run,
        Err(err) => {
            // Not queued: nothing will end its events.
            state.hub.forget(&run_id);
            return Err(err.into());
        }
    };
    crate::metrics::instants("triggered", 1);
    state.control.wake();
    Ok(Json(Run::from(&run)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct NextQuery {
    /// How many instants (1–1000, default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    count: Option<String>,
    /// ISO-8601 instant to count from (default: now).
    #[param(format = DateTime)]
    after: Option<String>,
}

/// A cron's next fire times.
///
/// The next `count` instants (1–1000, default 10) after now (or `after`), whether or not
/// the cron is enabled.
#[utoipa::path(
    get,
    path = "/runs/crons/{cron_id}/next",
    tag = "crons",
    operation_id = "next_cron_fires",
    params(("cron_id" = String, Path, format = Uuid, description = "The cron's id"), NextQuery),
    responses(
        (status = 200, description = "The instants, in UTC", body = CronNext),
        (status = 404, description = "No such cron", body = ErrorBody),
        (status = 422, description = "Invalid id, `count` or `after`", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn next(
    State(state): State<AppState>,
    caller: Caller,
    Path(cron_id): Path<String>,
    QueryParams(query): QueryParams<NextQuery>,
) -> ApiResult<Json<CronNext>> {
    let cron_id = parse_uuid(&cron_id, "cron")?;
    let count = match query.count.as_deref() {
        None => 10,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!("count: '{text}' must be an integer from 1 to 1000"))
            })?,
    };
    let after = match query.after.as_deref() {
        None => to_datetime(now_ms()),
        Some(text) => parse_instant(text).ok_or_else(|| {
            ApiError::invalid(format!("after: '{text}' is not an ISO-8601 instant"))
        })?,
    };
    let cron = state.store.get_cron(&cron_id, &caller.scope()).await?;
    let schedule = Schedule::parse(&cron.schedule)?;
    let zone = parse_timezone(cron.timezone.as_deref())?;
    let instants: Vec<Millis> = schedule
        .upcoming(
            after,
            zone,
            cron.end_time.map(to_datetime),
            count,
            Dst::of(&cron),
        )
        .into_iter()
        .map(|instant| instant.timestamp_millis())
        .collect();
    Ok(Json(CronNext {
        cron_id,
        next: instants.iter().map(|&instant| iso(instant)).collect(),
        starts: instants
            .iter()
            .map(|&instant| iso(jitter::start(&cron, instant)))
            .collect(),
    }))
}

/// A cron's next fire times.
#[derive(Serialize, ToSchema)]
struct CronNext {
    #[schema(format = Uuid)]
    cron_id: String,
    /// The scheduled instants (each run's `scheduled_for`).
    #[schema(value_type = Vec<String>, format = DateTime)]
    next: Vec<String>,
    /// When each instant's run starts: the instant plus the cron's jitter (the same as
    /// `next` without jitter).
    #[schema(value_type = Vec<String>, format = DateTime)]
    starts: Vec<String>,
}

/// The body of both cron creates (LangGraph's CronCreate / ThreadCronCreate, plus the
/// keys the official SDK sends). Only validated here; the raw body becomes the payload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields exist to be validated
#[schema(
    as = CronCreateRequest,
    description = "A new cron: its schedule and the run each fire creates (LangGraph's CronCreate). The body is kept whole as the cron's `payload`."
)]
struct CreateRequest {
    /// A cron expression (5 fields, or 6 with seconds), in `timezone`.
    schedule: String,
    /// An assistant id or a graph name.
    assistant_id: String,
    /// An IANA zone name (default: UTC).
    timezone: Option<String>,
    /// No fire after this instant.
    #[schema(format = DateTime)]
    end_time: Option<String>,
    input: Option<CronInput>,
    metadata: Option<Map<String, Value>>,
    config: Option<RunConfig>,
    context: Option<Map<String, Value>>,
    webhook: Option<String>,
    interrupt_before: Option<Nodes>,
    interrupt_after: Option<Nodes>,
    on_run_completed: Option<OnCompletion>,
    multitask_strategy: Option<MultitaskStrategy>,
    enabled: Option<bool>,
    stream_mode: Option<StreamModes>,
    stream_subgraphs: Option<bool>,
    stream_resumable: Option<bool>,
    durability: Option<Durability>,
    checkpoint_during: Option<bool>,
    misfire_policy: Option<MisfirePolicy>,
    /// How far back `fire_all` catches up (default: the configured window).
    catchup_window_seconds: Option<u32>,
    /// Disable the cron after this many failed runs in a row (at least 1; absent: never).
    pause_after_failures: Option<i64>,
    /// Stateless crons: what an instant does while an earlier run of the cron is still active
    /// (default `allow`).
    overlap: Option<Overlap>,
    /// Each instant starts a delay drawn from [0, jitter) after it (0–3600, default 0).
    #[schema(minimum = 0, maximum = 3600)]
    jitter_seconds: Option<i64>,
    /// Fire this many more times, then disable the cron (at least 1; absent: no limit).
    #[schema(minimum = 1)]
    remaining_runs: Option<i64>,
    /// Paused until this instant (in the future): the first instant at or after it fires.
    #[schema(format = DateTime)]
    paused_until: Option<String>,
    /// A wall-clock time that a fall-back change repeats fires `once` (default) or `twice`.
    dst_repeat: Option<DstRepeat>,
    /// A wall-clock time that a spring-forward change skips fires right after the gap
    /// (`shift`, default) or not at all (`skip`).
    dst_gap: Option<DstGap>,
}

/// LangGraph's CronPatch. `end_time: null` clears the end; an absent key keeps it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields exist to be validated
#[schema(
    as = CronPatchRequest,
    description = "Changes to a cron (LangGraph's CronPatch): the keys given replace the cron's (`metadata` is merged) and are merged into its `payload`."
)]
struct PatchRequest {
    schedule: Option<String>,
    timezone: Option<String>,
    /// A new end, or `null` to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    end_time: Option<Option<String>>,
    input: Option<CronInput>,
    metadata: Option<Map<String, Value>>,
    config: Option<RunConfig>,
    context: Option<Map<String, Value>>,
    webhook: Option<String>,
    interrupt_before: Option<Nodes>,
    interrupt_after: Option<Nodes>,
    on_run_completed: Option<OnCompletion>,
    enabled: Option<bool>,
    stream_mode: Option<StreamModes>,
    stream_subgraphs: Option<bool>,
    stream_resumable: Option<bool>,
    durability: Option<Durability>,
    misfire_policy: Option<MisfirePolicy>,
    catchup_window_seconds: Option<u32>,
    /// Why the cron is paused: only with `"enabled": false` (enabling clears it).
    pause_note: Option<String>,
    /// Disable the cron after this many failed runs in a row (at least 1), or `null` never.
    #[serde(default, deserialize_with = "present_number")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    pause_after_failures: Option<Option<i64>>,
    /// Stateless crons only.
    overlap: Option<Overlap>,
    #[schema(minimum = 0, maximum = 3600)]
    jitter_seconds: Option<i64>,
    /// A new run limit (at least 1), or `null` for none.
    #[serde(default, deserialize_with = "present_number")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    remaining_runs: Option<Option<i64>>,
    /// Pause until this instant (in the future), or `null` to resume now.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    paused_until: Option<Option<String>>,
    dst_repeat: Option<DstRepeat>,
    dst_gap: Option<DstGap>,
}

/// Tells an explicit `null` (Some(None)) from an absent key (None), for a number.
fn present_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// `pause_after_failures` as stored: at least 1.
fn pause_after(value: i64) -> ApiResult<i32> {
    match i32::try_from(value) {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(ApiError::invalid(format!(
            "pause_after_failures: must be between 1 and {} (got {value})",
            i32::MAX
        ))),
    }
}

/// `jitter_seconds` as stored: 0 to 3600.
fn jitter_seconds(value: i64) -> ApiResult<i32> {
    i32::try_from(value)
        .ok()
        .filter(|seconds| (0..=jitter::MAX_JITTER_SECONDS).contains(seconds))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "jitter_seconds: must be between 0 and {} (got {value})",
                jitter::MAX_JITTER_SECONDS
            ))
        })
}

/// `remaining_runs` as stored: at least 1.
fn remaining_runs(value: i64) -> ApiResult<i64> {
    if value >= 1 {
        Ok(value)
    } else {
        Err(ApiError::invalid(format!(
            "remaining_runs: must be at least 1, or null for no limit (got {value})"
        )))
    }
}

/// `paused_until` as stored: an instant in the future.
fn paused_until(text: &str, now: Millis) -> ApiResult<Millis> {
    let until = parse_instant(text)
        .map(|dt: DateTime<Utc>| dt.timestamp_millis())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "paused_until: '{text}' is not an ISO-8601 date-time (e.g. '2026-12-07T09:00:00Z')"
            ))
        })?;
    if until <= now {
        return Err(ApiError::invalid(format!(
            "paused_until: '{text}' is not in the future (to resume now, PATCH {{\"enabled\": true}})"
        )));
    }
    Ok(until)
}

/// `overlap` is a stateless cron's: a thread cron's runs follow its `multitask_strategy`.
pub(super) fn check_overlap(overlap: Option<Overlap>, on_thread: bool) -> Result<(), String> {
    match overlap {
        Some(overlap) if on_thread && overlap != Overlap::Allow => Err(format!(
            "overlap: '{}' applies to stateless crons only; a thread cron's runs follow its multitask_strategy (reject, interrupt, rollback or enqueue)",
            overlap.as_str()
        )),
        _ => Ok(()),
    }
}

/// A cron's input: an object or a list of objects (narrower than a run's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged, expecting = "an object or a list of objects")]
#[allow(dead_code)] // validated only; the raw body is the payload
enum CronInput {
    Object(Map<String, Value>),
    Objects(Vec<Map<String, Value>>),
}

/// Tells an explicit `null` (Some(None)) from an absent key (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CronSearchRequest)]
struct SearchRequest {
    #[schema(format = Uuid)]
    assistant_id: Option<String>,
    #[schema(format = Uuid)]
    thread_id: Option<String>,
    enabled: Option<bool>,
    metadata: Option<Map<String, Value>>,
    /// Only crons whose last run ended so (cronhook's addition).
    last_run_status: Option<RunStatus>,
    /// Page size, 1–1000.
    #[serde(default = "super::default_limit")]
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    limit: i64,
    #[serde(default)]
    #[schema(minimum = 0, default = 0)]
    offset: i64,
    sort_by: Option<SortBy>,
    sort_order: Option<SortOrderParam>,
    /// Only these keys of each item (default: all).
    #[schema(schema_with = select_schema)]
    select: Option<Vec<String>>,
}

/// Like LangGraph's, count ignores keys it does not filter on (such as `enabled`).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CronCountRequest)]
struct CountRequest {
    #[schema(format = Uuid)]
    assistant_id: Option<String>,
    #[schema(format = Uuid)]
    thread_id: Option<String>,
    metadata: Option<Map<String, Value>>,
    /// Only crons whose last run ended so (cronhook's addition).
    last_run_status: Option<RunStatus>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = CronSortBy)]
enum SortBy {
    CronId,
    AssistantId,
    ThreadId,
    NextRunDate,
    EndTime,
    CreatedAt,
    UpdatedAt,
    LastRunStatus,
    LastRunAt,
    ConsecutiveFailures,
}

impl From<SortBy> for CronSort {
    fn from(by: SortBy) -> Self {
        match by {
            SortBy::CronId => CronSort::CronId,
            SortBy::AssistantId => CronSort::AssistantId,
            SortBy::ThreadId => CronSort::ThreadId,
            SortBy::NextRunDate => CronSort::NextRunDate,
            SortBy::EndTime => CronSort::EndTime,
            SortBy::CreatedAt => CronSort::CreatedAt,
            SortBy::UpdatedAt => CronSort::UpdatedAt,
            SortBy::LastRunStatus => CronSort::LastRunStatus,
            SortBy::LastRunAt => CronSort::LastRunAt,
            SortBy::ConsecutiveFailures => CronSort::ConsecutiveFailures,
        }
    }
}

/// Create a stateless cron.
///
/// Each fire runs on a new thread, which is deleted afterwards unless `on_run_completed`
/// is `keep`.
#[utoipa::path(
    post,
    path = "/runs/crons",
    tag = "crons",
    operation_id = "create_cron",
    request_body = CreateRequest,
    responses(
        (status = 200, description = "The new cron", body = Cron),
        (status = 404, description = "Unknown assistant", body = ErrorBody),
        (status = 422, description = "Invalid body (schedule, timezone, end_time, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
pub(crate) async fn create_stateless(
    State(state): State<AppState>,
    caller: Caller,
    RawJson(body): RawJson,
) -> ApiResult<Json<Cron>> {
    create(state, caller, None, body).await
}

/// Create a cron on a thread.
///
/// Each fire runs on this thread.
#[utoipa::path(
    post,
    path = "/threads/{thread_id}/runs/crons",
    tag = "crons",
    operation_id = "create_thread_cron",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id")),
    request_body = CreateRequest,
    responses(
        (status = 200, description = "The new cron", body = Cron),
        (status = 404, description = "Unknown thread or assistant", body = ErrorBody),
        (status = 422, description = "Invalid id or body (schedule, timezone, end_time, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn create_for_thread(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
    RawJson(body): RawJson,
) -> ApiResult<Json<Cron>> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    state
        .store
        .check_thread_scope(&thread_id, &caller.scope())
        .await?;
    create(state, caller, Some(thread_id), body).await
}

/// Create a cron on a thread (alias).
///
/// An alias of `POST /threads/{thread_id}/runs/crons` under the singular `/thread/`, the
/// spelling many callers use; it behaves the same in every respect.
#[utoipa::path(
    post,
    path = "/thread/{thread_id}/runs/crons",
    tag = "crons",
    operation_id = "create_thread_cron_alias",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id")),
    request_body = CreateRequest,
    responses(
        (status = 200, description = "The new cron", body = Cron),
        (status = 404, description = "Unknown thread or assistant", body = ErrorBody),
        (status = 422, description = "Invalid id or body (schedule, timezone, end_time, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    ),
    extensions(("x-alias-of" = json!("/threads/{thread_id}/runs/crons")))
)]
async fn create_for_thread_alias(
    state: State<AppState>,
    caller: Caller,
    thread_id: Path<String>,
    body: RawJson,
) -> ApiResult<Json<Cron>> {
    create_for_thread(state, caller, thread_id, body).await
}

async fn create(
    state: AppState,
    caller: Caller,
    thread_id: Option<String>,
    body: Value,
) -> ApiResult<Json<Cron>> {
    reject_nulls(&body, &[])?;
    let request: CreateRequest = typed(&body)?;
    let schedule = Schedule::parse(&request.schedule)?;
    parse_timezone(request.timezone.as_deref())?;
    let end_time = request
        .end_time
        .as_deref()
        .map(parse_end_time)
        .transpose()?;
    if let Some(webhook) = &request.webhook {
        state.check_webhook(webhook).await?;
    }
    let assistant_id = state.assistant_id(&request.assistant_id).ok_or_else(|| {
        ApiError::not_found(format!("Assistant '{}' not found", request.assistant_id))
    })?;

    let pause_after_failures = request.pause_after_failures.map(pause_after).transpose()?;
    check_overlap(request.overlap, thread_id.is_some()).map_err(ApiError::invalid)?;
    let jitter_seconds = request.jitter_seconds.map(jitter_seconds).transpose()?;
    let remaining_runs = request.remaining_runs.map(remaining_runs).transpose()?;
    let now = now_ms();
    let paused_until = request
        .paused_until
        .as_deref()
        .map(|text| paused_until(text, now))
        .transpose()?;
    let cron_id = Uuid::now_v7().to_string();
    let mut payload = body;
    if let Value::Object(map) = &mut payload {
        for key in CRON_SETTINGS {
            map.remove(*key);
        }
    }
    payload["assistant_id"] = json!(assistant_id);
    set_configurable_cron_id(&mut payload, &cron_id);

    let stateless = thread_id.is_none();
    let mut cron = cron::Model {
        cron_id,
        assistant_id,
        thread_id,
        user_id: caller.user_id(),
        schedule: request.schedule,
        timezone: request.timezone,
        end_time,
        payload,
        metadata: Value::Object(request.metadata.unwrap_or_default()),
        enabled: request.enabled.unwrap_or(true),
        on_run_completed: stateless
            .then(|| request.on_run_completed.unwrap_or(OnCompletion::Delete)),
        next_run_at: None,
        created_at: now,
        updated_at: now,
        misfire_policy: request.misfire_policy.map(|p| p.as_str().to_string()),
        catchup_window_seconds: request.catchup_window_seconds.map(i64::from),
        last_run_status: None,
        last_run_at: None,
        consecutive_failures: 0,
        pause_note: None,
        pause_after_failures,
        overlap: request.overlap.unwrap_or_default(),
        jitter_seconds: jitter_seconds.unwrap_or(0),
        remaining_runs,
        paused_until,
        dst_repeat: request.dst_repeat.unwrap_or_default(),
        dst_gap: request.dst_gap.unwrap_or_default(),
        held_runs: 0,
    };
    cron.next_run_at = next_run_at(&schedule, &cron, now);
    let cron = state.store.create_cron(cron, caller.max_crons).await?;
    state.cron_created(cron.next_run_at);
    Ok(Json(Cron::from(cron)))
}

/// Get a cron.
#[utoipa::path(
    get,
    path = "/runs/crons/{cron_id}",
    tag = "crons",
    operation_id = "get_cron",
    params(("cron_id" = String, Path, format = Uuid, description = "The cron's id")),
    responses(
        (status = 200, description = "The cron", body = Cron),
        (status = 404, description = "No such cron", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(cron_id): Path<String>,
) -> ApiResult<Json<Cron>> {
    let cron_id = parse_uuid(&cron_id, "cron")?;
    Ok(Json(Cron::from(
        state.store.get_cron(&cron_id, &caller.scope()).await?,
    )))
}

/// Update a cron.
///
/// The keys given are merged into the cron (and its payload); a new schedule, timezone,
/// end or `enabled` recomputes `next_run_date`.
#[utoipa::path(
    patch,
    path = "/runs/crons/{cron_id}",
    tag = "crons",
    operation_id = "patch_cron",
    params(("cron_id" = String, Path, format = Uuid, description = "The cron's id")),
    request_body = PatchRequest,
    responses(
        (status = 200, description = "The updated cron", body = Cron),
        (status = 400, description = "Empty body", body = ErrorBody),
        (status = 404, description = "No such cron", body = ErrorBody),
        (status = 422, description = "Invalid id or body", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
pub(crate) async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(cron_id): Path<String>,
    RawJson(body): RawJson,
) -> ApiResult<Json<Cron>> {
    let cron_id = parse_uuid(&cron_id, "cron")?;
    let changes = match body {
        Value::Object(map) if !map.is_empty() => map,
        Value::Object(_) => return Err(ApiError::bad_request("Request body cannot be empty")),
        _ => return Err(ApiError::invalid("Request body must be a JSON object")),
    };
    let changes_value = Value::Object(changes.clone());
    reject_nulls(
        &changes_value,
        &[
            "end_time",
            "pause_after_failures",
            "remaining_runs",
            "paused_until",
        ],
    )?;
    let request: PatchRequest = typed(&changes_value)?;
    // The note and settings are the cron's, not its runs': they stay out of the payload.
    let mut changes = changes;
    changes.remove("pause_note");
    for key in CRON_SETTINGS {
        changes.remove(*key);
    }
    let jitter_seconds = request.jitter_seconds.map(jitter_seconds).transpose()?;
    let remaining_runs = match request.remaining_runs {
        Some(Some(count)) => Some(Some(remaining_runs(count)?)),
        Some(None) => Some(None),
        None => None,
    };
    let new_pause = match &request.paused_until {
        Some(Some(text)) => Some(Some(paused_until(text, now_ms())?)),
        Some(None) => Some(None),
        None => None,
    };
    if new_pause.is_some() && request.enabled.is_some() {
        return Err(ApiError::invalid(
            "paused_until: not with \"enabled\" (a pause until an instant keeps the cron enabled; \"enabled\": true resumes now)",
        ));
    }
    let pause_after_failures = match request.pause_after_failures {
        Some(Some(count)) => Some(Some(pause_after(count)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(note) = &request.pause_note {
        if request.enabled != Some(false) {
            return Err(ApiError::invalid(
                "pause_note: only with \"enabled\": false (a note says why a cron is paused)",
            ));
        }
        if note.len() > MAX_PAUSE_NOTE {
            return Err(ApiError::invalid(format!(
                "pause_note: longer than {MAX_PAUSE_NOTE} bytes"
            )));
        }
    }
    let new_schedule = request
        .schedule
        .as_deref()
        .map(Schedule::parse)
        .transpose()?;
    if let Some(zone) = &request.timezone {
        parse_timezone(Some(zone))?;
    }
    let new_end_time = match &request.end_time {
        Some(Some(text)) => Some(Some(parse_end_time(text)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(webhook) = &request.webhook {
        state.check_webhook(webhook).await?;
    }
    let reschedule = request.schedule.is_some()
        || request.timezone.is_some()
        || request.end_time.is_some()
        || request.enabled.is_some()
        || request.paused_until.is_some()
        || request.dst_repeat.is_some()
        || request.dst_gap.is_some()
        || remaining_runs.is_some();

    let cron = state
        .store
        .update_cron(&cron_id, &caller.scope(), |cron| {
            let now = now_ms();
            check_overlap(request.overlap, cron.thread_id.is_some())
                .map_err(crate::store::Error::Invalid)?;
            if let Some(schedule) = &request.schedule {
                cron.schedule = schedule.clone();
            }
            if let Some(zone) = &request.timezone {
                cron.timezone = Some(zone.clone());
            }
            if let Some(end_time) = new_end_time {
                cron.end_time = end_time;
            }
            if let Some(enabled) = request.enabled {
                cron.enabled = enabled;
                cron.pause_note = if enabled {
                    None
                } else {
                    request.pause_note.clone()
                };
                // Enabling resumes now; disabling pauses until enabled.
                cron.paused_until = None;
            }
            if let Some(until) = new_pause {
                cron.paused_until = until;
            }
            if let Some(overlap) = request.overlap {
                cron.overlap = overlap;
            }
            if let Some(seconds) = jitter_seconds {
                cron.jitter_seconds = seconds;
            }
            if let Some(limit) = remaining_runs {
                cron.remaining_runs = limit;
                // A cron that spent its run limit resumes with a new one.
                if limit.is_some()
                    && !cron.enabled
                    && cron.pause_note.as_deref() == Some(RUN_LIMIT_REACHED)
                    && request.enabled.is_none()
                {
                    cron.enabled = true;
                    cron.pause_note = None;
                }
            }
            if let Some(choice) = request.dst_repeat {
                cron.dst_repeat = choice;
            }
            if let Some(choice) = request.dst_gap {
                cron.dst_gap = choice;
            }
            if let Some(count) = pause_after_failures {
                cron.pause_after_failures = count;
            }
            if let Some(policy) = request.misfire_policy {
                cron.misfire_policy = Some(policy.as_str().to_string());
            }
            if let Some(window) = request.catchup_window_seconds {
                cron.catchup_window_seconds = Some(i64::from(window));
            }
            if cron.thread_id.is_none()
                && let Some(on_completed) = request.on_run_completed
            {
                cron.on_run_completed = Some(on_completed);
            }
            if let Some(metadata) = &request.metadata {
                let mut merged = match &cron.metadata {
                    Value::Object(map) => map.clone(),
                    _ => Map::new(),
                };
                merged.extend(metadata.clone());
                cron.metadata = Value::Object(merged);
            }
            merge_payload(
                &mut cron.payload,
                changes,
                &cron.cron_id,
                &cron.assistant_id,
            );
            if reschedule {
                let schedule = match &new_schedule {
                    Some(schedule) => Some(schedule.clone()),
                    None => Schedule::parse(&cron.schedule).ok(),
                };
                cron.next_run_at = schedule.and_then(|s| next_run_at(&s, cron, now));
            }
            cron.updated_at = now;
            Ok(())
        })
        .await?;
    state.scheduler.cron_changed();
    Ok(Json(Cron::from(cron)))
}

/// Delete a cron.
#[utoipa::path(
    delete,
    path = "/runs/crons/{cron_id}",
    tag = "crons",
    operation_id = "delete_cron",
    params(("cron_id" = String, Path, format = Uuid, description = "The cron's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such cron", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(cron_id): Path<String>,
) -> ApiResult<StatusCode> {
    let cron_id = parse_uuid(&cron_id, "cron")?;
    state.store.delete_cron(&cron_id, &caller.scope()).await?;
    state.scheduler.cron_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// Search crons.
#[utoipa::path(
    post,
    path = "/runs/crons/search",
    tag = "crons",
    operation_id = "search_crons",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "A page of crons (with `select`, only those keys)",
            body = Vec<Cron>, headers(
                ("x-pagination-total" = u64, description = "Items before this page plus those on it (one more when there are more)"),
                ("x-pagination-next" = u64, description = "The offset of the next page, when there is one"),
            )),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn search(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<SearchRequest>,
) -> ApiResult<Response> {
    let (limit, offset) = paging(request.limit, request.offset)?;
    validate_select(&request.select, FIELDS)?;
    let filter = CronFilter {
        assistant_id: parse_optional_uuid(request.assistant_id, "assistant")?,
        thread_id: parse_optional_uuid(request.thread_id, "thread")?,
        enabled: request.enabled,
        metadata: state.filter("metadata", request.metadata)?,
        last_run_status: request.last_run_status,
        scope: caller.scope(),
        ..CronFilter::default()
    };
    // As in LangGraph, `sort_order` without `sort_by` keeps the default order.
    let sort = match request.sort_by {
        Some(by) => (
            by.into(),
            request.sort_order.map_or(SortOrder::Desc, SortOrder::from),
        ),
        None => (CronSort::CreatedAt, SortOrder::Desc),
    };
    let page = state
        .store
        .search_crons(&filter, sort, limit, offset)
        .await?;
    Ok(page_response(page, Cron::from, &request.select))
}

/// Count crons.
#[utoipa::path(
    post,
    path = "/runs/crons/count",
    tag = "crons",
    operation_id = "count_crons",
    request_body = CountRequest,
    responses(
        (status = 200, description = "How many crons match", body = u64, content_type = "application/json"),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn count(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CountRequest>,
) -> ApiResult<Json<u64>> {
    let filter = CronFilter {
        assistant_id: parse_optional_uuid(request.assistant_id, "assistant")?,
        thread_id: parse_optional_uuid(request.thread_id, "thread")?,
        enabled: None,
        metadata: state.filter("metadata", request.metadata)?,
        last_run_status: request.last_run_status,
        scope: caller.scope(),
        ..CronFilter::default()
    };
    Ok(Json(state.store.count_crons(&filter).await?))
}

fn parse_optional_uuid(value: Option<String>, what: &str) -> ApiResult<Option<String>> {
    value.map(|v| parse_uuid(&v, what)).transpose()
}

fn parse_end_time(text: &str) -> ApiResult<Millis> {
    parse_instant(text)
        .map(|dt: DateTime<Utc>| dt.timestamp_millis())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid end_time: '{text}'. Use an ISO-8601 date-time (e.g. '2026-12-31T23:59:00Z')."
            ))
        })
}

/// The first instant after `now` in the cron's zone (at or after its `paused_until`), or
/// none past its end.
fn next_run_at(schedule: &Schedule, cron: &cron::Model, now: Millis) -> Option<Millis> {
    let zone = parse_timezone(cron.timezone.as_deref()).ok()?;
    let after = match cron.paused_until {
        Some(until) if until > now => until - 1,
        _ => now,
    };
    let next = schedule.next_after(to_datetime(after), zone, Dst::of(cron))?;
    let next = next.timestamp_millis();
    match cron.end_time {
        Some(end) if next > end => None,
        _ => Some(next),
    }
}

/// `payload.config.configurable.cron_id = cron_id`, creating the objects on the way.
fn set_configurable_cron_id(payload: &mut Value, cron_id: &str) {
    let Value::Object(root) = payload else { return };
    let config = root
        .entry("config")
        .or_insert_with(|| Value::Object(Map::new()));
    if !config.is_object() {
        *config = Value::Object(Map::new());
    }
    let Value::Object(config) = config else {
        return;
    };
    let configurable = config
        .entry("configurable")
        .or_insert_with(|| Value::Object(Map::new()));
    if !configurable.is_object() {
        *configurable = Value::Object(Map::new());
    }
    if let Value::Object(configurable) = configurable {
        configurable.insert("cron_id".into(), json!(cron_id));
    }
}

/// PATCH merges its keys into the payload one level deep, keeping the cron's identity.
fn merge_payload(
    payload: &mut Value,
    changes: Map<String, Value>,
    cron_id: &str,
    assistant_id: &str,
) {
    if !payload.is_object() {
        *payload = Value::Object(Map::new());
    }
    if let Value::Object(root) = payload {
        root.extend(changes);
        root.insert("assistant_id".into(), json!(assistant_id));
    }
    set_configurable_cron_id(payload, cron_id);
}

/// A cron: a schedule, and the run each fire creates. The ops commands read it back.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Cron {
    #[schema(format = Uuid)]
    pub cron_id: String,
    #[schema(format = Uuid)]
    pub assistant_id: String,
    /// Null for a stateless cron.
    #[schema(format = Uuid)]
    pub thread_id: Option<String>,
    /// Stateless crons: `delete` or `keep`; null on a thread's cron.
    pub on_run_completed: Option<OnCompletion>,
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
    pub schedule: String,
    /// IANA zone name; null means UTC.
    pub timezone: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The identity that created it (empty without API keys).
    pub user_id: String,
    /// The create body as sent, with `assistant_id` resolved and
    /// `config.configurable.cron_id` added; what each fire runs.
    pub payload: Map<String, Value>,
    /// The next fire; null when it will not fire again (past its end).
    #[schema(format = DateTime)]
    pub next_run_date: Option<String>,
    pub metadata: Map<String, Value>,
    pub enabled: bool,
    /// Null: the configured default.
    pub misfire_policy: Option<MisfirePolicy>,
    /// Null: the configured default.
    pub catchup_window_seconds: Option<i64>,
    /// How its last ended run ended; null before the first (cronhook's addition).
    pub last_run_status: Option<RunStatus>,
    /// When its last ended run ended.
    #[schema(format = DateTime)]
    pub last_run_at: Option<String>,
    /// Runs ended `error` or `timeout` since the last success (0 after a success).
    pub consecutive_failures: i32,
    /// Why it is paused (`PATCH {"enabled": false, "pause_note": …}`, or "paused after N
    /// consecutive failures"); null otherwise.
    pub pause_note: Option<String>,
    /// Disabled after this many failed runs in a row; null: never.
    pub pause_after_failures: Option<i32>,
    /// Stateless crons: what an instant does while an earlier run of the cron is still active.
    #[serde(default)]
    pub overlap: Overlap,
    /// Each instant starts a delay in [0, jitter) after it, fixed per instant.
    #[serde(default)]
    pub jitter_seconds: i32,
    /// Instants left to fire before the cron disables itself; null: no limit.
    #[serde(default)]
    pub remaining_runs: Option<i64>,
    /// Paused until this instant (`enabled` is false until then); null otherwise.
    #[schema(format = DateTime)]
    #[serde(default)]
    pub paused_until: Option<String>,
    #[serde(default)]
    pub dst_repeat: DstRepeat,
    #[serde(default)]
    pub dst_gap: DstGap,
}

impl From<cron::Model> for Cron {
    fn from(cron: cron::Model) -> Cron {
        let paused_until = cron.paused_until.filter(|&until| until > now_ms());
        Cron {
            cron_id: cron.cron_id,
            assistant_id: cron.assistant_id,
            thread_id: cron.thread_id,
            on_run_completed: cron.on_run_completed,
            end_time: cron.end_time.map(iso),
            schedule: cron.schedule,
            timezone: cron.timezone,
            created_at: iso(cron.created_at),
            updated_at: iso(cron.updated_at),
            user_id: cron.user_id.unwrap_or_default(),
            payload: object(&cron.payload),
            next_run_date: cron.next_run_at.map(iso),
            metadata: object(&cron.metadata),
            enabled: cron.enabled && paused_until.is_none(),
            misfire_policy: cron
                .misfire_policy
                .as_deref()
                .and_then(MisfirePolicy::parse),
            catchup_window_seconds: cron.catchup_window_seconds,
            last_run_status: cron.last_run_status,
            last_run_at: cron.last_run_at.map(iso),
            consecutive_failures: cron.consecutive_failures,
            pause_note: cron.pause_note,
            pause_after_failures: cron.pause_after_failures,
            overlap: cron.overlap,
            jitter_seconds: cron.jitter_seconds,
            remaining_runs: cron.remaining_runs,
            paused_until: paused_until.map(iso),
            dst_repeat: cron.dst_repeat,
            dst_gap: cron.dst_gap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_id_is_injected_into_configurable() {
        let mut payload = json!({"config": {"tags": ["a"]}});
        set_configurable_cron_id(&mut payload, "c1");
        assert_eq!(payload["config"]["configurable"]["cron_id"], "c1");
        assert_eq!(payload["config"]["tags"], json!(["a"]));
        let mut payload = json!({"config": null});
        set_configurable_cron_id(&mut payload, "c1");
        assert_eq!(payload["config"]["configurable"]["cron_id"], "c1");
    }

    #[test]
    fn patch_merges_but_keeps_identity() {
        let mut payload = json!({"assistant_id": "a", "input": {"x": 1}, "config": {"configurable": {"cron_id": "c"}}});
        let changes = json!({"input": {"y": 2}, "config": {"tags": ["t"]}});
        let Value::Object(changes) = changes else {
            unreachable!()
        };
        merge_payload(&mut payload, changes, "c", "a");
        assert_eq!(payload["input"], json!({"y": 2}));
        assert_eq!(payload["config"]["tags"], json!(["t"]));
        assert_eq!(payload["config"]["configurable"]["cron_id"], "c");
        assert_eq!(payload["assistant_id"], "a");
    }
}
