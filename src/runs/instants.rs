//! The instants of runs claimed ahead: the runs wait here for their instant, are woken
//! together when it comes, and each writes its end only once every run of its instant has
//! started.
//!
//! Why not a tokio timer per run: tokio's timer counts whole milliseconds, so each sleep
//! ended up to a millisecond after its instant, and the first run of a burst started
//! 1.1–2 ms late. One thread here sleeps until the earliest instant with the system's
//! sub-millisecond timer (`Condvar::wait_timeout`) and wakes that instant's runs at once,
//! through one task on the runtime: one wake-up crosses from this thread, and the runs'
//! wake-ups go to that worker's own queue, where the other workers steal them.
//!
//! Why ends wait: two cores start a burst of a thousand runs in a few milliseconds. A run
//! that ended early sent its end to the store at once, and the group commit then built its
//! statements, and SQLite wrote them, on those same cores while the rest of the burst was
//! still waiting to start. Held until the burst has started, the ends go in one batch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::time::{Millis, until};

/// The runs waiting for their instants, and the thread that wakes them.
pub struct Instants {
    shared: Arc<Shared>,
}

/// Where the clock wakes an instant's runs: on the runtime they run on.
type Runtime = tokio::runtime::Handle;

struct Shared {
    state: Mutex<State>,
    /// Signalled when an earlier instant is added, or on stop.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Instants still to come, each with its runs.
    upcoming: BTreeMap<Millis, Arc<Group>>,
    stopped: bool,
}

/// The runs of one instant.
#[derive(Default)]
struct Group {
    arrived: AtomicBool,
    arrival: Notify,
    /// Runs of this instant not started yet.
    unstarted: AtomicUsize,
    all_started: Notify,
}

impl Group {
    fn arrive(&self) {
        self.arrived.store(true, Ordering::Release);
        self.arrival.notify_waiters();
    }

    fn one_started(&self) {
        if self.unstarted.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_started.notify_waiters();
        }
    }
}

/// Waits on `notify` until `done` (registered before looking, so no wake-up is missed).
async fn wait_until(notify: &Notify, done: impl Fn() -> bool) {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return;
        }
        notified.await;
    }
}

impl Instants {
    /// Starts the clock thread; call on the runtime the runs run on.
    pub fn new() -> Instants {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let clock = shared.clone();
        let runtime = Runtime::current();
        std::thread::Builder::new()
            .name("cronhook-instants".into())
            .spawn(move || clock.run(&runtime))
            .expect("spawning the instants thread");
        Instants { shared }
    }

    /// A run that starts at instant `at` (wall-clock ms; one already past comes at once).
    pub fn join(&self, at: Millis) -> Ticket {
        let mut state = self.shared.lock();
        let earliest = state.upcoming.keys().next().is_none_or(|first| at < *first);
        let group = state.upcoming.entry(at).or_default().clone();
        group.unstarted.fetch_add(1, Ordering::AcqRel);
        drop(state);
        if earliest {
            self.shared.changed.notify_one();
        }
        Ticket { group }
    }
}

impl Drop for Instants {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The clock: sleeps until the earliest instant, by the wall clock (looked at again on
    /// every wake-up, so a clock step moves the wait), then wakes its runs.
    fn run(&self, runtime: &Runtime) {
        let mut state = self.lock();
        while !state.stopped {
            let Some(&at) = state.upcoming.keys().next() else {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            };
            let wait = until(at);
            if !wait.is_zero() {
                state = self
                    .changed
                    .wait_timeout(state, wait)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
                continue;
            }
            if let Some(group) = state.upcoming.remove(&at) {
                drop(state);
                runtime.spawn(async move { group.arrive() });
                state = self.lock();
            }
        }
    }
}

/// A run's place at its instant. Dropped without starting (its task was dropped), it no
/// longer holds up the others' ends.
pub struct Ticket {
    group: Arc<Group>,
}

impl Ticket {
    /// Returns when the instant has come.
    pub async fn arrival(&self) {
        wait_until(&self.group.arrival, || {
            self.group.arrived.load(Ordering::Acquire)
        })
        .await;
    }

    /// The run has started.
    pub fn started(self) -> Burst {
        Burst {
            group: self.group.clone(),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.group.one_started();
    }
}

/// The runs started at one instant.
pub struct Burst {
    group: Arc<Group>,
}

impl Burst {
    /// Returns once every run of the instant has started.
    pub async fn all_started(&self) {
        wait_until(&self.group.all_started, || {
            self.group.unstarted.load(Ordering::Acquire) == 0
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::now_ms;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_wake_at_their_instant_not_before() {
        let instants = Instants::new();
        let at = now_ms() + 50;
        let tickets: Vec<Ticket> = (0..3).map(|_| instants.join(at)).collect();
        for ticket in &tickets {
            ticket.arrival().await;
            let late = now_ms() - at;
            assert!(
                (0..=20).contains(&late),
                "woken {late} ms after the instant"
            );
        }
    }

    #[tokio::test]
    async fn an_earlier_instant_joined_later_comes_first() {
        let instants = Instants::new();
        let later = instants.join(now_ms() + 10_000);
        let sooner = instants.join(now_ms() + 30);
        tokio::time::timeout(Duration::from_secs(2), sooner.arrival())
            .await
            .expect("the sooner instant came while the later one still waits");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), later.arrival())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn ends_wait_until_every_run_of_the_instant_started_or_was_dropped() {
        let instants = Instants::new();
        let at = now_ms();
        let first = instants.join(at);
        let second = instants.join(at);
        let third = instants.join(at);
        first.arrival().await;
        let burst = first.started();
        let wait = || tokio::time::timeout(Duration::from_millis(50), burst.all_started());
        assert!(wait().await.is_err(), "two runs have not started");
        let _second = second.started();
        assert!(wait().await.is_err(), "one run has not started");
        drop(third);
        wait()
            .await
            .expect("a dropped run no longer holds the others up");
    }
}
