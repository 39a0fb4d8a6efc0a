//! The in-memory timer: the crons due soon, earliest fire time first. A cron's fire time is
//! its next instant, less the pre-fire lead for the crons fired ahead (see `Scheduler`). Entries
//! are replaced or removed as crons change; a superseded heap entry is skipped when it
//! surfaces.
//!
//! The timer keeps what places a cron in time and the version it was read at; the scheduler
//! reads the whole row (payload, metadata) when the cron comes due. A window holding a
//! hundred thousand whole rows would cost hundreds of megabytes. A cron fired at its instant
//! (not ahead) keeps the row it was last fired from, so no read stands between its instant
//! and its fire.
//!
//! A large burst (many crons fired ahead at one instant) fires earlier than the lead: as
//! long before its instant as writing it takes at the store's measured rate, twice over, so
//! its fires are durable when the instant comes. The timer counts the crons fired ahead at
//! each instant to know the size of every burst it holds.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use entity::cron;
use entity::states::Overlap;

use crate::store::fires::{CronTiming, CronVersion};
use crate::time::Millis;

/// What the timer keeps of a cron.
#[derive(Debug, Clone)]
pub struct Entry {
    pub next_run_at: Millis,
    /// With `next_run_at`, the version of the row this entry was made from.
    pub updated_at: Millis,
    /// Fired ahead of its instant (see `Timer::lead`).
    ahead: bool,
    /// Its schedule, for the scheduler's cache of parsed schedules.
    pub timezone: Option<String>,
    pub schedule: String,
    /// The whole row, for a cron fired at its instant whose row the scheduler had at hand
    /// (it just fired it): nothing is read between its instant and its fire. A cron fired
    /// ahead is read before its instant, and never holds its row here.
    pub row: Option<Box<cron::Model>>,
}

impl Entry {
    /// Whether `cron` is the version of the row this entry was made from.
    pub fn is_version_of(&self, cron: &cron::Model) -> bool {
        self.is_version(cron.next_run_at, cron.updated_at)
    }

    fn is_version(&self, next_run_at: Option<Millis>, updated_at: Millis) -> bool {
        next_run_at == Some(self.next_run_at) && updated_at == self.updated_at
    }
}

/// A cron whose fire time has come, as the timer held it.
#[derive(Debug)]
pub struct Due {
    pub cron_id: String,
    pub entry: Entry,
    /// Fired with its instant's burst, further ahead than the usual lead.
    pub burst: bool,
}

pub struct Timer {
    heap: BinaryHeap<Reverse<(Millis, String)>>,
    /// The live entry of each cron.
    crons: HashMap<String, Entry>,
    /// How long before its instant a stateless cron fires.
    lead: Millis,
    /// The crons fired ahead, by instant: the size of each burst.
    bursts: BTreeMap<Millis, HashSet<String>>,
    /// Fires the store writes per second, as last measured (see `measured`).
    write_rate: f64,
    /// A burst fires this long before its instant at most (crons are loaded only so far
    /// ahead).
    max_burst_lead: Millis,
}

impl Default for Timer {
    fn default() -> Timer {
        Timer {
            heap: BinaryHeap::new(),
            crons: HashMap::new(),
            lead: 0,
            bursts: BTreeMap::new(),
            write_rate: INITIAL_WRITE_RATE,
            max_burst_lead: 0,
        }
    }
}

/// Fires per second assumed until the store's rate is measured: a low figure, so a first
/// burst starts early rather than late.
const INITIAL_WRITE_RATE: f64 = 2_000.0;
/// A burst's lead is the time its writing takes at the measured rate, times this.
const BURST_LEAD_FACTOR: f64 = 2.0;
/// Batches smaller than this say little about the write rate.
const MIN_MEASURED_BATCH: usize = 64;

