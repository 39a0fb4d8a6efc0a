//! The in-memory timer: the crons due soon, earliest fire time first. A cron's fire time is
//! its next instant, less the pre-fire lead for stateless crons (see `Scheduler`). Entries
//! are replaced or removed as crons change; a superseded heap entry is skipped when it
//! surfaces.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use entity::cron;
use entity::states::Overlap;

use crate::store::fires::CronVersion;
use crate::time::Millis;

#[derive(Default)]
pub struct Timer {
    heap: BinaryHeap<Reverse<(Millis, String)>>,
    /// The live entry of each cron: the row as last read.
    crons: HashMap<String, cron::Model>,
    /// How long before its instant a stateless cron fires.
    lead: Millis,
}

impl Timer {
    pub fn with_lead(lead: Millis) -> Timer {
        Timer {
            lead,
            ..Timer::default()
        }
    }

    /// How long before its instant `cron` is fired: stateless crons are written ahead,
    /// thread crons at the instant (their run joins the thread's queue only when it is due),
    /// and so are crons whose `overlap` looks at the runs active at the instant.
    pub fn lead(&self, cron: &cron::Model) -> Millis {
        if cron.thread_id.is_none() && cron.overlap == Overlap::Allow {
            self.lead
        } else {
            0
        }
    }

    fn fire_at(&self, cron: &cron::Model) -> Option<Millis> {
        cron.next_run_at.map(|next| next - self.lead(cron))
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
    pub fn upsert(&mut self, cron: cron::Model, horizon: Millis) {
        match cron.next_run_at {
            Some(next) if cron.enabled && next <= horizon => {
                let unchanged = self
                    .crons
                    .get(&cron.cron_id)
                    .is_some_and(|known| known.next_run_at == cron.next_run_at);
                if !unchanged {
                    let at = self.fire_at(&cron).unwrap_or(next);
                    self.heap.push(Reverse((at, cron.cron_id.clone())));
                }
                self.crons.insert(cron.cron_id.clone(), cron);
            }
            _ => {
                self.crons.remove(&cron.cron_id);
            }
        }
    }

    /// Whether the timer holds this version of a cron (same next instant, same last change).
    pub fn holds(&self, (cron_id, next_run_at, updated_at): &CronVersion) -> bool {
        self.crons
            .get(cron_id)
            .is_some_and(|cron| cron.next_run_at == *next_run_at && cron.updated_at == *updated_at)
    }

    /// The crons held, as last read.
    pub fn crons(&self) -> impl Iterator<Item = &cron::Model> {
        self.crons.values()
    }

    pub fn remove(&mut self, cron_id: &str) {
        self.crons.remove(cron_id);
    }

    /// The earliest live fire time.
    pub fn next_fire_at(&mut self) -> Option<Millis> {
        self.skip_stale();
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes up to `limit` crons whose fire time is at or before `now`, earliest first.
    pub fn pop_due(&mut self, now: Millis, limit: usize) -> Vec<cron::Model> {
        let mut due = Vec::new();
        while due.len() < limit {
            self.skip_stale();
            match self.heap.peek() {
                Some(Reverse((at, _))) if *at <= now => {
                    if let Some(Reverse((_, cron_id))) = self.heap.pop()
                        && let Some(cron) = self.crons.remove(&cron_id)
                    {
                        due.push(cron);
                    }
                }
                _ => break,
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
                .is_some_and(|cron| self.fire_at(cron) == Some(*at));
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

    fn ids(due: Vec<cron::Model>) -> Vec<String> {
        due.into_iter().map(|c| c.cron_id).collect()
    }

    #[test]
    fn pops_in_instant_order_up_to_now() {
        let mut timer = Timer::default();
        timer.upsert(cron("b", Some(2_000), true), 10_000);
        timer.upsert(cron("a", Some(1_000), true), 10_000);
        timer.upsert(cron("c", Some(3_000), true), 10_000);
        assert_eq!(timer.next_fire_at(), Some(1_000));
        assert_eq!(ids(timer.pop_due(2_000, 10)), ["a", "b"]);
        assert_eq!(timer.next_fire_at(), Some(3_000));
        assert_eq!(timer.len(), 1);
        timer.upsert(cron("d", Some(3_000), true), 10_000);
        assert_eq!(
            timer.pop_due(5_000, 1).len(),
            1,
            "at most `limit` at a time"
        );
        assert_eq!(timer.pop_due(5_000, 10).len(), 1);
    }

    #[test]
    fn stateless_crons_fire_ahead_by_the_lead_thread_crons_at_their_instant() {
        let mut timer = Timer::with_lead(500);
        let mut on_thread = cron("t", Some(2_000), true);
        on_thread.thread_id = Some("thread".into());
        timer.upsert(on_thread, 10_000);
        timer.upsert(cron("s", Some(2_000), true), 10_000);
        assert_eq!(timer.next_fire_at(), Some(1_500));
        assert_eq!(ids(timer.pop_due(1_500, 10)), ["s"]);
        assert_eq!(timer.next_fire_at(), Some(2_000));
        assert_eq!(timer.pop_due(2_000, 10).len(), 1);
    }

    #[test]
    fn changes_replace_and_removals_drop() {
        let mut timer = Timer::default();
        timer.upsert(cron("a", Some(1_000), true), 10_000);
        timer.upsert(cron("a", Some(5_000), true), 10_000);
        assert_eq!(
            timer.next_fire_at(),
            Some(5_000),
            "the old instant is stale"
        );
        assert!(timer.pop_due(4_000, 10).is_empty());
        timer.upsert(cron("a", Some(5_000), false), 10_000);
        assert_eq!(timer.next_fire_at(), None, "disabled crons leave the timer");
        timer.upsert(cron("b", Some(50_000), true), 10_000);
        assert!(timer.is_empty(), "beyond the horizon: loaded later");
        timer.upsert(cron("c", Some(1_000), true), 10_000);
        timer.remove("c");
        assert!(timer.pop_due(99_000, 10).is_empty());
    }

    #[test]
    fn holds_only_the_version_it_was_given() {
        let mut timer = Timer::default();
        timer.upsert(cron("a", Some(1_000), true), 10_000);
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
