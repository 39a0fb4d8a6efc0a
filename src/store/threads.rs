//! Threads: created by clients (or by stateless runs), carrying the values of their last run.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde_json::{Map, Value};

use entity::states::ThreadStatus;
use entity::thread::{self, Column, Entity as Threads};

use super::{Error, Page, Result, Scope, SortOrder, Store};
use crate::time::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadSort {
    ThreadId,
    Status,
    CreatedAt,
    UpdatedAt,
    StateUpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    Raise,
    DoNothing,
}

#[derive(Debug, Default, Clone)]
pub struct ThreadFilter {
    pub ids: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
    pub values: Option<Map<String, Value>>,
    pub status: Option<ThreadStatus>,
    pub scope: Scope,
}

impl Store {
    /// Creates a thread; an existing id is a conflict or, with `DoNothing`, returned as is.
    /// An existing thread outside `scope` is not found, whatever `if_exists` says, as on
    /// every other call on it: a conflict would tell the caller that the id exists.
    pub async fn create_thread(
        &self,
        thread_id: String,
        metadata: Map<String, Value>,
        if_exists: IfExists,
        scope: &Scope,
        user_id: Option<String>,
    ) -> Result<thread::Model> {
        let txn = self.write.begin().await?;
        if let Some(existing) = Threads::find_by_id(thread_id.clone()).one(&txn).await? {
            if !scope.allows(existing.user_id.as_deref()) {
                return Err(thread_not_found(&thread_id));
            }
            return match if_exists {
                IfExists::DoNothing => Ok(existing),
                IfExists::Raise => Err(Error::Conflict(format!(
                    "Thread with ID {thread_id} already exists"
                ))),
            };
        }
        let now = now_ms();
        let model = thread::ActiveModel {
            thread_id: Set(thread_id),
            metadata: Set(Value::Object(metadata)),
            status: Set(ThreadStatus::Idle),
            values: Set(None),
            user_id: Set(user_id),
            created_at: Set(now),
            updated_at: Set(now),
            state_updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(model)
    }

    pub async fn get_thread(&self, thread_id: &str, scope: &Scope) -> Result<thread::Model> {
        Threads::find_by_id(thread_id.to_string())
            .filter(scope.condition(Column::UserId))
            .one(&self.read)
            .await?
            .ok_or_else(|| thread_not_found(thread_id))
    }

    /// Merges `metadata` into the thread's metadata.
    pub async fn patch_thread(
        &self,
        thread_id: &str,
        scope: &Scope,
        metadata: Map<String, Value>,
    ) -> Result<thread::Model> {
        let txn = self.write.begin().await?;
        let current = Threads::find_by_id(thread_id.to_string())
            .filter(scope.condition(Column::UserId))
            .one(&txn)
            .await?
            .ok_or_else(|| thread_not_found(thread_id))?;
        let mut merged = match &current.metadata {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        merged.extend(metadata);
        let mut active = current.into_active_model();
        active.metadata = Set(Value::Object(merged));
        active.updated_at = Set(now_ms());
        let model = active.update(&txn).await?;
        txn.commit().await?;
        Ok(model)
    }

    /// Whether the thread may be used under `scope`: yes when it is missing (it may be
    /// created) or visible; a thread owned by another identity reads as not found.
    pub async fn check_thread_scope(&self, thread_id: &str, scope: &Scope) -> Result<()> {
        if *scope == Scope::All {
            return Ok(());
        }
        match Threads::find_by_id(thread_id.to_string())
            .one(&self.read)
            .await?
        {
            Some(thread) if !scope.allows(thread.user_id.as_deref()) => {
                Err(thread_not_found(thread_id))
            }
            _ => Ok(()),
        }
    }

    /// Deletes a thread and, through the foreign key, its crons, with their history (a
    /// stateless run's entry stays: its cron is not the thread's).
    pub async fn delete_thread(&self, thread_id: &str, scope: &Scope) -> Result<()> {
        let txn = self.write.begin().await?;
        // The history goes first, while the crons that own it are still there; a refused
        // delete rolls it back.
        let crons = sea_orm::sea_query::Query::select()
            .column(entity::cron::Column::CronId)
            .from(entity::cron::Entity)
            .and_where(entity::cron::Column::ThreadId.eq(thread_id.to_string()))
            .to_owned();
        entity::cron_fire::Entity::delete_many()
            .filter(entity::cron_fire::Column::CronId.in_subquery(crons))
            .exec(&txn)
            .await?;
        let result = Threads::delete_by_id(thread_id.to_string())
            .filter(scope.condition(Column::UserId))
            .exec(&txn)
            .await?;
        if result.rows_affected == 0 {
            return Err(thread_not_found(thread_id));
        }
        txn.commit().await?;
        Ok(())
    }

    pub async fn search_threads(
        &self,
        filter: &ThreadFilter,
        sort: Option<(ThreadSort, SortOrder)>,
        limit: u64,
        offset: u64,
    ) -> Result<Page<thread::Model>> {
        let (column, order) = match sort {
            Some((by, order)) => (sort_column(by), order),
            None => (Column::UpdatedAt, SortOrder::Desc),
        };
        let query = Threads::find()
            .filter(self.thread_condition(filter))
            .order_by(column, order.into())
            .order_by(Column::ThreadId, order.into());
        self.page(query, limit, offset).await
    }

    pub async fn count_threads(&self, filter: &ThreadFilter) -> Result<u64> {
        Ok(Threads::find()
            .filter(self.thread_condition(filter))
            .count(&self.read)
            .await?)
    }

    fn thread_condition(&self, filter: &ThreadFilter) -> Condition {
        let mut condition = filter.scope.condition(Column::UserId);
        if let Some(ids) = &filter.ids {
            condition = condition.add(Column::ThreadId.is_in(ids.clone()));
        }
        if let Some(status) = filter.status {
            condition = condition.add(Column::Status.eq(status));
        }
        if let Some(metadata) = filter.metadata.as_ref().filter(|m| !m.is_empty()) {
            condition = condition.add(self.json_contains("metadata", metadata));
        }
        if let Some(values) = filter.values.as_ref().filter(|m| !m.is_empty()) {
            condition = condition.add(self.json_contains("values", values));
        }
        condition
    }
}

fn sort_column(by: ThreadSort) -> Column {
    match by {
        ThreadSort::ThreadId => Column::ThreadId,
        ThreadSort::Status => Column::Status,
        ThreadSort::CreatedAt => Column::CreatedAt,
        ThreadSort::UpdatedAt => Column::UpdatedAt,
        ThreadSort::StateUpdatedAt => Column::StateUpdatedAt,
    }
}

fn thread_not_found(thread_id: &str) -> Error {
    Error::NotFound(format!("Thread with ID {thread_id} not found"))
}
