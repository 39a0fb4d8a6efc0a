//! `/threads`: create, read, patch, delete, search, count, and the thread's state.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use entity::thread;

use super::extract::{JsonBody, parse_uuid};
use super::{
    ApiError, ApiResult, AppState, Paging, SortOrderParam, object_or_empty, page_response,
    validate_select,
};
use crate::auth::Caller;
use crate::store::SortOrder;
use crate::store::threads::{IfExists, ThreadFilter, ThreadSort};
use crate::time::iso;

const FIELDS: &[&str] = &[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/threads", post(create))
        .route("/threads/search", post(search))
        .route("/threads/count", post(count))
        .route(
            "/threads/{thread_id}",
            get(get_one).patch(patch).delete(delete),
        )
        .route("/threads/{thread_id}/state", get(state))
}

#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
enum IfExistsParam {
    #[default]
    Raise,
    DoNothing,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Status {
    Idle,
    Busy,
    Interrupted,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Busy => "busy",
            Status::Interrupted => "interrupted",
            Status::Error => "error",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    thread_id: Option<String>,
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    if_exists: IfExistsParam,
    ttl: Option<Value>,
    supersteps: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRequest {
    metadata: Option<Map<String, Value>>,
    ttl: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    ids: Option<Vec<String>>,
    metadata: Option<Map<String, Value>>,
    values: Option<Map<String, Value>>,
    status: Option<Status>,
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    sort_by: Option<SortBy>,
    sort_order: Option<SortOrderParam>,
    select: Option<Vec<String>>,
    extract: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountRequest {
    metadata: Option<Map<String, Value>>,
    values: Option<Map<String, Value>>,
    status: Option<Status>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SortBy {
    ThreadId,
    Status,
    CreatedAt,
    UpdatedAt,
    StateUpdatedAt,
}

impl From<SortBy> for ThreadSort {
    fn from(by: SortBy) -> Self {
        match by {
            SortBy::ThreadId => ThreadSort::ThreadId,
            SortBy::Status => ThreadSort::Status,
            SortBy::CreatedAt => ThreadSort::CreatedAt,
            SortBy::UpdatedAt => ThreadSort::UpdatedAt,
            SortBy::StateUpdatedAt => ThreadSort::StateUpdatedAt,
        }
    }
}

/// Thread TTLs and supersteps need LangGraph's checkpointer; say so instead of ignoring them.
fn refuse_unsupported(field: &str, value: &Option<Value>) -> ApiResult<()> {
    match value {
        Some(Value::Null) | None => Ok(()),
        Some(_) => Err(ApiError::invalid(format!(
            "{field}: not supported by cronhook"
        ))),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateRequest>,
) -> ApiResult<Json<Value>> {
    refuse_unsupported("ttl", &request.ttl)?;
    refuse_unsupported("supersteps", &request.supersteps)?;
    let thread_id = match &request.thread_id {
        Some(id) => parse_uuid(id, "thread")?,
        None => Uuid::now_v7().to_string(),
    };
    let if_exists = match request.if_exists {
        IfExistsParam::Raise => IfExists::Raise,
        IfExistsParam::DoNothing => {
            // `do_nothing` answers the existing thread: only when it is the caller's.
            state
                .store
                .check_thread_scope(&thread_id, &caller.scope())
                .await?;
            IfExists::DoNothing
        }
    };
    let thread = state
        .store
        .create_thread(
            thread_id,
            request.metadata.unwrap_or_default(),
            if_exists,
            caller.user_id(),
        )
        .await?;
    Ok(Json(render(thread)))
}

async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    Ok(Json(render(
        state.store.get_thread(&thread_id, &caller.scope()).await?,
    )))
}

async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
    headers: axum::http::HeaderMap,
    JsonBody(request): JsonBody<PatchRequest>,
) -> ApiResult<Response> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    refuse_unsupported("ttl", &request.ttl)?;
    let thread = state
        .store
        .patch_thread(
            &thread_id,
            &caller.scope(),
            request.metadata.unwrap_or_default(),
        )
        .await?;
    let minimal = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("return=minimal"));
    if minimal {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Json(render(thread)).into_response())
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> ApiResult<StatusCode> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    state
        .store
        .delete_thread(&thread_id, &caller.scope())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn search(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<SearchRequest>,
) -> ApiResult<Response> {
    let (limit, offset) = Paging::validate(request.limit, request.offset)?;
    validate_select(&request.select, FIELDS)?;
    if request.extract.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(ApiError::invalid("extract: not supported by cronhook"));
    }
    let ids = request
        .ids
        .map(|ids| {
            ids.iter()
                .map(|id| parse_uuid(id, "thread"))
                .collect::<ApiResult<Vec<_>>>()
        })
        .transpose()?;
    let filter = ThreadFilter {
        ids,
        metadata: request.metadata,
        values: request.values,
        status: request.status.map(|s| s.as_str().to_string()),
        scope: caller.scope(),
    };
    let sort = request.sort_by.map(|by| {
        let order = request.sort_order.map_or(SortOrder::Desc, SortOrder::from);
        (ThreadSort::from(by), order)
    });
    let page = state
        .store
        .search_threads(&filter, sort, limit, offset)
        .await?;
    Ok(page_response(page, render, &request.select))
}

async fn count(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CountRequest>,
) -> ApiResult<Json<u64>> {
    let filter = ThreadFilter {
        ids: None,
        metadata: request.metadata,
        values: request.values,
        status: request.status.map(|s| s.as_str().to_string()),
        scope: caller.scope(),
    };
    Ok(Json(state.store.count_threads(&filter).await?))
}

/// The thread's state: the values of its last successful run (LangGraph's empty
/// snapshot before any).
async fn state(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    let thread = state.store.get_thread(&thread_id, &caller.scope()).await?;
    let snapshot = match thread.values {
        None => json!({
            "values": {},
            "next": [],
            "tasks": [],
            "metadata": null,
            "created_at": null,
            "checkpoint": null,
            "parent_checkpoint": null,
            "interrupts": [],
            "checkpoint_id": null,
            "parent_checkpoint_id": null,
        }),
        Some(values) => json!({
            "values": values,
            "next": [],
            "tasks": [],
            "metadata": {},
            "created_at": iso(thread.state_updated_at),
            "checkpoint": {"thread_id": thread.thread_id, "checkpoint_ns": "", "checkpoint_id": null},
            "parent_checkpoint": null,
            "interrupts": [],
            "checkpoint_id": null,
            "parent_checkpoint_id": null,
        }),
    };
    Ok(Json(snapshot))
}

pub fn render(thread: thread::Model) -> Value {
    json!({
        "thread_id": thread.thread_id,
        "created_at": iso(thread.created_at),
        "updated_at": iso(thread.updated_at),
        "state_updated_at": iso(thread.state_updated_at),
        "metadata": object_or_empty(&thread.metadata),
        "status": thread.status,
        "config": {},
        "values": thread.values,
    })
}
