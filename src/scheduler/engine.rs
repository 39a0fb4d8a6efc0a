//! The scheduler loop: keeps the timer fed from the store, sleeps exactly until the earliest
//! instant (or the next refresh), then plans and fires everything due in batches.
//!
//! Stateless crons are fired `prefire` ahead of their instant: their runs are written then,
//! waiting for the instant. Just before the instant the scheduler claims them for local
//! worker slots (one UPDATE by id), and each is launched at the instant by a timer. Writing
//! a burst of fires, and claiming it, take tens of milliseconds; doing both ahead keeps that
//! cost out of the runs' start. Thread crons fire at the instant, since a run queued early
//! would hold up the thread's queue. A run fired ahead is durable like any other: if this
//! process dies, any worker starts it when it is due; if its cron is changed or deleted
//! before the claim, the store withdraws it.
//!
//! Instants are wall-clock UTC milliseconds; sleeping uses tokio's monotonic clock, and the
//! wait is recomputed from the wall clock on every turn, so a clock jump neither fires
//! anything twice (the store's unique key and conditional claim forbid it) nor skips anything
//! silently (late instants go through the misfire policy, which logs and counts them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use entity::{cron, run};

use super::policy::{MisfirePolicy, plan};
use super::timer::Timer;
use crate::config::SchedulerConfig;
use crate::runs::spec::cron_run;
use crate::runs::{Control, Slot};
use crate::schedule::{Schedule, parse_timezone};
use crate::store::Store;
use crate::store::fires::{Fire, Fired};
use crate::time::{Millis, now_ms, to_datetime};

/// Bounds of how long before their instant runs fired ahead are claimed (see `run`).
const MIN_CLAIM_LEAD: Millis = 5;
const MAX_CLAIM_LEAD: Millis = 100;

/// Runs fired ahead claimed by one statement at most.
const MAX_CLAIM_AHEAD: usize = 1024;
/// Runs fired ahead held in memory (with their rows) at most.
const MAX_HELD_AHEAD: usize = 10_000;

/// At most this many missed instants are enumerated for one cron in one fire.
const MAX_INSTANTS: usize = 100_000;

/// Wakes the scheduler when crons change through the local API.
#[derive(Clone, Default)]
pub struct SchedulerHandle {
    changed: Arc<Notify>,
}

impl SchedulerHandle {
    pub fn cron_changed(&self) {
        self.changed.notify_one();
    }
}

pub struct Scheduler {
    store: Store,
    runs: Control,
    handle: SchedulerHandle,
    settings: SchedulerConfig,
    /// Graph names by assistant id, for the runs' kwargs.
    graphs: HashMap<String, String>,
}

/// Runs fired ahead of their instant, by (instant, run id), until the scheduler starts them.
type Ahead = BTreeMap<(Millis, String), run::Model>;

/// A parsed schedule and its time zone.
struct Parsed {
    schedule: Schedule,
    zone: Tz,
}

/// Parsed schedules by time zone, then expression: crons with the same schedule share one
/// (a parsed schedule takes about 7 KB: one per cron was 68 MB of heap at 10,000 crons).
#[derive(Default)]
struct ParsedSchedules(HashMap<Option<String>, HashMap<String, Parsed>>);

impl ParsedSchedules {
    /// The cron's schedule, parsed on first use; None if it does not parse.
    fn of(&mut self, cron: &cron::Model) -> Option<&Parsed> {
        let known = self
            .0
            .get(&cron.timezone)
            .is_some_and(|by_expression| by_expression.contains_key(&cron.schedule));
        if !known {
            let schedule = Schedule::parse(&cron.schedule).ok()?;
            let zone = parse_timezone(cron.timezone.as_deref()).ok()?;
            self.0
                .entry(cron.timezone.clone())
                .or_default()
                .insert(cron.schedule.clone(), Parsed { schedule, zone });
        }
        self.0.get(&cron.timezone)?.get(&cron.schedule)
    }

    /// Drops the schedules no cron in the timer uses; they are parsed again when one is due.
    fn forget_unused(&mut self, timer: &Timer) {
        let used: HashSet<(&Option<String>, &String)> = timer
            .crons()
            .map(|cron| (&cron.timezone, &cron.schedule))
            .collect();
        for (zone, by_expression) in self.0.iter_mut() {
            by_expression.retain(|expression, _| used.contains(&(zone, expression)));
        }
        self.0.retain(|_, by_expression| !by_expression.is_empty());
    }
}

