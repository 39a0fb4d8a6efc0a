//! Group commit for the run path. Every run is written twice (queued, then finished), and
//! on SQLite each statement is a hand-off to the one writer connection's thread, so the
//! writes of many runs are gathered and committed together: whatever has queued up while
//! the previous batch was being written goes into the next transaction. A quiet daemon
//! writes batches of one, with no added wait.
//!
//! Batches use multi-row statements where the runs allow it (stateless runs, whose threads
//! are new and die with them); the rest are written one after the other in the same
//! transaction. Refusals (unknown thread, busy thread under `reject`, a lost lease) happen
//! before an operation writes anything, so they leave the batch usable. A database error
//! rolls the whole batch back; each of its operations is then retried alone, so only the
//! operation at fault sees the error.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, QuerySelect, SqlErr, TransactionTrait,
};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use entity::delivery;
use entity::run::{self, Column, Entity as Runs};
use entity::states::{CancelAction, MultitaskStrategy, OnCompletion, RunStatus};
use entity::thread::{self, Entity as Threads};

use super::runs::{
    Claim, Completion, Created, Finished, IfThreadMissing, Outcome, claim_due, delivery_model,
    end_run, end_runs_batched, ended, queue_run, queue_runs_batched,
};
use super::{Error, Result};
use crate::time::now_ms;

/// How many operations one transaction takes at most.
const MAX_BATCH: usize = 512;

/// Builds a finished run's outbox row (None: no webhook to call).
pub type CompletionFn = Box<dyn Fn(&run::Model) -> Option<Completion> + Send + Sync>;

/// The sending side: `Store` holds it; the writer task ends when every `Store` is gone.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

enum Job {
    Create {
        run: run::Model,
        strategy: MultitaskStrategy,
        if_missing: IfThreadMissing,
        assistant_metadata: Map<String, Value>,
        claim: Option<Claim>,
        reply: oneshot::Sender<Result<Created>>,
    },
    Finish {
        run: run::Model,
        worker: String,
        outcome: Outcome,
        completion: CompletionFn,
        reply: oneshot::Sender<Result<Option<Finished>>>,
    },
    Claim {
        claim: Claim,
        limit: u64,
        reply: oneshot::Sender<Result<Vec<run::Model>>>,
    },
}

/// What one operation came to inside a batch (sent to its caller once the batch commits).
/// Short-lived, one per job: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Answer {
    Created(Result<Created>),
    Finished(Option<Finished>),
    Claimed(Vec<run::Model>),
}

impl Writer {
    /// Starts the writer task on `db` (the store's write connection).
    pub(super) fn spawn(db: DatabaseConnection) -> Writer {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(db, queue));
        Writer { jobs }
    }

    pub(super) async fn create(
        &self,
        run: run::Model,
        strategy: MultitaskStrategy,
        if_missing: IfThreadMissing,
        assistant_metadata: Map<String, Value>,
        claim: Option<Claim>,
    ) -> Result<Created> {
        self.ask(|reply| Job::Create {
            run,
            strategy,
            if_missing,
            assistant_metadata,
            claim,
            reply,
        })
        .await
    }

    pub(super) async fn finish(
        &self,
        run: run::Model,
        worker: String,
        outcome: Outcome,
        completion: CompletionFn,
    ) -> Result<Option<Finished>> {
        self.ask(|reply| Job::Finish {
            run,
            worker,
            outcome,
            completion,
            reply,
        })
        .await
    }

    pub(super) async fn claim(&self, claim: Claim, limit: u64) -> Result<Vec<run::Model>> {
        self.ask(|reply| Job::Claim {
            claim,
            limit,
            reply,
        })
        .await
    }

    /// Queues the job `make` builds around its reply channel, and waits for the answer.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Job) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(make(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Db(sea_orm::DbErr::Custom("the run writer has stopped".into()))
}

async fn write_loop(db: DatabaseConnection, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch = std::mem::take(&mut jobs);
        metrics::histogram!(crate::metrics::RUN_WRITE_BATCH).record(batch.len() as f64);
        match write(&db, &batch).await {
            Ok(answers) => reply_all(batch, answers.into_iter().map(Ok)),
            Err(err) if batch.len() == 1 => reply_all(batch, [Err(err)]),
            Err(err) => {
                tracing::debug!(error = %err, jobs = batch.len(), "run batch rolled back; writing its jobs one by one");
                for job in batch {
                    let answer = write_alone(&db, &job).await;
                    reply_all(vec![job], [answer]);
                }
            }
        }
    }
}

