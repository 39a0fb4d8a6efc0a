//! The delivery worker pool. Deliveries reach it two ways: handed over in-process by the
//! run worker that wrote them (already leased to this process, so the first attempt goes
//! out within a millisecond of the run's end), and claimed from the store when their
//! retry is due or their owner died. Outcomes are written in batches by one recorder.
//!
//! URLs are never logged: they may carry a token in their query string.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use entity::delivery;
use entity::states::DeliveryStatus;

use super::Settings;
use super::retry::Verdict;
use super::sender::{self, AttemptOutcome};
use crate::store::deliveries::{AttemptRecord, NextStep};
use crate::store::{PassingRetry, Store};
use crate::time::{Millis, now_ms};

/// Outcomes written per transaction at most.
const RECORD_BATCH: usize = 256;
/// Deliveries claimed per query at most.
const CLAIM_BATCH: u64 = 256;

/// The handle the runs layer and the API hold: hand over new deliveries, wake the pool.
#[derive(Clone)]
pub struct Outbox {
    fresh: mpsc::UnboundedSender<delivery::Model>,
    wake: Arc<Notify>,
    owner: String,
    lease: Duration,
    delivers_here: bool,
    disabled: bool,
}

impl Outbox {
    /// `[http] disable_webhooks`: write and send nothing.
    pub fn disabled(&self) -> bool {
        self.disabled
    }

    /// The lease a delivery written now takes, when this process will attempt it at once.
    pub fn lease_for_new(&self) -> Option<(String, Millis)> {
        self.delivers_here
            .then(|| (self.owner.clone(), now_ms() + self.lease.as_millis() as i64))
    }

    /// A delivery just written with `lease_for_new`'s lease: attempt it now.
    pub fn submit(&self, delivery: delivery::Model) {
        if self.delivers_here {
            let _ = self.fresh.send(delivery);
        }
    }

    /// Something became due (a manual retry): look at the store now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

pub struct Dispatcher {
    store: Store,
    settings: Arc<Settings>,
    client: reqwest::Client,
    /// The daemon's own address, against which relative webhook URLs resolve.
    base: Url,
    owner: String,
    lease: Duration,
    fresh: mpsc::UnboundedReceiver<delivery::Model>,
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        settings: Settings,
        base: Url,
    ) -> reqwest::Result<(Dispatcher, Outbox)> {
        let client = sender::client(&settings)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let owner = format!("webhooks-{}", uuid::Uuid::now_v7());
        // Long enough that a live attempt never loses its lease.
        let lease = (settings.timeout * 3).max(Duration::from_secs(30));
        let wake = Arc::new(Notify::new());
        let outbox = Outbox {
            fresh: tx,
            wake: wake.clone(),
            owner: owner.clone(),
            lease,
            delivers_here: settings.workers > 0 && !settings.disabled,
            disabled: settings.disabled,
        };
        let dispatcher = Dispatcher {
            store,
            settings: Arc::new(settings),
            client,
            base,
            owner,
            lease,
            fresh: rx,
            wake,
        };
        Ok((dispatcher, outbox))
    }

