//! The worker pool: claim, execute, finish; renew leases; recover runs whose worker died.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use entity::run;
use entity::states::RunStatus;

use super::Control;
use super::events::{EventHub, RunEnd};
use super::executors::{Emitter, Executor, Failure, RunInput};
use super::instants::{Burst, Instants, Ticket};
use super::payload::webhook_payload;
use crate::config::RunsConfig;
use crate::store::runs::{Assistants, Claim, Completion, Lease, Outcome};
use crate::store::{PassingRetry, Store};
use crate::webhooks::Outbox;

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Runs of in-process graphs executing at once in this process.
    pub concurrency: usize,
    /// Runs of `command` graphs (a process each) executing at once in this process.
    pub command_concurrency: usize,
    /// A claimed run is re-queued this long after its worker stops renewing.
    pub lease: Duration,
    /// How often leases are renewed (and cancels from other replicas noticed).
    pub renew_every: Duration,
    /// How often the store is polled for runs queued elsewhere or delayed.
    pub poll_every: Duration,
}

impl From<&RunsConfig> for RunnerSettings {
    fn from(config: &RunsConfig) -> Self {
        RunnerSettings {
            concurrency: config.concurrency,
            command_concurrency: config.command_concurrency,
            lease: config.lease,
            // Often enough that a lease never lapses under a live worker, and that cancels
            // recorded by other replicas are noticed within seconds.
            renew_every: (config.lease / 6)
                .clamp(Duration::from_millis(100), Duration::from_secs(2)),
            poll_every: config.poll_interval,
        }
    }
}

/// A graph known to this process: its name and how it runs.
#[derive(Debug, Clone)]
pub struct Graph {
    pub graph_id: String,
    pub executor: Executor,
}

/// Runs claimed by one statement at most.
const MAX_CLAIM: usize = 256;

/// The two kinds of run slot, each with its own limit: a run of a `command` graph costs a
/// process, any other run a task, so neither kind takes the other's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// `echo`, `http` and `langgraph` graphs (and runs of an unknown assistant, which
    /// fail at once): `[runs] concurrency`.
    InProcess,
    /// `command` graphs: `[runs] command_concurrency`.
    Command,
}

impl SlotKind {
    fn index(self) -> usize {
        self as usize
    }
}

/// The slots of one kind: a permit each, and how many there are.
struct Pool {
    permits: Arc<Semaphore>,
    size: usize,
    /// The runs this pool's claims take.
    only: Assistants,
}

impl Pool {
    fn busy(&self) -> usize {
        self.size - self.permits.available_permits()
    }
}

pub struct Runner {
    store: Store,
    hub: EventHub,
    control: Control,
    /// Graphs by assistant id.
    graphs: HashMap<String, Graph>,
    /// Assistant ids of the `command` graphs.
    commands: HashSet<String>,
    /// The slots by kind (`SlotKind::index`).
    pools: [Pool; 2],
    settings: RunnerSettings,
    worker_id: String,
    /// Where finished runs' webhook deliveries go.
    outbox: Outbox,
    /// Where runs claimed ahead wait for their instant.
    instants: Instants,
    /// Fire lateness of runs started at their instant (a handle: looked up once, not per run).
    fire_lateness: metrics::Histogram,
    /// Cancelled when a shutdown's grace period is over: runs still executing stop and go
    /// back to the queue instead of ending.
    handback: CancellationToken,
}

impl Runner {
    pub fn new(
        store: Store,
        hub: EventHub,
        control: Control,
        graphs: HashMap<String, Graph>,
        settings: RunnerSettings,
        outbox: Outbox,
    ) -> Arc<Runner> {
        let commands: HashSet<String> = graphs
            .iter()
            .filter(|(_, graph)| matches!(graph.executor, Executor::Command(_)))
            .map(|(id, _)| id.clone())
            .collect();
        let mut ids: Vec<String> = commands.iter().cloned().collect();
        ids.sort();
        let pool = |size: usize, only: Assistants| Pool {
            permits: Arc::new(Semaphore::new(size)),
            size,
            only,
        };
        let pools = [
            pool(settings.concurrency, Assistants::Except(ids.clone())),
            pool(settings.command_concurrency, Assistants::Of(ids)),
        ];
        Arc::new(Runner {
            store,
            hub,
            control,
            graphs,
            commands,
            pools,
            settings,
            worker_id: format!("worker-{}", uuid::Uuid::now_v7()),
            outbox,
            instants: Instants::new(),
            fire_lateness: metrics::histogram!(crate::metrics::FIRE_LATENESS),
            handback: CancellationToken::new(),
        })
    }

