//! The scheduler's side of the store: which crons are due, and firing them. A fire claims
//! the cron with a conditional update of `next_run_at` and records each instant under the
//! unique key (cron_id, scheduled_for), in the same transaction that queues its runs, so an
//! instant fires exactly once whatever the number of replicas, restarts or races.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DerivePartialModel, EntityTrait, IntoActiveModel,
    PartialModelTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use entity::cron::{self, Column, Entity as Crons};
use entity::cron_fire::{self, Entity as CronFires};
use entity::run;
use entity::states::{
    DeliveryStatus, FireOutcome, MisfirePolicy, MultitaskStrategy, Overlap, RunStatus,
};

use super::alerts;
use super::crons::lock_crons;
use super::deliveries::OutboxRows;
use super::overlap::{self, Decision};
use super::runs::{Claim, Created, IfThreadMissing, queue_run, queue_runs_batched};
use super::{CASE_ROWS, Error, Result, Store, chunked, expr_by_key, value_by_key};
use crate::config::{AlertEvent, AlertRouteConfig};
use crate::schedule::jitter;
use crate::time::Millis;

/// What the scheduler's timer reads of a cron: when it is due, the version of its row, what
/// decides how far ahead it fires, and its schedule. The rest of the row is read when the
/// cron comes due.
#[derive(Debug, Clone, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "Crons")]
pub struct CronTiming {
    pub cron_id: String,
    pub enabled: bool,
    pub next_run_at: Option<Millis>,
    pub updated_at: Millis,
    pub thread_id: Option<String>,
    pub overlap: Overlap,
    pub timezone: Option<String>,
    pub schedule: String,
}

impl From<&cron::Model> for CronTiming {
    fn from(cron: &cron::Model) -> CronTiming {
        CronTiming {
            cron_id: cron.cron_id.clone(),
            enabled: cron.enabled,
            next_run_at: cron.next_run_at,
            updated_at: cron.updated_at,
            thread_id: cron.thread_id.clone(),
            overlap: cron.overlap,
            timezone: cron.timezone.clone(),
            schedule: cron.schedule.clone(),
        }
    }
}

/// One cron's fire, planned by the scheduler from the row it last saw.
#[derive(Debug, Clone)]
pub struct Fire {
    /// The cron as the scheduler read it: the claim fails if its `next_run_at` or
    /// `updated_at` changed since, so the runs are built from exactly this row.
    pub cron: cron::Model,
    /// The instants to fire now (each becomes a run).
    pub instants: Vec<Millis>,
    /// The cron's next instant after this fire (None: no more).
    pub new_next: Option<Millis>,
    /// The instants given up under the misfire policy (recorded as one history entry).
    pub missed: Option<Missed>,
}

/// Instants of one cron missed in a row and given up under its misfire policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    pub first: Millis,
    pub last: Millis,
    pub count: u64,
    pub policy: MisfirePolicy,
}

/// What became of one planned fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// Claimed: these runs were queued (instant, run id); `rejected` instants found the
    /// thread busy under `reject`, `skipped` ones the cron busy under its `overlap`.
    Claimed {
        runs: Vec<(Millis, String)>,
        rejected: Vec<Millis>,
        skipped: Vec<Millis>,
    },
    /// Another replica fired it, or the cron changed or went away since it was read.
    Lost,
}

/// The runs a fire queued that this process starts itself.
#[derive(Debug, Default)]
pub struct Queued {
    /// Claimed as they were queued: to start now.
    pub claimed: Vec<run::Model>,
    /// Fired ahead of their instant (or with jitter): to start then (`Store::claim_ahead`).
    pub ahead: Vec<run::Model>,
    /// Running runs asked to stop (`cancel_other`): their workers stop them.
    pub stopping: Vec<String>,
    /// When queued thread runs delayed by jitter fall due: the workers look then.
    pub due_later: Vec<Millis>,
    /// Thread crons' instants recorded ahead: to fire at their instant (`Store::release`).
    pub scheduled: Vec<Scheduled>,
}

/// A thread cron's instant recorded ahead of it (a history entry `scheduled`): the instant
/// is claimed, so it fires exactly once, but its run is queued only at the instant, where
/// the thread's multitask strategy decides what becomes of it. Until then no run, thread
/// status or queue shows it.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// The cron as it was recorded from (an edit withdraws the instant, see
    /// `withdraw_prefired`, so this is the row its run is built from).
    pub cron: Arc<cron::Model>,
    pub instant: Millis,
    /// The id its run will have (kept in the entry, hidden from the API until it fires).
    pub run_id: String,
}

/// What became of an instant recorded ahead, at its instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Its run was queued.
    Fired,
    /// Its thread was busy under `reject`, or is gone.
    Rejected,
    /// Another replica fired it, or an edit of its cron withdrew it.
    Lost,
}

/// Whether `cron`'s instant is recorded ahead now, its run queued at the instant: a thread
/// cron's run joins the thread's queue, and is subject to its multitask strategy, only then.
fn records_ahead(cron: &cron::Model, instant: Millis, now: Millis) -> bool {
    cron.thread_id.is_some() && instant > now
}

