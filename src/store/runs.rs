//! Runs as a durable queue: created `pending` in the request's transaction, claimed by
//! workers under a lease, finished in one transaction that also updates the thread and
//! writes the webhook outbox row.

use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde_json::{Map, Value};

use entity::delivery;
use entity::run::{self, Column, Entity as Runs};
use entity::states::{
    CancelAction, DeliveryKind, DeliveryStatus, MultitaskStrategy, OnCompletion, RunStatus,
    ThreadStatus,
};
use entity::thread::{self, Entity as Threads};

use super::crons::lock_crons;
use super::deliveries::{NewDelivery, OutboxRows};
use super::history::{End, record_ends};
use super::{CASE_ROWS, Error, Page, Result, Scope, Store, value_by_key};
use crate::config::AlertRouteConfig;
use crate::time::{Millis, now_ms};

/// What to do when the run's thread does not exist.
#[derive(Debug, Clone)]
pub enum IfThreadMissing {
    Reject,
    Create {
        metadata: Map<String, Value>,
    },
    /// The thread id was just generated (stateless runs): create it without looking.
    CreateNew,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Success { values: Value },
    Error { error: Value },
    Timeout { error: Value },
    Interrupted,
}

impl Outcome {
    /// The status a run ending this way leaves its thread in (when nothing else is queued).
    pub(super) fn thread_status(&self) -> ThreadStatus {
        match self {
            Outcome::Success { .. } => ThreadStatus::Idle,
            Outcome::Error { .. } | Outcome::Timeout { .. } => ThreadStatus::Error,
            Outcome::Interrupted => ThreadStatus::Interrupted,
        }
    }

    pub(super) fn status(&self) -> RunStatus {
        match self {
            Outcome::Success { .. } => RunStatus::Success,
            Outcome::Error { .. } => RunStatus::Error,
            Outcome::Timeout { .. } => RunStatus::Timeout,
            Outcome::Interrupted => RunStatus::Interrupted,
        }
    }
}

/// A webhook to call for a finished run: its URL and body, and the lease of the process
/// that will make the first attempt at once (None: whichever process polls first).
pub struct Completion {
    pub url: String,
    pub payload: Value,
    pub lease: Option<(String, Millis)>,
}

/// The run as it ended (None when it was rolled back and so deleted), and its webhook
/// delivery when one was written.
#[derive(Debug, Clone)]
pub struct Finished {
    pub run: Option<run::Model>,
    pub delivery: Option<delivery::Model>,
    /// A run held behind this one (or one ended with it) was released: a worker should
    /// look for it now.
    pub released: bool,
}

/// A local worker slot reserved before a run is queued: when the run may start at once (its
/// thread has nothing ahead of it), it is inserted already claimed under this lease, and the
/// worker holding the slot executes it without a claim round trip through the store.
#[derive(Debug, Clone)]
pub struct Claim {
    pub worker: String,
    pub lease_ms: i64,
}

impl Claim {
    fn apply(&self, run: &mut run::Model, now: Millis) {
        run.status = RunStatus::Running;
        run.lease_owner = Some(self.worker.clone());
        run.lease_expires_at = Some(now + self.lease_ms);
        run.attempt += 1;
        run.started_at = Some(now);
    }

    /// The UPDATE that claims pending runs under this lease; the caller says which.
    fn update(&self, now: Millis, started: Millis) -> sea_orm::UpdateMany<Runs> {
        Runs::update_many()
            .col_expr(Column::Status, Expr::value(RunStatus::Running))
            .col_expr(Column::LeaseOwner, Expr::value(self.worker.clone()))
            .col_expr(Column::LeaseExpiresAt, Expr::value(now + self.lease_ms))
            .col_expr(Column::Attempt, Expr::col(Column::Attempt).add(1))
            .col_expr(Column::StartedAt, Expr::value(started))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Status.eq(RunStatus::Pending))
    }
}

/// Which runs a claim may take, by assistant: each of the worker pool's two limits claims
/// the runs of its own graphs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Assistants {
    /// Runs of any assistant.
    #[default]
    Any,
    /// Runs of these assistants only.
    Of(Vec<String>),
    /// Runs of any assistant but these.
    Except(Vec<String>),
}

impl Assistants {
    /// Narrows a query on `runs` to these assistants' runs.
    fn condition(&self) -> sea_orm::Condition {
        match self {
            Assistants::Any => sea_orm::Condition::all(),
            Assistants::Of(ids) => {
                sea_orm::Condition::all().add(Column::AssistantId.is_in(ids.iter().cloned()))
            }
            Assistants::Except(ids) if ids.is_empty() => sea_orm::Condition::all(),
            Assistants::Except(ids) => {
                sea_orm::Condition::all().add(Column::AssistantId.is_not_in(ids.iter().cloned()))
            }
        }
    }
}

/// A queued run, the running runs its strategy flagged for cancelling (their workers must
/// stop), and whether it was claimed as it was queued (see `Claim`).
#[derive(Debug, Clone)]
pub struct Created {
    pub run: run::Model,
    pub flagged: Vec<String>,
    pub claimed: bool,
}

impl Store {
    /// Queues a run on its thread under `strategy`, in one transaction (shared with other
    /// runs' writes, see `group_commit`): the thread is created if asked, active runs are
    /// rejected, interrupted or rolled back, the run is inserted, claimed at once under
    /// `claim` when nothing is ahead of it on its thread.
    pub async fn create_run(
        &self,
        run: run::Model,
        strategy: MultitaskStrategy,
        if_missing: IfThreadMissing,
        claim: Option<Claim>,
    ) -> Result<Created> {
        let metadata = self.assistant_metadata(&run.assistant_id);
        self.writer
            .create(run, strategy, if_missing, metadata, claim)
            .await
    }

    /// A run of a thread; an unknown thread says so (as LangGraph does).
    pub async fn get_run(&self, thread_id: &str, run_id: &str) -> Result<run::Model> {
        if let Some(run) = Runs::find_by_id(run_id.to_string())
            .filter(Column::ThreadId.eq(thread_id.to_string()))
            .one(&self.read)
            .await?
        {
            return Ok(run);
        }
        if Threads::find_by_id(thread_id.to_string())
            .one(&self.read)
            .await?
            .is_none()
        {
            return Err(Error::NotFound(format!(
                "Thread with ID {thread_id} not found"
            )));
        }
        Err(run_not_found())
    }