    /// Claims and executes runs until `stop`; then lets the runs executing here finish for
    /// up to `grace`, and hands the rest back to the queue for another worker or replica.
    pub async fn run(self: Arc<Self>, stop: CancellationToken, grace: Duration) {
        // Leases are renewed until the last run here has finished or been handed back.
        let renewing = CancellationToken::new();
        let leases = tokio::spawn(self.clone().lease_loop(renewing.clone()));
        let recovery = tokio::spawn(self.clone().recovery_loop(stop.clone()));
        self.control.attach(Some(self.clone()));
        // A pool claims only when it has runs to claim: no command graph, no command claims.
        let command_claims = (!self.commands.is_empty())
            .then(|| tokio::spawn(self.clone().claim_loop(SlotKind::Command, stop.clone())));
        self.clone()
            .claim_loop(SlotKind::InProcess, stop.clone())
            .await;
        if let Some(claims) = command_claims {
            let _ = claims.await;
        }
        // Slots reserved before this point still start their runs; no new ones are handed out.
        self.control.attach(None);

        let all_done = || async {
            for pool in &self.pools {
                let _ = pool.permits.acquire_many(pool.size as u32).await;
            }
        };
        let busy = || self.pools.iter().map(Pool::busy).sum::<usize>();
        let running = busy();
        if running > 0 {
            tracing::info!(running, grace = ?grace, "waiting for running runs to finish");
        }
        if tokio::time::timeout(grace, all_done()).await.is_err() {
            let left = busy();
            tracing::warn!(
                runs = left,
                "grace period over: handing runs back to the queue"
            );
            self.handback.cancel();
            if tokio::time::timeout(Duration::from_secs(10), all_done())
                .await
                .is_err()
            {
                tracing::error!("runs did not stop; their leases will expire and re-queue them");
            }
        }
        renewing.cancel();
        let _ = leases.await;
        let _ = recovery.await;
    }