impl Timer {
    /// A timer that fires crons `lead` ahead, and large bursts up to
    /// `max_burst_lead` ahead.
    pub fn with_leads(lead: Millis, max_burst_lead: Millis) -> Timer {
        Timer {
            lead,
            max_burst_lead: max_burst_lead.max(lead),
            ..Timer::default()
        }
    }

    #[cfg(test)]
    pub fn with_lead(lead: Millis) -> Timer {
        Timer::with_leads(lead, lead)
    }

    /// A batch of `fires` took `took_ms` to fire (planned, written, put back in the timer):
    /// the rate the bursts' leads follow. A moving average that follows a slower batch
    /// faster than a quicker one: small batches of light crons fire faster per cron than a
    /// burst's, and an estimate too high makes a burst late where one too low only makes
    /// it early.
    pub fn measured(&mut self, fires: usize, took_ms: Millis) {
        if fires < MIN_MEASURED_BATCH {
            return;
        }
        let rate = fires as f64 * 1000.0 / took_ms.max(1) as f64;
        let weight = if rate < self.write_rate { 0.5 } else { 0.1 };
        self.write_rate =
            ((1.0 - weight) * self.write_rate + weight * rate).clamp(100.0, 1_000_000.0);
    }

    /// How long before its instant a burst of `crons` crons fired ahead fires.
    fn burst_lead(&self, crons: usize) -> Millis {
        let writing = crons as f64 / self.write_rate * 1000.0 * BURST_LEAD_FACTOR;
        (writing.round() as Millis).clamp(self.lead, self.max_burst_lead)
    }

    /// How long before its instant `cron` is fired: stateless crons have their runs written
    /// ahead, thread crons their instants recorded ahead (their run joins the thread's queue
    /// at the instant, see `Store::release`); stateless crons whose `overlap` looks at the
    /// runs active at the instant fire at the instant.
    pub fn lead(&self, cron: &cron::Model) -> Millis {
        self.lead_of(cron.thread_id.as_deref(), cron.overlap)
    }

    fn lead_of(&self, thread_id: Option<&str>, overlap: Overlap) -> Millis {
        if thread_id.is_some() || overlap == Overlap::Allow {
            self.lead
        } else {
            0
        }
    }

    fn fire_at(&self, entry: &Entry) -> Millis {
        if entry.ahead {
            entry.next_run_at - self.lead
        } else {
            entry.next_run_at
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.crons.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.crons.is_empty()
    }

    /// Adds or replaces a cron; one that is disabled, or has no next instant, or is not due
    /// before `horizon`, is removed instead.
    pub fn upsert(&mut self, cron: &CronTiming, horizon: Millis) {
        self.upsert_with(cron, None, horizon);
    }

    /// `upsert` from the whole row, which a cron fired at its instant keeps.
    pub fn upsert_row(&mut self, cron: cron::Model, horizon: Millis) {
        let timing = CronTiming::from(&cron);
        self.upsert_with(&timing, Some(cron), horizon);
    }

    fn upsert_with(&mut self, cron: &CronTiming, row: Option<cron::Model>, horizon: Millis) {
        match cron.next_run_at {
            Some(next_run_at) if cron.enabled && next_run_at <= horizon => {
                let ahead = self.lead_of(cron.thread_id.as_deref(), cron.overlap) > 0;
                let entry = Entry {
                    next_run_at,
                    updated_at: cron.updated_at,
                    ahead,
                    timezone: cron.timezone.clone(),
                    schedule: cron.schedule.clone(),
                    row: row.filter(|_| !ahead).map(Box::new),
                };
                self.put(cron.cron_id.clone(), entry);
            }
            _ => {
                self.take(&cron.cron_id);
            }
        }
    }

    /// Puts back a cron taken by `pop_due` that could not be fired.
    pub fn restore(&mut self, due: Due) {
        self.put(due.cron_id, due.entry);
    }

    fn put(&mut self, cron_id: String, entry: Entry) {
        let unchanged = self.crons.get(&cron_id).is_some_and(|known| {
            known.next_run_at == entry.next_run_at && known.ahead == entry.ahead
        });
        if !unchanged {
            self.take(&cron_id);
            self.heap
                .push(Reverse((self.fire_at(&entry), cron_id.clone())));
            if entry.ahead {
                self.bursts
                    .entry(entry.next_run_at)
                    .or_default()
                    .insert(cron_id.clone());
            }
        }
        self.crons.insert(cron_id, entry);
    }

    /// Removes a cron from the map and from its burst (its heap entry goes stale).
    fn take(&mut self, cron_id: &str) -> Option<Entry> {
        let entry = self.crons.remove(cron_id)?;
        self.leave_burst(entry.next_run_at, cron_id);
        Some(entry)
    }

    /// Drops a cron from the burst of `instant` (and the burst once it is empty).
    fn leave_burst(&mut self, instant: Millis, cron_id: &str) {
        if let Some(burst) = self.bursts.get_mut(&instant) {
            burst.remove(cron_id);
            if burst.is_empty() {
                self.bursts.remove(&instant);
            }
        }
    }

    /// The earliest instant whose burst is due to fire ahead of the lead, and when.
    fn earliest_burst(&self) -> Option<(Millis, Millis)> {
        self.bursts
            .iter()
            .map(|(instant, crons)| (instant - self.burst_lead(crons.len()), *instant))
            .filter(|(fire_at, instant)| instant - fire_at > self.lead)
            .min()
    }

    /// Whether the timer holds this version of a cron (same next instant, same last change).
    pub fn holds(&self, (cron_id, next_run_at, updated_at): &CronVersion) -> bool {
        self.crons
            .get(cron_id)
            .is_some_and(|entry| entry.is_version(*next_run_at, *updated_at))
    }

    /// The crons held.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.crons.values()
    }