    /// A run by id alone (for workers and stateless waits).
    pub async fn find_run(&self, run_id: &str) -> Result<Option<run::Model>> {
        Ok(Runs::find_by_id(run_id.to_string()).one(&self.read).await?)
    }

    /// A thread's runs, newest first.
    pub async fn list_runs(
        &self,
        thread_id: &str,
        status: Option<RunStatus>,
        limit: u64,
        offset: u64,
    ) -> Result<Page<run::Model>> {
        let mut query = Runs::find().filter(Column::ThreadId.eq(thread_id.to_string()));
        if let Some(status) = status {
            query = query.filter(Column::Status.eq(status));
        }
        let query = query
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::RunId);
        self.page(query, limit, offset).await
    }

    /// Deletes a run that is not running (a running one must be cancelled first).
    pub async fn delete_run(&self, thread_id: &str, run_id: &str) -> Result<()> {
        let txn = self.write.begin().await?;
        let run = Runs::find_by_id(run_id.to_string())
            .filter(Column::ThreadId.eq(thread_id.to_string()))
            .one(&txn)
            .await?
            .ok_or_else(run_not_found)?;
        if run.status == RunStatus::Running {
            return Err(Error::Conflict(format!(
                "Run {run_id} is running; cancel it before deleting it"
            )));
        }
        Runs::delete_by_id(run_id.to_string()).exec(&txn).await?;
        refresh_thread_status(&txn, thread_id, None, now_ms()).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Cancels runs: a pending one ends at once (interrupted, or deleted on rollback), a
    /// running one is flagged and its worker stops it. Returns how many of the runs exist
    /// and how many of those were active (and so cancelled).
    pub async fn cancel_runs(
        &self,
        runs: &[(String, String)],
        action: CancelAction,
    ) -> Result<(usize, usize)> {
        let txn = self.write.begin().await?;
        let now = now_ms();
        let mut found = Vec::new();
        for (thread_id, run_id) in runs {
            if let Some(run) = Runs::find_by_id(run_id.clone())
                .filter(Column::ThreadId.eq(thread_id.clone()))
                .one(&txn)
                .await?
            {
                found.push(run);
            }
        }
        let count = found.len();
        let active: Vec<run::Model> = found.into_iter().filter(|r| r.status.is_active()).collect();
        let cancelled = active.len();
        cancel_active(&txn, active, action, now).await?;
        txn.commit().await?;
        Ok((count, cancelled))
    }

    /// Active runs matching a status filter (`pending`, `running`, or both).
    pub async fn active_runs(
        &self,
        statuses: &[RunStatus],
        scope: &Scope,
    ) -> Result<Vec<(String, String)>> {
        Ok(Runs::find()
            .filter(Column::Status.is_in(statuses.iter().copied()))
            .filter(scope.condition(Column::UserId))
            .all(&self.read)
            .await?
            .into_iter()
            .map(|r| (r.thread_id, r.run_id))
            .collect())
    }

    /// Claims up to `limit` runs for `claim`'s worker: pending, due, first in line on their
    /// thread, on a thread with no running run, of the assistants `only` names (see
    /// `group_commit`).
    pub async fn claim_runs(
        &self,
        claim: Claim,
        limit: u64,
        only: Assistants,
    ) -> Result<Vec<run::Model>> {
        self.writer.claim(claim, limit, only).await
    }

    /// Claims runs fired ahead of their instant for `claim`'s worker, just before the
    /// instant (the scheduler's): those still pending become running with `started_at` = their
    /// instant, and are returned as claimed. They are alone on new threads, so the queue
    /// order needs no check, and the scheduler holds their rows, so nothing is read back: one
    /// UPDATE per instant, checked by its row count. When some were withdrawn or taken by a
    /// worker meanwhile, the careful path finds which are left.
    pub async fn claim_ahead(
        &self,
        mut runs: Vec<run::Model>,
        claim: &Claim,
    ) -> Result<Vec<run::Model>> {
        let now = now_ms();
        let starts_at = |run: &run::Model| Ord::max(run.available_at, now);
        let mut by_instant: BTreeMap<Millis, Vec<String>> = BTreeMap::new();
        for run in &runs {
            by_instant
                .entry(starts_at(run))
                .or_default()
                .push(run.run_id.clone());
        }
        // Rows another transaction holds (a worker's claim of the same due runs) are skipped,
        // not waited for: the row count then falls short and the careful path below sorts
        // them out. Waiting here could deadlock with that claim (PostgreSQL).
        let claim_these = |ids: Vec<String>, started: Millis| {
            let pending = Query::select()
                .column(Column::RunId)
                .from(Runs)
                .and_where(Column::RunId.is_in(ids))
                .and_where(Column::Status.eq(RunStatus::Pending))
                .order_by(Column::RunId, sea_orm::Order::Asc)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .to_owned();
            claim
                .update(now, started)
                .filter(Column::RunId.in_subquery(pending))
        };
        let txn = self.write.begin().await?;
        let mut claimed = 0;
        for (&started, ids) in &by_instant {
            claimed += claim_these(ids.clone(), started)
                .exec(&txn)
                .await?
                .rows_affected;
        }
        if claimed == runs.len() as u64 {
            txn.commit().await?;
        } else {
            txn.rollback().await?;
            let txn = self.write.begin().await?;
            let pending: HashSet<String> = Runs::find()
                .select_only()
                .column(Column::RunId)
                .filter(Column::RunId.is_in(runs.iter().map(|run| run.run_id.clone())))
                .filter(Column::Status.eq(RunStatus::Pending))
                .order_by_asc(Column::RunId)
                .lock_exclusive()
                .into_tuple()
                .all(&txn)
                .await?
                .into_iter()
                .collect();
            for (&started, ids) in &by_instant {
                let left: Vec<String> = ids
                    .iter()
                    .filter(|id| pending.contains(*id))
                    .cloned()
                    .collect();
                if !left.is_empty() {
                    claim_these(left, started).exec(&txn).await?;
                }
            }
            txn.commit().await?;
            runs.retain(|run| pending.contains(&run.run_id));
        }
        for run in &mut runs {
            let started = starts_at(run);
            claim.apply(run, now);
            run.started_at = Some(started);
            run.updated_at = now;
        }
        Ok(runs)
    }

    /// Extends `worker`'s leases and reports, per run, a cancel asked for since the claim
    /// (or that the run is no longer ours).
    pub async fn renew_leases(
        &self,
        worker: &str,
        run_ids: &[String],
        lease_ms: i64,
        renew_every_ms: i64,
    ) -> Result<Vec<(String, Lease)>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        // Leases taken or renewed within the last round are fresh enough to last until the
        // next: a burst's short runs are then never rewritten just to be renewed.
        Runs::update_many()
            .col_expr(Column::LeaseExpiresAt, Expr::value(now + lease_ms))
            .filter(Column::RunId.is_in(run_ids.iter().cloned()))
            .filter(held_by(worker))
            .filter(Column::LeaseExpiresAt.lt(now + lease_ms - renew_every_ms))
            .exec(&self.write)
            .await?;
        let states = run_states(&self.write, run_ids.iter().cloned(), false).await?;
        Ok(run_ids
            .iter()
            .map(|id| {
                let lease = match states.get(id) {
                    Some(state) if state.held_by(worker) => match state.cancel_action {
                        Some(action) => Lease::Cancel(action),
                        None => Lease::Held,
                    },
                    _ => Lease::Lost,
                };
                (id.clone(), lease)
            })
            .collect())
    }

    /// Ends a run `worker` holds: status and output, the thread's status and values, the
    /// webhook outbox row, and a stateless run's thread deleted if asked, all in one
    /// transaction (shared with other runs' writes, see `group_commit`). Returns None when
    /// the lease was lost (another worker owns the run now).
    pub async fn finish_run(
        &self,
        claimed: run::Model,
        worker: &str,
        outcome: Outcome,
        completion: impl Fn(&run::Model) -> Option<Completion> + Send + Sync + 'static,
    ) -> Result<Option<Finished>> {
        self.writer
            .finish(claimed, worker.to_string(), outcome, Box::new(completion))
            .await
    }

    /// Runs whose lease expired (their worker died): re-queued once, then ended as
    /// `error` ("worker lost") with their webhook. Returns how many were handled.
    pub async fn recover_expired_runs(
        &self,
        completion: impl Fn(&run::Model) -> Option<Completion> + Send + Sync,
    ) -> Result<usize> {
        let now = now_ms();
        let expired = expired_leases(now).limit(100).all(&self.write).await?;
        let count = expired.len();
        for run in expired {
            let txn = self.write.begin().await?;
            // Crons before runs, as everywhere (see `lock_crons`).
            lock_crons(&txn, run.cron_id.clone()).await?;
            // Re-read under the transaction: another replica may have handled it.
            let Some(run) = expired_leases(now)
                .filter(Column::RunId.eq(run.run_id.clone()))
                .one(&txn)
                .await?
            else {
                continue;
            };
            if run.attempt < 2 && run.cancel_action.is_none() {
                tracing::warn!(run_id = %run.run_id, attempt = run.attempt, "worker lost; run re-queued");
                let mut active = run.into_active_model();
                active.status = Set(RunStatus::Pending);
                active.lease_owner = Set(None);
                active.lease_expires_at = Set(None);
                active.updated_at = Set(now);
                active.update(&txn).await?;
            } else {
                tracing::warn!(run_id = %run.run_id, "worker lost twice; run ended as error");
                let error = serde_json::json!({"error": "WorkerLost", "message": "worker lost"});
                let routes = self.alert_routes.get();
                end_run(&txn, routes, run, Outcome::Error { error }, &completion).await?;
            }
            txn.commit().await?;
        }
        Ok(count)
    }

    /// Hands `worker`'s running runs back to the queue (a shutdown whose grace period ran
    /// out): pending again, unleased, and the claim not counted as an attempt.
    pub async fn release_runs(&self, worker: &str, run_ids: &[String]) -> Result<u64> {
        if run_ids.is_empty() {
            return Ok(0);
        }
        Ok(Runs::update_many()
            .col_expr(Column::Status, Expr::value(RunStatus::Pending))
            .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(Column::LeaseExpiresAt, Expr::value(Option::<i64>::None))
            .col_expr(Column::Attempt, Expr::col(Column::Attempt).sub(1))
            .col_expr(Column::StartedAt, Expr::value(Option::<i64>::None))
            .col_expr(Column::UpdatedAt, Expr::value(now_ms()))
            .filter(Column::RunId.is_in(run_ids.iter().cloned()))
            .filter(held_by(worker))
            .exec(&self.write)
            .await?
            .rows_affected)
    }

    pub async fn count_runs(&self, status: RunStatus) -> Result<u64> {
        Ok(Runs::find()
            .filter(Column::Status.eq(status))
            .count(&self.read)
            .await?)
    }
}