impl Queued {
    /// What queuing `created` at `now` leaves this process to start.
    fn of(created: Vec<Created>, now: Millis) -> Queued {
        let mut queued = Queued::default();
        for created in created {
            queued.add(created.run, created.claimed, now);
        }
        queued
    }

    fn add(&mut self, run: run::Model, claimed: bool, now: Millis) {
        if claimed {
            self.claimed.push(run);
        } else if run.available_at > now && !overlap::is_held(&run) {
            // A stateless run is alone on its thread and may be claimed ahead; a thread's
            // run waits its turn in the thread's queue.
            if run.on_completion.is_some() {
                self.ahead.push(run);
            } else {
                self.due_later.push(run.available_at);
            }
        }
    }
}

/// Where an instant's run goes: claimed for this process while `slots` last, and what the
/// fire or release hands back to the scheduler.
struct Place<'a> {
    claim: Option<&'a Claim>,
    slots: &'a mut usize,
    started: &'a mut Queued,
    now: Millis,
}

/// The `scheduled` entries due by `before`, earliest first (found through their partial
/// index, `idx_cron_fires_scheduled`).
pub(super) fn scheduled_due_by(before: Millis) -> sea_orm::Select<CronFires> {
    CronFires::find()
        .filter(cron_fire::Column::Outcome.eq(FireOutcome::Scheduled))
        .filter(cron_fire::Column::ScheduledFor.lte(before))
        .order_by_asc(cron_fire::Column::ScheduledFor)
}

/// Turns the `scheduled` entries of `due` `fired`; how many still were. An entry is known
/// by its run id, unique to it (an edit withdraws an instant and records it again with
/// another run, from the edited row); its cron and instant let the databases find it through
/// the primary key. Their `fired_at` stays when they were written, as a stateless cron's run
/// fired ahead keeps it.
async fn mark_fired(txn: &sea_orm::DatabaseTransaction, due: &[Scheduled]) -> Result<u64> {
    let mut cron_ids: Vec<&str> = due
        .iter()
        .map(|ahead| ahead.cron.cron_id.as_str())
        .collect();
    cron_ids.sort_unstable();
    cron_ids.dedup();
    let mut instants: Vec<Millis> = due.iter().map(|ahead| ahead.instant).collect();
    instants.sort_unstable();
    instants.dedup();
    Ok(CronFires::update_many()
        .col_expr(cron_fire::Column::Outcome, Expr::value(FireOutcome::Fired))
        .col_expr(
            cron_fire::Column::RunStatus,
            Expr::value(RunStatus::Pending),
        )
        .filter(cron_fire::Column::CronId.is_in(cron_ids))
        .filter(cron_fire::Column::ScheduledFor.is_in(instants))
        .filter(cron_fire::Column::RunId.is_in(due.iter().map(|ahead| ahead.run_id.as_str())))
        .filter(cron_fire::Column::Outcome.eq(FireOutcome::Scheduled))
        .exec(txn)
        .await?
        .rows_affected)
}

/// Builds the run for one instant of a cron (the scheduler knows how).
pub type MakeRun<'a> = dyn Fn(&cron::Model, Millis) -> run::Model + Send + Sync + 'a;

impl Store {
    /// Which enabled crons are due before `horizon`, and in which version: id, next instant
    /// and last change. The scheduler reads whole rows only for what it does not hold yet.
    pub async fn due_cron_versions(&self, horizon: Millis) -> Result<Vec<CronVersion>> {
        Ok(Crons::find()
            .select_only()
            .columns([Column::CronId, Column::NextRunAt, Column::UpdatedAt])
            .filter(Column::Enabled.eq(true))
            .filter(Column::NextRunAt.lte(horizon))
            .into_tuple::<CronVersion>()
            .all(&self.read)
            .await?)
    }

    /// The crons with these ids (those that still exist): whole rows (`cron::Model`) or
    /// what the timer reads of them (`CronTiming`).
    pub async fn crons_by_id<M>(&self, ids: Vec<String>) -> Result<Vec<M>>
    where
        M: PartialModelTrait + Send + Sync,
    {
        let mut crons = Vec::with_capacity(ids.len());
        for chunk in chunked(ids, 500) {
            crons.extend(
                Crons::find()
                    .filter(Column::CronId.is_in(chunk))
                    .into_partial_model::<M>()
                    .all(&self.read)
                    .await?,
            );
        }
        Ok(crons)
    }

    /// Crons changed through the API at or after `since` (enabled or not).
    pub async fn crons_changed_since(&self, since: Millis) -> Result<Vec<CronTiming>> {
        Ok(Crons::find()
            .filter(Column::UpdatedAt.gte(since))
            .into_partial_model::<CronTiming>()
            .all(&self.read)
            .await?)
    }

    pub async fn find_cron(&self, cron_id: &str) -> Result<Option<cron::Model>> {
        Ok(Crons::find_by_id(cron_id.to_string())
            .one(&self.read)
            .await?)
    }

