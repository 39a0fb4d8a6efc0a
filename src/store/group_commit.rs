//! Group commit for the run path. Every run is written twice (queued, then finished), and
//! on SQLite each statement is a hand-off to the one writer connection's thread, so the
//! writes of many runs are gathered and committed together: whatever has queued up while
//! the previous batch was being written goes into the next transaction. A quiet daemon
//! writes batches of one, with no added wait.
//!
//! On SQLite one writer drains the queue (there is one write connection). On PostgreSQL
//! several writers take batches from the same queue, each in its own transaction, so one
//! batch's round trips and commit overlap the next batch's, and a batch waiting on a row
//! lock held elsewhere does not hold up every other run's write. They take row locks in the
//! order replicas do (crons by id first; claims skip locked rows); a batch PostgreSQL still
//! picks as a deadlock's victim is rolled back and retried as any failed batch is (below).
//!
//! Batches use multi-row statements where the runs allow it (stateless runs, whose threads
//! are new and die with them); the rest are written one after the other in the same
//! transaction. Refusals (unknown thread, busy thread under `reject`, a lost lease) happen
//! before an operation writes anything, so they leave the batch usable. A database error
//! rolls the whole batch back; each of its operations is then retried alone, so only the
//! operation at fault sees the error.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    IdenStatic, QueryFilter, QueryTrait, SqlErr, TransactionTrait,
};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, mpsc, oneshot};

use entity::delivery;
use entity::run::{self, Column, Entity as Runs};
use entity::states::{MultitaskStrategy, OnCompletion, ThreadStatus};
use entity::thread::{self, Entity as Threads};

use super::alerts::AlertRoutes;
use super::crons::lock_crons;
use super::deliveries::OutboxRows;
use super::history::{End, record_ends};
use super::runs::{
    Assistants, Claim, Completion, Created, Finished, IfThreadMissing, Outcome, PreparedEnd,
    RunState, claim_due, end_run, end_runs_batched, held_by, queue_run, queue_runs_batched,
    run_states,
};
use super::{Error, Result};
use crate::config::AlertRouteConfig;
use crate::time::{Millis, now_ms};

/// How many operations one transaction takes at most.
const MAX_BATCH: usize = 512;

/// Builds a finished run's outbox row (None: no webhook to call).
pub type CompletionFn = Box<dyn Fn(&run::Model) -> Option<Completion> + Send + Sync>;

/// The sending side: `Store` holds it; the writer task ends when every `Store` is gone.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

/// Moved into the queue and out of it once each: boxing the larger variants would buy
/// nothing but an allocation per run.
#[allow(clippy::large_enum_variant)]
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
        run_id: String,
        cron_id: Option<String>,
        /// Taken by the batch that writes it; a job retried alone after its batch failed
        /// is written from the stored row instead.
        prepared: Option<PreparedEnd>,
        worker: String,
        outcome: Outcome,
        completion: CompletionFn,
        reply: oneshot::Sender<Result<Option<Finished>>>,
    },
    Claim {
        claim: Claim,
        limit: u64,
        only: Assistants,
        reply: oneshot::Sender<Result<Vec<run::Model>>>,
    },
}

impl Job {
    fn finish(
        run: run::Model,
        worker: String,
        outcome: Outcome,
        completion: CompletionFn,
        reply: oneshot::Sender<Result<Option<Finished>>>,
    ) -> Job {
        let (run_id, cron_id) = (run.run_id.clone(), run.cron_id.clone());
        let prepared = PreparedEnd::new(run, &outcome, &completion, now_ms());
        Job::Finish {
            run_id,
            cron_id,
            prepared: Some(prepared),
            worker,
            outcome,
            completion,
            reply,
        }
    }

    /// A finish's prepared end, which only the first batch to write the job gets.
    fn take_prepared(&mut self) -> Option<PreparedEnd> {
        match self {
            Job::Finish { prepared, .. } => prepared.take(),
            Job::Create { .. } | Job::Claim { .. } => None,
        }
    }
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
    /// Starts `writers` writer tasks on `db` (the store's write connection or pool), taking
    /// batches from one queue.
    pub(super) fn spawn(
        db: DatabaseConnection,
        routes: AlertRoutes,
        changes: super::changes::Changes,
        writers: usize,
    ) -> Writer {
        let (jobs, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_loop(
                db.clone(),
                routes.clone(),
                changes.clone(),
                queue.clone(),
            ));
        }
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