/// One job in its own transaction. A run claimed as it was queued may collide with a run
/// another replica just started on the same thread (the unique index on running runs says
/// so): it is then queued unclaimed, to wait its turn.
async fn write_alone(db: &DatabaseConnection, job: &Job) -> Result<Answer> {
    match write(db, std::slice::from_ref(job)).await {
        Err(Error::Db(err))
            if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
                && matches!(job, Job::Create { claim: Some(_), .. }) =>
        {
            let Job::Create {
                run,
                strategy,
                if_missing,
                assistant_metadata,
                ..
            } = job
            else {
                return Err(Error::Db(err));
            };
            let txn = db.begin().await?;
            let created = queue_run(
                &txn,
                run.clone(),
                *strategy,
                if_missing.clone(),
                assistant_metadata.clone(),
                None,
            )
            .await;
            if created.is_ok() {
                txn.commit().await?;
            }
            Ok(Answer::Created(created))
        }
        // Another replica started a run on one of the threads first: try again later.
        Err(Error::Db(err))
            if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
                && matches!(job, Job::Claim { .. }) =>
        {
            Ok(Answer::Claimed(Vec::new()))
        }
        Err(err) => Err(err),
        Ok(mut answers) => answers.pop().ok_or_else(stopped),
    }
}

fn reply_all(jobs: Vec<Job>, answers: impl IntoIterator<Item = Result<Answer>>) {
    // A caller that went away (its request was dropped) no longer needs the answer.
    for (job, answer) in jobs.into_iter().zip(answers) {
        match job {
            Job::Create { reply, .. } => {
                let _ = reply.send(answer.and_then(|answer| match answer {
                    Answer::Created(created) => created,
                    _ => Err(mismatched()),
                }));
            }
            Job::Finish { reply, .. } => {
                let _ = reply.send(answer.and_then(|answer| match answer {
                    Answer::Finished(finished) => Ok(finished),
                    _ => Err(mismatched()),
                }));
            }
            Job::Claim { reply, .. } => {
                let _ = reply.send(answer.and_then(|answer| match answer {
                    Answer::Claimed(runs) => Ok(runs),
                    _ => Err(mismatched()),
                }));
            }
        }
    }
}

fn mismatched() -> Error {
    Error::Db(sea_orm::DbErr::Custom(
        "run writer: an answer of the wrong kind".into(),
    ))
}

/// Writes `jobs` in one transaction; an answer per job, in order. Only database errors
/// fail the whole batch.
async fn write(db: &DatabaseConnection, jobs: &[Job]) -> Result<Vec<Answer>> {
    let txn = db.begin().await?;
    let mut answers: Vec<Option<Answer>> = jobs.iter().map(|_| None).collect();
    // Finishes first, so that claims (then creates) find the slots and threads they free.
    finish_all(&txn, jobs, &mut answers).await?;
    for (index, job) in jobs.iter().enumerate() {
        if let Job::Claim { claim, limit, .. } = job {
            answers[index] = Some(Answer::Claimed(claim_due(&txn, claim, *limit).await?));
        }
    }
    create_all(&txn, jobs, &mut answers).await?;
    txn.commit().await?;
    answers
        .into_iter()
        .map(|answer| answer.ok_or_else(stopped))
        .collect()
}

async fn create_all(
    txn: &DatabaseTransaction,
    jobs: &[Job],
    answers: &mut [Option<Answer>],
) -> Result<()> {
    let now = now_ms();
    // Stateless runs (a new thread each) go in with multi-row statements.
    let mut stateless = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        let Job::Create {
            run,
            strategy,
            if_missing,
            assistant_metadata,
            claim,
            ..
        } = job
        else {
            continue;
        };
        if matches!(if_missing, IfThreadMissing::CreateNew) {
            stateless.push((index, run, assistant_metadata, claim));
            continue;
        }
        let created = queue_run(
            txn,
            run.clone(),
            *strategy,
            if_missing.clone(),
            assistant_metadata.clone(),
            claim.as_ref(),
        )
        .await;
        if let Err(Error::Db(err)) = created {
            return Err(Error::Db(err));
        }
        answers[index] = Some(Answer::Created(created));
    }
    // Claimed and unclaimed runs are batched apart: each batch has one claim (or none).
    for claimed in [true, false] {
        let group: Vec<_> = stateless
            .iter()
            .filter(|(_, _, _, claim)| claim.is_some() == claimed)
            .collect();
        let Some((_, _, _, claim)) = group.first() else {
            continue;
        };
        let runs = group
            .iter()
            .map(|(_, run, metadata, _)| ((*run).clone(), (*metadata).clone()))
            .collect();
        let created = queue_runs_batched(txn, runs, claim.as_ref(), group.len(), now).await?;
        for ((index, ..), created) in group.iter().zip(created) {
            answers[*index] = Some(Answer::Created(Ok(created)));
        }
    }
    Ok(())
}

/// What decides how a finished run ends: status, lease owner, cancel action.
type RunState = (RunStatus, Option<String>, Option<CancelAction>);