    /// Fires a batch of crons in one transaction (group commit). Batches whose crons all
    /// queue their runs under `enqueue` take the fast path (a handful of multi-row statements
    /// for the whole batch); the rest, and any batch the fast path refuses, fire one by one.
    ///
    /// With a `claim`, up to `slots` of the runs that are due and first in line on their
    /// thread are queued already claimed for this process's workers; they are returned to be
    /// started, with the runs fired ahead of their instant.
    pub async fn fire(
        &self,
        fires: &[Fire],
        now: Millis,
        make_run: &MakeRun<'_>,
        claim: Option<&Claim>,
        slots: usize,
    ) -> Result<(Vec<Fired>, Queued)> {
        // The fast path takes crons that enqueue their runs and decide nothing per instant.
        let plain = fires.iter().all(|fire| {
            let cron = &fire.cron;
            MultitaskStrategy::of_payload(&cron.payload) == MultitaskStrategy::Enqueue
                && cron.overlap == Overlap::Allow
                && cron.remaining_runs.is_none()
        });
        if plain
            && let Some(fired) = self
                .fire_batched(fires, now, make_run, claim, slots)
                .await?
        {
            self.changes.touch();
            return Ok(fired);
        }
        let fired = self
            .fire_one_by_one(fires, now, make_run, claim, slots)
            .await;
        self.changes.touch();
        fired
    }

    /// The fast path: claims each cron, then inserts every fire-log row, thread and run of
    /// the batch with multi-row statements. None (nothing written) if an instant turns out
    /// to be in the fire log already, so the careful path can sort it out.
    async fn fire_batched(
        &self,
        fires: &[Fire],
        now: Millis,
        make_run: &MakeRun<'_>,
        claim: Option<&Claim>,
        slots: usize,
    ) -> Result<Option<(Vec<Fired>, Queued)>> {
        // The runs are built before the transaction: the writer is held for the writes only.
        // Instants recorded ahead get theirs at the instant.
        let planned: Vec<Vec<(Millis, Option<run::Model>)>> = fires
            .iter()
            .map(|fire| {
                let cron = &fire.cron;
                fire.instants
                    .iter()
                    .map(|&instant| {
                        let run =
                            (!records_ahead(cron, instant, now)).then(|| make_run(cron, instant));
                        (instant, run)
                    })
                    .collect()
            })
            .collect();
        let txn = self.write.begin().await?;
        if !claim_all(&txn, fires).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        let mut results = Vec::with_capacity(fires.len());
        let mut log = Vec::new();
        let mut runs = Vec::new();
        let mut scheduled = Vec::new();
        for (fire, planned) in fires.iter().zip(planned) {
            let mut fired = Vec::new();
            log.extend(
                fire.missed
                    .as_ref()
                    .map(|missed| missed_row(&fire.cron, missed, now)),
            );
            let mut recorder = Recorder::of(&fire.cron);
            for (instant, run) in planned {
                let Some(run) = run else {
                    let (entry, ahead) = recorder.record(instant, now);
                    log.push(entry);
                    scheduled.push(ahead);
                    continue;
                };
                fired.push((instant, run.run_id.clone()));
                log.push(fire_log_row(
                    &fire.cron,
                    instant,
                    Some(&run),
                    FireOutcome::Fired,
                    now,
                ));
                runs.push(run);
            }
            results.push(Fired::Claimed {
                runs: fired,
                rejected: Vec::new(),
                skipped: Vec::new(),
            });
        }
        let alerts = missed_alerts(self.alert_routes.get(), fires.iter(), now);
        if !record_all(&txn, log).await? {
            txn.rollback().await?;
            return Ok(None);
        }
        let queued = self.queue_batched(&txn, runs, claim, slots, now).await?;
        OutboxRows::write(&txn, alerts).await?;
        txn.commit().await?;
        let started = Queued {
            scheduled,
            ..Queued::of(queued, now)
        };
        Ok(Some((results, started)))
    }

