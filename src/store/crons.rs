//! Crons: stored schedules with the run payload they fire with.

use sea_orm::SqlErr;
use sea_orm::sea_query::NullOrdering;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend,
    EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
};
use serde_json::{Map, Value};

use entity::cron::{self, Column, Entity as Crons};
use entity::states::RunStatus;

use super::fires::withdraw_prefired;
use super::{Backend, Error, Page, Result, Scope, SortOrder, Store};
use crate::time::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronSort {
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

#[derive(Debug, Default, Clone)]
pub struct CronFilter {
    pub assistant_id: Option<String>,
    pub thread_id: Option<String>,
    pub enabled: Option<bool>,
    pub metadata: Option<Map<String, Value>>,
    pub last_run_status: Option<RunStatus>,
    pub scope: Scope,
    /// Enabled crons whose last run failed (the console's "failing").
    pub failing: bool,
    /// Words found (case-insensitively) in the id, schedule, time zone or metadata.
    pub text: Option<String>,
    /// Crons of any of these assistants (the assistants whose graph name matched `text`).
    pub text_assistants: Vec<String>,
}

impl Store {
    /// Stores a new cron. A thread cron's thread must exist (the foreign key checks it, so
    /// the insert needs no read first). With `max_owned`, the cron's owner may own at most
    /// that many: counted and inserted in one transaction. Every column comes from `cron`,
    /// so the row is not read back.
    pub async fn create_cron(
        &self,
        cron: cron::Model,
        max_owned: Option<u64>,
    ) -> Result<cron::Model> {
        let thread_id = cron.thread_id.clone();
        let insert = Crons::insert(cron.clone().into_active_model().reset_all());
        match (max_owned, cron.user_id.as_deref()) {
            (Some(max), Some(owner)) => {
                let txn = self.write.begin().await?;
                self.check_owned(&txn, owner, max).await?;
                insert
                    .exec_without_returning(&txn)
                    .await
                    .map_err(|err| insert_error(err, thread_id))?;
                txn.commit().await?;
            }
            // One statement in its own transaction: SQLite commits it within the step that
            // ends it (a statement without RETURNING), so a failed commit (a full disk) is
            // this statement's error.
            _ => {
                insert
                    .exec_without_returning(&self.write)
                    .await
                    .map_err(|err| insert_error(err, thread_id))?;
            }
        }
        Ok(cron)
    }

    /// Refuses a cron beyond `max` owned by `owner`, in the creating transaction (which on
    /// PostgreSQL holds a lock per owner, so concurrent creates cannot overshoot).
    async fn check_owned(&self, txn: &DatabaseTransaction, owner: &str, max: u64) -> Result<()> {
        if self.backend == Backend::Postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended('cronhook.crons.' || $1, 0))",
                [owner.into()],
            ))
            .await?;
        }
        let owned = Crons::find()
            .filter(Column::UserId.eq(owner))
            .count(txn)
            .await?;
        if owned >= max {
            return Err(Error::LimitReached(format!(
                "This identity owns {owned} crons, its limit (max_crons): delete one or ask for a higher limit"
            )));
        }
        Ok(())
    }

    pub async fn get_cron(&self, cron_id: &str, scope: &Scope) -> Result<cron::Model> {
        Crons::find_by_id(cron_id.to_string())
            .filter(scope.condition(Column::UserId))
            .one(&self.read)
            .await?
            .ok_or_else(|| not_found(cron_id))
    }

    /// Reads the cron, lets `change` edit it, and writes it back in one transaction.
    pub async fn update_cron(
        &self,
        cron_id: &str,
        scope: &Scope,
        change: impl FnOnce(&mut cron::Model) -> Result<()> + Send,
    ) -> Result<cron::Model> {
        let txn = self.write.begin().await?;
        // Locked (PostgreSQL) so no fire of the old row commits between the withdrawal of
        // its runs fired ahead and the update.
        let current = Crons::find_by_id(cron_id.to_string())
            .filter(scope.condition(Column::UserId))
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| not_found(cron_id))?;
        let mut edited = current.clone();
        change(&mut edited)?;
        // Runs fired ahead were built from the old row: they give way to the edited one. An
        // edit that leaves the schedule alone fires the first withdrawn instant again.
        let withdrawn = withdraw_prefired(&txn, cron_id, now_ms()).await?;
        if let Some(&first) = withdrawn.first()
            && edited.next_run_at == current.next_run_at
        {
            edited.next_run_at = Some(first);
        }
        // The withdrawn instants fire again: they give back what they took of the run
        // limit, unless the edit set a new one.
        if edited.remaining_runs == current.remaining_runs
            && let Some(left) = &mut edited.remaining_runs
        {
            *left += withdrawn.len() as i64;
        }
        let model = edited.into_active_model().reset_all().update(&txn).await?;
        txn.commit().await?;
        Ok(model)
    }

    /// Deletes the cron, its history, the runs it fired ahead of instants still to come and
    /// the runs waiting behind its active run (`overlap`, backfill).
    pub async fn delete_cron(&self, cron_id: &str, scope: &Scope) -> Result<()> {
        let txn = self.write.begin().await?;
        Crons::find_by_id(cron_id.to_string())
            .filter(scope.condition(Column::UserId))
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| not_found(cron_id))?;
        withdraw_prefired(&txn, cron_id, now_ms()).await?;
        super::overlap::withdraw_held(&txn, cron_id).await?;
        entity::cron_fire::Entity::delete_many()
            .filter(entity::cron_fire::Column::CronId.eq(cron_id.to_string()))
            .exec(&txn)
            .await?;
        Crons::delete_by_id(cron_id.to_string()).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn search_crons(
        &self,
        filter: &CronFilter,
        sort: (CronSort, SortOrder),
        limit: u64,
        offset: u64,
    ) -> Result<Page<cron::Model>> {
        let (by, order) = sort;
        let column = sort_column(by);
        let mut query = Crons::find().filter(self.cron_condition(filter));
        query = if matches!(
            by,
            CronSort::ThreadId
                | CronSort::EndTime
                | CronSort::NextRunDate
                | CronSort::LastRunStatus
                | CronSort::LastRunAt
        ) {
            // Missing values sort as the largest on both backends (PostgreSQL's default;
            // SQLite would put them first), as LangGraph orders them.
            let nulls = match order {
                SortOrder::Asc => NullOrdering::Last,
                SortOrder::Desc => NullOrdering::First,
            };
            query.order_by_with_nulls(column, order.into(), nulls)
        } else {
            query.order_by(column, order.into())
        };
        let query = query.order_by(Column::CronId, order.into());
        self.page(query, limit, offset).await
    }

    /// Enabled crons whose last run failed (one of `RunStatus::FAILED`).
    pub async fn count_failing_crons(&self) -> Result<u64> {
        Ok(Crons::find()
            .filter(Column::Enabled.eq(true))
            .filter(Column::LastRunStatus.is_in(RunStatus::FAILED))
            .count(&self.read)
            .await?)
    }

    pub async fn count_crons(&self, filter: &CronFilter) -> Result<u64> {
        Ok(Crons::find()
            .filter(self.cron_condition(filter))
            .count(&self.read)
            .await?)
    }

    fn cron_condition(&self, filter: &CronFilter) -> Condition {
        let mut condition = filter.scope.condition(Column::UserId);
        if let Some(assistant_id) = &filter.assistant_id {
            condition = condition.add(Column::AssistantId.eq(assistant_id.clone()));
        }
        if let Some(thread_id) = &filter.thread_id {
            condition = condition.add(Column::ThreadId.eq(thread_id.clone()));
        }
        if let Some(enabled) = filter.enabled {
            // A cron paused until an instant still to come counts as disabled until then.
            let now = now_ms();
            condition = condition.add(if enabled {
                Condition::all().add(Column::Enabled.eq(true)).add(
                    Condition::any()
                        .add(Column::PausedUntil.is_null())
                        .add(Column::PausedUntil.lte(now)),
                )
            } else {
                Condition::any()
                    .add(Column::Enabled.eq(false))
                    .add(Column::PausedUntil.gt(now))
            });
        }
        if let Some(status) = filter.last_run_status {
            condition = condition.add(Column::LastRunStatus.eq(status));
        }
        if let Some(metadata) = filter.metadata.as_ref().filter(|m| !m.is_empty()) {
            condition = condition.add(self.json_contains("metadata", metadata));
        }
        if filter.failing {
            condition = condition
                .add(Column::Enabled.eq(true))
                .add(Column::LastRunStatus.is_in(RunStatus::FAILED));
        }
        if let Some(text) = filter.text.as_deref().filter(|t| !t.trim().is_empty()) {
            condition = condition.add(self.text_condition(text.trim(), &filter.text_assistants));
        }
        condition
    }

    /// A substring search over the columns a person would type from. Not indexed (a
    /// substring cannot be): the page's `LIMIT` stops the scan once it is full.
    fn text_condition(&self, text: &str, assistants: &[String]) -> Condition {
        let escaped: String = text
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let pattern = format!("%{escaped}%");
        let like = match self.backend {
            Backend::Postgres => {
                |column: &str| format!("CAST(\"{column}\" AS TEXT) ILIKE $1 ESCAPE '\\'")
            }
            Backend::Sqlite => {
                |column: &str| format!("CAST(\"{column}\" AS TEXT) LIKE ? ESCAPE '\\'")
            }
        };
        let mut any = Condition::any();
        for column in ["cron_id", "schedule", "timezone", "metadata"] {
            any = any.add(sea_orm::sea_query::Expr::cust_with_values(
                like(column),
                [pattern.clone()],
            ));
        }
        if !assistants.is_empty() {
            any = any.add(Column::AssistantId.is_in(assistants.iter().cloned()));
        }
        any
    }
}