    pub fn remove(&mut self, cron_id: &str) {
        self.take(cron_id);
    }

    /// The earliest live fire time.
    pub fn next_fire_at(&mut self) -> Option<Millis> {
        self.skip_stale();
        let heap = self.heap.peek().map(|Reverse((at, _))| *at);
        let burst = self.earliest_burst().map(|(at, _)| at);
        heap.into_iter().chain(burst).min()
    }

    /// Takes up to `limit` crons whose fire time is at or before `now`: those at their
    /// usual lead first, earliest first, then those of bursts fired further ahead.
    pub fn pop_due(&mut self, now: Millis, limit: usize) -> Vec<Due> {
        let mut due = Vec::new();
        while due.len() < limit {
            self.skip_stale();
            match self.heap.peek() {
                Some(Reverse((at, _))) if *at <= now => {
                    if let Some(Reverse((_, cron_id))) = self.heap.pop()
                        && let Some(entry) = self.take(&cron_id)
                    {
                        due.push(Due {
                            cron_id,
                            entry,
                            burst: false,
                        });
                    }
                }
                _ => break,
            }
        }
        while due.len() < limit
            && let Some((fire_at, instant)) = self.earliest_burst()
            && fire_at <= now
        {
            let ids: Vec<String> = self.bursts[&instant]
                .iter()
                .take(limit - due.len())
                .cloned()
                .collect();
            for id in ids {
                match self.take(&id) {
                    Some(entry) => due.push(Due {
                        cron_id: id,
                        entry,
                        burst: true,
                    }),
                    // Not held (never expected): dropped from the burst all the same, so
                    // this loop always moves on.
                    None => self.leave_burst(instant, &id),
                }
            }
        }
        due
    }