/// Queues a run inside `txn` (see `Store::create_run`). Refusals (missing thread, busy
/// thread under `reject`) return before any write, so the transaction stays usable.
pub(super) async fn queue_run(
    txn: &DatabaseTransaction,
    mut run: run::Model,
    strategy: MultitaskStrategy,
    if_missing: IfThreadMissing,
    assistant_metadata: Map<String, Value>,
    claim: Option<&Claim>,
) -> Result<Created> {
    let now = run.updated_at;
    let graph_id = graph_id(&run);
    let assistant_id = Value::String(run.assistant_id.clone());

    // The run's metadata, as LangGraph merges it: the assistant's, the thread's, the run's
    // own, and the assistant id; the thread in turn records its graph and assistant.
    let mut metadata = assistant_metadata;
    let mut flagged = Vec::new();
    // Whether nothing is ahead of the run on its thread, so a claim may start it at once.
    let mut first_in_line = true;
    let fresh = match &if_missing {
        IfThreadMissing::CreateNew => Some(Map::new()),
        IfThreadMissing::Create { metadata } => Threads::find_by_id(run.thread_id.clone())
            .one(txn)
            .await?
            .is_none()
            .then(|| metadata.clone()),
        IfThreadMissing::Reject => None,
    };
    match fresh {
        // A new thread: nothing to check, one insert.
        Some(mut thread_metadata) => {
            thread_metadata.extend(object(&run.metadata));
            new_thread(&run, thread_metadata, graph_id, assistant_id.clone(), now)
                .insert(txn)
                .await?;
        }
        None => {
            let Some(thread) = Threads::find_by_id(run.thread_id.clone()).one(txn).await? else {
                return Err(Error::NotFound("Thread or assistant not found.".into()));
            };
            // Enqueue needs nothing from the thread's active runs (a thread cron with a
            // backlog would otherwise read all of it on every fire).
            let active = || {
                Runs::find()
                    .filter(run::Column::ThreadId.eq(run.thread_id.clone()))
                    .filter(run::Column::Status.is_in(RunStatus::ACTIVE))
            };
            match strategy {
                MultitaskStrategy::Enqueue => {
                    if claim.is_some() {
                        first_in_line = active().one(txn).await?.is_none();
                    }
                }
                MultitaskStrategy::Reject => {
                    if active().one(txn).await?.is_some() {
                        return Err(Error::Conflict(
                            "Thread is already running a task. Wait for it to finish or choose a different multitask strategy.".into(),
                        ));
                    }
                }
                MultitaskStrategy::Interrupt => {
                    let runs = active().all(txn).await?;
                    flagged = cancel_active(txn, runs, CancelAction::Interrupt, now).await?;
                }
                MultitaskStrategy::Rollback => {
                    let runs = active().all(txn).await?;
                    flagged = cancel_active(txn, runs, CancelAction::Rollback, now).await?;
                }
            }
            // Pending runs ahead were just ended; flagged running ones are still stopping.
            first_in_line &= flagged.is_empty();
            let mut thread_metadata = object(&thread.metadata);
            metadata.extend(thread_metadata.clone());
            thread_metadata.insert("graph_id".into(), graph_id.clone());
            thread_metadata.insert("assistant_id".into(), assistant_id.clone());
            metadata.insert("graph_id".into(), graph_id);
            // One write: the thread is busy now, and records its graph and assistant.
            let mut thread = thread.into_active_model();
            thread.metadata = Set(Value::Object(thread_metadata));
            thread.status = Set(ThreadStatus::Busy);
            thread.updated_at = Set(now);
            thread.update(txn).await?;
        }
    }
    set_metadata(&mut run, metadata, assistant_id);
    let claimed = match claim {
        Some(claim) if first_in_line && run.available_at <= now => {
            claim.apply(&mut run, now);
            true
        }
        _ => false,
    };
    Runs::insert(run_row(&run))
        .exec_without_returning(txn)
        .await?;
    Ok(Created {
        run,
        flagged,
        claimed,
    })
}

