//! Assistants: one per configured graph, kept in step with the config at start-up.

use sea_orm::sea_query::{Expr, ExprTrait, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set, TransactionTrait,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use entity::assistant::{self, Column, Entity as Assistants};

use super::{Page, Result, SortOrder, Store};
use crate::time::now_ms;

/// LangGraph derives a graph's default assistant id with this namespace (note `…b821…`,
/// not the standard URL namespace `…b811…`), so ids match the reference server's.
pub const GRAPH_NAMESPACE: Uuid = Uuid::from_u128(0x6ba7b821_9dad_11d1_80b4_00c04fd430c8);

pub fn assistant_id_for_graph(graph_id: &str) -> Uuid {
    Uuid::new_v5(&GRAPH_NAMESPACE, graph_id.as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssistantSort {
    AssistantId,
    CreatedAt,
    UpdatedAt,
    Name,
    GraphId,
}

#[derive(Debug, Default, Clone)]
pub struct AssistantFilter {
    pub metadata: Option<Map<String, Value>>,
    pub graph_id: Option<String>,
    /// Case-insensitive substring of the name.
    pub name: Option<String>,
}

impl Store {
    /// Creates the assistant of every configured graph that has none yet.
    pub async fn sync_assistants<'a>(
        &self,
        graph_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        for graph_id in graph_ids {
            let id = assistant_id_for_graph(graph_id).to_string();
            if Assistants::find_by_id(id.clone())
                .one(&self.write)
                .await?
                .is_some()
            {
                continue;
            }
            let now = now_ms();
            // A transaction, so that a failed commit is reported (see `create_cron`).
            let txn = self.write.begin().await?;
            assistant::ActiveModel {
                assistant_id: Set(id),
                graph_id: Set(graph_id.to_string()),
                name: Set(graph_id.to_string()),
                description: Set(None),
                config: Set(json!({})),
                context: Set(json!({})),
                metadata: Set(json!({"created_by": "system"})),
                version: Set(1),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?;
            txn.commit().await?;
        }
        let all = Assistants::find().all(&self.write).await?;
        let mut cache = self
            .assistant_metadata
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.clear();
        for assistant in all {
            let metadata = match assistant.metadata {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            cache.insert(assistant.assistant_id, metadata);
        }
        Ok(())
    }

    /// An assistant's metadata, from the cache `sync_assistants` fills.
    pub(super) fn assistant_metadata(&self, assistant_id: &str) -> Map<String, Value> {
        self.assistant_metadata
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(assistant_id)
            .cloned()
            .unwrap_or_default()
    }

    pub async fn get_assistant(&self, assistant_id: &str) -> Result<Option<assistant::Model>> {
        Ok(Assistants::find_by_id(assistant_id.to_string())
            .one(&self.read)
            .await?)
    }

    pub async fn search_assistants(
        &self,
        filter: &AssistantFilter,
        sort: Option<(AssistantSort, SortOrder)>,
        limit: u64,
        offset: u64,
    ) -> Result<Page<assistant::Model>> {
        let (column, order) = match sort {
            Some((by, order)) => (sort_column(by), order),
            None => (Column::CreatedAt, SortOrder::Desc),
        };
        let query = Assistants::find()
            .filter(self.assistant_condition(filter))
            .order_by(column, order.into())
            .order_by(Column::AssistantId, order.into());
        self.page(query, limit, offset).await
    }

    pub async fn count_assistants(&self, filter: &AssistantFilter) -> Result<u64> {
        Ok(Assistants::find()
            .filter(self.assistant_condition(filter))
            .count(&self.read)
            .await?)
    }

    fn assistant_condition(&self, filter: &AssistantFilter) -> Condition {
        let mut condition = Condition::all();
        if let Some(graph_id) = &filter.graph_id {
            condition = condition.add(Column::GraphId.eq(graph_id.clone()));
        }
        if let Some(name) = &filter.name {
            let pattern = format!("%{}%", name.to_lowercase());
            condition =
                condition.add(Expr::expr(Func::lower(Expr::col(Column::Name))).like(pattern));
        }
        if let Some(metadata) = filter.metadata.as_ref().filter(|m| !m.is_empty()) {
            condition = condition.add(self.json_contains("metadata", metadata));
        }
        condition
    }
}

fn sort_column(by: AssistantSort) -> Column {
    match by {
        AssistantSort::AssistantId => Column::AssistantId,
        AssistantSort::CreatedAt => Column::CreatedAt,
        AssistantSort::UpdatedAt => Column::UpdatedAt,
        AssistantSort::Name => Column::Name,
        AssistantSort::GraphId => Column::GraphId,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_assistant_id_matches_langgraph() {
        // uuid5(UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "agent") in Python.
        assert_eq!(
            assistant_id_for_graph("agent").to_string(),
            "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
        );
    }
}
