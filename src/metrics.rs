//! Prometheus metrics: the names, installed once per process, rendered by `GET /metrics`.
//! Events are counted where they happen (`metrics::counter!` with these names); queue depths
//! are read from the store at each scrape (by the caller of `render`), so every replica
//! reports the shared queue.

use metrics::{describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const FIRES: &str = "cronhook_fires_total";
pub const FIRE_LATENESS: &str = "cronhook_fire_lateness_seconds";
pub const MISSED_INSTANTS: &str = "cronhook_missed_instants_total";
pub const REJECTED_FIRES: &str = "cronhook_fires_rejected_total";
pub const RUNS_FINISHED: &str = "cronhook_runs_finished_total";
pub const RUN_DURATION: &str = "cronhook_run_duration_seconds";
pub const WEBHOOK_ATTEMPTS: &str = "cronhook_webhook_attempts_total";
pub const WEBHOOK_LATENCY: &str = "cronhook_webhook_latency_seconds";
pub const DB_ERRORS: &str = "cronhook_db_errors_total";
pub const RUN_WRITE_BATCH: &str = "cronhook_run_write_batch_size";
pub const INSTANTS: &str = "cronhook_instants_total";
const CRONS_FAILING: &str = "cronhook_crons_failing";
const RUNS_QUEUED: &str = "cronhook_runs_queued";
const RUNS_RUNNING: &str = "cronhook_runs_running";
const WEBHOOKS_PENDING: &str = "cronhook_webhooks_pending";
const CRONS_ENABLED: &str = "cronhook_crons_enabled";

/// Histogram buckets (seconds): from a millisecond to ten minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];

/// Counts instants by what became of them (`fire`: a history entry's `fire`).
pub fn instants(fire: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!(INSTANTS, "fire" => fire).increment(count);
    }
}

/// Installs the process-wide recorder and describes every metric.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)?
        .install_recorder()?;
    describe_counter!(
        FIRES,
        "Runs started by cron fires (scheduled instants fired)."
    );
    describe_histogram!(
        FIRE_LATENESS,
        metrics::Unit::Seconds,
        "How late each scheduled instant was fired (for runs fired ahead of their instant: how late their executor was launched)."
    );
    describe_counter!(
        MISSED_INSTANTS,
        "Scheduled instants not fired (misfire policy: down or overloaded too long)."
    );
    describe_counter!(
        REJECTED_FIRES,
        "Instants not run because the thread was busy under multitask_strategy reject."
    );
    describe_counter!(RUNS_FINISHED, "Runs finished by this process, by status.");
    describe_histogram!(
        RUN_DURATION,
        metrics::Unit::Seconds,
        "Run execution time, by status."
    );
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts, by outcome (delivered, retried, failed)."
    );
    describe_histogram!(
        WEBHOOK_LATENCY,
        metrics::Unit::Seconds,
        "Webhook attempt latency, from sending to the receiver's answer."
    );
    describe_counter!(DB_ERRORS, "Database operations that failed.");
    describe_histogram!(
        RUN_WRITE_BATCH,
        "Run creates and finishes committed together in one transaction (group commit)."
    );
    describe_gauge!(RUNS_QUEUED, "Runs waiting in the queue (all replicas).");
    describe_gauge!(RUNS_RUNNING, "Runs executing (all replicas).");
    describe_gauge!(
        WEBHOOKS_PENDING,
        "Webhook deliveries not yet delivered or failed."
    );
    describe_gauge!(CRONS_ENABLED, "Enabled crons.");
    describe_counter!(
        INSTANTS,
        "History entries' instants, by fire (fired, missed, rejected, triggered)."
    );
    describe_gauge!(
        CRONS_FAILING,
        "Enabled crons whose last run failed (error or timeout)."
    );
    Ok(handle)
}

/// How much work there is, across every replica (for `/metrics` and systemd's status line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepths {
    pub crons_enabled: u64,
    /// Enabled crons whose last run ended `error` or `timeout`.
    pub crons_failing: u64,
    pub runs_queued: u64,
    pub runs_running: u64,
    pub webhooks_pending: u64,
}

/// The scrape: the queue depths just read (the last ones stand when none could be), then
/// everything in Prometheus' text format.
pub fn render(handle: &PrometheusHandle, depths: Option<QueueDepths>) -> String {
    if let Some(depths) = depths {
        gauge!(RUNS_QUEUED).set(depths.runs_queued as f64);
        gauge!(RUNS_RUNNING).set(depths.runs_running as f64);
        gauge!(WEBHOOKS_PENDING).set(depths.webhooks_pending as f64);
        gauge!(CRONS_ENABLED).set(depths.crons_enabled as f64);
        gauge!(CRONS_FAILING).set(depths.crons_failing as f64);
    }
    handle.run_upkeep();
    handle.render()
}