/// Queues many runs under `enqueue` at once (the scheduler's fire batches and the run
/// writer's stateless runs), each with its assistant's metadata: new threads are inserted in
/// one statement, existing threads marked busy in one, the runs inserted in one, with the
/// same metadata merge as `queue_run`. With a `claim`, up to `slots` runs that are first in
/// line on their thread are inserted already claimed.
pub(super) async fn queue_runs_batched(
    txn: &DatabaseTransaction,
    runs: Vec<(run::Model, Map<String, Value>)>,
    claim: Option<&Claim>,
    mut slots: usize,
    now: Millis,
) -> Result<Vec<Created>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let thread_ids: Vec<String> = runs
        .iter()
        .filter(|(run, _)| run.on_completion.is_none())
        .map(|(run, _)| run.thread_id.clone())
        .collect();
    // Existing threads' metadata (not their values, which may be large and are not needed).
    let existing: std::collections::HashMap<String, Value> = if thread_ids.is_empty() {
        Default::default()
    } else {
        Threads::find()
            .select_only()
            .columns([thread::Column::ThreadId, thread::Column::Metadata])
            .filter(thread::Column::ThreadId.is_in(thread_ids.clone()))
            .into_tuple::<(String, Value)>()
            .all(txn)
            .await?
            .into_iter()
            .collect()
    };
    // Threads with a run ahead (active already, or claimed earlier in this batch).
    let mut busy: std::collections::HashSet<String> = if claim.is_none() || existing.is_empty() {
        Default::default()
    } else {
        Runs::find()
            .select_only()
            .column(Column::ThreadId)
            .filter(Column::ThreadId.is_in(existing.keys().cloned()))
            .filter(Column::Status.is_in(RunStatus::ACTIVE))
            .into_tuple::<String>()
            .all(txn)
            .await?
            .into_iter()
            .collect()
    };
    let mut new_threads = Vec::new();
    let mut created = Vec::with_capacity(runs.len());
    for (mut run, mut metadata) in runs {
        let graph_id = graph_id(&run);
        let assistant_id = Value::String(run.assistant_id.clone());
        match existing.get(&run.thread_id) {
            Some(thread_metadata) => {
                let thread_metadata = object(thread_metadata);
                let recorded = thread_metadata.get("graph_id") == Some(&graph_id)
                    && thread_metadata.get("assistant_id") == Some(&assistant_id);
                metadata.extend(thread_metadata.clone());
                metadata.insert("graph_id".into(), graph_id.clone());
                if !recorded {
                    let mut thread_metadata = thread_metadata;
                    thread_metadata.insert("graph_id".into(), graph_id);
                    thread_metadata.insert("assistant_id".into(), assistant_id.clone());
                    Threads::update_many()
                        .col_expr(
                            thread::Column::Metadata,
                            Expr::value(Value::Object(thread_metadata)),
                        )
                        .filter(thread::Column::ThreadId.eq(run.thread_id.clone()))
                        .exec(txn)
                        .await?;
                }
            }
            None => {
                let thread_metadata = object(&run.metadata);
                new_threads.push(new_thread(
                    &run,
                    thread_metadata,
                    graph_id,
                    assistant_id.clone(),
                    now,
                ));
            }
        }
        set_metadata(&mut run, metadata, assistant_id);
        let claimed = match claim {
            Some(claim) if slots > 0 && run.available_at <= now => {
                let first = busy.insert(run.thread_id.clone());
                if first {
                    claim.apply(&mut run, now);
                    slots -= 1;
                }
                first
            }
            _ => false,
        };
        created.push(Created {
            run,
            flagged: Vec::new(),
            claimed,
        });
    }
    for chunk in super::chunked(new_threads, 500) {
        Threads::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    if !existing.is_empty() {
        Threads::update_many()
            .col_expr(thread::Column::Status, Expr::value(ThreadStatus::Busy))
            .col_expr(thread::Column::UpdatedAt, Expr::value(now))
            .filter(thread::Column::ThreadId.is_in(existing.keys().cloned()))
            .exec(txn)
            .await?;
    }
    let models = created.iter().map(|c| run_row(&c.run)).collect();
    for chunk in super::chunked(models, 500) {
        Runs::insert_many(chunk).exec_without_returning(txn).await?;
    }
    Ok(created)
}

