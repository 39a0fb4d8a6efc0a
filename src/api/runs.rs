//! Runs: create, stream, wait (on a thread or stateless), list, get, delete, join, join
//! stream, cancel, batch. Handlers queue runs in the store and wake the local workers; they
//! never execute graphs themselves.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sea_orm::Iterable;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use entity::run;
use entity::states::{CancelAction, RunStatus};

use super::error::ErrorBody;
use super::extract::{JsonBody, QueryParams, RawJson, one_of, parse_uuid, reject_nulls, typed};
use super::fields::{Durability, MultitaskStrategy, Nodes, OnCompletion, RunConfig, StreamModes};
use super::{
    ApiError, ApiResult, AppState, locations, page_response, paging, sse, validate_select,
};
use crate::auth::Caller;
use crate::runs::events::Subscription;
use crate::runs::payload::Run;
use crate::runs::spec::RunSpec;
use crate::runs::{submit, wait_for_end, wait_with};
use crate::store::Page;
use crate::store::runs::IfThreadMissing;
use crate::time::now_ms;

const FIELDS: &[&str] = &[
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "langsmith_session_name",
    "cron_id",
    "scheduled_for",
];

fn select_schema() -> utoipa::openapi::schema::Array {
    super::select_schema(FIELDS)
}

/// `wait` and `join` write a newline this often while the run goes on, as LangGraph does,
/// so proxies do not cut an idle connection.
const KEEPALIVE: Duration = Duration::from_secs(5);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_on_thread, list))
        .routes(routes!(stream_on_thread))
        .routes(routes!(wait_on_thread))
        .routes(routes!(get_one, delete))
        .routes(routes!(join))
        .routes(routes!(join_stream))
        .routes(routes!(cancel))
        .routes(routes!(create_stateless))
        .routes(routes!(stream_stateless))
        .routes(routes!(wait_stateless))
        .routes(routes!(batch))
        .routes(routes!(cancel_many))
}

/// The body of every run create (LangGraph's RunCreateStateful / Stateless and their
/// streaming variants, plus the keys the official SDK sends).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // some fields are only validated; the body's values go to kwargs
#[schema(
    as = RunCreateRequest,
    description = "A new run (LangGraph's RunCreateStateful / RunCreateStateless)."
)]
struct RunRequest {
    /// An assistant id or a graph name.
    assistant_id: String,
    input: Option<Value>,
    command: Option<Map<String, Value>>,
    checkpoint: Option<Map<String, Value>>,
    #[schema(format = Uuid)]
    checkpoint_id: Option<String>,
    checkpoint_during: Option<bool>,
    metadata: Option<Map<String, Value>>,
    config: Option<RunConfig>,
    context: Option<Map<String, Value>>,
    webhook: Option<String>,
    interrupt_before: Option<Nodes>,
    interrupt_after: Option<Nodes>,
    stream_mode: Option<StreamModes>,
    stream_subgraphs: Option<bool>,
    stream_resumable: Option<bool>,
    feedback_keys: Option<Vec<String>>,
    multitask_strategy: Option<MultitaskStrategy>,
    /// On a thread: `create` makes the thread when it does not exist (default `reject`).
    if_not_exists: Option<IfNotExists>,
    /// Stateless runs: what happens to their thread afterwards (default `delete`).
    on_completion: Option<OnCompletion>,
    on_disconnect: Option<OnDisconnect>,
    /// Queue the run, but start it no sooner than this many seconds from now.
    #[schema(minimum = 0, maximum = 31536000)]
    after_seconds: Option<f64>,
    durability: Option<Durability>,
    strict_resume: Option<bool>,
    langsmith_tracer: Option<Value>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RunIfNotExists)]
enum IfNotExists {
    Create,
    Reject,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RunOnDisconnect)]
enum OnDisconnect {
    Cancel,
    Continue,
}

/// Where a run goes: an existing thread, or a throw-away one (stateless).
enum Target {
    Thread(String),
    Stateless,
}

/// A queued run, how to address it, and its events from the very first.
struct Queued {
    run: run::Model,
    resumable: bool,
    events: Option<Subscription>,
}

impl Queued {
    fn content_location(&self, stateless: bool) -> String {
        if stateless {
            format!("/runs/{}", self.run.run_id)
        } else {
            format!("/threads/{}/runs/{}", self.run.thread_id, self.run.run_id)
        }
    }
}

