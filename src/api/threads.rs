//! `/threads`: create, read, patch, delete, search, count, and the thread's state.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use entity::states::ThreadStatus;
use entity::thread;

use super::error::ErrorBody;
use super::extract::{JsonBody, parse_uuid};
use super::{
    ApiError, ApiResult, AppState, SortOrderParam, object, page_response, paging, validate_select,
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

fn select_schema() -> utoipa::openapi::schema::Array {
    super::select_schema(FIELDS)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(search))
        .routes(routes!(count))
        .routes(routes!(get_one, patch, delete))
        .routes(routes!(state))
}

/// What creating a thread whose id exists does: 409, or answer the existing thread.
#[derive(Debug, Clone, Copy, Deserialize, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ThreadIfExists)]
enum IfExistsParam {
    #[default]
    Raise,
    DoNothing,
}

/// A new thread.
// `ttl` and `supersteps` are read only to be refused (LangGraph's checkpointer features),
// so the schema leaves them out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ThreadCreateRequest)]
struct CreateRequest {
    /// The new thread's id (default: a new UUIDv7).
    #[schema(format = Uuid)]
    thread_id: Option<String>,
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    if_exists: IfExistsParam,
    #[schema(ignore)]
    ttl: Option<Value>,
    #[schema(ignore)]
    supersteps: Option<Value>,
}

/// Metadata keys are merged into the thread's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ThreadPatchRequest)]
struct PatchRequest {
    metadata: Option<Map<String, Value>>,
    #[schema(ignore)]
    ttl: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ThreadSearchRequest)]
struct SearchRequest {
    #[schema(value_type = Option<Vec<String>>, format = Uuid)]
    ids: Option<Vec<String>>,
    metadata: Option<Map<String, Value>>,
    values: Option<Map<String, Value>>,
    status: Option<ThreadStatus>,
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
    /// Not supported: only an empty object (or none) is accepted.
    extract: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ThreadCountRequest)]
struct CountRequest {
    metadata: Option<Map<String, Value>>,
    values: Option<Map<String, Value>>,
    status: Option<ThreadStatus>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ThreadSortBy)]
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