/// The graph a run executes, as its kwargs name it (null if they do not).
fn graph_id(run: &run::Model) -> Value {
    run.kwargs
        .pointer("/config/configurable/graph_id")
        .cloned()
        .unwrap_or(Value::Null)
}

/// The row of a new thread for `run`, busy with it: `metadata`, with the graph and
/// assistant it runs recorded.
fn new_thread(
    run: &run::Model,
    mut metadata: Map<String, Value>,
    graph_id: Value,
    assistant_id: Value,
    now: Millis,
) -> thread::ActiveModel {
    metadata.insert("graph_id".into(), graph_id);
    metadata.insert("assistant_id".into(), assistant_id);
    thread::ActiveModel {
        thread_id: Set(run.thread_id.clone()),
        metadata: Set(Value::Object(metadata)),
        status: Set(ThreadStatus::Busy),
        values: Set(None),
        user_id: Set(run.user_id.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        state_updated_at: Set(now),
    }
}

/// Gives `run` its metadata as LangGraph merges it: `metadata` (the assistant's and the
/// thread's), then the run's own, then the assistant id; the graph finds it in its config.
fn set_metadata(run: &mut run::Model, mut metadata: Map<String, Value>, assistant_id: Value) {
    metadata.extend(object(&run.metadata));
    metadata.insert("assistant_id".into(), assistant_id);
    if let Some(Value::Object(config)) = run.kwargs.get_mut("config") {
        config.insert("metadata".into(), Value::Object(metadata.clone()));
    }
    run.metadata = Value::Object(metadata);
}

/// The row a queued run is inserted as: every column set.
fn run_row(run: &run::Model) -> run::ActiveModel {
    run.clone().into_active_model().reset_all()
}

fn object(value: &Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    }
}

/// What the store says of a run its worker holds: whether it still does, and whether a
/// cancel came in.
pub(super) struct RunState {
    pub status: RunStatus,
    pub lease_owner: Option<String>,
    pub cancel_action: Option<CancelAction>,
}

impl RunState {
    /// Still running under `worker`'s lease (in SQL: `held_by`).
    pub fn held_by(&self, worker: &str) -> bool {
        self.status == RunStatus::Running && self.lease_owner.as_deref() == Some(worker)
    }
}

/// Runs still running under `worker`'s lease (in memory: `RunState::held_by`).
pub(super) fn held_by(worker: &str) -> Condition {
    Condition::all()
        .add(Column::Status.eq(RunStatus::Running))
        .add(Column::LeaseOwner.eq(worker))
}

/// The state of the runs `run_ids` by run id (those gone are absent); `locked` reads them
/// locked, so that a cancel from another replica cannot slip in before the transaction ends
/// (PostgreSQL).
pub(super) async fn run_states(
    db: &impl ConnectionTrait,
    run_ids: impl IntoIterator<Item = String>,
    locked: bool,
) -> Result<HashMap<String, RunState>> {
    let run_ids: Vec<String> = run_ids.into_iter().collect();
    if run_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut select = Runs::find()
        .select_only()
        .columns([
            Column::RunId,
            Column::Status,
            Column::LeaseOwner,
            Column::CancelAction,
        ])
        .filter(Column::RunId.is_in(run_ids));
    if locked {
        select = select.lock_exclusive();
    }
    Ok(select
        .into_tuple::<(String, RunStatus, Option<String>, Option<CancelAction>)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(run_id, status, lease_owner, cancel_action)| {
            let state = RunState {
                status,
                lease_owner,
                cancel_action,
            };
            (run_id, state)
        })
        .collect())
}

/// What a lease renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    Held,
    Cancel(CancelAction),
    Lost,
}

pub(super) async fn end_run(
    txn: &DatabaseTransaction,
    routes: &[AlertRouteConfig],
    run: run::Model,
    outcome: Outcome,
    completion: impl FnOnce(&run::Model) -> Option<Completion>,
) -> Result<Finished> {
    let now = now_ms();
    let thread_id = run.thread_id.clone();
    if run.cancel_action == Some(CancelAction::Rollback) {
        Runs::delete_by_id(run.run_id.clone()).exec(txn).await?;
        refresh_thread_status(txn, &thread_id, None, now).await?;
        let rolled_back = ended(run, &Outcome::Interrupted, now);
        let released = record_ends(
            txn,
            routes,
            &[End {
                run: &rolled_back,
                delivery: None,
            }],
            now,
        )
        .await?;
        return Ok(Finished {
            run: None,
            delivery: None,
            released,
        });
    }
    // A cancel that arrived while it ran wins over how the graph itself ended.
    let outcome = if run.cancel_action.is_some() {
        Outcome::Interrupted
    } else {
        outcome
    };
    let PreparedEnd { ended, delivery } = PreparedEnd::new(run.clone(), &outcome, completion, now);
    let delivery = match delivery {
        Some(new) => {
            let mut outbox = OutboxRows::new(txn.get_database_backend());
            let delivery = outbox.push(new);
            outbox.insert(txn).await?;
            Some(delivery)
        }
        None => None,
    };

    let released = record_ends(
        txn,
        routes,
        &[End {
            run: &ended,
            delivery: delivery.as_ref(),
        }],
        now,
    )
    .await?;
    // A stateless run's throw-away thread goes, and the run with it (the thread holds
    // nothing else), unless the caller asked to keep it.
    if ended.on_completion == Some(OnCompletion::Delete) {
        Threads::delete_by_id(thread_id).exec(txn).await?;
        return Ok(Finished {
            run: Some(ended),
            delivery,
            released,
        });
    }
    let mut active = run.into_active_model();
    active.status = Set(ended.status);
    active.output = Set(ended.output.clone());
    active.error = Set(ended.error.clone());
    active.ended_at = Set(ended.ended_at);
    active.updated_at = Set(now);
    active.lease_owner = Set(None);
    active.lease_expires_at = Set(None);
    Runs::update(active).exec_without_returning(txn).await?;
    refresh_thread_status(
        txn,
        &thread_id,
        Some((outcome.thread_status(), ended.output.clone())),
        now,
    )
    .await?;
    Ok(Finished {
        run: Some(ended),
        delivery,
        released,
    })
}