async fn finish_all(
    txn: &DatabaseTransaction,
    jobs: &[Job],
    answers: &mut [Option<Answer>],
) -> Result<()> {
    let now = now_ms();
    let finishes: Vec<(usize, &run::Model, &str, &Outcome, &CompletionFn)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(index, job)| match job {
            Job::Finish {
                run,
                worker,
                outcome,
                completion,
                ..
            } => Some((index, run, worker.as_str(), outcome, completion)),
            Job::Create { .. } | Job::Claim { .. } => None,
        })
        .collect();
    if finishes.is_empty() {
        return Ok(());
    }

    // The common end of a stateless run: its thread deleted (and the run with it) by one
    // statement for all of them, where the run is still ours and no cancel came in.
    let mut done: HashSet<usize> = HashSet::new();
    let workers: HashSet<&str> = finishes.iter().map(|f| f.2).collect();
    let mut deliveries = Vec::new();
    for worker in workers {
        let throwaway: Vec<_> = finishes
            .iter()
            .filter(|f| f.2 == worker && f.1.on_completion == Some(OnCompletion::Delete))
            .collect();
        if throwaway.is_empty() {
            continue;
        }
        let ours = Query::select()
            .column(Column::ThreadId)
            .from(Runs)
            .and_where(Column::RunId.is_in(throwaway.iter().map(|f| f.1.run_id.clone())))
            .and_where(Column::Status.eq(RunStatus::Running))
            .and_where(Column::LeaseOwner.eq(worker))
            .and_where(Column::CancelAction.is_null())
            .to_owned();
        let deleted: HashSet<String> = Threads::delete_many()
            .filter(Expr::col(thread::Column::ThreadId).in_subquery(ours))
            .exec_with_returning(txn)
            .await?
            .into_iter()
            .map(|thread| thread.thread_id)
            .collect();
        for (index, run, _, outcome, completion) in throwaway {
            if !deleted.contains(&run.thread_id) {
                continue;
            }
            let ended = ended(run, outcome, now);
            let delivery = completion(&ended).map(|done| delivery_model(&ended, done, now));
            deliveries.extend(delivery.clone());
            done.insert(*index);
            answers[*index] = Some(Answer::Finished(Some(Finished {
                run: Some(ended),
                delivery,
            })));
        }
    }

    // The rest: the state that decides each run's end read in one query (locked on
    // PostgreSQL, so a cancel from another replica cannot slip in between). A run still
    // held by its worker, not cancelled, ends from the worker's own copy (nothing else of
    // a running run changes); the others (cancels, a second run of a thread in the batch)
    // read the whole row.
    let rest: Vec<_> = finishes.iter().filter(|f| !done.contains(&f.0)).collect();
    let mut current: HashMap<String, RunState> = if rest.is_empty() {
        HashMap::new()
    } else {
        Runs::find()
            .select_only()
            .columns([
                Column::RunId,
                Column::Status,
                Column::LeaseOwner,
                Column::CancelAction,
            ])
            .filter(Column::RunId.is_in(rest.iter().map(|f| f.1.run_id.clone())))
            .lock_exclusive()
            .into_tuple::<(String, RunStatus, Option<String>, Option<CancelAction>)>()
            .all(txn)
            .await?
            .into_iter()
            .map(|(run_id, status, owner, cancel)| (run_id, (status, owner, cancel)))
            .collect()
    };
    // The common case, a run that simply ended on a thread that stays, is written with
    // multi-row statements for the whole batch; cancels and rollbacks one by one.
    let mut plain = Vec::new();
    let mut threads = HashSet::new();
    for (index, claimed, worker, outcome, completion) in rest {
        let finished = match current.remove(&claimed.run_id) {
            Some((status, owner, cancel))
                if status == RunStatus::Running && owner.as_deref() == Some(*worker) =>
            {
                if cancel.is_none()
                    && claimed.on_completion != Some(OnCompletion::Delete)
                    && threads.insert(claimed.thread_id.clone())
                {
                    let ended = ended(claimed, outcome, now);
                    let delivery = completion(&ended).map(|done| delivery_model(&ended, done, now));
                    deliveries.extend(delivery.clone());
                    plain.push((*index, ended, delivery, outcome.thread_status()));
                    continue;
                }
                match Runs::find_by_id(claimed.run_id.clone()).one(txn).await? {
                    Some(run) => {
                        Some(end_run(txn, run, (*outcome).clone(), |run| completion(run)).await?)
                    }
                    None => None,
                }
            }
            _ => None,
        };
        answers[*index] = Some(Answer::Finished(finished));
    }
    end_runs_batched(
        txn,
        plain.iter().map(|(_, run, _, status)| (run, *status)),
        now,
    )
    .await?;
    for (index, run, delivery, _) in plain {
        answers[index] = Some(Answer::Finished(Some(Finished {
            run: Some(run),
            delivery,
        })));
    }
    for chunk in super::fires::chunked(deliveries, 200) {
        delivery::Entity::insert_many(chunk.into_iter().map(IntoActiveModel::into_active_model))
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}
