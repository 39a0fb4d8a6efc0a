//! `/assistants`: read-only views of the configured graphs.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use entity::assistant;

use super::extract::{JsonBody, parse_uuid};
use super::{
    ApiError, ApiResult, AppState, Paging, SortOrderParam, object_or_empty, page_response,
    validate_select,
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

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assistants/search", post(search))
        .route("/assistants/count", post(count))
        .route("/assistants/{assistant_id}", get(get_one))
        .route("/assistants/{assistant_id}/versions", post(versions))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionsRequest {
    metadata: Option<Map<String, Value>>,
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    metadata: Option<Map<String, Value>>,
    graph_id: Option<String>,
    name: Option<String>,
    #[serde(default = "super::default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    sort_by: Option<SortBy>,
    sort_order: Option<SortOrderParam>,
    select: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountRequest {
    metadata: Option<Map<String, Value>>,
    graph_id: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
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

async fn search(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SearchRequest>,
) -> ApiResult<Response> {
    let (limit, offset) = Paging::validate(request.limit, request.offset)?;
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
    Ok(page_response(page, render, &request.select))
}

async fn count(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CountRequest>,
) -> ApiResult<Json<u64>> {
    let filter = filter(&state, request.metadata, request.graph_id, request.name)?;
    Ok(Json(state.store.count_assistants(&filter).await?))
}

async fn get_one(
    State(state): State<AppState>,
    Path(assistant_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let assistant_id = parse_uuid(&assistant_id, "assistant")?;
    let assistant = state
        .store
        .get_assistant(&assistant_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Assistant '{assistant_id}' not found")))?;
    Ok(Json(render(assistant)))
}

/// An assistant's versions. Assistants here come from the config and have one version.
async fn versions(
    State(state): State<AppState>,
    Path(assistant_id): Path<String>,
    JsonBody(request): JsonBody<VersionsRequest>,
) -> ApiResult<Json<Vec<Value>>> {
    let (limit, offset) = Paging::validate(request.limit, request.offset)?;
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
        let mut version = render(assistant);
        if let Value::Object(map) = &mut version {
            map.remove("updated_at");
        }
        versions.push(version);
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
        metadata,
        graph_id,
        name,
    })
}

pub fn render(assistant: assistant::Model) -> Value {
    json!({
        "assistant_id": assistant.assistant_id,
        "graph_id": assistant.graph_id,
        "config": object_or_empty(&assistant.config),
        "context": object_or_empty(&assistant.context),
        "created_at": iso(assistant.created_at),
        "updated_at": iso(assistant.updated_at),
        "metadata": object_or_empty(&assistant.metadata),
        "version": assistant.version,
        "name": assistant.name,
        "description": assistant.description,
    })
}