impl Scheduler {
    pub fn new(
        store: Store,
        runs: Control,
        handle: SchedulerHandle,
        settings: SchedulerConfig,
        graphs: HashMap<String, String>,
    ) -> Scheduler {
        Scheduler {
            store,
            runs,
            handle,
            settings,
            graphs,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let window = self.settings.window.as_millis() as Millis;
        let refresh = self.settings.refresh_interval.as_millis() as Millis;
        let mut timer = Timer::with_lead(self.settings.prefire.as_millis() as Millis);
        let mut ahead = Ahead::new();
        // How long before their instant runs fired ahead are claimed: about twice what the
        // last claim took, so they are running in the store when the instant comes.
        let mut claim_lead: Millis = MIN_CLAIM_LEAD;
        let mut parsed = ParsedSchedules::default();
        let mut next_reload: Millis = 0;
        let mut next_refresh: Millis = 0;
        let mut changes_since: Millis = now_ms();
        while !shutdown.is_cancelled() {
            let now = now_ms();
            if now >= next_reload {
                match self.load_due(&timer, now + window).await {
                    Ok(crons) => {
                        for cron in crons {
                            timer.upsert(cron, now + window);
                        }
                        parsed.forget_unused(&timer);
                        next_reload = now + window / 2;
                        changes_since = now;
                        next_refresh = now + refresh;
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "loading due crons failed");
                        next_reload = now + 1_000;
                    }
                }
            } else if now >= next_refresh {
                // Changes made through any replica's API show within one refresh interval;
                // the slack covers clocks that disagree a little between replicas.
                match self.store.crons_changed_since(changes_since - 2_000).await {
                    Ok(crons) => {
                        for cron in crons {
                            timer.upsert(cron, now + window);
                        }
                        changes_since = now;
                    }
                    Err(err) => tracing::error!(error = %err, "reading changed crons failed"),
                }
                next_refresh = now + refresh;
            }

            // Starting runs at their instant comes before firing the next ones ahead.
            // Those without a free slot wait in `ahead` for one (they are due in the store
            // too, so an idle worker may take them first).
            let claim_before = now_ms() + claim_lead;
            let ready = |ahead: &Ahead| {
                ahead
                    .first_key_value()
                    .is_some_and(|((at, _), _)| *at <= claim_before)
            };
            if ready(&ahead) {
                let mut slots = self.runs.reserve_many(MAX_CLAIM_AHEAD);
                let mut runs = Vec::with_capacity(slots.len());
                while runs.len() < slots.len()
                    && ready(&ahead)
                    && let Some((_, run)) = ahead.pop_first()
                {
                    runs.push(run);
                }
                slots.truncate(runs.len());
                if !runs.is_empty() {
                    let claiming = std::time::Instant::now();
                    self.start(runs, slots).await;
                    let took = claiming.elapsed().as_millis() as Millis;
                    claim_lead = (2 * took).clamp(MIN_CLAIM_LEAD, MAX_CLAIM_LEAD);
                    continue;
                }
            }

            // One batch at a time, so runs fired ahead start on time during a long burst.
            let due = timer.pop_due(now_ms(), self.settings.batch_size.max(1));
            if !due.is_empty() {
                self.fire(due, &mut timer, &mut parsed, window, &mut ahead)
                    .await;
                continue;
            }

            // Runs due but without a slot wake the loop when one frees, not at an instant.
            let next_start = ahead.first_key_value().map(|((at, _), _)| *at - claim_lead);
            let slot_wanted = next_start.is_some_and(|at| at <= now_ms());
            let next_start = next_start.filter(|_| !slot_wanted);
            let wake_at = [
                next_start,
                timer.next_fire_at(),
                Some(next_refresh),
                Some(next_reload),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + refresh);
            let sleep = Duration::from_millis((wake_at - now_ms()).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.runs.slot_freed(), if slot_wanted => {}
                _ = self.handle.changed.notified() => next_refresh = 0,
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Claims runs fired ahead whose instant is (all but) here for the local `slots` (one
    /// each), where they start at their instant. A run the claim leaves out (withdrawn, or
    /// taken by a worker) is done with; after a failed claim they are all due in the store,
    /// where the workers take them. Slots left unused are freed when `slots` drops.
    async fn start(&self, runs: Vec<run::Model>, mut slots: Vec<Slot>) {
        if let Some(claim) = slots.first().map(Slot::claim) {
            match self.store.claim_ahead(runs, &claim).await {
                Ok(claimed) => {
                    for run in claimed {
                        let at = run.scheduled_for.unwrap_or(run.available_at);
                        if let Some(slot) = slots.pop() {
                            slot.start_at(run, at);
                        }
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "starting runs fired ahead failed");
                    // They are due in the store: let the workers take them.
                    self.runs.wake();
                }
            }
        }
    }

    async fn fire(
        &self,
        due: Vec<cron::Model>,
        timer: &mut Timer,
        parsed: &mut ParsedSchedules,
        window: Millis,
        ahead: &mut Ahead,
    ) {
        // A batch (see `pop_due`), stamped with its own time: runs record when they were
        // really queued and started, not when the first batch of a burst was.
        let now = now_ms();
        let mut fires = Vec::with_capacity(due.len());
        for cron in &due {
            let Some(expected) = cron.next_run_at else {
                continue;
            };
            let Some(entry) = parsed.of(cron) else {
                tracing::error!(cron_id = %cron.cron_id, schedule = %cron.schedule, "stored cron has an invalid schedule; not firing it");
                continue;
            };
            // Up to the instant being fired ahead (stateless crons) or now.
            let horizon = now + timer.lead(cron);
            let mut instants = vec![expected];
            let mut cursor = expected;
            while instants.len() < MAX_INSTANTS {
                match entry.schedule.next_after(to_datetime(cursor), entry.zone) {
                    Some(next) if next.timestamp_millis() <= horizon => {
                        cursor = next.timestamp_millis();
                        if cron.end_time.is_some_and(|end| cursor > end) {
                            break;
                        }
                        instants.push(cursor);
                    }
                    _ => break,
                }
            }
            let policy = cron
                .misfire_policy
                .as_deref()
                .and_then(MisfirePolicy::parse)
                .unwrap_or(self.settings.misfire_policy);
            let catchup = cron
                .catchup_window_seconds
                .map(|s| s * 1000)
                .unwrap_or(self.settings.catchup_window.as_millis() as Millis);
            let planned = plan(
                policy,
                &instants,
                now,
                self.settings.misfire_grace.as_millis() as Millis,
                catchup,
            );
            if planned.missed > 0 {
                metrics::counter!(crate::metrics::MISSED_INSTANTS).increment(planned.missed);
                tracing::warn!(
                    cron_id = %cron.cron_id,
                    missed = planned.missed,
                    policy = policy.as_str(),
                    "scheduled instants missed and not fired"
                );
            }
            let after = now.max(cursor);
            let new_next = entry
                .schedule
                .next_after(to_datetime(after), entry.zone)
                .map(|next| next.timestamp_millis())
                .filter(|next| cron.end_time.is_none_or(|end| *next <= end));
            fires.push(Fire {
                cron: cron.clone(),
                instants: planned.fire,
                new_next,
            });
        }
        let make_run = |cron: &cron::Model, instant: Millis| {
            let graph_id = self
                .graphs
                .get(&cron.assistant_id)
                .cloned()
                .unwrap_or_default();
            cron_run(cron, graph_id, instant, now)
        };
        // Free local slots let fired runs that are due start at once, in the fire's own
        // transaction (runs fired ahead are started at their instant).
        let due_now = fires
            .iter()
            .flat_map(|fire| &fire.instants)
            .filter(|&&instant| instant <= now)
            .count();
        let mut slots = self.runs.reserve_many(due_now);
        let claim = slots.first().map(Slot::claim);
        let fired = self
            .store
            .fire(&fires, now, &make_run, claim.as_ref(), slots.len())
            .await;
        match fired {
            Ok((results, queued)) => {
                for run in queued.claimed {
                    if let Some(slot) = slots.pop() {
                        slot.start(run);
                    }
                }
                drop(slots);
                // Beyond what the scheduler holds, runs fired ahead are left to the workers
                // (due in the store at their instant; found at their next poll).
                for run in queued
                    .ahead
                    .into_iter()
                    .take(MAX_HELD_AHEAD.saturating_sub(ahead.len()))
                {
                    let at = run.scheduled_for.unwrap_or(run.available_at);
                    ahead.insert((at, run.run_id.clone()), run);
                }
                for (fire, result) in fires.into_iter().zip(results) {
                    let mut cron = fire.cron;
                    match result {
                        Fired::Claimed { runs, rejected } => {
                            metrics::counter!(crate::metrics::FIRES).increment(runs.len() as u64);
                            if !rejected.is_empty() {
                                metrics::counter!(crate::metrics::REJECTED_FIRES)
                                    .increment(rejected.len() as u64);
                                tracing::warn!(cron_id = %cron.cron_id, instants = rejected.len(), "thread busy under multitask_strategy reject; instant not run");
                            }
                            for (instant, run_id) in runs {
                                tracing::debug!(cron_id = %cron.cron_id, %run_id, lateness_ms = now - instant, "fired");
                                if instant <= now {
                                    metrics::histogram!(crate::metrics::FIRE_LATENESS)
                                        .record((now - instant) as f64 / 1000.0);
                                }
                            }
                            cron.next_run_at = fire.new_next;
                            timer.upsert(cron, now + window);
                        }
                        Fired::Lost => match self.store.find_cron(&cron.cron_id).await {
                            Ok(Some(current)) => timer.upsert(current, now + window),
                            Ok(None) => timer.remove(&cron.cron_id),
                            Err(err) => {
                                tracing::error!(error = %err, "re-reading a cron failed")
                            }
                        },
                    }
                }
                self.runs.wake();
            }
            Err(err) => {
                tracing::error!(error = %err, crons = fires.len(), "firing crons failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                for cron in due {
                    timer.upsert(cron, now + window);
                }
            }
        }
    }

    /// The crons due before `horizon` that the timer does not hold as they are now: all of
    /// them at start, then those that came into the window or were changed elsewhere.
    async fn load_due(
        &self,
        timer: &Timer,
        horizon: Millis,
    ) -> crate::store::Result<Vec<cron::Model>> {
        let versions = self.store.due_cron_versions(horizon).await?;
        let missing: Vec<String> = versions
            .into_iter()
            .filter(|version| !timer.holds(version))
            .map(|(cron_id, _, _)| cron_id)
            .collect();
        self.store.crons_by_id(missing).await
    }
}
