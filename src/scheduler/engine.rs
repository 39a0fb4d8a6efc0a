//! The scheduler loop: keeps the timer fed from the store, sleeps exactly until the earliest
//! instant (or the next refresh), then plans and fires everything due in batches.
//!
//! Stateless crons are fired `prefire` ahead of their instant: their runs are written then,
//! waiting for the instant. Just before the instant the scheduler claims them for local
//! worker slots (one UPDATE by id), and each is launched at the instant by a timer. Writing
//! a burst of fires, and claiming it, take tens of milliseconds; doing both ahead keeps that
//! cost out of the runs' start. A run fired ahead is durable like any other: if this process
//! dies, any worker starts it when it is due; if its cron is changed or deleted before the
//! claim, the store withdraws it.
//!
//! Thread crons have their instants recorded `prefire` ahead (history entries `scheduled`):
//! the instant is claimed then, so it fires exactly once, but the run joins the thread's
//! queue only at the instant, where the thread's multitask strategy decides its fate (a run
//! queued early would hold up the thread, or be judged against the thread as it was before
//! the instant). The scheduler holds them and fires them at their instant; those of a
//! scheduler that died are fired by any replica's from the store a second later. Stateless
//! crons whose `overlap` looks at the runs active at the instant fire at the instant.
//!
//! Instants are wall-clock UTC milliseconds; sleeping uses tokio's monotonic clock, and the
//! wait is recomputed from the wall clock on every turn, so a clock jump neither fires
//! anything twice (the store's unique key and conditional claim forbid it) nor skips anything
//! silently (late instants go through the misfire policy, which logs and counts them).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use entity::{cron, run};

use super::policy::{MisfirePolicy, plan};
use super::timer::{Due, Timer};
use crate::config::SchedulerConfig;
use crate::runs::spec::cron_run;
use crate::runs::{Control, Slot};
use crate::schedule::{Dst, Schedule, parse_timezone};
use crate::store::Store;
use crate::store::fires::{CronTiming, Fire, Fired, Missed, Queued, Released, Scheduled};
use crate::time::{Millis, now_ms, to_datetime};

/// Bounds of how long before their instant runs fired ahead are claimed (see `run`).
const MIN_CLAIM_LEAD: Millis = 5;
const MAX_CLAIM_LEAD: Millis = 100;

/// Runs fired ahead claimed by one statement at most.
const MAX_CLAIM_AHEAD: usize = 1024;
/// Runs fired ahead held in memory (with their rows) at most, of bursts and of the others
/// each (see `Ahead`).
const MAX_HELD_AHEAD: usize = 10_000;

/// Crons read into the timer per turn of the loop (see `load_some`).
const LOAD_CHUNK: usize = 5_000;

/// How long the loop waits before firing again after the store failed a fire.
const FAILED_FIRE_PAUSE: Duration = Duration::from_millis(200);

/// Instants recorded ahead by a scheduler are left to it for this long past their instant
/// before another replica's scheduler fires them from the store (see `release_orphans`).
const ORPHAN_GRACE: Millis = 1_000;

/// Instants recorded ahead read from the store at most per turn.
const ORPHANS_PER_TURN: u64 = 1_000;

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

/// Runs fired ahead of their instant, until the scheduler starts them. A burst's runs are
/// held apart from the others and started after them: the crons due beside a burst start at
/// their own instants instead of queueing behind its backlog. Each instant's runs start in
/// the order of their crons' next instants, so a per-second cron caught in a minute's burst
/// does not start after its own next instants.
#[derive(Default)]
struct Ahead {
    usual: BTreeMap<HeldKey, run::Model>,
    burst: BTreeMap<HeldKey, run::Model>,
}

/// (instant, the cron's next instant after it, run id).
type HeldKey = (Millis, Millis, String);

impl Ahead {
    /// When the earliest run held is due.
    fn first_at(&self) -> Option<Millis> {
        [&self.usual, &self.burst]
            .into_iter()
            .filter_map(|held| held.first_key_value().map(|((at, ..), _)| *at))
            .min()
    }

    /// Holds `run`, whose cron is due next at `next`. Past `MAX_HELD_AHEAD` runs of its kind
    /// the run that would start last is left to the workers (due in the store at its
    /// instant).
    fn hold(&mut self, run: run::Model, next: Millis, burst: bool) {
        let held = if burst {
            &mut self.burst
        } else {
            &mut self.usual
        };
        held.insert((run.available_at, next, run.run_id.clone()), run);
        if held.len() > MAX_HELD_AHEAD {
            held.pop_last();
        }
    }

    /// Takes up to `limit` runs due by `before`: the usual ones first, then the bursts'.
    fn take_due(&mut self, before: Millis, limit: usize) -> Vec<run::Model> {
        let mut runs = Vec::with_capacity(limit);
        for held in [&mut self.usual, &mut self.burst] {
            while runs.len() < limit
                && held
                    .first_key_value()
                    .is_some_and(|((at, ..), _)| *at <= before)
                && let Some((_, run)) = held.pop_first()
            {
                runs.push(run);
            }
        }
        runs
    }
}