    /// Drops heap entries whose cron was removed or now has another instant.
    fn skip_stale(&mut self) {
        while let Some(Reverse((at, cron_id))) = self.heap.peek() {
            let live = self
                .crons
                .get(cron_id)
                .is_some_and(|entry| self.fire_at(entry) == *at);
            if live {
                return;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// A stateless every-second cron in UTC, otherwise as the arguments say.
    pub(in crate::scheduler) fn cron(id: &str, next: Option<Millis>, enabled: bool) -> cron::Model {
        cron::Model {
            cron_id: id.into(),
            assistant_id: "a".into(),
            thread_id: None,
            user_id: None,
            schedule: "* * * * * *".into(),
            timezone: None,
            end_time: None,
            payload: json!({}),
            metadata: json!({}),
            enabled,
            on_run_completed: None,
            next_run_at: next,
            created_at: 0,
            updated_at: 0,
            misfire_policy: None,
            catchup_window_seconds: None,
            last_run_status: None,
            last_run_at: None,
            consecutive_failures: 0,
            pause_note: None,
            pause_after_failures: None,
            overlap: Default::default(),
            jitter_seconds: 0,
            remaining_runs: None,
            paused_until: None,
            dst_repeat: Default::default(),
            dst_gap: Default::default(),
            held_runs: 0,
        }
    }

    fn timing(id: &str, next: Option<Millis>, enabled: bool) -> CronTiming {
        CronTiming::from(&cron(id, next, enabled))
    }

    /// The same measurement, often enough for the moving average to settle on it.
    fn measured_often(timer: &mut Timer, fires: usize, took_ms: Millis) {
        for _ in 0..300 {
            timer.measured(fires, took_ms);
        }
    }

    fn ids(due: Vec<Due>) -> Vec<String> {
        due.into_iter().map(|due| due.cron_id).collect()
    }

    #[test]
    fn pops_in_instant_order_up_to_now() {
        let mut timer = Timer::default();
        timer.upsert(&timing("b", Some(2_000), true), 10_000);
        timer.upsert(&timing("a", Some(1_000), true), 10_000);
        timer.upsert(&timing("c", Some(3_000), true), 10_000);
        assert_eq!(timer.next_fire_at(), Some(1_000));
        assert_eq!(ids(timer.pop_due(2_000, 10)), ["a", "b"]);
        assert_eq!(timer.next_fire_at(), Some(3_000));
        assert_eq!(timer.len(), 1);
        timer.upsert(&timing("d", Some(3_000), true), 10_000);
        assert_eq!(
            timer.pop_due(5_000, 1).len(),
            1,
            "at most `limit` at a time"
        );
        assert_eq!(timer.pop_due(5_000, 10).len(), 1);
    }

    #[test]
    fn crons_fire_ahead_by_the_lead_but_those_whose_overlap_looks_at_the_instant() {
        let mut timer = Timer::with_lead(500);
        let mut on_thread = timing("t", Some(2_000), true);
        on_thread.thread_id = Some("thread".into());
        timer.upsert(&on_thread, 10_000);
        timer.upsert(&timing("s", Some(2_000), true), 10_000);
        let mut overlapping = timing("o", Some(2_000), true);
        overlapping.overlap = Overlap::Skip;
        timer.upsert(&overlapping, 10_000);
        assert_eq!(timer.next_fire_at(), Some(1_500));
        let mut ahead = ids(timer.pop_due(1_500, 10));
        ahead.sort();
        assert_eq!(ahead, ["s", "t"]);
        assert_eq!(timer.next_fire_at(), Some(2_000));
        assert_eq!(ids(timer.pop_due(2_000, 10)), ["o"]);
    }

    #[test]
    fn a_large_burst_fires_twice_its_write_time_ahead_at_the_measured_rate() {
        let mut timer = Timer::with_leads(500, 30_000);
        measured_often(&mut timer, 1_000, 100); // 10,000 fires/s
        for i in 0..20_000 {
            timer.upsert(&timing(&format!("b{i}"), Some(60_000), true), 90_000);
        }
        timer.upsert(&timing("tick", Some(20_000), true), 90_000);
        // 20,000 fires at 10,000/s take 2 s: fired 4 s ahead.
        assert_eq!(timer.next_fire_at(), Some(19_500), "the usual lead first");
        let tick = timer.pop_due(19_500, 10);
        assert!(!tick[0].burst, "fired at the usual lead");
        assert_eq!(ids(tick), ["tick"]);
        assert_eq!(timer.next_fire_at(), Some(56_000));
        assert!(timer.pop_due(55_999, 10).is_empty());
        let burst = timer.pop_due(56_000, 15_000);
        assert_eq!(burst.len(), 15_000);
        assert!(burst.iter().all(|due| due.burst));
        // What is left is paced by its own size: 5,000 take 0.5 s, fired 1 s ahead.
        assert_eq!(timer.next_fire_at(), Some(59_000));
        assert_eq!(timer.pop_due(59_000, 15_000).len(), 5_000);
        assert_eq!(timer.next_fire_at(), None);
    }

    #[test]
    fn a_burst_ahead_gives_way_to_crons_due_at_the_usual_lead_and_leaves_overlap_crons() {
        let mut timer = Timer::with_leads(500, 30_000);
        measured_often(&mut timer, 1_000, 1_000); // 1,000 fires/s
        for i in 0..2_999 {
            timer.upsert(&timing(&format!("b{i}"), Some(60_000), true), 90_000);
        }
        let mut on_thread = timing("t", Some(60_000), true);
        on_thread.thread_id = Some("thread".into());
        timer.upsert(&on_thread, 90_000);
        let mut overlapping = timing("o", Some(60_000), true);
        overlapping.overlap = Overlap::BufferOne;
        timer.upsert(&overlapping, 90_000);
        timer.upsert(&timing("tick", Some(54_400), true), 90_000);
        // 3,000 crons (the thread cron among them) at 1,000/s: 6 s ahead; the cron whose
        // overlap looks at the runs active at the instant waits for it.
        let due = ids(timer.pop_due(54_000, 10));
        assert_eq!(due.len(), 10);
        assert_eq!(due[0], "tick", "{due:?}");
        let mut burst = due;
        while let popped = ids(timer.pop_due(59_999, 1_000))
            && !popped.is_empty()
        {
            burst.extend(popped);
        }
        assert!(
            burst.contains(&"t".to_string()),
            "the thread cron is in the burst"
        );
        assert!(!burst.contains(&"o".to_string()));
        assert_eq!(
            timer.next_fire_at(),
            Some(60_000),
            "the overlap cron is left"
        );
        // The slowest the store can be only makes the lead longer, up to its bound.
        timer.measured(100_000, 1_000_000);
        assert_eq!(timer.burst_lead(1_000_000), 30_000);
        assert_eq!(timer.burst_lead(1), 500);
    }

    #[test]
    fn a_changed_cron_leaves_its_burst() {
        let mut timer = Timer::with_leads(500, 30_000);
        measured_often(&mut timer, 1_000, 1_000);
        for i in 0..3_000 {
            timer.upsert(&timing(&format!("b{i}"), Some(60_000), true), 90_000);
        }
        timer.upsert(&timing("b0", Some(61_000), true), 90_000);
        timer.remove("b1");
        let mut skip = timing("b2", Some(60_000), true);
        skip.overlap = Overlap::Skip;
        timer.upsert(&skip, 90_000);
        assert_eq!(timer.bursts[&60_000].len(), 2_997);
        assert_eq!(timer.bursts[&61_000].len(), 1);
        let due = timer.pop_due(60_000, 10_000);
        assert_eq!(due.len(), 2_998, "b2 fires at its instant, not ahead");
        assert_eq!(timer.bursts.keys().collect::<Vec<_>>(), [&61_000]);
    }

    #[test]
    fn a_cron_put_back_fires_as_it_would_have() {
        let mut timer = Timer::with_leads(500, 30_000);
        measured_often(&mut timer, 1_000, 1_000);
        for i in 0..3_000 {
            timer.upsert(&timing(&format!("b{i}"), Some(60_000), true), 90_000);
        }
        let fire_at = timer.next_fire_at();
        let due = timer.pop_due(60_000, 10);
        assert_eq!(due.len(), 10);
        assert_eq!(due[0].entry.next_run_at, 60_000);
        assert_eq!(timer.bursts[&60_000].len(), 2_990);
        for due in due {
            timer.restore(due);
        }
        assert_eq!(timer.bursts[&60_000].len(), 3_000, "back in their burst");
        assert_eq!(timer.next_fire_at(), fire_at);
        assert_eq!(timer.pop_due(60_000, 5_000).len(), 3_000);
    }

    #[test]
    fn an_entry_knows_the_version_it_was_made_from() {
        let mut timer = Timer::default();
        let mut read = cron("a", Some(1_000), true);
        read.updated_at = 7;
        timer.upsert(&CronTiming::from(&read), 10_000);
        let due = timer.pop_due(1_000, 10).pop().expect("due");
        assert!(due.entry.is_version_of(&read));
        let mut fired_elsewhere = read.clone();
        fired_elsewhere.next_run_at = Some(2_000);
        assert!(!due.entry.is_version_of(&fired_elsewhere));
        let mut changed = read.clone();
        changed.updated_at = 8;
        assert!(!due.entry.is_version_of(&changed));
        let mut payload_only = read;
        payload_only.payload = json!({"input": {"n": 1}});
        assert!(
            due.entry.is_version_of(&payload_only),
            "the version is (next, updated_at)"
        );
    }

    #[test]
    fn only_a_cron_fired_at_its_instant_keeps_its_row() {
        let mut timer = Timer::with_lead(500);
        let mut overlapping = cron("o", Some(2_000), true);
        overlapping.overlap = Overlap::Skip;
        timer.upsert_row(overlapping, 10_000);
        timer.upsert_row(cron("s", Some(2_000), true), 10_000);
        let stateless = timer.pop_due(1_500, 10).pop().expect("s");
        assert!(stateless.entry.row.is_none(), "read ahead of its instant");
        let at_instant = timer.pop_due(2_000, 10).pop().expect("o");
        assert_eq!(
            at_instant.entry.row.map(|row| row.cron_id),
            Some("o".into())
        );
        let mut changed = timing("o", Some(3_000), true);
        changed.overlap = Overlap::Skip;
        timer.upsert(&changed, 10_000);
        let read_again = timer.pop_due(3_000, 10).pop().expect("o");
        assert!(read_again.entry.row.is_none(), "a change drops the row");
    }

    #[test]
    fn changes_replace_and_removals_drop() {
        let mut timer = Timer::default();
        timer.upsert(&timing("a", Some(1_000), true), 10_000);
        timer.upsert(&timing("a", Some(5_000), true), 10_000);
        assert_eq!(
            timer.next_fire_at(),
            Some(5_000),
            "the old instant is stale"
        );
        assert!(timer.pop_due(4_000, 10).is_empty());
        timer.upsert(&timing("a", Some(5_000), false), 10_000);
        assert_eq!(timer.next_fire_at(), None, "disabled crons leave the timer");
        timer.upsert(&timing("b", Some(50_000), true), 10_000);
        assert!(timer.is_empty(), "beyond the horizon: loaded later");
        timer.upsert(&timing("c", Some(1_000), true), 10_000);
        timer.remove("c");
        assert!(timer.pop_due(99_000, 10).is_empty());
    }

    #[test]
    fn holds_only_the_version_it_was_given() {
        let mut timer = Timer::default();
        timer.upsert(&timing("a", Some(1_000), true), 10_000);
        assert!(timer.holds(&("a".into(), Some(1_000), 0)));
        assert!(
            !timer.holds(&("a".into(), Some(2_000), 0)),
            "moved on by another replica's fire"
        );
        assert!(
            !timer.holds(&("a".into(), Some(1_000), 5)),
            "changed through the API"
        );
        assert!(!timer.holds(&("b".into(), Some(1_000), 0)), "never loaded");
    }
}