    /// Delivers until `shutdown`, then finishes the attempts in flight, records them, and
    /// gives back the leases of deliveries it had not started.
    pub async fn run(mut self, shutdown: CancellationToken) {
        if self.settings.disabled {
            tracing::warn!("webhooks are disabled ([http] disable_webhooks): no webhook is called");
            return;
        }
        if self.settings.workers == 0 {
            tracing::info!("webhooks.workers = 0: this process delivers no webhooks");
            return;
        }
        let permits = Arc::new(Semaphore::new(self.settings.workers));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let unwritten = Unwritten::default();
        let recorder = tokio::spawn(record_loop(
            self.store.clone(),
            self.owner.clone(),
            unwritten.clone(),
            shutdown.clone(),
            done_rx,
        ));
        let mut in_flight = JoinSet::new();
        let mut unstarted = Vec::new();
        let mut claim_now = true;
        // The last claim came back full: more is due, so claim again as slots free up
        // (a quarter of the pool at a time) instead of waiting for the next poll.
        let mut backlog = false;
        let refill_at = (self.settings.workers / 4).max(1);
        // An interval, not a sleep made anew each turn: under a steady stream of fresh
        // deliveries a fresh sleep would never elapse, and due retries would starve.
        let mut poll = tokio::time::interval(self.settings.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'work: while !shutdown.is_cancelled() {
            if claim_now {
                claim_now = false;
                let free = permits.available_permits() as u64;
                if free > 0 {
                    match self
                        .store
                        .claim_deliveries(
                            &self.owner,
                            free.min(CLAIM_BATCH),
                            self.lease.as_millis() as i64,
                        )
                        .await
                    {
                        Ok(claimed) => {
                            backlog = claimed.len() as u64 == free.min(CLAIM_BATCH);
                            for delivery in claimed {
                                let Some(permit) = self.permit(&permits, &shutdown).await else {
                                    unstarted.push(delivery.delivery_id);
                                    continue;
                                };
                                self.start(&mut in_flight, permit, delivery, &done_tx, &unwritten);
                            }
                        }
                        Err(err) => {
                            tracing::error!(error = %err, "claiming webhook deliveries failed")
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break 'work,
                delivery = self.fresh.recv() => {
                    let Some(delivery) = delivery else { break 'work };
                    // Handed over but not started in time: the lease is gone, and whoever
                    // claims the delivery next sends it.
                    if delivery.lease_expires_at.is_some_and(|at| at < now_ms() + 1000) {
                        continue;
                    }
                    match self.permit(&permits, &shutdown).await {
                        Some(permit) => {
                            self.start(&mut in_flight, permit, delivery, &done_tx, &unwritten)
                        }
                        None => unstarted.push(delivery.delivery_id),
                    }
                }
                _ = self.wake.notified() => claim_now = true,
                _ = poll.tick() => claim_now = true,
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {
                    claim_now = backlog && permits.available_permits() >= refill_at;
                }
            }
        }
        self.fresh.close();
        while let Ok(delivery) = self.fresh.try_recv() {
            unstarted.push(delivery.delivery_id);
        }
        // Attempts under way end within their timeout.
        while in_flight.join_next().await.is_some() {}
        drop(done_tx);
        let _ = recorder.await;
        match self.store.release_deliveries(&self.owner, &unstarted).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "webhook deliveries handed back"),
            Err(err) => tracing::warn!(error = %err, "handing back webhook deliveries failed"),
        }
    }

    async fn permit(
        &self,
        permits: &Arc<Semaphore>,
        shutdown: &CancellationToken,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::select! {
            permit = permits.clone().acquire_owned() => permit.ok(),
            _ = shutdown.cancelled() => None,
        }
    }

    fn start(
        &self,
        in_flight: &mut JoinSet<()>,
        permit: tokio::sync::OwnedSemaphorePermit,
        delivery: delivery::Model,
        done: &mpsc::UnboundedSender<AttemptRecord>,
        unwritten: &Unwritten,
    ) {
        // Claimed again while the outcome of its last attempt waits to be written (its lease
        // lapsed while the store refused writes): that outcome stands, nothing is sent.
        if !unwritten.add(&delivery.delivery_id) {
            return;
        }
        let client = self.client.clone();
        let settings = self.settings.clone();
        let base = self.base.clone();
        let done = done.clone();
        in_flight.spawn(async move {
            let outcome = sender::attempt(&client, &settings, &base, &delivery).await;
            drop(permit);
            let _ = done.send(record(&settings, &delivery, outcome));
        });
    }
}

/// The stored form of an attempt, with what comes next.
fn record(
    settings: &Settings,
    delivery: &delivery::Model,
    outcome: AttemptOutcome,
) -> AttemptRecord {
    let attempt = delivery.attempts + 1;
    let next = match outcome.verdict {
        Verdict::Delivered => NextStep::Delivered,
        Verdict::Failed => NextStep::Failed,
        Verdict::Retry(asked) => match settings.retry.delay_after(attempt, asked) {
            Some(wait) => NextStep::RetryAt(now_ms() + wait.as_millis() as i64),
            None => NextStep::Failed,
        },
    };
    match next {
        NextStep::Delivered => {
            tracing::debug!(delivery_id = %delivery.delivery_id, run_id = %delivery.run_id, attempt, "webhook delivered")
        }
        NextStep::RetryAt(at) => tracing::info!(
            delivery_id = %delivery.delivery_id, run_id = %delivery.run_id, attempt,
            error = outcome.error.as_deref().unwrap_or(""), retry_in_ms = at - now_ms(),
            "webhook attempt failed; will retry"
        ),
        NextStep::Failed => tracing::warn!(
            delivery_id = %delivery.delivery_id, run_id = %delivery.run_id, attempt,
            error = outcome.error.as_deref().unwrap_or(""),
            "webhook delivery failed for good"
        ),
    }
    AttemptRecord {
        delivery_id: delivery.delivery_id.clone(),
        attempt,
        attempted_at: outcome.attempted_at,
        status_code: outcome.status_code.map(i32::from),
        latency_us: outcome.latency.as_micros() as i64,
        error: outcome.error,
        response_body: outcome.response_body,
        next,
    }
}

/// The deliveries attempted whose outcome is not written yet.
#[derive(Clone, Default)]
struct Unwritten(Arc<Mutex<HashSet<String>>>);

impl Unwritten {
    /// Marks an attempt begun; false when one of the delivery's is still unwritten.
    fn add(&self, delivery_id: &str) -> bool {
        self.ids().insert(delivery_id.to_string())
    }

    fn written(&self, records: &[AttemptRecord]) {
        let mut ids = self.ids();
        for record in records {
            ids.remove(&record.delivery_id);
        }
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A panic cannot leave the set half-changed (a holder does one insert, or removes),
        // so a poisoned lock is used as it is.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes outcomes as they come, many per transaction when many come together.
async fn record_loop(
    store: Store,
    owner: String,
    unwritten: Unwritten,
    shutdown: CancellationToken,
    mut done: mpsc::UnboundedReceiver<AttemptRecord>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while done.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        for record in &batch {
            // The status the attempt left its delivery in, or `retried` while it stays pending.
            let outcome = match record.next {
                NextStep::Delivered => DeliveryStatus::Delivered.as_str(),
                NextStep::RetryAt(_) => "retried",
                NextStep::Failed => DeliveryStatus::Failed.as_str(),
            };
            metrics::counter!(crate::metrics::WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
            metrics::histogram!(crate::metrics::WEBHOOK_LATENCY)
                .record(record.latency_us.max(0) as f64 / 1e6);
        }
        write_outcomes(&store, &owner, &batch, &shutdown).await;
        unwritten.written(&batch);
        batch.clear();
    }
}

/// Writes a batch of outcomes, again and again while the store refuses it for a passing
/// cause (database away, disk full): this process does not send those deliveries again
/// however long the outage lasts (another replica may, once their leases lapse). At
/// shutdown, or on any other error, the batch is given up: the leases lapse and the
/// deliveries are attempted again (at least once).
async fn write_outcomes(
    store: &Store,
    owner: &str,
    batch: &[AttemptRecord],
    shutdown: &CancellationToken,
) {
    let mut retry = PassingRetry::default();
    loop {
        let Err(err) = store.record_attempts(owner, batch).await else {
            return;
        };
        if !err.is_passing() || shutdown.is_cancelled() {
            tracing::error!(error = %err, count = batch.len(), "recording webhook attempts failed; their deliveries will be attempted again");
            return;
        }
        let pause = retry.next_pause();
        tracing::warn!(error = %err, count = batch.len(), retry_in_ms = pause.as_millis() as u64, "recording webhook attempts failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