/// Validates the body, builds the run it asks for and submits it.
async fn queue(
    state: &AppState,
    caller: &Caller,
    target: Target,
    body: Value,
) -> ApiResult<Queued> {
    let (request, after_ms) = validate(state, &body).await?;
    let stateless = matches!(target, Target::Stateless);
    let assistant_id = assistant_of(state, &request)?;
    let configurable = request
        .config
        .as_ref()
        .and_then(|c| c.configurable.as_ref())
        .is_some_and(|c| !c.is_empty());
    if configurable && request.context.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(ApiError::bad_request(
            "Cannot specify both configurable and context. Prefer setting context alone.",
        ));
    }
    let run_id = Uuid::now_v7().to_string();
    let (thread_id, if_missing) = match target {
        Target::Thread(thread_id) => {
            state
                .store
                .check_thread_scope(&thread_id, &caller.scope())
                .await?;
            let if_missing = match request.if_not_exists {
                Some(IfNotExists::Create) => IfThreadMissing::Create {
                    metadata: Map::new(),
                },
                _ => IfThreadMissing::Reject,
            };
            (thread_id, if_missing)
        }
        Target::Stateless => (Uuid::now_v7().to_string(), IfThreadMissing::CreateNew),
    };
    let strategy = request.multitask_strategy.unwrap_or_default();
    let graph_id = state.graph_of(&assistant_id);
    let on_completion = stateless.then(|| request.on_completion.unwrap_or(OnCompletion::Delete));
    let now = now_ms();
    let run = RunSpec {
        run_id,
        thread_id,
        assistant_id,
        graph_id,
        body: &body,
        metadata: run_metadata(&request),
        strategy,
        on_completion,
        available_at: now + after_ms,
        cron_id: None,
        scheduled_for: None,
        user_id: caller.user_id(),
        now,
    }
    .into_model();
    let submitted = submit(&state.store, &state.control, &state.hub, run, if_missing).await?;
    Ok(Queued {
        run: submitted.run,
        resumable: request.stream_resumable.unwrap_or(false),
        events: submitted.events,
    })
}

/// The request in `body`, checked as far as it can be without the store, and how long
/// its run waits before it may start (`after_seconds`, in milliseconds).
async fn validate(state: &AppState, body: &Value) -> ApiResult<(RunRequest, i64)> {
    reject_nulls(body, &[])?;
    let request: RunRequest = typed(body)?;
    if let Some(webhook) = &request.webhook {
        state.check_webhook(webhook).await?;
    }
    if let Some(checkpoint_id) = &request.checkpoint_id {
        Uuid::parse_str(checkpoint_id)
            .map_err(|_| ApiError::invalid("Invalid checkpoint ID: must be a UUID"))?;
    }
    let after_ms = match request.after_seconds {
        Some(s) if !(0.0..=31_536_000.0).contains(&s) => {
            return Err(ApiError::invalid(
                "after_seconds: must be between 0 and 31536000",
            ));
        }
        Some(s) => (s * 1000.0).round() as i64,
        None => 0,
    };
    Ok((request, after_ms))
}

/// The id of the assistant the request names (by id or by graph name).
fn assistant_of(state: &AppState, request: &RunRequest) -> ApiResult<String> {
    state.assistant_id(&request.assistant_id).ok_or_else(|| {
        if Uuid::parse_str(&request.assistant_id).is_ok() {
            ApiError::not_found("Thread or assistant not found.")
        } else {
            let graphs: Vec<&str> = state.config.graphs.keys().map(String::as_str).collect();
            ApiError::invalid(format!(
                "Invalid assistant: '{}'. Must be either:\n- A valid assistant UUID, or\n- One of the registered graphs: {}",
                request.assistant_id,
                graphs.join(", ")
            ))
        }
    })
}