    /// The careful path: each cron claimed and each instant queued on its own, under the
    /// cron's multitask strategy.
    async fn fire_one_by_one(
        &self,
        fires: &[Fire],
        now: Millis,
        make_run: &MakeRun<'_>,
        claim: Option<&Claim>,
        mut slots: usize,
    ) -> Result<(Vec<Fired>, Queued)> {
        let txn = self.write.begin().await?;
        let mut results = Vec::with_capacity(fires.len());
        let mut started = Queued::default();
        for (fire, ours) in fires.iter().zip(claim_crons(&txn, fires).await?) {
            let cron = &fire.cron;
            if !ours {
                results.push(Fired::Lost);
                continue;
            }
            let mut runs = Vec::new();
            let mut rejected = Vec::new();
            let mut skipped = Vec::new();
            let mut remaining = match cron.remaining_runs {
                Some(_) => remaining_runs(&txn, &cron.cron_id).await?,
                None => None,
            };
            if let Some(missed) = &fire.missed {
                let recorded = CronFires::insert(missed_row(cron, missed, now))
                    .on_conflict(once_per_instant())
                    .exec_without_returning(&txn)
                    .await?;
                if recorded > 0 {
                    let routes = self.alert_routes.get();
                    OutboxRows::write(&txn, missed_alerts(routes, std::iter::once(fire), now))
                        .await?;
                }
            }
            let mut recorder = Recorder::of(cron);
            for &instant in &fire.instants {
                if remaining == Some(0) {
                    break;
                }
                if records_ahead(cron, instant, now) {
                    let (entry, scheduled) = recorder.record(instant, now);
                    let recorded = CronFires::insert(entry)
                        .on_conflict(once_per_instant())
                        .exec_without_returning(&txn)
                        .await?;
                    if recorded > 0 {
                        if let Some(left) = &mut remaining {
                            *left -= 1;
                        }
                        started.scheduled.push(scheduled);
                    }
                    continue;
                }
                let mut run = make_run(cron, instant);
                let recorded = CronFires::insert(fire_log_row(
                    cron,
                    instant,
                    Some(&run),
                    FireOutcome::Fired,
                    now,
                ))
                .on_conflict(once_per_instant())
                .exec_without_returning(&txn)
                .await?;
                if recorded == 0 {
                    continue; // this instant already fired
                }
                let decision = match cron.thread_id {
                    Some(_) => Decision::Run,
                    None => {
                        overlap::decide(
                            &txn,
                            &cron.cron_id,
                            cron.overlap,
                            now,
                            &mut started.stopping,
                        )
                        .await?
                    }
                };
                match decision {
                    Decision::Run => {}
                    Decision::Hold => {
                        run.available_at = overlap::HELD;
                        overlap::count_held(&txn, &cron.cron_id, 1).await?;
                    }
                    Decision::Skip => {
                        fire_log_row(cron, instant, None, FireOutcome::Skipped, now)
                            .update(&txn)
                            .await?;
                        skipped.push(instant);
                        continue;
                    }
                }
                if let Some(left) = &mut remaining {
                    *left -= 1;
                }
                let run_id = run.run_id.clone();
                let place = Place {
                    claim,
                    slots: &mut slots,
                    started: &mut started,
                    now,
                };
                if self.queue_instant(&txn, cron, run, place).await? {
                    runs.push((instant, run_id));
                } else {
                    rejected.push(instant);
                }
            }
            if let Some(left) = remaining {
                spend_runs(&txn, &cron.cron_id, left, now).await?;
            }
            results.push(Fired::Claimed {
                runs,
                rejected,
                skipped,
            });
        }
        txn.commit().await?;
        Ok((results, started))
    }

    /// Queues the run of `cron`'s instant, whose entry says `fired`, under the cron's
    /// multitask strategy; a refusal (the thread busy under `reject`, or gone) makes the
    /// entry `rejected`. Whether the run was queued.
    async fn queue_instant(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        cron: &cron::Model,
        run: run::Model,
        place: Place<'_>,
    ) -> Result<bool> {
        let instant = run.scheduled_for.unwrap_or(place.now);
        let strategy = MultitaskStrategy::of_payload(&cron.payload);
        let metadata = self.assistant_metadata(&run.assistant_id);
        let claim = place.claim.filter(|_| *place.slots > 0);
        match queue_run(txn, run, strategy, if_thread_missing(cron), metadata, claim).await {
            Ok(created) => {
                if created.claimed {
                    *place.slots -= 1;
                }
                place.started.stopping.extend(created.flagged);
                place.started.add(created.run, created.claimed, place.now);
                Ok(true)
            }
            Err(Error::Conflict(_)) | Err(Error::NotFound(_)) => {
                CronFires::update_many()
                    .col_expr(
                        cron_fire::Column::Outcome,
                        Expr::value(FireOutcome::Rejected),
                    )
                    .col_expr(cron_fire::Column::RunId, Expr::value(None::<String>))
                    .col_expr(cron_fire::Column::RunStatus, Expr::value(None::<String>))
                    .col_expr(cron_fire::Column::DueAt, Expr::value(None::<Millis>))
                    .filter(cron_fire::Column::CronId.eq(cron.cron_id.clone()))
                    .filter(cron_fire::Column::ScheduledFor.eq(instant))
                    .exec(txn)
                    .await?;
                Ok(false)
            }
            Err(err) => Err(err),
        }
    }

    /// Fires instants recorded ahead (see `Scheduled`) whose instant has come. Each entry
    /// turns `fired` only if it is still `scheduled`, so it fires once whichever replica
    /// gets there first, and not at all once an edit of its cron withdrew it; its run is
    /// then queued under the cron's multitask strategy, decided now. Instants whose crons
    /// all enqueue take a few multi-row statements for the whole batch; the others go one
    /// by one. With a `claim`, up to `slots` of the runs first in line on their thread are
    /// claimed for this process's workers.
    pub async fn release(
        &self,
        due: &[Scheduled],
        now: Millis,
        make_run: &MakeRun<'_>,
        claim: Option<&Claim>,
        slots: usize,
    ) -> Result<(Vec<Released>, Queued)> {
        // The runs are built before the transaction: the writer is held for the writes only.
        let runs = || -> Vec<run::Model> {
            due.iter()
                .map(|ahead| {
                    let mut run = make_run(&ahead.cron, ahead.instant);
                    run.run_id = ahead.run_id.clone();
                    run
                })
                .collect()
        };
        let plain = due.iter().all(|ahead| {
            MultitaskStrategy::of_payload(&ahead.cron.payload) == MultitaskStrategy::Enqueue
        });
        let released = if plain
            && let Some(released) = self.release_batched(due, runs(), now, claim, slots).await?
        {
            released
        } else {
            self.release_one_by_one(due, runs(), now, claim, slots)
                .await?
        };
        self.changes.touch();
        Ok(released)
    }