/// Create a thread.
#[utoipa::path(
    post,
    path = "/threads",
    tag = "threads",
    operation_id = "create_thread",
    request_body = CreateRequest,
    responses(
        (status = 200, description = "The new thread (or the existing one, with `if_exists: do_nothing`)", body = Thread),
        (status = 404, description = "The id belongs to a thread of another identity (whatever `if_exists` says: as every other call on that thread answers)", body = ErrorBody),
        (status = 409, description = "A thread of the caller's with this id exists (`if_exists: raise`)", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateRequest>,
) -> ApiResult<Json<Thread>> {
    refuse_unsupported("ttl", &request.ttl)?;
    refuse_unsupported("supersteps", &request.supersteps)?;
    let thread_id = match &request.thread_id {
        Some(id) => parse_uuid(id, "thread")?,
        None => Uuid::now_v7().to_string(),
    };
    let if_exists = match request.if_exists {
        IfExistsParam::Raise => IfExists::Raise,
        IfExistsParam::DoNothing => IfExists::DoNothing,
    };
    let thread = state
        .store
        .create_thread(
            thread_id,
            request.metadata.unwrap_or_default(),
            if_exists,
            &caller.scope(),
            caller.user_id(),
        )
        .await?;
    Ok(Json(Thread::from(thread)))
}

/// Get a thread.
#[utoipa::path(
    get,
    path = "/threads/{thread_id}",
    tag = "threads",
    operation_id = "get_thread",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id")),
    responses(
        (status = 200, description = "The thread", body = Thread),
        (status = 404, description = "No such thread", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> ApiResult<Json<Thread>> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    Ok(Json(Thread::from(
        state.store.get_thread(&thread_id, &caller.scope()).await?,
    )))
}

/// Update a thread's metadata.
#[utoipa::path(
    patch,
    path = "/threads/{thread_id}",
    tag = "threads",
    operation_id = "patch_thread",
    params(
        ("thread_id" = String, Path, format = Uuid, description = "The thread's id"),
        ("prefer" = Option<String>, Header, description = "`return=minimal`: answer 204 without a body"),
    ),
    request_body = PatchRequest,
    responses(
        (status = 200, description = "The updated thread", body = Thread),
        (status = 204, description = "Updated (`Prefer: return=minimal`)"),
        (status = 404, description = "No such thread", body = ErrorBody),
        (status = 422, description = "Invalid id or body", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
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
    Ok(Json(Thread::from(thread)).into_response())
}

/// Delete a thread, with its runs.
#[utoipa::path(
    delete,
    path = "/threads/{thread_id}",
    tag = "threads",
    operation_id = "delete_thread",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such thread", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
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

/// Search threads.
#[utoipa::path(
    post,
    path = "/threads/search",
    tag = "threads",
    operation_id = "search_threads",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "A page of threads (with `select`, only those keys)",
            body = Vec<Thread>, headers(
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
    if request.extract.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(ApiError::invalid("extract: not supported by cronhook"));
    }
    if let Some(ids) = &request.ids {
        state.check_batch("ids", ids.len())?;
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
        metadata: state.filter("metadata", request.metadata)?,
        values: state.filter("values", request.values)?,
        status: request.status,
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
    Ok(page_response(page, Thread::from, &request.select))
}

/// Count threads.
#[utoipa::path(
    post,
    path = "/threads/count",
    tag = "threads",
    operation_id = "count_threads",
    request_body = CountRequest,
    responses(
        (status = 200, description = "How many threads match", body = u64, content_type = "application/json"),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn count(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CountRequest>,
) -> ApiResult<Json<u64>> {
    let filter = ThreadFilter {
        ids: None,
        metadata: state.filter("metadata", request.metadata)?,
        values: state.filter("values", request.values)?,
        status: request.status,
        scope: caller.scope(),
    };
    Ok(Json(state.store.count_threads(&filter).await?))
}

/// The thread's state.
///
/// The values of its last successful run (LangGraph's empty snapshot before any).
#[utoipa::path(
    get,
    path = "/threads/{thread_id}/state",
    tag = "threads",
    operation_id = "get_thread_state",
    params(("thread_id" = String, Path, format = Uuid, description = "The thread's id")),
    responses(
        (status = 200, description = "The state snapshot", body = ThreadState),
        (status = 404, description = "No such thread", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn state(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> ApiResult<Json<ThreadState>> {
    let thread_id = parse_uuid(&thread_id, "thread")?;
    let thread = state.store.get_thread(&thread_id, &caller.scope()).await?;
    Ok(Json(ThreadState::from(thread)))
}

/// A thread.
#[derive(Serialize, ToSchema)]
pub struct Thread {
    #[schema(format = Uuid)]
    thread_id: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// When `values` last changed.
    #[schema(format = DateTime)]
    state_updated_at: String,
    metadata: Map<String, Value>,
    status: ThreadStatus,
    /// Always empty.
    config: Map<String, Value>,
    /// The values of the last successful run; null before any.
    values: Option<Value>,
}

/// A thread's state snapshot (LangGraph's shape; cronhook keeps no checkpoints).
#[derive(Serialize, ToSchema)]
struct ThreadState {
    values: Value,
    /// Always empty.
    next: Vec<String>,
    /// Always empty.
    tasks: Vec<Value>,
    metadata: Option<Map<String, Value>>,
    #[schema(format = DateTime)]
    created_at: Option<String>,
    checkpoint: Option<Map<String, Value>>,
    parent_checkpoint: Option<Map<String, Value>>,
    /// Always empty.
    interrupts: Vec<Value>,
    checkpoint_id: Option<String>,
    parent_checkpoint_id: Option<String>,
}

impl From<thread::Model> for Thread {
    fn from(thread: thread::Model) -> Thread {
        Thread {
            thread_id: thread.thread_id,
            created_at: iso(thread.created_at),
            updated_at: iso(thread.updated_at),
            state_updated_at: iso(thread.state_updated_at),
            metadata: object(&thread.metadata),
            status: thread.status,
            config: Map::new(),
            values: thread.values,
        }
    }
}

impl From<thread::Model> for ThreadState {
    /// Before any successful run: LangGraph's empty snapshot. After: the last run's values,
    /// with a checkpoint that names the thread.
    fn from(thread: thread::Model) -> ThreadState {
        let empty = ThreadState {
            values: Value::Object(Map::new()),
            next: Vec::new(),
            tasks: Vec::new(),
            metadata: None,
            created_at: None,
            checkpoint: None,
            parent_checkpoint: None,
            interrupts: Vec::new(),
            checkpoint_id: None,
            parent_checkpoint_id: None,
        };
        match thread.values {
            None => empty,
            Some(values) => ThreadState {
                values,
                metadata: Some(Map::new()),
                created_at: Some(iso(thread.state_updated_at)),
                checkpoint: Some(Map::from_iter([
                    ("thread_id".to_string(), Value::String(thread.thread_id)),
                    ("checkpoint_ns".to_string(), Value::String(String::new())),
                    ("checkpoint_id".to_string(), Value::Null),
                ])),
                ..empty
            },
        }
    }
}