/// The caller's metadata: `config.metadata` under the body's `metadata`.
fn run_metadata(request: &RunRequest) -> Map<String, Value> {
    let mut metadata = match request
        .config
        .as_ref()
        .and_then(|c| c.other.get("metadata"))
    {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    metadata.extend(request.metadata.clone().unwrap_or_default());
    metadata
}

fn run_response(queued: &Queued, stateless: bool) -> Response {
    let headers = locations(None, &queued.content_location(stateless));
    (headers, Json(Run::from(&queued.run))).into_response()
}

/// Create a run on a thread.
///
/// The run is queued; the answer does not wait for it.
#[utoipa::path(
    post,
    path = "/threads/{thread_id}/runs",
    tag = "runs",
    operation_id = "create_run",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id")),
    request_body = RunRequest,
    responses(
        (status = 200, description = "The queued run", body = Run, headers(
            ("content-location" = String, description = "The run's path"),
        )),
        (status = 400, description = "Both `config.configurable` and `context` given", body = ErrorBody),
        (status = 404, description = "No such thread, or no such assistant id", body = ErrorBody),
        (status = 409, description = "The thread is busy and `multitask_strategy` is `reject`", body = ErrorBody),
        (status = 422, description = "Invalid body (unknown assistant name, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn create_on_thread(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
    RawJson(body): RawJson,
) -> ApiResult<Response> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    let queued = queue(&state, &caller, Target::Thread(thread_id), body).await?;
    Ok(run_response(&queued, false))
}

/// Create a stateless run.
///
/// The run is queued on a new thread; the answer does not wait for it.
#[utoipa::path(
    post,
    path = "/runs",
    tag = "runs",
    operation_id = "create_stateless_run",
    request_body = RunRequest,
    responses(
        (status = 200, description = "The queued run", body = Run, headers(
            ("content-location" = String, description = "The run's path"),
        )),
        (status = 400, description = "Both `config.configurable` and `context` given", body = ErrorBody),
        (status = 404, description = "No such assistant id", body = ErrorBody),
        (status = 422, description = "Invalid body (unknown assistant name, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn create_stateless(
    State(state): State<AppState>,
    caller: Caller,
    RawJson(body): RawJson,
) -> ApiResult<Response> {
    let queued = queue(&state, &caller, Target::Stateless, body).await?;
    Ok(run_response(&queued, true))
}

/// Create several stateless runs.
///
/// Every item is validated before any is queued: one bad item queues nothing.
#[utoipa::path(
    post,
    path = "/runs/batch",
    tag = "runs",
    operation_id = "create_run_batch",
    request_body(content = Vec<RunRequest>, description = "At least one run"),
    responses(
        (status = 200, description = "The queued runs, in order", body = Vec<Run>),
        (status = 400, description = "Both `config.configurable` and `context` given", body = ErrorBody),
        (status = 404, description = "No such assistant id", body = ErrorBody),
        (status = 422, description = "Invalid body (unknown assistant name, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    RawJson(body): RawJson,
) -> ApiResult<Json<Vec<Run>>> {
    let Value::Array(items) = body else {
        return Err(ApiError::invalid("The body must be a list of runs"));
    };
    if items.is_empty() {
        return Err(ApiError::invalid("The body must hold at least one run"));
    }
    state.check_batch("runs", items.len())?;
    // Validate everything before queueing anything, so a bad item queues nothing.
    for item in &items {
        reject_nulls(item, &[])?;
        typed::<RunRequest>(item)?;
    }
    let mut runs = Vec::with_capacity(items.len());
    for item in items {
        runs.push(Run::from(
            &queue(&state, &caller, Target::Stateless, item).await?.run,
        ));
    }
    Ok(Json(runs))
}

/// Create a run on a thread and stream its events.
#[utoipa::path(
    post,
    path = "/threads/{thread_id}/runs/stream",
    tag = "runs",
    operation_id = "stream_run",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id")),
    request_body = RunRequest,
    responses(
        (status = 200, description = "Server-sent events until the run ends (`metadata` first, then the run's events; the stream closes when the run ends)",
            body = String, content_type = "text/event-stream", headers(
            ("location" = String, description = "Where to join this stream again"),
            ("content-location" = String, description = "The run's path"),
        )),
        (status = 400, description = "Both `config.configurable` and `context` given", body = ErrorBody),
        (status = 404, description = "No such thread, or no such assistant id", body = ErrorBody),
        (status = 409, description = "The thread is busy and `multitask_strategy` is `reject`", body = ErrorBody),
        (status = 422, description = "Invalid body (unknown assistant name, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn stream_on_thread(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
    RawJson(body): RawJson,
) -> ApiResult<Response> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    let queued = queue(&state, &caller, Target::Thread(thread_id), body).await?;
    stream_queued(queued, false)
}

/// Create a stateless run and stream its events.
#[utoipa::path(
    post,
    path = "/runs/stream",
    tag = "runs",
    operation_id = "stream_stateless_run",
    request_body = RunRequest,
    responses(
        (status = 200, description = "Server-sent events until the run ends (`metadata` first, then the run's events; the stream closes when the run ends)",
            body = String, content_type = "text/event-stream", headers(
            ("location" = String, description = "Where to join this stream again"),
            ("content-location" = String, description = "The run's path"),
        )),
        (status = 400, description = "Both `config.configurable` and `context` given", body = ErrorBody),
        (status = 404, description = "No such assistant id", body = ErrorBody),
        (status = 422, description = "Invalid body (unknown assistant name, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn stream_stateless(
    State(state): State<AppState>,
    caller: Caller,
    RawJson(body): RawJson,
) -> ApiResult<Response> {
    let queued = queue(&state, &caller, Target::Stateless, body).await?;
    stream_queued(queued, true)
}

fn stream_queued(queued: Queued, stateless: bool) -> ApiResult<Response> {
    let content_location = queued.content_location(stateless);
    let subscription = queued
        .events
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "run events lost"))?;
    let location = format!("{content_location}/stream");
    Ok(sse::response(
        subscription,
        queued.resumable,
        Some((location, content_location)),
    ))
}

/// Create a run on a thread and wait for its output.
#[utoipa::path(
    post,
    path = "/threads/{thread_id}/runs/wait",
    tag = "runs",
    operation_id = "wait_run",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id")),
    request_body = RunRequest,
    responses(
        (status = 200, description = "The run's final values once it ends (newlines are sent to keep the connection open until then); a failed run answers `{\"__error__\": …}`",
            body = Value, headers(
            ("location" = String, description = "The run's join path"),
            ("content-location" = String, description = "The run's path"),
        )),
        (status = 400, description = "Both `config.configurable` and `context` given", body = ErrorBody),
        (status = 404, description = "No such thread, or no such assistant id", body = ErrorBody),
        (status = 409, description = "The thread is busy and `multitask_strategy` is `reject`", body = ErrorBody),
        (status = 422, description = "Invalid body (unknown assistant name, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn wait_on_thread(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
    RawJson(body): RawJson,
) -> ApiResult<Response> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    let queued = queue(&state, &caller, Target::Thread(thread_id), body).await?;
    Ok(wait_response(state, queued.run, queued.events))
}

/// Create a stateless run and wait for its output.
#[utoipa::path(
    post,
    path = "/runs/wait",
    tag = "runs",
    operation_id = "wait_stateless_run",
    request_body = RunRequest,
    responses(
        (status = 200, description = "The run's final values once it ends (newlines are sent to keep the connection open until then); a failed run answers `{\"__error__\": …}`",
            body = Value, headers(
            ("location" = String, description = "The run's join path"),
            ("content-location" = String, description = "The run's path"),
        )),
        (status = 400, description = "Both `config.configurable` and `context` given", body = ErrorBody),
        (status = 404, description = "No such assistant id", body = ErrorBody),
        (status = 422, description = "Invalid body (unknown assistant name, webhook URL, …)", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn wait_stateless(
    State(state): State<AppState>,
    caller: Caller,
    RawJson(body): RawJson,
) -> ApiResult<Response> {
    let queued = queue(&state, &caller, Target::Stateless, body).await?;
    Ok(wait_response(state, queued.run, queued.events))
}

/// The run's final values as JSON once it ends, with newline keep-alives before it.
fn wait_response(state: AppState, run: run::Model, events: Option<Subscription>) -> Response {
    let base = format!("/threads/{}/runs/{}", run.thread_id, run.run_id);
    let mut headers = locations(Some(&format!("{base}/join")), &base);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let run_id = run.run_id;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let end = wait_with(&state.store, &state.hub, &run_id, events);
        tokio::pin!(end);
        let body = loop {
            tokio::select! {
                result = &mut end => break match result {
                    Ok(Some(end)) => end.body(),
                    Ok(None) => json!({}),
                    Err(err) => json!({"__error__": {"error": "StoreError", "message": err.to_string()}}),
                },
                _ = tokio::time::sleep(KEEPALIVE) => {
                    if tx.send(Ok(Bytes::from_static(b"\n"))).await.is_err() {
                        return;
                    }
                }
            }
        };
        let _ = tx.send(Ok(Bytes::from(body.to_string()))).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (headers, Body::from_stream(stream)).into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1–1000.
    #[serde(default = "super::default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 10)]
    limit: i64,
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    offset: i64,
    /// Only runs in this status (`pending`, `running`, `success`, `error`, `timeout`,
    /// `interrupted`).
    status: Option<String>,
    /// Keys to return (repeat the parameter for several).
    #[serde(default)]
    #[param(schema_with = select_schema)]
    select: Vec<String>,
}

/// List a thread's runs, newest first.
#[utoipa::path(
    get,
    path = "/threads/{thread_id}/runs",
    tag = "runs",
    operation_id = "list_runs",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id"), ListQuery),
    responses(
        (status = 200, description = "A page of runs (with `select`, only those keys)",
            body = Vec<Run>, headers(
                ("x-pagination-total" = u64, description = "Items before this page plus those on it (one more when there are more)"),
                ("x-pagination-next" = u64, description = "The offset of the next page, when there is one"),
            )),
        (status = 404, description = "No such thread", body = ErrorBody),
        (status = 422, description = "Invalid id or query", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
    QueryParams(query): QueryParams<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    let query = list_query(query)?;
    let (limit, offset) = paging(query.limit, query.offset)?;
    let select = (!query.select.is_empty()).then_some(query.select);
    validate_select(&select, FIELDS)?;
    state.store.get_thread(&thread_id, &caller.scope()).await?;
    let page = match query.status.as_deref().map(RunStatus::parse) {
        // No run is in a status that does not exist: the page a filter on it would give.
        Some(None) => Page {
            items: Vec::new(),
            offset,
            has_more: false,
        },
        status => {
            state
                .store
                .list_runs(&thread_id, status.flatten(), limit, offset)
                .await?
        }
    };
    Ok(page_response(page, |run| Run::from(&run), &select))
}

/// Query pairs, where `select` may repeat.
fn list_query(pairs: Vec<(String, String)>) -> ApiResult<ListQuery> {
    let mut query = ListQuery {
        limit: 10,
        offset: 0,
        status: None,
        select: Vec::new(),
    };
    for (key, value) in pairs {
        let number = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("{key}: '{v}' is not an integer")))
        };
        match key.as_str() {
            "limit" => query.limit = number(&value)?,
            "offset" => query.offset = number(&value)?,
            "status" if !value.is_empty() => query.status = Some(value),
            "select" => query.select.push(value),
            _ => {}
        }
    }
    Ok(query)
}

/// Get a run.
#[utoipa::path(
    get,
    path = "/threads/{thread_id}/runs/{run_id}",
    tag = "runs",
    operation_id = "get_run",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id"), ("run_id" = String, Path, format = Uuid, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = Run),
        (status = 404, description = "No such thread or run", body = ErrorBody),
        (status = 422, description = "An id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((thread_id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<Run>> {
    let (thread_id, run_id) = ids(&thread_id, &run_id)?;
    state
        .store
        .check_thread_scope(&thread_id, &caller.scope())
        .await?;
    Ok(Json(Run::from(
        &state.store.get_run(&thread_id, &run_id).await?,
    )))
}

/// Delete a run that is not running.
#[utoipa::path(
    delete,
    path = "/threads/{thread_id}/runs/{run_id}",
    tag = "runs",
    operation_id = "delete_run",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id"), ("run_id" = String, Path, format = Uuid, description = "The run's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such thread or run", body = ErrorBody),
        (status = 409, description = "The run is running: cancel it first", body = ErrorBody),
        (status = 422, description = "An id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((thread_id, run_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (thread_id, run_id) = ids(&thread_id, &run_id)?;
    state
        .store
        .check_thread_scope(&thread_id, &caller.scope())
        .await?;
    state.store.delete_run(&thread_id, &run_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Wait for a run's output.
///
/// A running run's final values once it ends; for an ended run, LangGraph answers the
/// thread's current values (or the run's error).
#[utoipa::path(
    get,
    path = "/threads/{thread_id}/runs/{run_id}/join",
    tag = "runs",
    operation_id = "join_run",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id"), ("run_id" = String, Path, format = Uuid, description = "The run's id")),
    responses(
        (status = 200, description = "The values (newlines are sent to keep the connection open while the run goes on); a failed run answers `{\"__error__\": …}`", body = Value),
        (status = 404, description = "No such thread or run", body = ErrorBody),
        (status = 422, description = "An id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn join(
    State(state): State<AppState>,
    caller: Caller,
    Path((thread_id, run_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (thread_id, run_id) = ids(&thread_id, &run_id)?;
    state
        .store
        .check_thread_scope(&thread_id, &caller.scope())
        .await?;
    let run = state.store.get_run(&thread_id, &run_id).await?;
    if run.status.is_active() {
        return Ok(wait_response(state, run, None));
    }
    let body = match &run.error {
        Some(error) => json!({ "__error__": error }),
        None => state
            .store
            .get_thread(&thread_id, &caller.scope())
            .await?
            .values
            .unwrap_or_else(|| json!({})),
    };
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct JoinStreamQuery {
    /// Only the events of this mode, or of a JSON list of modes (default: all).
    stream_mode: Option<String>,
}

/// Join a run's event stream.
///
/// Replays what the run kept (resumable runs) after `Last-Event-ID`, then follows it live.
#[utoipa::path(
    get,
    path = "/threads/{thread_id}/runs/{run_id}/stream",
    tag = "runs",
    operation_id = "join_run_stream",
    params(
        ("thread_id" = String, Path, format = Uuid, description = "The thread's id"),
        ("run_id" = String, Path, format = Uuid, description = "The run's id"),
        JoinStreamQuery,
        ("last-event-id" = Option<u64>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "Server-sent events until the run ends", body = String,
            content_type = "text/event-stream", headers(
            ("location" = String, description = "This stream's path"),
            ("content-location" = String, description = "The run's path"),
        )),
        (status = 404, description = "No such thread or run", body = ErrorBody),
        (status = 422, description = "An id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn join_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path((thread_id, run_id)): Path<(String, String)>,
    QueryParams(query): QueryParams<JoinStreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (thread_id, run_id) = ids(&thread_id, &run_id)?;
    state
        .store
        .check_thread_scope(&thread_id, &caller.scope())
        .await?;
    let run = state.store.get_run(&thread_id, &run_id).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let resumable = run
        .kwargs
        .get("resumable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Only the events of one mode (or a JSON list of modes) when asked; all when empty.
    let modes: Option<Vec<String>> = match query.stream_mode.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) if text.starts_with('[') => serde_json::from_str(text).ok(),
        Some(mode) => Some(vec![mode.to_string()]),
    };
    let finished = !run.status.is_active();
    let mut subscription = match state.hub.subscribe(&run_id, after) {
        Some(subscription) if !finished || resumable => subscription,
        // Ended and not resumable (LangGraph replays nothing then), or elsewhere.
        _ => crate::runs::events::Subscription {
            replay: Vec::new(),
            live: None,
            modes: None,
        },
    };
    if let Some(modes) = &modes {
        subscription.retain_modes(modes);
    }
    let content_location = format!("/threads/{thread_id}/runs/{run_id}");
    let location = format!("{content_location}/stream");
    Ok(sse::response(
        subscription,
        resumable,
        Some((location, content_location)),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CancelQuery {
    /// Answer once the run has ended (default false).
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    wait: Option<String>,
    /// `interrupt` (default) keeps the thread's values; `rollback` also deletes the run.
    #[serde(default)]
    #[param(value_type = Option<CancelAction>, inline)]
    action: Option<String>,
}

fn parse_action(action: Option<&str>) -> ApiResult<CancelAction> {
    match action {
        None | Some("") => Ok(CancelAction::Interrupt),
        Some(text) => one_of(
            "action",
            text,
            CancelAction::iter().map(|action| (action, action.as_str())),
        ),
    }
}

fn parse_flag(value: Option<&str>) -> ApiResult<bool> {
    match value {
        None | Some("") | Some("0") | Some("false") | Some("False") => Ok(false),
        Some("1") | Some("true") | Some("True") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!("'{other}' is not a boolean"))),
    }
}

/// Cancel a run.
#[utoipa::path(
    post,
    path = "/threads/{thread_id}/runs/{run_id}/cancel",
    tag = "runs",
    operation_id = "cancel_run",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id"), ("run_id" = String, Path, format = Uuid, description = "The run's id"), CancelQuery),
    responses(
        (status = 200, description = "Cancelled and ended (`wait=true`)", body = Object, headers(
            ("location" = String, description = "The run's join path"),
            ("content-location" = String, description = "The run's path"),
        )),
        (status = 202, description = "Cancellation requested"),
        (status = 404, description = "No such run, or nothing left to cancel", body = ErrorBody),
        (status = 422, description = "Invalid id or query", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path((thread_id, run_id)): Path<(String, String)>,
    QueryParams(query): QueryParams<CancelQuery>,
) -> ApiResult<Response> {
    let (thread_id, run_id) = ids(&thread_id, &run_id)?;
    state
        .store
        .check_thread_scope(&thread_id, &caller.scope())
        .await?;
    let wait = parse_flag(query.wait.as_deref())?;
    let action = parse_action(query.action.as_deref())?;
    let (found, cancelled) = state
        .store
        .cancel_runs(&[(thread_id.clone(), run_id.clone())], action)
        .await?;
    check_cancelled(found, cancelled)?;
    state.control.cancel(&run_id);
    if wait {
        if let Err(err) = wait_for_end(&state.store, &state.hub, &run_id).await {
            tracing::warn!(%run_id, error = %err, "waiting for a cancelled run");
        }
        let base = format!("/threads/{thread_id}/runs/{run_id}");
        let headers = locations(Some(&format!("{base}/join")), &base);
        return Ok((headers, Json(json!({}))).into_response());
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// LangGraph's two 404s: nothing by those ids, or nothing left to cancel.
fn check_cancelled(found: usize, cancelled: usize) -> ApiResult<()> {
    if found == 0 {
        return Err(ApiError::not_found("No runs found to cancel."));
    }
    if cancelled == 0 {
        return Err(ApiError::not_found(
            "No matching runs to cancel. Please verify the thread ID and run IDs are correct, and the runs haven't been deleted or completed.",
        ));
    }
    Ok(())
}

/// Either `status`, or `thread_id` with `run_ids`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RunCancelManyRequest)]
struct CancelManyRequest {
    /// Cancel every active run in this status (the caller's own).
    status: Option<CancelStatus>,
    #[schema(format = Uuid)]
    thread_id: Option<String>,
    #[schema(value_type = Option<Vec<String>>, format = Uuid)]
    run_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RunCancelStatus)]
enum CancelStatus {
    Pending,
    Running,
    All,
}

/// Cancel several runs.
#[utoipa::path(
    post,
    path = "/runs/cancel",
    tag = "runs",
    operation_id = "cancel_runs",
    params(("action" = inline(Option<CancelAction>), Query, description = "`interrupt` (default) or `rollback`")),
    request_body = CancelManyRequest,
    responses(
        (status = 204, description = "Cancellation requested"),
        (status = 404, description = "No such runs, or nothing left to cancel", body = ErrorBody),
        (status = 422, description = "Invalid body or query", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn cancel_many(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<CancelQuery>,
    JsonBody(request): JsonBody<CancelManyRequest>,
) -> ApiResult<StatusCode> {
    let action = parse_action(query.action.as_deref())?;
    let targets: Vec<(String, String)> =
        match (&request.status, &request.thread_id, &request.run_ids) {
            (Some(status), None, None) => {
                let statuses: &[RunStatus] = match status {
                    CancelStatus::Pending => &[RunStatus::Pending],
                    CancelStatus::Running => &[RunStatus::Running],
                    CancelStatus::All => &RunStatus::ACTIVE,
                };
                state.store.active_runs(statuses, &caller.scope()).await?
            }
            (None, Some(thread_id), Some(run_ids)) => {
                state.check_batch("run_ids", run_ids.len())?;
                let thread_id = parse_uuid(thread_id, "thread")?;
                state
                    .store
                    .check_thread_scope(&thread_id, &caller.scope())
                    .await?;
                run_ids
                    .iter()
                    .map(|id| parse_uuid(id, "run").map(|id| (thread_id.clone(), id)))
                    .collect::<ApiResult<_>>()?
            }
            _ => {
                return Err(ApiError::invalid(
                    "Give either `status`, or `thread_id` with `run_ids`",
                ));
            }
        };
    let (found, cancelled) = state.store.cancel_runs(&targets, action).await?;
    check_cancelled(found, cancelled)?;
    for (_, run_id) in &targets {
        state.control.cancel(run_id);
    }
    Ok(StatusCode::NO_CONTENT)
}

fn ids(thread_id: &str, run_id: &str) -> ApiResult<(String, String)> {
    Ok((parse_uuid(thread_id, "thread")?, parse_uuid(run_id, "run")?))
}