    /// `release`'s fast path: every entry turned `fired` by one UPDATE per chunk, then
    /// the runs queued together. None (nothing written) when an entry was no longer
    /// `scheduled`, so the careful path can sort out which.
    async fn release_batched(
        &self,
        due: &[Scheduled],
        runs: Vec<run::Model>,
        now: Millis,
        claim: Option<&Claim>,
        slots: usize,
    ) -> Result<Option<(Vec<Released>, Queued)>> {
        let txn = self.write.begin().await?;
        let mut fired = 0;
        for chunk in due.chunks(CASE_ROWS) {
            fired += mark_fired(&txn, chunk).await?;
        }
        if fired != due.len() as u64 {
            txn.rollback().await?;
            return Ok(None);
        }
        let queued = self.queue_batched(&txn, runs, claim, slots, now).await?;
        txn.commit().await?;
        Ok(Some((
            vec![Released::Fired; due.len()],
            Queued::of(queued, now),
        )))
    }

    /// Queues `runs` together (see `queue_runs_batched`), each with its assistant's
    /// metadata.
    async fn queue_batched(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        runs: Vec<run::Model>,
        claim: Option<&Claim>,
        slots: usize,
        now: Millis,
    ) -> Result<Vec<Created>> {
        let runs = runs
            .into_iter()
            .map(|run| {
                let metadata = self.assistant_metadata(&run.assistant_id);
                (run, metadata)
            })
            .collect();
        queue_runs_batched(txn, runs, claim, slots, now).await
    }

    /// `release`'s careful path: each entry turned `fired` and its run queued on its own.
    async fn release_one_by_one(
        &self,
        due: &[Scheduled],
        runs: Vec<run::Model>,
        now: Millis,
        claim: Option<&Claim>,
        mut slots: usize,
    ) -> Result<(Vec<Released>, Queued)> {
        let txn = self.write.begin().await?;
        let mut released = Vec::with_capacity(due.len());
        let mut started = Queued::default();
        for (ahead, run) in due.iter().zip(runs) {
            if mark_fired(&txn, std::slice::from_ref(ahead)).await? == 0 {
                released.push(Released::Lost);
                continue;
            }
            let place = Place {
                claim,
                slots: &mut slots,
                started: &mut started,
                now,
            };
            released.push(
                if self.queue_instant(&txn, &ahead.cron, run, place).await? {
                    Released::Fired
                } else {
                    Released::Rejected
                },
            );
        }
        txn.commit().await?;
        Ok((released, started))
    }

