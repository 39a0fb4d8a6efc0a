//! `/assistants`: read-only views of the configured graphs.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use entity::assistant;

use super::error::ErrorBody;
use super::extract::{JsonBody, parse_uuid};
use super::{
    ApiError, ApiResult, AppState, SortOrderParam, object, page_response, paging, validate_select,
};
use crate::store::SortOrder;
use crate::store::assistants::{AssistantFilter, AssistantSort};
use crate::time::iso;

const FIELDS: &[&str] = &[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
];

fn select_schema() -> utoipa::openapi::schema::Array {
    super::select_schema(FIELDS)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(count))
        .routes(routes!(get_one))
        .routes(routes!(versions))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AssistantVersionsRequest)]
struct VersionsRequest {
    metadata: Option<Map<String, Value>>,
    /// Page size, 1–1000.
    #[serde(default = "super::default_limit")]
    #[schema(minimum = 1, maximum = 1000, default = 10)]
    limit: i64,
    #[serde(default)]
    #[schema(minimum = 0, default = 0)]
    offset: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AssistantSearchRequest)]
struct SearchRequest {
    metadata: Option<Map<String, Value>>,
    graph_id: Option<String>,
    name: Option<String>,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AssistantCountRequest)]
struct CountRequest {
    metadata: Option<Map<String, Value>>,
    graph_id: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AssistantSortBy)]
enum SortBy {
    AssistantId,
    CreatedAt,
    UpdatedAt,
    Name,
    GraphId,
}

impl From<SortBy> for AssistantSort {
    fn from(by: SortBy) -> Self {
        match by {
            SortBy::AssistantId => AssistantSort::AssistantId,
            SortBy::CreatedAt => AssistantSort::CreatedAt,
            SortBy::UpdatedAt => AssistantSort::UpdatedAt,
            SortBy::Name => AssistantSort::Name,
            SortBy::GraphId => AssistantSort::GraphId,
        }
    }
}