    /// Ends `run` as `outcome` says. The run as it ends and its webhook's outbox row
    /// (payload serialized) are built here, in the caller's task: the writer's own work is
    /// on every run's path.
    pub(super) async fn finish(
        &self,
        run: run::Model,
        worker: String,
        outcome: Outcome,
        completion: CompletionFn,
    ) -> Result<Option<Finished>> {
        self.ask(|reply| Job::finish(run, worker, outcome, completion, reply))
            .await
    }

    pub(super) async fn claim(
        &self,
        claim: Claim,
        limit: u64,
        only: Assistants,
    ) -> Result<Vec<run::Model>> {
        self.ask(|reply| Job::Claim {
            claim,
            limit,
            only,
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

async fn write_loop(
    db: DatabaseConnection,
    routes: AlertRoutes,
    changes: super::changes::Changes,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
) {
    loop {
        // The queue is held only while a batch is taken: the next writer takes the next.
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if queue.lock().await.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        metrics::histogram!(crate::metrics::RUN_WRITE_BATCH).record(batch.len() as f64);
        write_batch(&db, routes.get(), batch).await;
        changes.touch();
    }
}

/// Writes `batch` in one transaction, or, when that fails, each job in its own; answers
/// every job.
async fn write_batch(db: &DatabaseConnection, routes: &[AlertRouteConfig], mut batch: Vec<Job>) {
    match write(db, routes, &mut batch).await {
        Ok(answers) => reply_all(batch, answers.into_iter().map(Ok)),
        Err(err) if batch.len() == 1 => reply_all(batch, [Err(err)]),
        Err(err) => {
            tracing::debug!(error = %err, jobs = batch.len(), "run batch rolled back; writing its jobs one by one");
            for mut job in batch {
                let answer = write_alone(db, routes, &mut job).await;
                reply_all(vec![job], [answer]);
            }
        }
    }
}

/// One job in its own transaction. A run claimed as it was queued may collide with a run
/// another replica just started on the same thread (the unique index on running runs says
/// so): it is then queued unclaimed, to wait its turn.
async fn write_alone(
    db: &DatabaseConnection,
    routes: &[AlertRouteConfig],
    job: &mut Job,
) -> Result<Answer> {
    match write(db, routes, std::slice::from_mut(job)).await {
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
            } = &*job
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
async fn write(
    db: &DatabaseConnection,
    routes: &[AlertRouteConfig],
    jobs: &mut [Job],
) -> Result<Vec<Answer>> {
    let now = now_ms();
    let prepared: Vec<Option<PreparedEnd>> = jobs.iter_mut().map(Job::take_prepared).collect();
    let jobs = &*jobs;
    let finishes: Vec<Finish> = jobs
        .iter()
        .zip(prepared)
        .enumerate()
        .filter_map(|(index, (job, prepared))| Finish::of(index, job, prepared))
        .collect();
    let txn = db.begin().await?;
    let mut answers: Vec<Option<Answer>> = jobs.iter().map(|_| None).collect();
    // Finishes first, so that claims (then creates) find the slots and threads they free.
    finish_all(&txn, routes, finishes, &mut answers, now).await?;
    for (index, job) in jobs.iter().enumerate() {
        if let Job::Claim {
            claim, limit, only, ..
        } = job
        {
            answers[index] = Some(Answer::Claimed(claim_due(&txn, claim, *limit, only).await?));
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

/// A finish job, as `finish_all` writes it.
struct Finish<'a> {
    /// Where its answer goes.
    index: usize,
    run_id: &'a str,
    cron_id: Option<&'a str>,
    worker: &'a str,
    outcome: &'a Outcome,
    completion: &'a CompletionFn,
    /// None when the job is retried alone: it is then ended from the stored row.
    prepared: Option<PreparedEnd>,
}

impl<'a> Finish<'a> {
    /// The finish of `job`, if it is one, with the end taken out of it.
    fn of(index: usize, job: &'a Job, prepared: Option<PreparedEnd>) -> Option<Finish<'a>> {
        let Job::Finish {
            run_id,
            cron_id,
            worker,
            outcome,
            completion,
            ..
        } = job
        else {
            return None;
        };
        Some(Finish {
            index,
            run_id,
            cron_id: cron_id.as_deref(),
            worker,
            outcome,
            completion,
            prepared,
        })
    }

    /// Whether it ends a stateless run (whose thread goes with it) from its prepared end.
    fn throwaway(&self) -> bool {
        self.prepared
            .as_ref()
            .is_some_and(|end| end.ended.on_completion == Some(OnCompletion::Delete))
    }
}

/// How a finished run is written.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// Its worker no longer holds it (the lease was lost): nothing is written.
    Lost,
    /// It simply ended on a thread that stays: written with multi-row statements for the
    /// whole batch.
    Plain,
    /// A cancel, a stateless run's thread to delete, or a second run of a thread in the
    /// batch: written alone, from the whole row.
    Alone,
}

/// How the run `finish` ended is written, from its state in the store (None: gone).
/// `threads` holds the threads of the runs of the batch written plainly so far.
fn ending(state: Option<RunState>, finish: &Finish, threads: &mut HashSet<String>) -> Ending {
    match (state, &finish.prepared) {
        (Some(state), Some(end)) if state.held_by(finish.worker) => {
            if state.cancel_action.is_none()
                && end.ended.on_completion != Some(OnCompletion::Delete)
                && threads.insert(end.ended.thread_id.clone())
            {
                Ending::Plain
            } else {
                Ending::Alone
            }
        }
        (Some(state), None) if state.held_by(finish.worker) => Ending::Alone,
        _ => Ending::Lost,
    }
}

/// A run that simply ended, to be written with the batch's multi-row statements.
struct PlainEnd {
    index: usize,
    run: run::Model,
    delivery: Option<delivery::Model>,
    thread_status: ThreadStatus,
}

async fn finish_all(
    txn: &DatabaseTransaction,
    routes: &[AlertRouteConfig],
    finishes: Vec<Finish<'_>>,
    answers: &mut [Option<Answer>],
    now: Millis,
) -> Result<()> {
    if finishes.is_empty() {
        return Ok(());
    }
    // Their crons' history and last run are written below: crons first, as fires take them.
    lock_crons(
        txn,
        finishes
            .iter()
            .filter_map(|finish| finish.cron_id.map(str::to_string)),
    )
    .await?;
    let mut outbox = OutboxRows::new(txn.get_database_backend());
    let (done, rest) = finish_throwaway(txn, finishes, answers, &mut outbox).await?;
    let plain = finish_rest(txn, routes, rest, answers, &mut outbox, now).await?;
    // The cron runs ended here go into their crons' history (those ended alone, by
    // `end_run`, are recorded there).
    let batched: Vec<End> = done
        .iter()
        .chain(&plain)
        .filter_map(|&index| match &answers[index] {
            Some(Answer::Finished(Some(Finished {
                run: Some(run),
                delivery,
                ..
            }))) => Some(End {
                run,
                delivery: delivery.as_ref(),
            }),
            _ => None,
        })
        .collect();
    if record_ends(txn, routes, &batched, now).await? {
        // Which end released a held run is not told apart: each finisher looks.
        for answer in answers.iter_mut() {
            if let Some(Answer::Finished(Some(finished))) = answer {
                finished.released = true;
            }
        }
    }
    outbox.insert(txn).await
}

/// The common end of a stateless run: its thread deleted (and the run with it) by one
/// statement for all of them, where the run is still ours and no cancel came in. The
/// indexes of the finishes done, and the finishes left; the webhooks' outbox rows of those
/// done go to `outbox`.
async fn finish_throwaway<'a>(
    txn: &DatabaseTransaction,
    finishes: Vec<Finish<'a>>,
    answers: &mut [Option<Answer>],
    outbox: &mut OutboxRows,
) -> Result<(Vec<usize>, Vec<Finish<'a>>)> {
    let mut done = Vec::new();
    let mut rest = Vec::new();
    let mut by_worker: HashMap<&str, Vec<Finish>> = HashMap::new();
    for finish in finishes {
        if finish.throwaway() {
            by_worker.entry(finish.worker).or_default().push(finish);
        } else {
            rest.push(finish);
        }
    }
    for (worker, throwaway) in by_worker {
        let ours = Query::select()
            .column(Column::ThreadId)
            .from(Runs)
            .cond_where(
                Condition::all()
                    .add(Column::RunId.is_in(throwaway.iter().map(|f| f.run_id.to_string())))
                    .add(held_by(worker))
                    .add(Column::CancelAction.is_null()),
            )
            .to_owned();
        // The ids alone come back: nothing here reads the rest of a thread row (its JSON
        // columns would be decoded for nothing).
        let mut delete = Threads::delete_many()
            .filter(Expr::col(thread::Column::ThreadId).in_subquery(ours))
            .into_query();
        delete.returning_col(thread::Column::ThreadId);
        let deleted: HashSet<String> = txn
            .query_all(&delete)
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", thread::Column::ThreadId.as_str()))
            .collect::<std::result::Result<_, _>>()?;
        for mut finish in throwaway {
            let Some(end) = finish
                .prepared
                .take_if(|end| deleted.contains(&end.ended.thread_id))
            else {
                rest.push(finish);
                continue;
            };
            done.push(finish.index);
            answers[finish.index] = Some(Answer::Finished(Some(Finished {
                run: Some(end.ended),
                delivery: end.delivery.map(|new| outbox.push(new)),
                released: false,
            })));
        }
    }
    Ok((done, rest))
}

/// The other finishes: the state that decides each run's end read in one query (locked on
/// PostgreSQL, so a cancel from another replica cannot slip in between). A run still held
/// by its worker, not cancelled, ends from the worker's own copy (nothing else of a running
/// run changes); the others (cancels, a second run of a thread in the batch) read the whole
/// row. Webhooks' outbox rows go to `outbox`. The indexes of the finishes written with
/// the batch's statements (the others were ended alone).
async fn finish_rest(
    txn: &DatabaseTransaction,
    routes: &[AlertRouteConfig],
    rest: Vec<Finish<'_>>,
    answers: &mut [Option<Answer>],
    outbox: &mut OutboxRows,
    now: Millis,
) -> Result<Vec<usize>> {
    let mut current = run_states(
        txn,
        rest.iter().map(|finish| finish.run_id.to_string()),
        true,
    )
    .await?;
    // The common case, a run that simply ended on a thread that stays, is written with
    // multi-row statements for the whole batch; cancels and rollbacks one by one.
    let mut plain = Vec::new();
    let mut threads = HashSet::new();
    for finish in rest {
        let state = current.remove(finish.run_id);
        let finished = match (ending(state, &finish, &mut threads), finish.prepared) {
            (Ending::Plain, Some(end)) => {
                plain.push(PlainEnd {
                    index: finish.index,
                    run: end.ended,
                    delivery: end.delivery.map(|new| outbox.push(new)),
                    thread_status: finish.outcome.thread_status(),
                });
                continue;
            }
            (Ending::Lost, _) => None,
            // Alone (a plain end always has its prepared end).
            _ => match Runs::find_by_id(finish.run_id).one(txn).await? {
                Some(run) => Some(
                    end_run(txn, routes, run, finish.outcome.clone(), |run| {
                        (finish.completion)(run)
                    })
                    .await?,
                ),
                None => None,
            },
        };
        answers[finish.index] = Some(Answer::Finished(finished));
    }
    end_runs_batched(
        txn,
        plain.iter().map(|end| (&end.run, end.thread_status)),
        now,
    )
    .await?;
    let mut done = Vec::with_capacity(plain.len());
    for end in plain {
        done.push(end.index);
        answers[end.index] = Some(Answer::Finished(Some(Finished {
            run: Some(end.run),
            delivery: end.delivery,
            released: false,
        })));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::spec::RunSpec;
    use entity::states::{CancelAction, RunStatus};
    use serde_json::json;

    fn run(run_id: &str, thread_id: &str, on_completion: Option<OnCompletion>) -> run::Model {
        RunSpec {
            run_id: run_id.into(),
            thread_id: thread_id.into(),
            assistant_id: "a".into(),
            graph_id: "g".into(),
            body: &json!({}),
            metadata: Map::new(),
            strategy: MultitaskStrategy::Enqueue,
            on_completion,
            available_at: 0,
            cron_id: None,
            scheduled_for: None,
            user_id: None,
            now: 0,
        }
        .into_model()
    }

    fn running(owner: &str, cancel_action: Option<CancelAction>) -> Option<RunState> {
        Some(RunState {
            status: RunStatus::Running,
            lease_owner: Some(owner.into()),
            cancel_action,
        })
    }

    fn finish<'a>(run: &'a run::Model, completion: &'a CompletionFn) -> Finish<'a> {
        Finish {
            index: 0,
            run_id: &run.run_id,
            cron_id: None,
            worker: "w",
            outcome: &Outcome::Interrupted,
            completion,
            prepared: Some(PreparedEnd::new(
                run.clone(),
                &Outcome::Interrupted,
                completion,
                0,
            )),
        }
    }

    #[test]
    fn runs_end_plainly_unless_cancelled_deleted_or_second_on_their_thread() {
        let completion: CompletionFn = Box::new(|_| None);
        let (first, second) = (run("r1", "t", None), run("r2", "t", None));
        let stateless = run("r3", "s", Some(OnCompletion::Delete));
        let finish = |run| finish(run, &completion);
        let mut threads = HashSet::new();
        assert_eq!(
            ending(running("w", None), &finish(&first), &mut threads),
            Ending::Plain
        );
        assert_eq!(
            ending(running("w", None), &finish(&second), &mut threads),
            Ending::Alone,
            "a second run of the thread in the batch"
        );
        let mut threads = HashSet::new();
        assert_eq!(
            ending(
                running("w", Some(CancelAction::Interrupt)),
                &finish(&first),
                &mut threads
            ),
            Ending::Alone,
            "cancelled while it ran"
        );
        assert_eq!(
            ending(running("w", None), &finish(&stateless), &mut threads),
            Ending::Alone,
            "its thread is deleted"
        );
        assert_eq!(
            ending(running("other", None), &finish(&first), &mut threads),
            Ending::Lost,
            "another worker holds it"
        );
        let pending = Some(RunState {
            status: RunStatus::Pending,
            lease_owner: None,
            cancel_action: None,
        });
        assert_eq!(
            ending(pending, &finish(&first), &mut threads),
            Ending::Lost,
            "re-queued"
        );
        assert_eq!(
            ending(None, &finish(&first), &mut threads),
            Ending::Lost,
            "gone"
        );
        assert!(threads.is_empty(), "only plain ends take their thread");
        let retried = Finish {
            prepared: None,
            ..finish(&first)
        };
        assert_eq!(
            ending(running("w", None), &retried, &mut threads),
            Ending::Alone,
            "retried alone after its batch failed: its prepared end was taken"
        );
        assert_eq!(
            ending(running("other", None), &retried, &mut threads),
            Ending::Lost
        );
    }

    /// A batch that fails is written again job by job: a finish then no longer has its
    /// prepared end (the failed batch took it) and is ended from the stored row.
    #[tokio::test]
    async fn a_finish_retried_alone_after_its_batch_failed_ends_from_the_stored_row() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        let store = super::super::Store::open(&url, 2).await.expect("the store");
        let new_thread = || IfThreadMissing::Create {
            metadata: Map::new(),
        };
        let claim = Claim {
            worker: "w".into(),
            lease_ms: 60_000,
        };
        let queued = store
            .create_run(
                run("r1", "t1", None),
                MultitaskStrategy::Enqueue,
                new_thread(),
                Some(claim),
            )
            .await
            .expect("queued");
        assert!(queued.claimed, "nothing was ahead of it");

        // The batch: the run's finish, then a second run with the first one's id, which
        // fails the batch's transaction.
        let (finish_reply, finished) = oneshot::channel();
        let (create_reply, created) = oneshot::channel();
        let completion: CompletionFn = Box::new(|run| {
            Some(Completion {
                url: "http://127.0.0.1:9/hook".into(),
                payload: json!({"run_id": run.run_id, "status": run.status}),
                lease: None,
            })
        });
        let values = json!({"n": 1});
        let batch = vec![
            Job::finish(
                queued.run,
                "w".into(),
                Outcome::Success {
                    values: values.clone(),
                },
                completion,
                finish_reply,
            ),
            Job::Create {
                run: run("r1", "t2", None),
                strategy: MultitaskStrategy::Enqueue,
                if_missing: new_thread(),
                assistant_metadata: Map::new(),
                claim: None,
                reply: create_reply,
            },
        ];
        write_batch(&store.write, &[], batch).await;

        assert!(
            created.await.expect("answered").is_err(),
            "the run with a taken id is refused"
        );
        let finished = finished
            .await
            .expect("answered")
            .expect("the finish is written alone")
            .expect("the run was still its worker's");
        let ended = finished.run.expect("the run as it ended");
        assert_eq!(
            (ended.status, ended.output.as_ref()),
            (RunStatus::Success, Some(&values))
        );
        let stored = store.find_run("r1").await.expect("read").expect("kept");
        assert_eq!(
            (stored.status, stored.output, stored.lease_owner),
            (RunStatus::Success, Some(values), None)
        );
        let delivery = finished.delivery.expect("its webhook's outbox row");
        assert_eq!(
            delivery.payload,
            json!({"run_id": "r1", "status": "success"})
        );
        let listed = store
            .list_deliveries(
                &super::super::deliveries::DeliveryFilter {
                    run_id: Some("r1".into()),
                    ..Default::default()
                },
                10,
                0,
            )
            .await
            .expect("the delivery log");
        let ids: Vec<&str> = listed
            .items
            .iter()
            .map(|row| row.delivery_id.as_str())
            .collect();
        assert_eq!(ids, [delivery.delivery_id.as_str()], "one outbox row");
    }
}
