//! The ops reads at scale: a cron's history page with 1,000,000 entries stored, and "which
//! crons are failing?" among 100,000 crons.
//!
//! The crons are made through the API (schedules that do not fire during the bench); the
//! history entries and the failing crons' last status are written straight into the daemon's
//! SQLite file, as the fire path and the run ends would have left them, because firing a
//! million instants through the scheduler would take days.

use std::time::{Duration, Instant};

use entity::cron;
use entity::cron_fire;
use entity::states::{DeliveryStatus, FireOutcome, RunStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

use crate::{Summary, create};

/// Rows per INSERT: 17 columns each, under SQLite's 32,766 bound parameters.
const ROWS_PER_INSERT: usize = 1_000;

pub struct Sizes {
    /// Crons stored in all.
    pub crons: u64,
    /// Of those, the crons given history entries.
    pub with_history: u64,
    /// History entries in all, split evenly among `with_history` crons.
    pub entries: u64,
    /// Of all crons, how many have a failed last run.
    pub failing: u64,
    /// Requests per measured shape.
    pub requests: u64,
    /// Measure what an earlier run stored, without creating or writing anything.
    pub measure_only: bool,
}

pub async fn run(
    client: &reqwest::Client,
    url: &str,
    database_url: &str,
    sizes: &Sizes,
) -> Result<(), Box<dyn std::error::Error>> {
    if !sizes.measure_only {
        create(client, url, sizes.crons, 32).await?.print();
    }
    let db = Database::connect(database_url).await?;
    let ids: Vec<String> = cron::Entity::find()
        .all(&db)
        .await?
        .into_iter()
        .map(|cron| cron.cron_id)
        .collect();
    if (ids.len() as u64) < sizes.crons {
        return Err(format!("{} crons stored, {} expected", ids.len(), sizes.crons).into());
    }

    if !sizes.measure_only {
        fill(&db, &ids, sizes).await?;
    }
    measure(client, url, &ids, sizes).await
}

/// Writes the history entries and the failing crons' last run.
async fn fill(
    db: &sea_orm::DatabaseConnection,
    ids: &[String],
    sizes: &Sizes,
) -> Result<(), Box<dyn std::error::Error>> {
    let filled = Instant::now();
    let per_cron = sizes.entries / sizes.with_history.max(1);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut batch = Vec::with_capacity(ROWS_PER_INSERT);
    for cron_id in ids.iter().take(sizes.with_history as usize) {
        for n in 0..per_cron as i64 {
            batch.push(entry(cron_id, now_ms, n));
            if batch.len() == ROWS_PER_INSERT {
                cron_fire::Entity::insert_many(std::mem::take(&mut batch))
                    .exec(db)
                    .await?;
            }
        }
    }
    if !batch.is_empty() {
        cron_fire::Entity::insert_many(batch).exec(db).await?;
    }
    let failing: Vec<String> = ids
        .iter()
        .step_by((ids.len() / sizes.failing.max(1) as usize).max(1))
        .take(sizes.failing as usize)
        .cloned()
        .collect();
    for chunk in failing.chunks(ROWS_PER_INSERT) {
        cron::Entity::update_many()
            .col_expr(cron::Column::LastRunStatus, Expr::value(RunStatus::Error))
            .col_expr(cron::Column::LastRunAt, Expr::value(now_ms))
            .col_expr(cron::Column::ConsecutiveFailures, Expr::value(3))
            .filter(cron::Column::CronId.is_in(chunk.to_vec()))
            .exec(db)
            .await?;
    }
    println!(
        "{}",
        json!({"bench": "history fill", "entries": per_cron * sizes.with_history,
               "crons": ids.len(), "failing": failing.len(),
               "seconds": filled.elapsed().as_secs_f64().round()})
    );
    Ok(())
}

/// Times a history page (all entries, and failed runs only) and the failing-crons search
/// and count, `sizes.requests` each, one request at a time.
async fn measure(
    client: &reqwest::Client,
    url: &str,
    ids: &[String],
    sizes: &Sizes,
) -> Result<(), Box<dyn std::error::Error>> {
    let history_of = |i: u64| {
        format!(
            "{url}/runs/crons/{}/history?limit=50",
            ids[(i * 7919 % sizes.with_history) as usize]
        )
    };
    let mut latencies = Vec::new();
    let started = Instant::now();
    for i in 0..sizes.requests {
        latencies.push(get_ok(client, &history_of(i), 50).await?);
    }
    Summary::new("history limit=50", latencies, started.elapsed()).print();

    let mut latencies = Vec::new();
    let started = Instant::now();
    for i in 0..sizes.requests {
        let endpoint = format!("{}&run_status=error", history_of(i));
        latencies.push(get_ok(client, &endpoint, 0).await?);
    }
    Summary::new("history run_status=error", latencies, started.elapsed()).print();

    let shapes = [
        (
            "search failing crons",
            "search",
            json!({"last_run_status": "error", "limit": 10}),
        ),
        (
            "search failing crons by last_run_at 100",
            "search",
            json!({"last_run_status": "error", "limit": 100,
                   "sort_by": "last_run_at", "sort_order": "desc"}),
        ),
        (
            "count failing crons",
            "count",
            json!({"last_run_status": "error"}),
        ),
    ];
    for (name, path, body) in shapes {
        let endpoint = format!("{url}/runs/crons/{path}");
        let mut latencies = Vec::new();
        let started = Instant::now();
        for _ in 0..sizes.requests {
            let t = Instant::now();
            let response = client.post(&endpoint).json(&body).send().await?;
            let status = response.status();
            let answer: Value = response.json().await?;
            if !status.is_success() {
                return Err(format!("{name} answered {status}: {answer}").into());
            }
            latencies.push(t.elapsed());
        }
        Summary::new(name, latencies, started.elapsed()).print();
    }
    Ok(())
}

/// One GET, timed; an error unless it answers 2xx with at least `at_least` list items.
async fn get_ok(
    client: &reqwest::Client,
    endpoint: &str,
    at_least: usize,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let t = Instant::now();
    let response = client.get(endpoint).send().await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    let elapsed = t.elapsed();
    let items = answer.as_array().map_or(0, Vec::len);
    if !status.is_success() || items < at_least {
        return Err(format!("GET {endpoint} answered {status} with {items} items").into());
    }
    Ok(elapsed)
}

/// The `n`-th newest entry of a minute cron: fired, mostly successful with its webhook
/// delivered; one in ten failed with an error.
fn entry(cron_id: &str, now_ms: i64, n: i64) -> cron_fire::ActiveModel {
    let scheduled_for = (now_ms / 60_000 - 1 - n) * 60_000;
    let failed = n % 10 == 3;
    cron_fire::ActiveModel {
        cron_id: Set(cron_id.to_string()),
        scheduled_for: Set(scheduled_for),
        run_id: Set(Some(format!("{cron_id:.8}-run-{n}"))),
        outcome: Set(FireOutcome::Fired),
        fired_at: Set(scheduled_for - 1_000),
        last_scheduled_for: Set(None),
        instants: Set(1),
        misfire_policy: Set(None),
        run_status: Set(Some(if failed {
            RunStatus::Error
        } else {
            RunStatus::Success
        })),
        started_at: Set(Some(scheduled_for + 2)),
        ended_at: Set(Some(scheduled_for + 850)),
        error: Set(failed.then(|| json!({"error": "ValueError", "message": "upstream timed out"}))),
        delivery_id: Set(Some(format!("{cron_id:.8}-delivery-{n}"))),
        webhook_status: Set(Some(DeliveryStatus::Delivered)),
        webhook_attempts: Set(Some(1)),
        // Columns added later (jitter's due_at, …) keep their defaults.
        ..Default::default()
    }
}