/// Thread crons' instants recorded ahead, held until their instant comes (see
/// `Store::release`). Past `MAX_HELD_AHEAD` the latest are left to the store, where the
/// loop finds them as they fall due (`Store::due_scheduled`).
#[derive(Default)]
struct Recorded {
    held: BTreeMap<(Millis, String), Scheduled>,
    /// Some were left to the store: look for them there as soon as they are due.
    overflowed: bool,
}

impl Recorded {
    fn first_at(&self) -> Option<Millis> {
        self.held.first_key_value().map(|((at, _), _)| *at)
    }

    fn hold(&mut self, scheduled: Scheduled) {
        let key = (scheduled.instant, scheduled.run_id.clone());
        self.held.insert(key, scheduled);
        if self.held.len() > MAX_HELD_AHEAD {
            self.held.pop_last();
            self.overflowed = true;
        }
    }

    /// Takes up to `limit` instants due by `now`, earliest first.
    fn take_due(&mut self, now: Millis, limit: usize) -> Vec<Scheduled> {
        let mut due = Vec::new();
        while due.len() < limit
            && self.first_at().is_some_and(|at| at <= now)
            && let Some((_, scheduled)) = self.held.pop_first()
        {
            due.push(scheduled);
        }
        due
    }
}

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
            .entries()
            .map(|entry| (&entry.timezone, &entry.schedule))
            .collect();
        for (zone, by_expression) in self.0.iter_mut() {
            by_expression.retain(|expression, _| used.contains(&(zone, expression)));
        }
        self.0.retain(|_, by_expression| !by_expression.is_empty());
    }
}

/// What firing one due cron at `now` comes to.
#[derive(Debug, PartialEq, Eq)]
struct CronPlan {
    /// The instants to fire now (each becomes a run).
    fire: Vec<Millis>,
    /// Instants missed and given up under `policy`.
    missed: u64,
    policy: MisfirePolicy,
    /// The cron's next instant after this fire (None: no more).
    new_next: Option<Millis>,
}

impl CronPlan {
    /// The instants given up, as one history entry. The policy gives up the earliest of the
    /// instants planned (those late past the grace, and older than the catch-up window for
    /// `fire_all`), so they are the first `missed` of them, in a row.
    fn given_up(&self, instants: &[Millis]) -> Option<Missed> {
        let count = usize::try_from(self.missed).ok().filter(|&n| n > 0)?;
        Some(Missed {
            first: *instants.first()?,
            last: *instants.get(count - 1)?,
            count: self.missed,
            policy: self.policy,
        })
    }
}