/// Claims up to `limit` due runs under `claim` with one conditional update: a run qualifies
/// when it is pending, due, and first in line on a thread with no running run, so at most one
/// run per thread is taken; the unique index on running runs per thread stops any replica
/// racing this one. Only runs of the assistants `only` names are taken.
pub(super) async fn claim_due(
    txn: &DatabaseTransaction,
    claim: &Claim,
    limit: u64,
    only: &Assistants,
) -> Result<Vec<run::Model>> {
    let now = now_ms();
    // Two statements, not one UPDATE over `IN (SELECT … FOR UPDATE SKIP LOCKED)`: with
    // several replicas claiming, PostgreSQL can keep such an UPDATE busy for minutes where the
    // SELECT alone takes milliseconds (docs/benchmarks.md, "Replicas on one PostgreSQL").
    let due: Vec<String> = due_runs(limit, only, now).into_tuple().all(txn).await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let mut claimed = claim
        .update(now, now)
        .filter(Column::RunId.is_in(due))
        .filter(Column::Status.eq(RunStatus::Pending))
        .exec_with_returning(txn)
        .await?;
    claimed.sort_by(|a, b| (a.available_at, &a.run_id).cmp(&(b.available_at, &b.run_id)));
    Ok(claimed)
}

/// The first `limit` runs due at `now` whose thread has no earlier active run, locked.
fn due_runs(limit: u64, only: &Assistants, now: Millis) -> sea_orm::Select<Runs> {
    Runs::find()
        .select_only()
        .column(Column::RunId)
        .filter(Column::Status.eq(RunStatus::Pending))
        .filter(Column::AvailableAt.lte(now))
        .filter(Expr::cust(format!(
            // The `IN` term lets both databases read only the thread's active runs
            // (`idx_runs_thread_active`), not every run it ever had.
            "NOT EXISTS (SELECT 1 FROM runs AS other WHERE other.thread_id = runs.thread_id \
             AND other.status IN ('{pending}', '{running}') \
             AND (other.status = '{running}' OR (other.created_at < runs.created_at \
             OR (other.created_at = runs.created_at AND other.run_id < runs.run_id))))",
            running = RunStatus::Running.as_str(),
            pending = RunStatus::Pending.as_str(),
        )))
        .filter(only.condition())
        .order_by_asc(Column::AvailableAt)
        .order_by_asc(Column::RunId)
        .limit(limit)
        // Runs another replica is claiming (or starting ahead) are left to it, never waited
        // for (PostgreSQL; SQLite has one writer).
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
}