/// A thread cron whose thread is gone is not found, in LangGraph's words.
fn insert_error(err: sea_orm::DbErr, thread_id: Option<String>) -> Error {
    match (err.sql_err(), thread_id) {
        (Some(SqlErr::ForeignKeyConstraintViolation(_)), Some(thread_id)) => {
            Error::NotFound(format!(
                "Thread with ID '{thread_id}' not found. Please verify the ID is correct and the thread hasn't been deleted or expired."
            ))
        }
        _ => Error::from(err),
    }
}

/// Locks the rows of the crons `ids` in `cron_id` order, on PostgreSQL (SQLite has one
/// writer and no row locks). Every transaction that writes crons together with runs or
/// threads (a fire, a run's end) takes its crons first and in this order, so replicas that
/// meet on a cron queue behind each other instead of deadlocking.
pub(super) async fn lock_crons(
    txn: &DatabaseTransaction,
    ids: impl IntoIterator<Item = String>,
) -> Result<()> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    // Chunks in order keep the order across statements.
    for chunk in ids.chunks(LOCK_CHUNK) {
        Crons::find()
            .select_only()
            .column(Column::CronId)
            .filter(Column::CronId.is_in(chunk.to_vec()))
            .order_by_asc(Column::CronId)
            .lock_exclusive()
            .into_tuple::<String>()
            .all(txn)
            .await?;
    }
    Ok(())
}

/// Crons locked per statement by `lock_crons` (well under PostgreSQL's 65,535 parameters).
const LOCK_CHUNK: usize = 1_000;

fn not_found(cron_id: &str) -> Error {
    Error::NotFound(format!("Cron '{cron_id}' not found"))
}

fn sort_column(by: CronSort) -> Column {
    match by {
        CronSort::CronId => Column::CronId,
        CronSort::AssistantId => Column::AssistantId,
        CronSort::ThreadId => Column::ThreadId,
        CronSort::NextRunDate => Column::NextRunAt,
        CronSort::EndTime => Column::EndTime,
        CronSort::CreatedAt => Column::CreatedAt,
        CronSort::UpdatedAt => Column::UpdatedAt,
        CronSort::LastRunStatus => Column::LastRunStatus,
        CronSort::LastRunAt => Column::LastRunAt,
        CronSort::ConsecutiveFailures => Column::ConsecutiveFailures,
    }
}