    /// Instants recorded ahead that are due by `before` and still `scheduled`, earliest
    /// first, at most `limit`: those of a scheduler that died before their instant (or of
    /// one holding more than it keeps in memory), for any replica to fire.
    pub async fn due_scheduled(&self, before: Millis, limit: u64) -> Result<Vec<Scheduled>> {
        let entries: Vec<(String, Millis, Option<String>)> = scheduled_due_by(before)
            .select_only()
            .columns([
                cron_fire::Column::CronId,
                cron_fire::Column::ScheduledFor,
                cron_fire::Column::RunId,
            ])
            .limit(limit)
            .into_tuple()
            .all(&self.read)
            .await?;
        let mut ids: Vec<String> = entries.iter().map(|(id, ..)| id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let crons: HashMap<String, Arc<cron::Model>> = self
            .crons_by_id::<cron::Model>(ids)
            .await?
            .into_iter()
            .map(|cron| (cron.cron_id.clone(), Arc::new(cron)))
            .collect();
        Ok(entries
            .into_iter()
            .filter_map(|(cron_id, instant, run_id)| {
                Some(Scheduled {
                    cron: crons.get(&cron_id)?.clone(),
                    instant,
                    run_id: run_id?,
                })
            })
            .collect())
    }

    /// Trims the crons' history (the fire log): entries written before `history_before`,
    /// and each cron's entries beyond its newest `keep_per_cron`, whichever keeps fewer. Then
    /// deletes finished webhook deliveries last changed before `deliveries_before`. How many
    /// entries and deliveries were deleted.
    pub async fn sweep_history(
        &self,
        history_before: Millis,
        keep_per_cron: u64,
        deliveries_before: Millis,
    ) -> Result<(u64, u64)> {
        let mut fires = CronFires::delete_many()
            .filter(cron_fire::Column::FiredAt.lt(history_before))
            .exec(&self.write)
            .await?
            .rows_affected;
        let crowded: Vec<String> = CronFires::find()
            .select_only()
            .column(cron_fire::Column::CronId)
            .group_by(cron_fire::Column::CronId)
            .having(
                Expr::col(cron_fire::Column::CronId)
                    .count()
                    .gt(keep_per_cron),
            )
            .into_tuple()
            .all(&self.read)
            .await?;
        for cron_id in crowded {
            // The oldest entry kept; the ones before it go.
            let oldest_kept: Option<Millis> = CronFires::find()
                .select_only()
                .column(cron_fire::Column::ScheduledFor)
                .filter(cron_fire::Column::CronId.eq(cron_id.clone()))
                .order_by_desc(cron_fire::Column::ScheduledFor)
                .offset(keep_per_cron.saturating_sub(1))
                .limit(1)
                .into_tuple()
                .one(&self.read)
                .await?;
            if let Some(oldest_kept) = oldest_kept {
                fires += CronFires::delete_many()
                    .filter(cron_fire::Column::CronId.eq(cron_id))
                    .filter(cron_fire::Column::ScheduledFor.lt(oldest_kept))
                    .exec(&self.write)
                    .await?
                    .rows_affected;
            }
        }
        let before = deliveries_before;
        let deliveries = entity::delivery::Entity::delete_many()
            .filter(entity::delivery::Column::Status.is_in(DeliveryStatus::FINISHED))
            .filter(entity::delivery::Column::UpdatedAt.lt(before))
            .exec(&self.write)
            .await?
            .rows_affected;
        Ok((fires, deliveries))
    }

    /// Records a manual trigger in the cron's history and queues its run (the schedule does
    /// not move). The entry's key, and the run's `scheduled_for`, is the trigger's instant,
    /// moved on a millisecond when it is a whole second (a scheduled instant's key) or taken
    /// by another trigger.
    pub async fn trigger(
        &self,
        cron: &cron::Model,
        mut run: run::Model,
        now: Millis,
    ) -> Result<run::Model> {
        let txn = self.write.begin().await?;
        let mut key = now;
        for _ in 0..1000 {
            key = trigger_key(key);
            run.scheduled_for = Some(key);
            let recorded = CronFires::insert(fire_log_row(
                cron,
                key,
                Some(&run),
                FireOutcome::Triggered,
                now,
            ))
            .on_conflict(once_per_instant())
            .exec_without_returning(&txn)
            .await?;
            if recorded == 1 {
                break;
            }
            key += 1;
        }
        let if_missing = if_thread_missing(cron);
        let metadata = self.assistant_metadata(&run.assistant_id);
        let created = queue_run(
            &txn,
            run,
            MultitaskStrategy::of_payload(&cron.payload),
            if_missing,
            metadata,
            None,
        )
        .await?;
        txn.commit().await?;
        Ok(created.run)
    }
}

/// The history key of a manual trigger at `at`: `at`, or the next millisecond when `at` is a
/// whole second (scheduled instants are whole seconds).
fn trigger_key(at: Millis) -> Millis {
    if at % 1000 == 0 { at + 1 } else { at }
}

/// The fire-log row of `cron`'s instant `instant`, recorded at `now`, with its run (queued:
/// the run's end fills in the rest).
pub(super) fn fire_log_row(
    cron: &cron::Model,
    instant: Millis,
    run: Option<&run::Model>,
    outcome: FireOutcome,
    now: Millis,
) -> cron_fire::ActiveModel {
    entry(cron_fire::Model {
        cron_id: cron.cron_id.clone(),
        scheduled_for: instant,
        run_id: run.map(|run| run.run_id.clone()),
        outcome,
        fired_at: now,
        last_scheduled_for: None,
        instants: 1,
        misfire_policy: None,
        run_status: run.map(|run| run.status),
        started_at: run.and_then(|run| run.started_at),
        ended_at: None,
        error: None,
        delivery_id: None,
        webhook_status: None,
        webhook_attempts: None,
        // Scheduled instants start after the cron's jitter; the others when queued.
        due_at: Some(jitter::start(cron, instant)).filter(|&at| {
            matches!(outcome, FireOutcome::Fired | FireOutcome::Scheduled) && at > instant
        }),
    })
}

/// Records one thread cron's instants ahead (see `Scheduled`), its row shared among them.
struct Recorder<'a> {
    cron: &'a cron::Model,
    shared: Option<Arc<cron::Model>>,
}

impl<'a> Recorder<'a> {
    fn of(cron: &'a cron::Model) -> Recorder<'a> {
        Recorder { cron, shared: None }
    }

    /// The `scheduled` history entry of `instant`, recorded at `now`, and what fires it.
    fn record(&mut self, instant: Millis, now: Millis) -> (cron_fire::ActiveModel, Scheduled) {
        let run_id = uuid::Uuid::now_v7().to_string();
        let mut entry = fire_log_row(self.cron, instant, None, FireOutcome::Scheduled, now);
        entry.run_id = Set(Some(run_id.clone()));
        let cron = self
            .shared
            .get_or_insert_with(|| Arc::new(self.cron.clone()))
            .clone();
        let scheduled = Scheduled {
            cron,
            instant,
            run_id,
        };
        (entry, scheduled)
    }
}

/// The `instant_missed` alerts of `fires`' missed entries (none without a route for them).
fn missed_alerts<'a>(
    routes: &[AlertRouteConfig],
    fires: impl Iterator<Item = &'a Fire>,
    now: Millis,
) -> Vec<entity::delivery::Model> {
    if !alerts::wanted(routes, AlertEvent::InstantMissed) {
        return Vec::new();
    }
    let events: Vec<alerts::Event> = fires
        .filter_map(|fire| {
            let missed = fire.missed.as_ref()?;
            Some(alerts::Event {
                event: AlertEvent::InstantMissed,
                cron: &fire.cron,
                run: None,
                scheduled_for: Some(missed.first),
                consecutive_failures: fire.cron.consecutive_failures,
                change: true,
                lateness: None,
                missed: Some(missed.count),
            })
        })
        .collect();
    alerts::deliveries(routes, &events, now)
}