/// Writes many ended runs (`ended`, each on a different thread that stays) with two
/// UPDATEs for the whole batch: the runs' end, then their threads' status and values, as
/// `refresh_thread_status` would leave them.
pub(super) async fn end_runs_batched<'a>(
    txn: &DatabaseTransaction,
    ended: impl Iterator<Item = (&'a run::Model, ThreadStatus)>,
    now: Millis,
) -> Result<()> {
    let ended: Vec<_> = ended.collect();
    for chunk in ended.chunks(CASE_ROWS) {
        // Each CASE keeps the column as it is where no key matches (never: the WHERE is the
        // same list), which also gives PostgreSQL the branch type.
        let by_run = |column: Column, value: fn(&run::Model) -> sea_orm::Value| {
            value_by_key(
                Column::RunId,
                chunk
                    .iter()
                    .map(|(run, _)| (run.run_id.clone(), value(run))),
                Expr::col(column),
            )
        };
        Runs::update_many()
            .col_expr(
                Column::Status,
                by_run(Column::Status, |run| run.status.into()),
            )
            .col_expr(
                Column::Output,
                by_run(Column::Output, |run| run.output.clone().into()),
            )
            .col_expr(
                Column::Error,
                by_run(Column::Error, |run| run.error.clone().into()),
            )
            .col_expr(
                Column::EndedAt,
                by_run(Column::EndedAt, |run| run.ended_at.into()),
            )
            .col_expr(
                Column::UpdatedAt,
                by_run(Column::UpdatedAt, |run| run.updated_at.into()),
            )
            .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(Column::LeaseExpiresAt, Expr::value(Option::<i64>::None))
            .filter(Column::RunId.is_in(chunk.iter().map(|(run, _)| run.run_id.clone())))
            .exec(txn)
            .await?;
        let thread_ids = || chunk.iter().map(|(run, _)| run.thread_id.clone());
        let still_active: HashSet<String> = Runs::find()
            .select_only()
            .column(Column::ThreadId)
            .filter(Column::ThreadId.is_in(thread_ids()))
            .filter(Column::Status.is_in(RunStatus::ACTIVE))
            .into_tuple::<String>()
            .all(txn)
            .await?
            .into_iter()
            .collect();
        let status = chunk.iter().map(|(run, status)| {
            let status = if still_active.contains(&run.thread_id) {
                ThreadStatus::Busy
            } else {
                *status
            };
            (run.thread_id.clone(), status)
        });
        // On success the run's output becomes the thread's values.
        let succeeded: Vec<_> = chunk
            .iter()
            .filter(|(run, _)| run.status == RunStatus::Success)
            .map(|(run, _)| (run.thread_id.clone(), run.output.clone()))
            .collect();
        let mut update = Threads::update_many()
            .col_expr(
                thread::Column::Status,
                value_by_key(
                    thread::Column::ThreadId,
                    status,
                    Expr::col(thread::Column::Status),
                ),
            )
            .col_expr(thread::Column::UpdatedAt, Expr::value(now));
        if !succeeded.is_empty() {
            let ids: Vec<String> = succeeded.iter().map(|(id, _)| id.clone()).collect();
            update = update
                .col_expr(
                    thread::Column::Values,
                    value_by_key(
                        thread::Column::ThreadId,
                        succeeded,
                        Expr::col(thread::Column::Values),
                    ),
                )
                .col_expr(
                    thread::Column::StateUpdatedAt,
                    Expr::case(thread::Column::ThreadId.is_in(ids), now)
                        .finally(Expr::col(thread::Column::StateUpdatedAt))
                        .into(),
                );
        }
        update
            .filter(thread::Column::ThreadId.is_in(thread_ids()))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// A run's end: the run as it ends and its webhook's outbox row, if it has one. Built by
/// the finishing run's task for the batched writer (`group_commit`), and by `end_run`.
pub(super) struct PreparedEnd {
    pub ended: run::Model,
    pub delivery: Option<NewDelivery>,
}

impl PreparedEnd {
    pub fn new(
        run: run::Model,
        outcome: &Outcome,
        completion: impl FnOnce(&run::Model) -> Option<Completion>,
        now: Millis,
    ) -> Self {
        let ended = ended(run, outcome, now);
        let delivery =
            completion(&ended).map(|done| NewDelivery::new(delivery_model(&ended, done, now)));
        PreparedEnd { ended, delivery }
    }
}

/// The run as `outcome` ends it at `now`: status, output or error, and no lease.
pub(super) fn ended(run: run::Model, outcome: &Outcome, now: Millis) -> run::Model {
    let mut ended = run;
    ended.status = outcome.status();
    (ended.output, ended.error) = match outcome {
        Outcome::Success { values } => (Some(values.clone()), None),
        Outcome::Error { error } | Outcome::Timeout { error } => (None, Some(error.clone())),
        Outcome::Interrupted => (None, None),
    };
    ended.ended_at = Some(now);
    ended.updated_at = now;
    ended.lease_owner = None;
    ended.lease_expires_at = None;
    ended
}

/// The outbox row of a finished run's webhook.
pub(super) fn delivery_model(
    run: &run::Model,
    Completion {
        url,
        payload,
        lease,
    }: Completion,
    now: Millis,
) -> delivery::Model {
    let (lease_owner, lease_expires_at) = lease.unzip();
    delivery::Model {
        delivery_id: uuid::Uuid::now_v7().to_string(),
        run_id: run.run_id.clone(),
        thread_id: run.thread_id.clone(),
        cron_id: run.cron_id.clone(),
        scheduled_for: run.cron_id.as_ref().and(run.scheduled_for),
        url,
        payload,
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: now,
        lease_owner,
        lease_expires_at,
        last_status_code: None,
        last_error: None,
        user_id: run.user_id.clone(),
        created_at: now,
        updated_at: now,
        kind: DeliveryKind::Run,
    }
}

/// Ends pending runs and flags running ones, for a new run's multitask strategy or a
/// cancel. Returns the ids of the running runs flagged.
pub(super) async fn cancel_active(
    txn: &DatabaseTransaction,
    active: Vec<run::Model>,
    action: CancelAction,
    now: Millis,
) -> Result<Vec<String>> {
    let mut flagged = Vec::new();
    for run in active {
        let thread_id = run.thread_id.clone();
        if run.status == RunStatus::Pending {
            let cancelled = ended(run.clone(), &Outcome::Interrupted, now);
            // A cancelled pending run raises no alert.
            record_ends(
                txn,
                &[],
                &[End {
                    run: &cancelled,
                    delivery: None,
                }],
                now,
            )
            .await?;
            if action == CancelAction::Rollback {
                Runs::delete_by_id(run.run_id.clone()).exec(txn).await?;
            } else {
                let mut active = run.into_active_model();
                active.status = Set(RunStatus::Interrupted);
                active.ended_at = Set(Some(now));
                active.updated_at = Set(now);
                active.update(txn).await?;
            }
        } else {
            flagged.push(run.run_id.clone());
            let mut active = run.into_active_model();
            active.cancel_action = Set(Some(action));
            active.updated_at = Set(now);
            active.update(txn).await?;
        }
        refresh_thread_status(txn, &thread_id, None, now).await?;
    }
    Ok(flagged)
}

/// Busy while it has active runs; otherwise the status its last run left (`ended`), or
/// idle. On success the run's output becomes the thread's values.
async fn refresh_thread_status(
    txn: &DatabaseTransaction,
    thread_id: &str,
    ended: Option<(ThreadStatus, Option<Value>)>,
    now: Millis,
) -> Result<()> {
    // One statement: busy while an active run remains, else what the run left (or idle).
    let active = Query::select()
        .expr(Expr::val(1))
        .from(Runs)
        .and_where(Expr::col((Runs, Column::ThreadId)).equals((Threads, thread::Column::ThreadId)))
        .and_where(Column::Status.is_in(RunStatus::ACTIVE))
        .to_owned();
    let otherwise: Expr = match &ended {
        Some((status, _)) => Expr::val(*status),
        None => Expr::case(
            Expr::col((Threads, thread::Column::Status)).eq(ThreadStatus::Busy),
            ThreadStatus::Idle,
        )
        .finally(Expr::col((Threads, thread::Column::Status)))
        .into(),
    };
    let status: Expr = Expr::case(Expr::exists(active), ThreadStatus::Busy)
        .finally(otherwise)
        .into();
    let mut update = Threads::update_many()
        .col_expr(thread::Column::Status, status)
        .col_expr(thread::Column::UpdatedAt, Expr::value(now))
        .filter(thread::Column::ThreadId.eq(thread_id.to_string()));
    if let Some((_, Some(values))) = ended {
        update = update
            .col_expr(thread::Column::Values, Expr::value(values))
            .col_expr(thread::Column::StateUpdatedAt, Expr::value(now));
    }
    update.exec(txn).await?;
    Ok(())
}

fn run_not_found() -> Error {
    Error::NotFound("Run not found".into())
}

/// Running runs whose worker's lease ran out before `now`.
fn expired_leases(now: Millis) -> sea_orm::Select<Runs> {
    Runs::find()
        .filter(Column::Status.eq(RunStatus::Running))
        .filter(Column::LeaseExpiresAt.lt(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{
        ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryTrait, Statement,
        TransactionTrait,
    };

    const RUN_COLUMNS: &str = "run_id, thread_id, assistant_id, status, metadata, kwargs, \
        multitask_strategy, available_at, attempt, created_at, updated_at";

    /// Thread `busy` has 2,000 finished runs, one running and three pending behind it;
    /// thread `free` has one pending run.
    async fn busy_and_free_threads(db: &DatabaseConnection) {
        let statements = [
            "INSERT INTO threads (thread_id, metadata, status, created_at, updated_at, state_updated_at) \
             VALUES ('busy', '{}', 'busy', 0, 0, 0), ('free', '{}', 'idle', 0, 0, 0)"
                .to_string(),
            format!(
                "INSERT INTO runs ({RUN_COLUMNS}) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL \
                 SELECT i + 1 FROM n WHERE i < 2000) SELECT 'done-' || i, 'busy', 'a', 'success', \
                 '{{}}', '{{}}', 'enqueue', i, 1, i, i FROM n"
            ),
            format!(
                "INSERT INTO runs ({RUN_COLUMNS}) VALUES \
                 ('running', 'busy', 'a', 'running', '{{}}', '{{}}', 'enqueue', 3000, 1, 3000, 3000), \
                 ('waiting-1', 'busy', 'a', 'pending', '{{}}', '{{}}', 'enqueue', 3001, 0, 3001, 3001), \
                 ('waiting-2', 'busy', 'a', 'pending', '{{}}', '{{}}', 'enqueue', 3002, 0, 3002, 3002), \
                 ('waiting-3', 'busy', 'a', 'pending', '{{}}', '{{}}', 'enqueue', 3003, 0, 3003, 3003), \
                 ('ready', 'free', 'a', 'pending', '{{}}', '{{}}', 'enqueue', 3004, 0, 3004, 3004)"
            ),
            "ANALYZE".to_string(),
        ];
        for sql in statements {
            db.execute_unprepared(&sql).await.expect(&sql);
        }
    }

    /// The steps of SQLite's plan for `query`.
    async fn plan_of(db: &DatabaseConnection, query: impl QueryTrait) -> Vec<String> {
        let query = query.build(DbBackend::Sqlite);
        db.query_all_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!("EXPLAIN QUERY PLAN {}", query.sql),
            query.values.map(|values| values.0).unwrap_or_default(),
        ))
        .await
        .expect("the plan")
        .iter()
        .filter_map(|row| row.try_get::<String>("", "detail").ok())
        .collect()
    }

    /// The `CREATE INDEX` statement of index `name`.
    async fn index_sql(db: &DatabaseConnection, name: &str) -> String {
        db.query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
            [name.into()],
        ))
        .await
        .expect("the schema")
        .and_then(|row| row.try_get::<String>("", "sql").ok())
        .unwrap_or_else(|| panic!("index {name} exists"))
    }

    #[tokio::test]
    async fn leases_owners_and_scheduled_instants_are_indexed_for_the_rows_that_have_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("i.db").display());
        let db = Database::connect(url.as_str()).await.expect("SQLite");
        const SPARSE: [&str; 4] = [
            "idx_runs_lease",
            "idx_threads_user",
            "idx_crons_user",
            "idx_deliveries_user",
        ];
        // Undone (with the one after it) and redone: the whole indexes come back, then the
        // partial ones.
        Migrator::up(&db, None).await.expect("migrations");
        Migrator::down(&db, Some(2))
            .await
            .expect("migration undone");
        for name in SPARSE {
            let sql = index_sql(&db, name).await;
            assert!(!sql.contains("WHERE"), "{name} is whole: {sql}");
        }
        Migrator::up(&db, None).await.expect("migration redone");
        for name in SPARSE {
            let sql = index_sql(&db, name).await;
            assert!(sql.ends_with("IS NOT NULL"), "{name} is partial: {sql}");
        }
        busy_and_free_threads(&db).await;

        let expired = plan_of(&db, expired_leases(1_000)).await;
        assert!(
            expired
                .iter()
                .any(|step| step.contains("USING INDEX idx_runs_lease")),
            "expired leases are found through the partial index: {expired:#?}"
        );
        let owned = plan_of(
            &db,
            Threads::find().filter(Scope::Owner("alice".into()).condition(thread::Column::UserId)),
        )
        .await;
        assert!(
            owned
                .iter()
                .any(|step| step.contains("USING INDEX idx_threads_user")),
            "an owner's threads are found through the partial index: {owned:#?}"
        );
        let scheduled = plan_of(&db, super::super::fires::scheduled_due_by(1_000)).await;
        assert!(
            scheduled
                .iter()
                .any(|step| step.contains("USING INDEX idx_cron_fires_scheduled")),
            "instants recorded ahead are found through their partial index: {scheduled:#?}"
        );
    }

    #[tokio::test]
    async fn a_claim_reads_only_the_active_runs_of_each_thread() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let db = Database::connect(url.as_str()).await.expect("SQLite");
        Migrator::up(&db, None).await.expect("migrations");
        busy_and_free_threads(&db).await;
        let claim = Claim {
            worker: "w".into(),
            lease_ms: 60_000,
        };

        let steps = plan_of(&db, due_runs(10, &Assistants::Any, 10_000)).await;
        assert!(
            steps
                .iter()
                .any(|step| step.contains("other USING INDEX idx_runs_thread_active")),
            "each pending run's thread is checked through its active runs only: {steps:#?}"
        );

        let txn = db.begin().await.expect("a transaction");
        let claimed = claim_due(&txn, &claim, 10, &Assistants::Any)
            .await
            .expect("the claim");
        txn.commit().await.expect("commit");
        let ids: Vec<&str> = claimed.iter().map(|run| run.run_id.as_str()).collect();
        assert_eq!(ids, ["ready"], "runs queued behind a running one wait");
    }
}
