//! Runs: the worker pool that claims queued runs from the store, executes their graph,
//! publishes their events, and finishes them (status, thread, webhook outbox) in the store.
//!
//! The API never executes anything: it queues a run and pokes the pool through `Control`.

pub mod events;
pub mod executors;
pub mod payload;
pub mod spec;
mod waiter;
mod worker;

pub use waiter::{wait_for_end, wait_with};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use worker::{Graph, Runner, RunnerSettings};

/// In-process wake-ups between the API and the local workers. Other replicas learn the
/// same things from the store (polling), only later.
#[derive(Clone, Default)]
pub struct Control {
    wake: Arc<Notify>,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl Control {
    pub fn new() -> Control {
        Control::default()
    }

    /// A run was queued: let an idle worker claim it now rather than at its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A cancel was recorded in the store: stop the run at once if it runs here.
    pub fn cancel(&self, run_id: &str) {
        if let Some(token) = self.lock().get(run_id) {
            token.cancel();
        }
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

    async fn woken(&self) {
        self.wake.notified().await;
    }
}