/// The history entry of instants missed in a row, decided at `now`.
fn missed_row(cron: &cron::Model, missed: &Missed, now: Millis) -> cron_fire::ActiveModel {
    entry(cron_fire::Model {
        cron_id: cron.cron_id.clone(),
        scheduled_for: missed.first,
        run_id: None,
        outcome: FireOutcome::Missed,
        fired_at: now,
        last_scheduled_for: Some(missed.last),
        instants: missed.count as i64,
        misfire_policy: Some(missed.policy.as_str().to_string()),
        run_status: None,
        started_at: None,
        ended_at: None,
        error: None,
        delivery_id: None,
        webhook_status: None,
        webhook_attempts: None,
        due_at: None,
    })
}

/// Every column set, so that rows go into one multi-row insert.
fn entry(model: cron_fire::Model) -> cron_fire::ActiveModel {
    model.into_active_model().reset_all()
}

/// Records history entries with multi-row inserts; false when an instant among them was in
/// the fire log already (the caller rolls back).
pub(super) async fn record_all(
    txn: &sea_orm::DatabaseTransaction,
    entries: Vec<cron_fire::ActiveModel>,
) -> Result<bool> {
    let expected = entries.len() as u64;
    let mut recorded = 0;
    for chunk in chunked(entries, 500) {
        recorded += CronFires::insert_many(chunk)
            .on_conflict(once_per_instant())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(recorded == expected)
}

/// An instant already in the fire log is not recorded again (the unique key is
/// (cron_id, scheduled_for)): the insert writes nothing, which says it fired already.
fn once_per_instant() -> OnConflict {
    OnConflict::columns([cron_fire::Column::CronId, cron_fire::Column::ScheduledFor])
        .do_nothing()
        .to_owned()
}

/// The cron's `remaining_runs` as stored (its row is locked by the fire's claim).
async fn remaining_runs(txn: &sea_orm::DatabaseTransaction, cron_id: &str) -> Result<Option<i64>> {
    Ok(Crons::find_by_id(cron_id.to_string())
        .select_only()
        .column(Column::RemainingRuns)
        .into_tuple::<Option<i64>>()
        .one(txn)
        .await?
        .flatten())
}

/// Stores what is left of the cron's run limit after a fire; at 0 the cron is disabled
/// with the note "run limit reached".
async fn spend_runs(
    txn: &sea_orm::DatabaseTransaction,
    cron_id: &str,
    left: i64,
    now: Millis,
) -> Result<()> {
    let mut update = Crons::update_many()
        .col_expr(Column::RemainingRuns, Expr::value(left))
        .filter(Column::CronId.eq(cron_id));
    if left <= 0 {
        update = update
            .col_expr(Column::Enabled, Expr::value(false))
            .col_expr(Column::PauseNote, Expr::value(RUN_LIMIT_REACHED))
            .col_expr(Column::UpdatedAt, Expr::value(now));
    }
    update.exec(txn).await?;
    Ok(())
}

/// The `pause_note` of a cron that fired its last allowed run.
pub const RUN_LIMIT_REACHED: &str = "run limit reached";

/// Where a cron's runs go when their thread is missing: a thread cron's thread must exist;
/// a stateless cron's runs each have a new one.
fn if_thread_missing(cron: &cron::Model) -> IfThreadMissing {
    match cron.thread_id {
        Some(_) => IfThreadMissing::Reject,
        None => IfThreadMissing::CreateNew,
    }
}

/// Takes back what `cron_id` fired or recorded ahead of its instants and has not started:
/// instants recorded ahead (`scheduled`, see `Scheduled`), whatever their instant, and the
/// runs of stateless instants still to come, with their threads (made for them alone) and
/// history entries. A changed cron fires those instants afresh, from its new row; a deleted
/// one not at all. The instants withdrawn, earliest first.
pub(super) async fn withdraw_prefired(
    txn: &sea_orm::DatabaseTransaction,
    cron_id: &str,
    now: Millis,
) -> Result<Vec<Millis>> {
    let recorded = CronFires::find()
        .select_only()
        .column(cron_fire::Column::ScheduledFor)
        .filter(cron_fire::Column::CronId.eq(cron_id))
        .filter(cron_fire::Column::Outcome.eq(FireOutcome::Scheduled));
    let mut scheduled: Vec<Millis> = recorded.into_tuple().all(txn).await?;
    if !scheduled.is_empty() {
        CronFires::delete_many()
            .filter(cron_fire::Column::CronId.eq(cron_id))
            .filter(cron_fire::Column::Outcome.eq(FireOutcome::Scheduled))
            .exec(txn)
            .await?;
    }
    let mut withdrawn = withdraw_fired_ahead(txn, cron_id, now).await?;
    withdrawn.append(&mut scheduled);
    withdrawn.sort_unstable();
    Ok(withdrawn)
}

/// The stateless part of `withdraw_prefired`: runs fired ahead, not started.
async fn withdraw_fired_ahead(
    txn: &sea_orm::DatabaseTransaction,
    cron_id: &str,
    now: Millis,
) -> Result<Vec<Millis>> {
    let ahead: Vec<(Millis, Option<String>)> = CronFires::find()
        .select_only()
        .columns([cron_fire::Column::ScheduledFor, cron_fire::Column::RunId])
        .filter(cron_fire::Column::CronId.eq(cron_id))
        .filter(cron_fire::Column::ScheduledFor.gt(now))
        .filter(cron_fire::Column::Outcome.eq(FireOutcome::Fired))
        .into_tuple()
        .all(txn)
        .await?;
    if ahead.is_empty() {
        return Ok(Vec::new());
    }
    let unstarted: Vec<(String, Option<Millis>)> = entity::run::Entity::find()
        .select_only()
        .columns([run::Column::ThreadId, run::Column::ScheduledFor])
        .filter(run::Column::RunId.is_in(ahead.iter().filter_map(|(_, id)| id.clone())))
        .filter(run::Column::Status.eq(RunStatus::Pending))
        .filter(run::Column::OnCompletion.is_not_null())
        .into_tuple()
        .all(txn)
        .await?;
    let mut instants: Vec<Millis> = unstarted.iter().filter_map(|(_, at)| *at).collect();
    instants.sort_unstable();
    if instants.is_empty() {
        return Ok(instants);
    }
    // The runs go with their threads (the foreign key cascades).
    entity::thread::Entity::delete_many()
        .filter(
            entity::thread::Column::ThreadId.is_in(unstarted.into_iter().map(|(thread, _)| thread)),
        )
        .exec(txn)
        .await?;
    CronFires::delete_many()
        .filter(cron_fire::Column::CronId.eq(cron_id))
        .filter(cron_fire::Column::ScheduledFor.is_in(instants.iter().copied()))
        .exec(txn)
        .await?;
    Ok(instants)
}

/// The fast path's claim: moves every cron's `next_run_at` on with one UPDATE whose condition
/// is, per cron, that its row is still exactly as the scheduler read it. True when all were
/// claimed; otherwise (another replica or an API change got there first) the caller rolls
/// back and takes the careful path, which sorts out which ones.
async fn claim_all(txn: &sea_orm::DatabaseTransaction, fires: &[Fire]) -> Result<bool> {
    lock_crons(txn, fires.iter().map(|fire| fire.cron.cron_id.clone())).await?;
    for chunk in fires.chunks(CASE_ROWS) {
        let unchanged = chunk.iter().map(|fire| {
            let seen = &fire.cron;
            let same = Expr::col(Column::NextRunAt)
                .eq(seen.next_run_at)
                .and(Expr::col(Column::UpdatedAt).eq(seen.updated_at));
            (seen.cron_id.clone(), same)
        });
        let moved = chunk
            .iter()
            .map(|fire| (fire.cron.cron_id.clone(), Expr::value(fire.new_next)));
        let claimed = Crons::update_many()
            .col_expr(
                Column::NextRunAt,
                expr_by_key(Column::CronId, moved, Expr::col(Column::NextRunAt)),
            )
            .filter(Column::CronId.is_in(chunk.iter().map(|fire| fire.cron.cron_id.clone())))
            .filter(Column::Enabled.eq(true))
            .filter(expr_by_key(Column::CronId, unchanged, Expr::val(false)))
            .exec(txn)
            .await?;
        if claimed.rows_affected != chunk.len() as u64 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Claims crons for their fires: moves each one's `next_run_at` on, provided its row is
/// still exactly as the scheduler read it (enabled, same instant, not changed through the
/// API since). The rows are read locked in `cron_id` order (PostgreSQL: a replica claiming
/// the same cron waits, then sees it moved on; see `lock_crons`) and moved with one UPDATE.
/// Whether each was claimed.
async fn claim_crons(txn: &sea_orm::DatabaseTransaction, fires: &[Fire]) -> Result<Vec<bool>> {
    type Seen = (bool, Option<Millis>, Millis);
    let mut current: HashMap<String, Seen> = Crons::find()
        .select_only()
        .columns([
            Column::CronId,
            Column::Enabled,
            Column::NextRunAt,
            Column::UpdatedAt,
        ])
        .filter(Column::CronId.is_in(fires.iter().map(|fire| fire.cron.cron_id.clone())))
        .order_by_asc(Column::CronId)
        .lock_exclusive()
        .into_tuple::<(String, bool, Option<Millis>, Millis)>()
        .all(txn)
        .await?
        .into_iter()
        .map(|(id, enabled, next, updated)| (id, (enabled, next, updated)))
        .collect();
    let mut claimed = Vec::with_capacity(fires.len());
    let mut moved = Vec::new();
    for fire in fires {
        let seen = &fire.cron;
        let row = current
            .get_mut(&seen.cron_id)
            .filter(|(enabled, next, updated)| {
                *enabled && *next == seen.next_run_at && *updated == seen.updated_at
            });
        claimed.push(row.is_some());
        if let Some((_, next, _)) = row {
            *next = fire.new_next;
            moved.push((seen.cron_id.clone(), fire.new_next));
        }
    }
    for chunk in chunked(moved, CASE_ROWS) {
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
        Crons::update_many()
            .col_expr(
                Column::NextRunAt,
                value_by_key(Column::CronId, chunk, Expr::col(Column::NextRunAt)),
            )
            .filter(Column::CronId.is_in(ids))
            .exec(txn)
            .await?;
    }
    Ok(claimed)
}

/// A cron's id, next instant and last change (`updated_at`).
pub type CronVersion = (String, Option<Millis>, Millis);