    /// Claims runs for the free slots of one kind, and launches them.
    async fn claim_loop(self: Arc<Self>, kind: SlotKind, stop: CancellationToken) {
        let pool = &self.pools[kind.index()];
        let permits = &pool.permits;
        while !stop.is_cancelled() {
            // Slots first, so every run claimed has one to start in.
            let slots: Vec<OwnedSemaphorePermit> =
                std::iter::from_fn(|| permits.clone().try_acquire_owned().ok())
                    .take(MAX_CLAIM)
                    .collect();
            if slots.is_empty() {
                // Every slot is busy: claim again as soon as a run ends (not at the next
                // wake-up or poll, which would cap throughput at a batch per poll).
                tokio::select! {
                    permit = permits.acquire() => drop(permit),
                    _ = stop.cancelled() => return,
                }
                continue;
            }
            let wanted = slots.len();
            let claimed = match self
                .store
                .claim_runs(self.claim(), wanted as u64, pool.only.clone())
                .await
            {
                Ok(runs) => runs,
                Err(err) => {
                    tracing::error!(error = %err, "claiming runs failed");
                    Vec::new()
                }
            };
            let claimed_all = claimed.len() == wanted;
            for (run, slot) in claimed.into_iter().zip(slots) {
                self.clone().spawn(run, slot, None);
            }
            if claimed_all {
                continue;
            }
            tokio::select! {
                _ = self.control.woken(kind) => {}
                _ = tokio::time::sleep(self.settings.poll_every) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// The lease under which runs are claimed for this process.
    pub(super) fn claim(&self) -> Claim {
        Claim {
            worker: self.worker_id.clone(),
            lease_ms: self.settings.lease.as_millis() as i64,
        }
    }

    /// The kind of slot a run of `assistant_id` executes in.
    pub(super) fn kind_of(&self, assistant_id: &str) -> SlotKind {
        if self.commands.contains(assistant_id) {
            SlotKind::Command
        } else {
            SlotKind::InProcess
        }
    }

    /// A free slot of `kind`, if there is one.
    pub(super) fn try_slot(&self, kind: SlotKind) -> Option<OwnedSemaphorePermit> {
        self.pools[kind.index()]
            .permits
            .clone()
            .try_acquire_owned()
            .ok()
    }

    /// The next slot of `kind` to free.
    pub(super) async fn next_slot(&self, kind: SlotKind) -> OwnedSemaphorePermit {
        match self.pools[kind.index()]
            .permits
            .clone()
            .acquire_owned()
            .await
        {
            Ok(permit) => permit,
            // The pools' semaphores are never closed.
            Err(_) => std::future::pending().await,
        }
    }

    /// Executes a claimed run in one of this process's slots (`permit`, of kind `kind`).
    pub(super) fn launch(
        self: Arc<Self>,
        run: run::Model,
        kind: SlotKind,
        permit: OwnedSemaphorePermit,
    ) {
        if let Some(permit) = self.fit(&run, kind, permit) {
            self.spawn(run, permit, None);
        }
    }

    /// Executes a run claimed ahead of its instant `at` (wall-clock ms) when `at` comes.
    pub(super) fn launch_at(
        self: Arc<Self>,
        run: run::Model,
        kind: SlotKind,
        permit: OwnedSemaphorePermit,
        at: crate::time::Millis,
    ) {
        if let Some(permit) = self.fit(&run, kind, permit) {
            let ticket = self.instants.join(at);
            self.spawn(run, permit, Some((at, ticket)));
        }
    }

    /// The slot a run claimed for a slot of `kind` executes in. A slot reserved before the
    /// run was known (the scheduler reserves in-process slots for the crons it fires) may be
    /// of the other kind: the run then takes a free slot of its own kind in its place, or,
    /// when there is none, goes back to the queue, where its own pool claims it once one of
    /// its slots frees. Either way no kind runs beyond its limit.
    fn fit(
        self: &Arc<Self>,
        run: &run::Model,
        kind: SlotKind,
        permit: OwnedSemaphorePermit,
    ) -> Option<OwnedSemaphorePermit> {
        let own = self.kind_of(&run.assistant_id);
        if own == kind {
            return Some(permit);
        }
        drop(permit);
        if let Some(permit) = self.try_slot(own) {
            return Some(permit);
        }
        let runner = self.clone();
        let run_id = run.run_id.clone();
        tokio::spawn(async move {
            match runner
                .store
                .release_runs(&runner.worker_id, std::slice::from_ref(&run_id))
                .await
            {
                Ok(_) => {
                    tracing::debug!(%run_id, kind = ?own, "no free slot of the run's kind: run back in the queue")
                }
                Err(err) => {
                    tracing::error!(%run_id, error = %err, "handing a run back failed; its lease will re-queue it")
                }
            }
            runner.control.wake_kind(own);
        });
        None
    }

    /// The run's task: tracked (for cancels and lease renewals) and with its event channel
    /// open at once, so a run claimed ahead is known here before its instant, which then
    /// only has to start the graph.
    fn spawn(
        self: Arc<Self>,
        run: run::Model,
        permit: OwnedSemaphorePermit,
        instant: Option<(crate::time::Millis, Ticket)>,
    ) {
        tokio::spawn(async move {
            let cancel = self.control.track(&run.run_id);
            self.hub.open(&run.run_id);
            let burst = match instant {
                Some((at, ticket)) => {
                    ticket.arrival().await;
                    // To the microsecond: whole milliseconds recorded lateness up to a
                    // millisecond short.
                    self.fire_lateness
                        .record(crate::time::since(at).as_secs_f64());
                    Some(ticket.started())
                }
                None => None,
            };
            self.execute(run, cancel, burst).await;
            drop(permit);
        });
    }

    async fn lease_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.renew_every) => {}
                _ = shutdown.cancelled() => return,
            }
            let tracked = self.control.tracked();
            let ids: Vec<String> = tracked.iter().map(|(id, _)| id.clone()).collect();
            match self
                .store
                .renew_leases(
                    &self.worker_id,
                    &ids,
                    self.settings.lease.as_millis() as i64,
                    self.settings.renew_every.as_millis() as i64,
                )
                .await
            {
                Ok(leases) => {
                    for (run_id, lease) in leases {
                        if lease != Lease::Held
                            && let Some((_, token)) = tracked.iter().find(|(id, _)| *id == run_id)
                        {
                            token.cancel();
                        }
                    }
                }
                Err(err) => tracing::error!(error = %err, "renewing run leases failed"),
            }
            let running_here = self
                .control
                .tracked()
                .into_iter()
                .map(|(run_id, _)| run_id)
                .collect();
            self.hub.sweep(&running_here, super::events::KEEP_UNCLAIMED);
        }
    }

    async fn recovery_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.lease / 4) => {}
                _ = shutdown.cancelled() => return,
            }
            // Runs ended here by recovery get their webhook from whichever process polls.
            let completion = |run: &run::Model| completion(&self.outbox, run, false);
            match self.store.recover_expired_runs(completion).await {
                Ok(0) => {}
                Ok(_) => self.control.wake(),
                Err(err) => tracing::error!(error = %err, "recovering runs failed"),
            }
            match self.store.release_held(crate::time::now_ms()).await {
                Ok(0) => {}
                Ok(_) => self.control.wake(),
                Err(err) => tracing::error!(error = %err, "releasing held runs failed"),
            }
        }
    }

    /// Executes a run and records its end; a run of a `burst` records it once the whole
    /// burst has started.
    async fn execute(
        self: Arc<Self>,
        run: run::Model,
        cancel: CancellationToken,
        burst: Option<Burst>,
    ) {
        let run_id = run.run_id.clone();
        self.hub.publish(
            &run_id,
            "metadata",
            json!({"run_id": run_id, "attempt": run.attempt}),
        );
        let Some(outcome) = self.outcome(&run, cancel).await else {
            match self
                .store
                .release_runs(&self.worker_id, std::slice::from_ref(&run_id))
                .await
            {
                Ok(_) => tracing::info!(%run_id, "run handed back to the queue"),
                Err(err) => tracing::error!(%run_id, error = %err, "handing a run back failed"),
            }
            self.hub.forget(&run_id);
            self.control.untrack(&run_id);
            return;
        };
        if let Some(burst) = burst {
            burst.all_started().await;
        }
        let started_at = run.started_at;
        let on_thread = run.on_completion.is_none();
        let resumable = run
            .kwargs
            .get("resumable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // Waiters get the end as the store recorded it (a cancel that came while the run
        // ran wins over the graph's own end); one that was not recorded is not announced.
        let end = match self.record_end(run, outcome).await {
            Ok(Some(finished)) => {
                if let Some(delivery) = finished.delivery
                    && delivery.lease_owner.is_some()
                {
                    self.outbox.submit(delivery);
                }
                // The next run queued on its thread, or a run held behind it, may start
                // now: the claims look at once instead of at the next poll.
                if finished.released || on_thread {
                    self.control.wake();
                }
                Some(match finished.run {
                    Some(run) => RunEnd {
                        status: run.status,
                        values: run.output,
                        error: run.error,
                    },
                    // Rolled back: the run is gone.
                    None => RunEnd {
                        status: RunStatus::Interrupted,
                        values: None,
                        error: None,
                    },
                })
            }
            Ok(None) => {
                tracing::warn!(%run_id, "run lease lost before it finished");
                None
            }
            Err(err) => {
                tracing::error!(%run_id, error = %err, "finishing run failed; its lease will re-queue it");
                None
            }
        };
        match end {
            Some(end) => {
                metrics::counter!(crate::metrics::RUNS_FINISHED, "status" => end.status.as_str())
                    .increment(1);
                if let Some(started) = started_at {
                    let seconds = (crate::time::now_ms() - started).max(0) as f64 / 1000.0;
                    metrics::histogram!(crate::metrics::RUN_DURATION, "status" => end.status.as_str())
                        .record(seconds);
                }
                self.hub.end(&run_id, end, resumable);
            }
            // Its waiters read the store, where another worker ends it.
            None => self.hub.forget(&run_id),
        }
        self.control.untrack(&run_id);
    }

    /// Records the run's end, retrying a write that failed for a passing cause (database
    /// away, disk full) for as long as a lease lasts: the run stays tracked meanwhile, so its
    /// lease is renewed and no other worker runs it again. Only when that time is out is the
    /// run left to its lease; any other failure is final at once.
    async fn record_end(
        &self,
        run: run::Model,
        outcome: Outcome,
    ) -> crate::store::Result<Option<crate::store::runs::Finished>> {
        let give_up = tokio::time::Instant::now() + self.settings.lease;
        let mut retry = PassingRetry::default();
        loop {
            let outbox = self.outbox.clone();
            let completion = move |run: &run::Model| completion(&outbox, run, true);
            let err = match self
                .store
                .finish_run(run.clone(), &self.worker_id, outcome.clone(), completion)
                .await
            {
                Ok(finished) => return Ok(finished),
                Err(err) => err,
            };
            let pause = retry.next_pause();
            if !err.is_passing() || tokio::time::Instant::now() + pause > give_up {
                return Err(err);
            }
            tracing::warn!(run_id = %run.run_id, error = %err, retry_in_ms = pause.as_millis() as u64, "finishing run failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    /// How the run ended; `None` when it was stopped to be handed back (shutdown).
    async fn outcome(&self, run: &run::Model, cancel: CancellationToken) -> Option<Outcome> {
        let Some(graph) = self.graphs.get(&run.assistant_id) else {
            return Some(self.failed(
                run,
                Failure::error(
                    "GraphNotFound",
                    format!(
                        "assistant {} has no graph in this configuration",
                        run.assistant_id
                    ),
                ),
            ));
        };
        // A stateless run's thread was made for it alone: it holds no values yet.
        let values = match run.on_completion {
            Some(_) => Ok(None),
            None => self
                .store
                .get_thread(&run.thread_id, &crate::store::Scope::All)
                .await
                .map(|thread| thread.values),
        };
        let values = match values {
            Ok(values) => values.unwrap_or(Value::Null),
            Err(err) => {
                return Some(self.failed(run, Failure::error("ThreadError", err.to_string())));
            }
        };
        let input = run_input(run, graph, values);
        let events = Emitter::new(
            self.hub.clone(),
            run.run_id.clone(),
            input.stream_modes.clone(),
        );
        let result = tokio::select! {
            result = graph.executor.execute(&input, &events) => result,
            _ = cancel.cancelled() => return Some(Outcome::Interrupted),
            _ = self.handback.cancelled() => return None,
        };
        Some(match result {
            Ok(values) => Outcome::Success { values },
            Err(failure) => self.failed(run, failure),
        })
    }

    fn failed(&self, run: &run::Model, failure: Failure) -> Outcome {
        tracing::info!(run_id = %run.run_id, error = %failure.error, "run failed");
        self.hub
            .publish(&run.run_id, "error", failure.error.clone());
        if failure.timed_out {
            Outcome::Timeout {
                error: failure.error,
            }
        } else {
            Outcome::Error {
                error: failure.error,
            }
        }
    }
}

/// The outbox row for a finished run that asked for a webhook, leased to this process
/// when `attempt_here` (it is handed to the local delivery pool right after the commit).
fn completion(outbox: &Outbox, run: &run::Model, attempt_here: bool) -> Option<Completion> {
    let url = run.kwargs.get("webhook")?.as_str()?.to_string();
    if outbox.disabled() {
        tracing::info!(run_id = %run.run_id, "webhooks are disabled: this run's webhook is not called");
        return None;
    }
    Some(Completion {
        url,
        payload: webhook_payload(run),
        lease: if attempt_here {
            outbox.lease_for_new()
        } else {
            None
        },
    })
}

fn run_input<'a>(run: &'a run::Model, graph: &'a Graph, values: Value) -> RunInput<'a> {
    static NULL: Value = Value::Null;
    let kwarg = |key: &str| run.kwargs.get(key).unwrap_or(&NULL);
    let stream_modes = match run.kwargs.get("stream_mode") {
        Some(Value::Array(modes)) => modes
            .iter()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(mode)) => vec![mode.clone()],
        _ => vec!["values".to_string()],
    };
    RunInput {
        run_id: &run.run_id,
        thread_id: &run.thread_id,
        assistant_id: &run.assistant_id,
        graph_id: &graph.graph_id,
        input: kwarg("input"),
        config: kwarg("config"),
        context: kwarg("context"),
        metadata: &run.metadata,
        stream_modes,
        values,
    }
}