/// Plans the fire of `cron`, due at `expected`, at `now`: its instants from `expected` up to
/// `now + lead` (the instant being fired ahead, for stateless crons) and not past its end
/// time, which of them fire under its misfire policy (the cron's own, else the settings'),
/// and its next instant after them.
fn plan_fire(
    cron: &cron::Model,
    expected: Millis,
    parsed: &Parsed,
    lead: Millis,
    now: Millis,
    settings: &SchedulerConfig,
) -> (CronPlan, Option<Missed>) {
    let horizon = now + lead;
    let dst = Dst::of(cron);
    let mut instants = vec![expected];
    let mut cursor = expected;
    while instants.len() < MAX_INSTANTS {
        match parsed
            .schedule
            .next_after(to_datetime(cursor), parsed.zone, dst)
        {
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
        .unwrap_or(settings.misfire_policy);
    let catchup = cron
        .catchup_window_seconds
        .map(|s| s * 1000)
        .unwrap_or(settings.catchup_window.as_millis() as Millis);
    let planned = plan(
        policy,
        &instants,
        now,
        settings.misfire_grace.as_millis() as Millis,
        catchup,
    );
    let after = now.max(cursor);
    let new_next = parsed
        .schedule
        .next_after(to_datetime(after), parsed.zone, dst)
        .map(|next| next.timestamp_millis())
        .filter(|next| cron.end_time.is_none_or(|end| *next <= end));
    let plan = CronPlan {
        fire: planned.fire,
        missed: planned.missed,
        policy,
        new_next,
    };
    let missed = plan.given_up(&instants);
    (plan, missed)
}

/// What the scheduler loop carries from one turn to the next.
struct LoopState {
    timer: Timer,
    ahead: Ahead,
    recorded: Recorded,
    /// How long before their instant runs fired ahead are claimed: about twice what the
    /// last claim took, so they are running in the store when the instant comes.
    claim_lead: Millis,
    parsed: ParsedSchedules,
    /// When thread runs delayed by jitter fall due: the workers are woken then.
    due_later: BTreeSet<Millis>,
    next_reload: Millis,
    next_refresh: Millis,
    /// Changes made through the API since then are read at the next refresh.
    changes_since: Millis,
    fire_failures: FailureStreak,
    /// Crons found missing by the last reload, still to be read (see `load_some`).
    to_load: Vec<String>,
    /// A slot the loop waited for, for the runs held ahead that are due.
    slot: Option<Slot>,
}

/// Failed fire transactions in a row. An outage (database away, disk full) fails every
/// retry; one ERROR line when it starts, a reminder each minute and one line when it ends
/// say as much as a line per retry would.
#[derive(Default)]
struct FailureStreak {
    /// When the streak began, how many failed, and when it was last logged.
    current: Option<(Millis, u64, Millis)>,
}

impl FailureStreak {
    const REMIND_EVERY: Millis = 60_000;

    fn failed(&mut self, now: Millis, err: &crate::store::Error, crons: usize) {
        match &mut self.current {
            None => {
                tracing::error!(error = %err, crons, "firing crons failed; retrying");
                self.current = Some((now, 1, now));
            }
            Some((since, count, logged)) => {
                *count += 1;
                if now - *logged >= Self::REMIND_EVERY {
                    tracing::error!(error = %err, crons, failures = *count, failing_for_s = (now - *since) / 1000, "firing crons still failing; retrying");
                    *logged = now;
                }
            }
        }
    }

    fn succeeded(&mut self, now: Millis) {
        if let Some((since, count, _)) = self.current.take() {
            tracing::info!(
                failures = count,
                failing_for_ms = now - since,
                "firing crons recovered"
            );
        }
    }
}

impl LoopState {
    fn new(settings: &SchedulerConfig) -> LoopState {
        LoopState {
            // Crons are loaded a window ahead and reloaded every half window: a burst can
            // be fired as early as half a window before its instant.
            timer: Timer::with_leads(
                settings.prefire.as_millis() as Millis,
                settings.window.as_millis() as Millis / 2,
            ),
            ahead: Ahead::default(),
            recorded: Recorded::default(),
            claim_lead: MIN_CLAIM_LEAD,
            parsed: ParsedSchedules::default(),
            due_later: BTreeSet::new(),
            next_reload: 0,
            next_refresh: 0,
            changes_since: now_ms(),
            fire_failures: FailureStreak::default(),
            to_load: Vec::new(),
            slot: None,
        }
    }

    /// When the loop wakes next, and whether it waits for a free slot too: runs due but
    /// without a slot wake the loop when one frees, not at an instant.
    fn wake_at(&mut self, now: Millis, refresh: Millis) -> (Millis, bool) {
        let next_start = self.ahead.first_at().map(|at| at - self.claim_lead);
        let slot_wanted = next_start.is_some_and(|at| at <= now_ms());
        let next_start = next_start.filter(|_| !slot_wanted);
        let wake_at = [
            next_start,
            self.recorded.first_at(),
            self.due_later.first().copied(),
            self.timer.next_fire_at(),
            Some(self.next_refresh),
            Some(self.next_reload),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now + refresh);
        (wake_at, slot_wanted)
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

    /// How far ahead crons are held in memory.
    fn window(&self) -> Millis {
        self.settings.window.as_millis() as Millis
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let refresh = self.settings.refresh_interval.as_millis() as Millis;
        let mut state = LoopState::new(&self.settings);
        while !shutdown.is_cancelled() {
            let now = now_ms();
            if now >= state.next_reload {
                self.reload(&mut state, now).await;
            } else if now >= state.next_refresh {
                self.refresh(&mut state, now).await;
            }

            // Runs fired ahead whose instant has come start first; then one batch of fires.
            // Each turn does at most one of each, so neither a long burst of starts nor a
            // long burst of fires holds up the other (a burst's starts would otherwise keep
            // the per-second crons beside it from being fired for seconds).
            let loaded = self.load_some(&mut state).await;
            let started = self.start_ahead(&mut state).await;
            let released = self.release_due(&mut state).await;
            if state.due_later.first().is_some_and(|at| *at <= now) {
                state.due_later.retain(|at| *at > now);
                self.runs.wake();
            }
            let due = state
                .timer
                .pop_due(now_ms(), self.settings.batch_size.max(1));
            if !due.is_empty() {
                self.fire(due, &mut state).await;
                continue;
            }
            if started || loaded || released {
                continue;
            }

            let (wake_at, slot_wanted) = state.wake_at(now, refresh);
            let sleep = Duration::from_millis((wake_at - now_ms()).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                slot = self.runs.next_slot(), if slot_wanted => state.slot = Some(slot),
                _ = self.handle.changed.notified() => state.next_refresh = 0,
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Finds the crons due within the window that the timer does not hold as they are; they
    /// are read in chunks, one a turn (see `load_some`).
    async fn reload(&self, state: &mut LoopState, now: Millis) {
        let window = self.window();
        match self.missing(&state.timer, now + window).await {
            Ok(missing) => {
                state.to_load = missing;
                state.parsed.forget_unused(&state.timer);
                state.next_reload = now + window / 2;
                state.changes_since = now;
                state.next_refresh = now + self.settings.refresh_interval.as_millis() as Millis;
            }
            Err(err) => {
                tracing::error!(error = %err, "loading due crons failed");
                state.next_reload = now + 1_000;
            }
        }
    }

    /// Reads the crons changed since the last reload or refresh.
    async fn refresh(&self, state: &mut LoopState, now: Millis) {
        // Changes made through any replica's API show within one refresh interval;
        // the slack covers clocks that disagree a little between replicas.
        match self
            .store
            .crons_changed_since(state.changes_since - 2_000)
            .await
        {
            Ok(crons) => {
                for cron in &crons {
                    state.timer.upsert(cron, now + self.window());
                }
                state.changes_since = now;
            }
            Err(err) => tracing::error!(error = %err, "reading changed crons failed"),
        }
        state.next_refresh = now + self.settings.refresh_interval.as_millis() as Millis;
        self.release_orphans(state, now).await;
    }

    /// Fires the instants recorded ahead that are due and that no scheduler fired: a
    /// replica's that died, this process's before a restart, or those `Recorded` left to the
    /// store. Another scheduler's are left to it for `ORPHAN_GRACE` past their instant. While
    /// this process still has due instants of its own to fire it does not look: those it
    /// holds are then all still to come, so the store never hands it back one it holds.
    async fn release_orphans(&self, state: &mut LoopState, now: Millis) {
        if state.recorded.first_at().is_some_and(|at| at <= now) {
            return;
        }
        let before = if state.recorded.overflowed {
            now
        } else {
            now - ORPHAN_GRACE
        };
        match self.store.due_scheduled(before, ORPHANS_PER_TURN).await {
            Ok(due) => {
                if (due.len() as u64) < ORPHANS_PER_TURN {
                    state.recorded.overflowed = false;
                } else {
                    // More wait: look again next turn.
                    state.next_refresh = 0;
                }
                if !due.is_empty() {
                    self.release(due, state).await;
                }
            }
            Err(err) => tracing::error!(error = %err, "reading instants recorded ahead failed"),
        }
    }

    /// Fires the instants recorded ahead whose instant has come, a batch a turn. Whether
    /// any were due.
    async fn release_due(&self, state: &mut LoopState) -> bool {
        let due = state
            .recorded
            .take_due(now_ms(), self.settings.batch_size.max(1));
        if due.is_empty() {
            return false;
        }
        self.release(due, state).await;
        true
    }

    /// Fires instants recorded ahead through the store (see `Store::release`), starting the
    /// runs it claimed for local slots. When the store fails they are held again, to retry.
    async fn release(&self, due: Vec<Scheduled>, state: &mut LoopState) {
        let now = now_ms();
        let make_run = self.run_maker(now);
        let slots = self.runs.reserve_many(due.len());
        let claim = slots.first().map(Slot::claim);
        let released = self
            .store
            .release(&due, now, &make_run, claim.as_ref(), slots.len())
            .await;
        match released {
            Ok((released, queued)) => {
                state.fire_failures.succeeded(now);
                self.started(queued, slots, state);
                for (scheduled, released) in due.iter().zip(released) {
                    let instant = scheduled.instant;
                    let (runs, rejected) = match released {
                        Released::Fired => (vec![(instant, scheduled.run_id.clone())], vec![]),
                        Released::Rejected => (vec![], vec![instant]),
                        Released::Lost => continue,
                    };
                    count_fired(&scheduled.cron, &runs, &rejected, &[], now);
                }
            }
            Err(err) => {
                state.fire_failures.failed(now, &err, due.len());
                tokio::time::sleep(FAILED_FIRE_PAUSE).await;
                for scheduled in due {
                    state.recorded.hold(scheduled);
                }
            }
        }
    }

    /// Starts the runs fired ahead whose instant is (all but) here, as many as there are
    /// free slots. Those without a free slot wait in `ahead` for one (they are due in the
    /// store too, so an idle worker may take them first). Whether any were started.
    async fn start_ahead(&self, state: &mut LoopState) -> bool {
        let claim_before = now_ms() + state.claim_lead;
        let waited = state.slot.take();
        if state.ahead.first_at().is_none_or(|at| at > claim_before) {
            return false;
        }
        let mut slots: Vec<Slot> = waited.into_iter().collect();
        slots.extend(self.runs.reserve_many(MAX_CLAIM_AHEAD - slots.len()));
        let runs = state.ahead.take_due(claim_before, slots.len());
        slots.truncate(runs.len());
        if runs.is_empty() {
            return false;
        }
        let claiming = std::time::Instant::now();
        self.start(runs, slots).await;
        let took = claiming.elapsed().as_millis() as Millis;
        state.claim_lead = (2 * took).clamp(MIN_CLAIM_LEAD, MAX_CLAIM_LEAD);
        true
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
                        let at = run.available_at;
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

    /// Fires a batch of due crons (see `pop_due`), stamped with its own time: runs record
    /// when they were really queued and started, not when the first batch of a burst was.
    async fn fire(&self, due: Vec<Due>, state: &mut LoopState) {
        let firing = std::time::Instant::now();
        let bursts: HashSet<String> = due
            .iter()
            .filter(|due| due.burst)
            .map(|due| due.cron_id.clone())
            .collect();
        let Some(due) = self
            .read_due(due, state)
            .await
            .filter(|due| !due.is_empty())
        else {
            return;
        };
        let now = now_ms();
        let fires = self.plan(&due, &state.timer, &mut state.parsed, now);
        let instants = fires.iter().map(|fire| fire.instants.len()).sum();
        if self.apply(fires, due, &bursts, state, now).await {
            let took = firing.elapsed().as_millis() as Millis;
            state.timer.measured(instants, took);
        }
    }

    /// The whole rows of the crons `pop_due` took: the row the timer holds for a cron fired
    /// at its instant, else the row as it is now. A cron changed since the timer read it
    /// (through the API, or fired by another replica) goes back into the timer as it is now
    /// instead of firing; a deleted one is gone (a held row that is no longer current makes
    /// the fire's claim fail, and the cron is read again). When the read fails, they all go
    /// back to the timer, to retry (None).
    async fn read_due(&self, due: Vec<Due>, state: &mut LoopState) -> Option<Vec<cron::Model>> {
        let ids = due
            .iter()
            .filter(|due| due.entry.row.is_none())
            .map(|due| due.cron_id.clone())
            .collect();
        let rows = self.store.crons_by_id::<cron::Model>(ids).await;
        let mut rows: HashMap<String, cron::Model> = match rows {
            Ok(rows) => rows
                .into_iter()
                .map(|cron| (cron.cron_id.clone(), cron))
                .collect(),
            Err(err) => {
                state.fire_failures.failed(now_ms(), &err, due.len());
                tokio::time::sleep(FAILED_FIRE_PAUSE).await;
                for due in due {
                    state.timer.restore(due);
                }
                return None;
            }
        };
        let horizon = now_ms() + self.window();
        let mut current = Vec::with_capacity(due.len());
        for due in due {
            if let Some(row) = due.entry.row {
                current.push(*row);
                continue;
            }
            match rows.remove(&due.cron_id) {
                Some(cron) if due.entry.is_version_of(&cron) => current.push(cron),
                Some(cron) => state.timer.upsert_row(cron, horizon),
                None => {}
            }
        }
        Some(current)
    }

    /// Plans the fire of each due cron (see `plan_fire`); a cron whose stored schedule does
    /// not parse is left out.
    fn plan(
        &self,
        due: &[cron::Model],
        timer: &Timer,
        parsed: &mut ParsedSchedules,
        now: Millis,
    ) -> Vec<Fire> {
        let mut fires = Vec::with_capacity(due.len());
        for cron in due {
            let Some(expected) = cron.next_run_at else {
                continue;
            };
            let Some(entry) = parsed.of(cron) else {
                tracing::error!(cron_id = %cron.cron_id, schedule = %cron.schedule, "stored cron has an invalid schedule; not firing it");
                continue;
            };
            let (planned, missed) =
                plan_fire(cron, expected, entry, timer.lead(cron), now, &self.settings);
            if planned.missed > 0 {
                metrics::counter!(crate::metrics::MISSED_INSTANTS).increment(planned.missed);
                tracing::warn!(
                    cron_id = %cron.cron_id,
                    missed = planned.missed,
                    policy = planned.policy.as_str(),
                    "scheduled instants missed and not fired"
                );
            }
            fires.push(Fire {
                cron: cron.clone(),
                instants: planned.fire,
                new_next: planned.new_next,
                missed,
            });
        }
        fires
    }

    /// Writes the planned fires through the store, starts the runs it claimed for local
    /// slots, holds those fired ahead (the runs of the crons in `bursts` apart), and puts
    /// each cron back in the timer at its next instant. When the store fails, the `due`
    /// crons are put back as they were, to retry. Whether the store wrote the fires.
    async fn apply(
        &self,
        fires: Vec<Fire>,
        due: Vec<cron::Model>,
        bursts: &HashSet<String>,
        state: &mut LoopState,
        now: Millis,
    ) -> bool {
        let make_run = self.run_maker(now);
        // Free local slots let fired runs that are due start at once, in the fire's own
        // transaction (runs fired ahead are started at their instant).
        let due_now = fires
            .iter()
            .flat_map(|fire| &fire.instants)
            .filter(|&&instant| instant <= now)
            .count();
        let slots = self.runs.reserve_many(due_now);
        let claim = slots.first().map(Slot::claim);
        let fired = self
            .store
            .fire(&fires, now, &make_run, claim.as_ref(), slots.len())
            .await;
        match fired {
            Ok((results, mut queued)) => {
                state.fire_failures.succeeded(now);
                let next_of: HashMap<&str, Millis> = fires
                    .iter()
                    .map(|fire| {
                        let next = fire.new_next.unwrap_or(Millis::MAX);
                        (fire.cron.cron_id.as_str(), next)
                    })
                    .collect();
                for run in std::mem::take(&mut queued.ahead) {
                    let cron_id = run.cron_id.as_deref().unwrap_or_default();
                    let next = next_of.get(cron_id).copied().unwrap_or(Millis::MAX);
                    let burst = bursts.contains(cron_id);
                    state.ahead.hold(run, next, burst);
                }
                self.started(queued, slots, state);
                for (fire, result) in fires.into_iter().zip(results) {
                    self.record(fire, result, &mut state.timer, now).await;
                }
                true
            }
            Err(err) => {
                state.fire_failures.failed(now, &err, fires.len());
                tokio::time::sleep(FAILED_FIRE_PAUSE).await;
                for cron in due {
                    state.timer.upsert_row(cron, now + self.window());
                }
                false
            }
        }
    }

    /// Builds the run of a cron's instant at `now`.
    fn run_maker(&self, now: Millis) -> impl Fn(&cron::Model, Millis) -> run::Model + '_ {
        move |cron: &cron::Model, instant: Millis| {
            let graph_id = self
                .graphs
                .get(&cron.assistant_id)
                .cloned()
                .unwrap_or_default();
            cron_run(
                cron,
                graph_id,
                instant,
                crate::schedule::jitter::start(cron, instant),
                now,
            )
        }
    }

    /// Takes over what a fire or release queued for this process (runs fired ahead
    /// apart): starts the claimed runs in `slots`, stops the runs asked to stop, and holds
    /// what is due later.
    fn started(&self, queued: Queued, mut slots: Vec<Slot>, state: &mut LoopState) {
        for run in queued.claimed {
            if let Some(slot) = slots.pop() {
                slot.start(run);
            }
        }
        drop(slots);
        for run_id in &queued.stopping {
            self.runs.cancel(run_id);
        }
        state.due_later.extend(queued.due_later);
        for scheduled in queued.scheduled {
            state.recorded.hold(scheduled);
        }
        self.runs.wake();
    }

    /// Counts and logs what became of one cron's fire, and puts the cron back in the timer:
    /// at its next instant when claimed, as the store has it now when lost.
    async fn record(&self, fire: Fire, result: Fired, timer: &mut Timer, now: Millis) {
        let mut cron = fire.cron;
        match result {
            Fired::Claimed {
                runs,
                rejected,
                skipped,
            } => {
                count_fired(&cron, &runs, &rejected, &skipped, now);
                crate::metrics::instants("missed", fire.missed.as_ref().map_or(0, |m| m.count));
                cron.next_run_at = fire.new_next;
                timer.upsert_row(cron, now + self.window());
            }
            Fired::Lost => match self.store.find_cron(&cron.cron_id).await {
                Ok(Some(current)) => timer.upsert_row(current, now + self.window()),
                Ok(None) => timer.remove(&cron.cron_id),
                Err(err) => {
                    tracing::error!(error = %err, "re-reading a cron failed")
                }
            },
        }
    }

    /// The ids of the crons due before `horizon` that the timer does not hold as they are
    /// now (all of them at start, then those that came into the window or were changed
    /// elsewhere), the soonest due first.
    async fn missing(&self, timer: &Timer, horizon: Millis) -> crate::store::Result<Vec<String>> {
        let mut versions: Vec<_> = self
            .store
            .due_cron_versions(horizon)
            .await?
            .into_iter()
            .filter(|version| !timer.holds(version))
            .collect();
        versions.sort_unstable_by_key(|(_, next_run_at, _)| *next_run_at);
        Ok(versions
            .into_iter()
            .map(|(cron_id, _, _)| cron_id)
            .collect())
    }

    /// Reads one chunk of the crons a reload found missing into the timer. A hundred
    /// thousand crons coming into the window at once take seconds to read: a chunk a turn
    /// lets the crons due meanwhile fire on time. Whether any were waiting.
    async fn load_some(&self, state: &mut LoopState) -> bool {
        if state.to_load.is_empty() {
            return false;
        }
        let chunk: Vec<String> = state
            .to_load
            .drain(..LOAD_CHUNK.min(state.to_load.len()))
            .collect();
        match self.store.crons_by_id::<CronTiming>(chunk.clone()).await {
            Ok(crons) => {
                let horizon = now_ms() + self.window();
                for cron in &crons {
                    state.timer.upsert(cron, horizon);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "loading due crons failed");
                // Read again at the next reload.
                state.next_reload = state.next_reload.min(now_ms() + 1_000);
            }
        }
        true
    }
}

/// Counts and logs the instants of `cron` fired at `now`: the runs queued (instant, run id),
/// the instants rejected and those skipped.
fn count_fired(
    cron: &cron::Model,
    runs: &[(Millis, String)],
    rejected: &[Millis],
    skipped: &[Millis],
    now: Millis,
) {
    metrics::counter!(crate::metrics::FIRES).increment(runs.len() as u64);
    crate::metrics::instants("fired", runs.len() as u64);
    crate::metrics::instants("rejected", rejected.len() as u64);
    crate::metrics::instants("skipped", skipped.len() as u64);
    if !skipped.is_empty() {
        tracing::info!(cron_id = %cron.cron_id, instants = skipped.len(), overlap = cron.overlap.as_str(), "an earlier run still active; instant skipped");
    }
    if !rejected.is_empty() {
        metrics::counter!(crate::metrics::REJECTED_FIRES).increment(rejected.len() as u64);
        tracing::warn!(cron_id = %cron.cron_id, instants = rejected.len(), "thread busy under multitask_strategy reject; instant not run");
    }
    for (instant, run_id) in runs {
        tracing::debug!(cron_id = %cron.cron_id, %run_id, lateness_ms = now - instant, "fired");
        if *instant <= now {
            metrics::histogram!(crate::metrics::FIRE_LATENESS)
                .record((now - instant) as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::timer::tests::cron;

    fn held_run(run_id: &str, at: Millis) -> run::Model {
        let mut run = cron_run(&cron("c", Some(at), true), "g".into(), at, at, 0);
        run.run_id = run_id.into();
        run
    }

    #[test]
    fn runs_held_ahead_start_before_a_bursts_backlog() {
        let mut ahead = Ahead::default();
        for i in 0..MAX_HELD_AHEAD + 5 {
            ahead.hold(held_run(&format!("b{i:05}"), 60_000), 86_460_000, true);
        }
        // A per-second cron caught in the burst, and two of its instants beside it.
        ahead.hold(held_run("tick0", 60_000), 61_000, true);
        ahead.hold(held_run("tick1", 61_000), 62_000, false);
        ahead.hold(held_run("tick2", 62_000), 63_000, false);
        assert_eq!(
            ahead.burst.len(),
            MAX_HELD_AHEAD,
            "the rest is left to the workers"
        );
        assert_eq!(ahead.first_at(), Some(60_000));
        let ids = |runs: Vec<run::Model>| -> Vec<String> {
            runs.into_iter().map(|run| run.run_id).collect()
        };
        assert_eq!(
            ids(ahead.take_due(60_500, 3)),
            ["tick0", "b00000", "b00001"],
            "the instant's runs in the order of their crons' next instants"
        );
        assert_eq!(
            ids(ahead.take_due(61_000, 3)),
            ["tick1", "b00002", "b00003"],
            "the instant beside it goes first"
        );
        assert_eq!(ahead.take_due(62_000, 1)[0].run_id, "tick2");
        let rest = ahead.take_due(62_000, 20_000);
        assert_eq!(rest.len(), MAX_HELD_AHEAD - 5);
        assert_eq!(
            rest.last().map(|run| run.run_id.as_str()),
            Some("b09998"),
            "those beyond the bound were the last to start"
        );
        assert_eq!(ahead.first_at(), None);
    }

    const MINUTE: Millis = 60_000;

    /// A cron on `schedule` (UTC), due at `next`.
    fn due(schedule: &str, next: Millis) -> (cron::Model, Parsed) {
        let mut cron = cron("c", Some(next), true);
        cron.schedule = schedule.into();
        let parsed = Parsed {
            schedule: Schedule::parse(schedule).unwrap(),
            zone: Tz::UTC,
        };
        (cron, parsed)
    }

    fn planned(cron: &cron::Model, parsed: &Parsed, lead: Millis, now: Millis) -> CronPlan {
        let settings = SchedulerConfig::default();
        plan_fire(
            cron,
            cron.next_run_at.unwrap(),
            parsed,
            lead,
            now,
            &settings,
        )
        .0
    }

    fn given_up(cron: &cron::Model, parsed: &Parsed, now: Millis) -> Option<Missed> {
        let settings = SchedulerConfig::default();
        plan_fire(cron, cron.next_run_at.unwrap(), parsed, 0, now, &settings).1
    }

    #[test]
    fn the_crons_dst_choices_give_its_next_instant() {
        // America/New_York falls back on 2026-11-01: 01:30 EDT is 05:30Z, 01:30 EST 06:30Z.
        let first = chrono::DateTime::parse_from_rfc3339("2026-11-01T05:30:00Z")
            .unwrap()
            .timestamp_millis();
        let (mut cron, mut parsed) = due("30 1 * * *", first);
        cron.timezone = Some("America/New_York".into());
        parsed.zone = Tz::America__New_York;
        let next = |cron: &cron::Model| planned(cron, &parsed, 0, first + 1).new_next;
        assert_eq!(next(&cron), Some(first + 86_400_000 + 3_600_000), "once");
        cron.dst_repeat = entity::states::DstRepeat::Twice;
        assert_eq!(next(&cron), Some(first + 3_600_000), "twice");
    }

    #[test]
    fn missed_instants_are_one_entry_covering_the_first_to_the_last() {
        // Down from just after 1 min to 3 min 20 s: 1, 2 and 3 min were missed.
        let now = 3 * MINUTE + 20_000;
        let (mut cron, parsed) = due("* * * * *", MINUTE);
        let missed = |first, last, count, policy| {
            Some(Missed {
                first,
                last,
                count,
                policy,
            })
        };
        assert_eq!(
            given_up(&cron, &parsed, now),
            missed(MINUTE, 2 * MINUTE, 2, MisfirePolicy::FireOnce),
            "the latest fires"
        );
        cron.misfire_policy = Some("skip".into());
        assert_eq!(
            given_up(&cron, &parsed, now),
            missed(MINUTE, 3 * MINUTE, 3, MisfirePolicy::Skip)
        );
        cron.misfire_policy = Some("fire_all".into());
        assert_eq!(given_up(&cron, &parsed, now), None);
        cron.catchup_window_seconds = Some(100);
        assert_eq!(
            given_up(&cron, &parsed, now),
            missed(MINUTE, MINUTE, 1, MisfirePolicy::FireAll)
        );
        cron.misfire_policy = None;
        assert_eq!(given_up(&cron, &parsed, MINUTE + 10), None, "on time");
    }

    #[test]
    fn on_time_the_instant_fires_and_the_next_one_follows() {
        let (cron, parsed) = due("* * * * *", MINUTE);
        assert_eq!(
            planned(&cron, &parsed, 0, MINUTE + 10),
            CronPlan {
                fire: vec![MINUTE],
                missed: 0,
                policy: MisfirePolicy::FireOnce,
                new_next: Some(2 * MINUTE),
            }
        );
    }

    #[test]
    fn missed_instants_go_by_the_policy_the_cron_own_first() {
        // Down from just after 1 min to 3 min 20 s: 1, 2 and 3 min were missed.
        let now = 3 * MINUTE + 20_000;
        let (mut cron, parsed) = due("* * * * *", MINUTE);
        let mut fired = |policy: Option<&str>, catchup_seconds: Option<i64>| {
            cron.misfire_policy = policy.map(str::to_string);
            cron.catchup_window_seconds = catchup_seconds;
            let plan = planned(&cron, &parsed, 0, now);
            assert_eq!(plan.new_next, Some(4 * MINUTE), "resumes after now");
            (plan.policy, plan.fire, plan.missed)
        };
        assert_eq!(
            fired(None, None),
            (MisfirePolicy::FireOnce, vec![3 * MINUTE], 2),
            "the settings' policy"
        );
        assert_eq!(
            fired(Some("no such policy"), None),
            (MisfirePolicy::FireOnce, vec![3 * MINUTE], 2)
        );
        assert_eq!(fired(Some("skip"), None), (MisfirePolicy::Skip, vec![], 3));
        assert_eq!(
            fired(Some("fire_all"), None),
            (
                MisfirePolicy::FireAll,
                vec![MINUTE, 2 * MINUTE, 3 * MINUTE],
                0
            )
        );
        assert_eq!(
            fired(Some("fire_all"), Some(100)),
            (MisfirePolicy::FireAll, vec![2 * MINUTE, 3 * MINUTE], 1),
            "older than the cron's catch-up window"
        );
    }

    #[test]
    fn nothing_past_the_end_time_fires_and_nothing_follows_it() {
        let (mut cron, parsed) = due("* * * * *", MINUTE);
        cron.misfire_policy = Some("fire_all".into());
        cron.end_time = Some(2 * MINUTE);
        let plan = planned(&cron, &parsed, 0, 3 * MINUTE + 20_000);
        assert_eq!(plan.fire, [MINUTE, 2 * MINUTE]);
        assert_eq!(plan.new_next, None);

        cron.end_time = Some(MINUTE + 30_000);
        let plan = planned(&cron, &parsed, 0, MINUTE + 10);
        assert_eq!(plan.fire, [MINUTE]);
        assert_eq!(plan.new_next, None, "the next instant is past the end");
    }

    #[test]
    fn a_disabled_cron_is_planned_like_any_other() {
        // The timer drops disabled crons, and the store's claim refuses them: the plan
        // does not look.
        let (mut cron, parsed) = due("* * * * *", MINUTE);
        cron.enabled = false;
        assert_eq!(planned(&cron, &parsed, 0, MINUTE).fire, [MINUTE]);
    }

    #[test]
    fn stateless_crons_plan_the_instants_within_the_lead_ahead() {
        let lead = Timer::with_lead(1_500);
        let (cron, parsed) = due("* * * * * *", 10_000);
        let mut on_thread = cron.clone();
        on_thread.thread_id = Some("thread".into());
        let mut overlapping = cron.clone();
        overlapping.overlap = entity::states::Overlap::Skip;
        let now = 10_000 - lead.lead(&cron);
        assert_eq!(
            planned(&cron, &parsed, lead.lead(&cron), now),
            CronPlan {
                fire: vec![10_000],
                missed: 0,
                policy: MisfirePolicy::FireOnce,
                new_next: Some(11_000),
            },
            "fired ahead of its instant"
        );
        let plan = planned(&cron, &parsed, lead.lead(&cron), 10_000);
        assert_eq!(plan.fire, [10_000, 11_000], "up to now + lead");
        assert_eq!(plan.new_next, Some(12_000));
        let plan = planned(&on_thread, &parsed, lead.lead(&on_thread), 10_000);
        assert_eq!(
            plan.fire,
            [10_000, 11_000],
            "thread crons: recorded up to now + lead"
        );
        let plan = planned(&overlapping, &parsed, lead.lead(&overlapping), 10_000);
        assert_eq!(plan.fire, [10_000], "overlap crons: up to now");
        assert_eq!(plan.new_next, Some(11_000));
    }

    #[test]
    fn at_most_max_instants_are_enumerated() {
        // An every-second cron down for longer than MAX_INSTANTS seconds: fire_once fires
        // the last instant enumerated, and the schedule resumes after now.
        let (cron, parsed) = due("* * * * * *", 0);
        let now = (MAX_INSTANTS as Millis + 500) * 1_000;
        let plan = planned(&cron, &parsed, 0, now);
        assert_eq!(plan.fire, [(MAX_INSTANTS as Millis - 1) * 1_000]);
        assert_eq!(plan.missed, MAX_INSTANTS as u64 - 1);
        assert_eq!(plan.new_next, Some(now + 1_000));
    }
}