/// Search assistants (the configured graphs).
#[utoipa::path(
    post,
    path = "/assistants/search",
    tag = "assistants",
    operation_id = "search_assistants",
    request_body = SearchRequest,
    responses(
        (status = 200, description = "A page of assistants (with `select`, only those keys)",
            body = Vec<Assistant>, headers(
                ("x-pagination-total" = u64, description = "Items before this page plus those on it (one more when there are more)"),
                ("x-pagination-next" = u64, description = "The offset of the next page, when there is one"),
            )),
        (status = 404, description = "Unknown `graph_id`", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn search(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SearchRequest>,
) -> ApiResult<Response> {
    let (limit, offset) = paging(request.limit, request.offset)?;
    validate_select(&request.select, FIELDS)?;
    let filter = filter(&state, request.metadata, request.graph_id, request.name)?;
    let sort = request.sort_by.map(|by| {
        let order = request.sort_order.map_or(SortOrder::Desc, SortOrder::from);
        (AssistantSort::from(by), order)
    });
    let page = state
        .store
        .search_assistants(&filter, sort, limit, offset)
        .await?;
    Ok(page_response(page, Assistant::from, &request.select))
}

/// Count assistants.
#[utoipa::path(
    post,
    path = "/assistants/count",
    tag = "assistants",
    operation_id = "count_assistants",
    request_body = CountRequest,
    responses(
        (status = 200, description = "How many assistants match", body = u64, content_type = "application/json"),
        (status = 404, description = "Unknown `graph_id`", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn count(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CountRequest>,
) -> ApiResult<Json<u64>> {
    let filter = filter(&state, request.metadata, request.graph_id, request.name)?;
    Ok(Json(state.store.count_assistants(&filter).await?))
}

/// Get an assistant.
#[utoipa::path(
    get,
    path = "/assistants/{assistant_id}",
    tag = "assistants",
    operation_id = "get_assistant",
    params(("assistant_id" = String, Path, format = Uuid, description = "The assistant's id")),
    responses(
        (status = 200, description = "The assistant", body = Assistant),
        (status = 404, description = "No such assistant", body = ErrorBody),
        (status = 422, description = "The id is not a UUID", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    Path(assistant_id): Path<String>,
) -> ApiResult<Json<Assistant>> {
    let assistant_id = parse_uuid(&assistant_id, "assistant")?;
    let assistant = state
        .store
        .get_assistant(&assistant_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Assistant '{assistant_id}' not found")))?;
    Ok(Json(Assistant::from(assistant)))
}

/// An assistant's versions.
///
/// Assistants here come from the config and have one version.
#[utoipa::path(
    post,
    path = "/assistants/{assistant_id}/versions",
    tag = "assistants",
    operation_id = "list_assistant_versions",
    params(("assistant_id" = String, Path, format = Uuid, description = "The assistant's id")),
    request_body = VersionsRequest,
    responses(
        (status = 200, description = "The versions (at most one)", body = Vec<AssistantVersion>),
        (status = 404, description = "No such assistant", body = ErrorBody),
        (status = 422, description = "Invalid id or body", body = ErrorBody),
        (status = 500, description = "Database error", body = ErrorBody),
    )
)]
async fn versions(
    State(state): State<AppState>,
    Path(assistant_id): Path<String>,
    JsonBody(request): JsonBody<VersionsRequest>,
) -> ApiResult<Json<Vec<AssistantVersion>>> {
    let (limit, offset) = paging(request.limit, request.offset)?;
    let assistant_id = parse_uuid(&assistant_id, "assistant")?;
    let assistant = state
        .store
        .get_assistant(&assistant_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Assistant '{assistant_id}' not found")))?;
    let matches = request.metadata.as_ref().is_none_or(|wanted| {
        wanted
            .iter()
            .all(|(key, value)| assistant.metadata.get(key) == Some(value))
    });
    let mut versions = Vec::new();
    if matches && offset == 0 && limit > 0 {
        versions.push(AssistantVersion::from(assistant));
    }
    Ok(Json(versions))
}

/// A search on an unknown graph is a 404, as in LangGraph.
fn filter(
    state: &AppState,
    metadata: Option<Map<String, Value>>,
    graph_id: Option<String>,
    name: Option<String>,
) -> ApiResult<AssistantFilter> {
    if let Some(graph) = &graph_id
        && !state.config.graphs.contains_key(graph)
    {
        let known: Vec<String> = state
            .config
            .graphs
            .keys()
            .map(|name| format!("'{name}'"))
            .collect();
        return Err(ApiError::not_found(format!(
            "Graph '{graph}' not found. Expected one of: [{}]",
            known.join(", ")
        )));
    }
    Ok(AssistantFilter {
        metadata: state.filter("metadata", metadata)?,
        graph_id,
        name,
    })
}

/// An assistant: one configured graph.
#[derive(Serialize, ToSchema)]
struct Assistant {
    #[schema(format = Uuid)]
    assistant_id: String,
    graph_id: String,
    config: Map<String, Value>,
    context: Map<String, Value>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    metadata: Map<String, Value>,
    version: i32,
    name: String,
    description: Option<String>,
}

/// One version of an assistant: the assistant without `updated_at`.
#[derive(Serialize, ToSchema)]
struct AssistantVersion {
    #[schema(format = Uuid)]
    assistant_id: String,
    graph_id: String,
    config: Map<String, Value>,
    context: Map<String, Value>,
    #[schema(format = DateTime)]
    created_at: String,
    metadata: Map<String, Value>,
    version: i32,
    name: String,
    description: Option<String>,
}

impl From<assistant::Model> for Assistant {
    fn from(assistant: assistant::Model) -> Assistant {
        Assistant {
            assistant_id: assistant.assistant_id,
            graph_id: assistant.graph_id,
            config: object(&assistant.config),
            context: object(&assistant.context),
            created_at: iso(assistant.created_at),
            updated_at: iso(assistant.updated_at),
            metadata: object(&assistant.metadata),
            version: assistant.version,
            name: assistant.name,
            description: assistant.description,
        }
    }
}

impl From<assistant::Model> for AssistantVersion {
    fn from(assistant: assistant::Model) -> AssistantVersion {
        AssistantVersion {
            assistant_id: assistant.assistant_id,
            graph_id: assistant.graph_id,
            config: object(&assistant.config),
            context: object(&assistant.context),
            created_at: iso(assistant.created_at),
            metadata: object(&assistant.metadata),
            version: assistant.version,
            name: assistant.name,
            description: assistant.description,
        }
    }
}
