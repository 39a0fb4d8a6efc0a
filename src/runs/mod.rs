//! Runs: the worker pool that claims queued runs from the store, executes their graph,
//! publishes their events, and finishes them (status, thread, webhook outbox) in the store.
//!
//! The API never executes anything: it queues a run and pokes the pool through `Control`.

pub mod events;
pub mod executors;
mod instants;
pub mod payload;
pub mod spec;
mod submit;
mod waiter;
mod worker;

pub use submit::submit;
pub use waiter::{wait_for_end, wait_with};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use entity::run;

use crate::store::runs::Claim;
pub use worker::{Graph, Runner, RunnerSettings, SlotKind};

/// In-process wake-ups between the API (and scheduler) and the local workers. Other
/// replicas learn the same things from the store (polling), only later.
#[derive(Clone, Default)]
pub struct Control {
    /// One wake-up per kind of slot (`SlotKind`), each for its own claim loop.
    wake: Arc<[Notify; 2]>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    /// The local pool while it takes work (its runner holds the slots).
    pool: Arc<Mutex<Option<Arc<Runner>>>>,
}

/// A free worker slot of this process, reserved before a run is queued. The store inserts
/// the run already claimed for it when nothing is ahead of it on its thread (`Claim`), and
/// `start` executes it at once: no claim round trip through the store, no wait for a wake.
/// A run of the other kind of slot than the one reserved takes a slot of its own kind
/// instead, or goes back to the queue (see `Runner`): each kind keeps to its limit.
pub struct Slot {
    runner: Arc<Runner>,
    kind: SlotKind,
    permit: OwnedSemaphorePermit,
}

impl Slot {
    /// The lease under which the store claims the run for this slot.
    pub fn claim(&self) -> Claim {
        self.runner.claim()
    }

    /// Executes a run the store claimed for this slot.
    pub fn start(self, run: run::Model) {
        self.runner.launch(run, self.kind, self.permit);
    }

    /// Executes a run the store claimed for this slot ahead of its instant `at`, at `at`
    /// (and records how late that was as the fire's lateness).
    pub fn start_at(self, run: run::Model, at: crate::time::Millis) {
        self.runner.launch_at(run, self.kind, self.permit, at);
    }
}

impl Control {
    pub fn new() -> Control {
        Control::default()
    }

    /// A run was queued: let an idle worker claim it now rather than at its next poll.
    pub fn wake(&self) {
        for notify in self.wake.iter() {
            notify.notify_one();
        }
    }

    /// Runs for slots of `kind` were queued: wake that kind's claims.
    fn wake_kind(&self, kind: SlotKind) {
        self.wake[kind as usize].notify_one();
    }

    /// A cancel was recorded in the store: stop the run at once if it runs here.
    pub fn cancel(&self, run_id: &str) {
        if let Some(token) = self.lock().get(run_id) {
            token.cancel();
        }
    }

    /// A free local worker slot for a run of `assistant_id`, if the pool runs here and
    /// has one of the run's kind.
    pub fn reserve(&self, assistant_id: &str) -> Option<Slot> {
        let runner = self.runner()?;
        let kind = runner.kind_of(assistant_id);
        let permit = runner.try_slot(kind)?;
        Some(Slot {
            runner,
            kind,
            permit,
        })
    }

    /// Up to `count` free local in-process slots (the scheduler's, for the runs of the
    /// crons it fires; a `command` graph's run placed in one moves to a slot of its kind).
    pub fn reserve_many(&self, count: usize) -> Vec<Slot> {
        let Some(runner) = self.runner() else {
            return Vec::new();
        };
        std::iter::from_fn(|| runner.try_slot(SlotKind::InProcess))
            .take(count)
            .map(|permit| Slot {
                runner: runner.clone(),
                kind: SlotKind::InProcess,
                permit,
            })
            .collect()
    }

    /// The next local in-process slot to free (never, while the pool does not run here).
    /// Waiters are served in turn, so the scheduler waiting here gets its share of the slots
    /// that free while the workers claim a backlog.
    pub async fn next_slot(&self) -> Slot {
        let Some(runner) = self.runner() else {
            return std::future::pending().await;
        };
        let permit = runner.next_slot(SlotKind::InProcess).await;
        Slot {
            runner,
            kind: SlotKind::InProcess,
            permit,
        }
    }

    fn runner(&self) -> Option<Arc<Runner>> {
        self.pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The pool takes work (`Some`) or has stopped taking it (`None`).
    fn attach(&self, pool: Option<Arc<Runner>>) {
        *self
            .pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = pool;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn track(&self, run_id: &str) -> CancellationToken {
        let token = CancellationToken::new();
        self.lock().insert(run_id.to_string(), token.clone());
        token
    }

    fn untrack(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    fn tracked(&self) -> Vec<(String, CancellationToken)> {
        self.lock()
            .iter()
            .map(|(id, token)| (id.clone(), token.clone()))
            .collect()
    }

    async fn woken(&self, kind: SlotKind) {
        self.wake[kind as usize].notified().await;
    }
}
