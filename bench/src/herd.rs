//! The top-of-the-minute herd: `crons` crons all due at one minute boundary (stateless, or
//! each on a thread of its own), each with a webhook to a receiver in this process, and
//! `per_second` per-second crons beside them. Arrival is the webhook's receipt (wall clock) minus the boundary; "written" is the
//! fire-log row's `fired_at` minus the boundary (negative: durable before the instant).
//! The same client drives cronhook and the reference server; the database figures and the
//! daemon's memory are read only when their flags are given.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Timelike, Utc};
use serde_json::{Value, json};

use crate::webhooks::receiver;

pub struct Herd<'a> {
    pub crons: u64,
    /// Each burst cron on a thread of its own (a thread cron) instead of stateless.
    pub on_threads: bool,
    pub per_second: u64,
    /// The boundary is the first whole minute at least this far past the end of creation.
    pub margin: Duration,
    /// Give up waiting for webhooks this long after the boundary.
    pub timeout: Duration,
    pub database_url: Option<&'a str>,
    pub pid: Option<u32>,
    pub label: &'a str,
}

pub async fn run(
    client: &reqwest::Client,
    url: &str,
    herd: &Herd<'_>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (port, arrivals) = receiver(0).await?;
    let hook = format!("http://127.0.0.1:{port}/herd");

    // Per-second crons first: they fire through the creation and the burst alike.
    let ticks = create_all(client, url, herd.per_second, 8, false, |_| {
        json!({"assistant_id": "agent", "schedule": "* * * * * *",
               "input": {"messages": [{"role": "user", "content": "tick"}]},
               "metadata": {"herd": "tick"}})
    })
    .await?;

    // The burst's crons fire at one boundary, far enough ahead for the creation to end
    // before it: a daily schedule at that minute, so no earlier minute fires them.
    let per_s = if herd.on_threads { 500.0 } else { 1_000.0 };
    let estimate = Duration::from_secs_f64(herd.crons as f64 / per_s);
    let boundary_ms = next_minute(now_ms() + (estimate + herd.margin).as_millis() as i64);
    let at = Utc
        .timestamp_millis_opt(boundary_ms)
        .single()
        .ok_or("boundary out of range")?;
    let schedule = format!("{} {} * * *", at.minute(), at.hour());
    let created = Instant::now();
    let hook_for_body = hook.clone();
    create_all(client, url, herd.crons, 32, herd.on_threads, move |i| {
        json!({"assistant_id": "agent", "schedule": schedule, "webhook": hook_for_body,
               "input": {"messages": [{"role": "user", "content": format!("herd {i}")}]},
               "metadata": {"herd": "burst", "n": i}})
    })
    .await?;
    let creation = created.elapsed();
    let lead_left = boundary_ms - now_ms();
    if lead_left < 2_000 {
        return Err(format!(
            "creating {} crons took {:.1} s and left {lead_left} ms before the boundary: \
             raise --margin",
            herd.crons,
            creation.as_secs_f64()
        )
        .into());
    }

    // Memory and CPU of the daemon from a little before the boundary to the last arrival.
    tokio::time::sleep(Duration::from_millis((lead_left - 1_000) as u64)).await;
    let cpu_before = herd.pid.and_then(cpu_ticks);
    let baseline_rss = herd.pid.and_then(crate::rss_kib);
    let mut peak_rss = baseline_rss.unwrap_or(0);
    let deadline = Instant::now() + Duration::from_millis(1_000) + herd.timeout;
    while arrivals.count() < herd.crons as usize && Instant::now() < deadline {
        if let Some(rss) = herd.pid.and_then(crate::rss_kib) {
            peak_rss = peak_rss.max(rss);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained_ms = now_ms();
    let cpu_after = herd.pid.and_then(cpu_ticks);
    // At-least-once may deliver twice; the receiver counts each run once and the rest aside.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let seen = arrivals.take();
    let mut runs = HashSet::new();
    let mut arrival = Vec::new();
    let mut duplicates = 0;
    for (wall, _, body) in &seen {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let run_id = body["run_id"].as_str().unwrap_or_default().to_string();
        if !runs.insert(run_id) {
            duplicates += 1;
            continue;
        }
        let wall_ms = wall
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        arrival.push(wall_ms - boundary_ms);
    }
    arrival.sort_unstable();

    let mut report = json!({
        "bench": "herd",
        "server": herd.label,
        "crons": herd.crons,
        "kind": if herd.on_threads { "thread" } else { "stateless" },
        "per_second_crons": herd.per_second,
        "create_s": round1(creation.as_secs_f64()),
        "create_per_s": (herd.crons as f64 / creation.as_secs_f64()).round(),
        "webhooks_received": runs.len(),
        "webhooks_duplicated": duplicates,
        "arrival_ms": quantiles(&arrival),
    });
    if let (Some(base), true) = (baseline_rss, peak_rss > 0) {
        report["rss_mb"] = json!({"before": base / 1024, "peak": peak_rss / 1024});
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let hz = 100.0; // USER_HZ on Linux
        report["daemon_cpu_s"] = json!(round1((after - before) as f64 / hz));
    }
    if let Some(database_url) = herd.database_url {
        report["store"] = store_figures(database_url, boundary_ms, drained_ms, &ticks).await?;
    }
    println!("{report}");
    Ok(())
}

/// Creates `count` crons from `concurrency` clients, stateless or each on a new thread of
/// its own; returns their ids.
async fn create_all(
    client: &reqwest::Client,
    url: &str,
    count: u64,
    concurrency: u64,
    on_threads: bool,
    body: impl Fn(u64) -> Value + Send + Sync + 'static,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let next = Arc::new(AtomicU64::new(0));
    let body = Arc::new(body);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, next, body) = (client.clone(), next.clone(), body.clone());
        let url = url.to_string();
        workers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, String>(ids);
                }
                let endpoint = crate::crons_endpoint(&client, &url, on_threads).await?;
                let response = client
                    .post(&endpoint)
                    .json(&body(i))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let cron: Value = response.json().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("cron create answered {status}: {cron}"));
                }
                ids.push(cron["cron_id"].as_str().unwrap_or_default().to_string());
            }
        }));
    }
    let mut ids = Vec::new();
    for worker in workers {
        ids.extend(worker.await??);
    }
    Ok(ids)
}

/// From the fire log: when the burst's instant was written against the boundary, and how
/// the per-second crons' instants around the burst fared (every instant from 5 s before the
/// boundary to the end of the drain has one entry, fired or missed; lateness of the fired).
async fn store_figures(
    database_url: &str,
    boundary_ms: i64,
    drained_ms: i64,
    ticks: &[String],
) -> Result<Value, Box<dyn std::error::Error>> {
    use entity::cron_fire::{Column, Entity};
    use entity::states::FireOutcome;
    use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter};

    let db = Database::connect(database_url).await?;
    let burst = Entity::find()
        .filter(Column::ScheduledFor.eq(boundary_ms))
        .all(&db)
        .await?;
    let mut written: Vec<i64> = burst.iter().map(|f| f.fired_at - boundary_ms).collect();
    written.sort_unstable();
    let after_instant = written.iter().filter(|&&w| w > 0).count();

    let from = boundary_ms - 5_000;
    let until = (drained_ms / 1_000) * 1_000 - 1_000;
    let entries = Entity::find()
        .filter(Column::CronId.is_in(ticks.iter().cloned()))
        .filter(Column::ScheduledFor.gte(from))
        .filter(Column::ScheduledFor.lte(until))
        .all(&db)
        .await?;
    let expected = ticks.len() as i64 * ((until - from) / 1_000 + 1);
    let covered: i64 = entries.iter().map(|e| e.instants).sum();
    let missed: i64 = entries
        .iter()
        .filter(|e| e.outcome == FireOutcome::Missed)
        .map(|e| e.instants)
        .sum();
    let mut started: Vec<i64> = entries
        .iter()
        .filter_map(|e| Some(e.started_at? - e.due_at.unwrap_or(e.scheduled_for)))
        .collect();
    started.sort_unstable();
    Ok(json!({
        "burst_fires": burst.len(),
        "burst_written_ms": quantiles(&written),
        "burst_written_after_instant": after_instant,
        "per_second_instants_expected": expected,
        "per_second_instants_covered": covered,
        "per_second_instants_missed": missed,
        "per_second_start_ms": quantiles(&started),
    }))
}

fn quantiles(sorted: &[i64]) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
    json!({"p50": at(0.5), "p99": at(0.99), "max": at(1.0), "min": at(0.0)})
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn next_minute(ms: i64) -> i64 {
    (ms / 60_000 + 1) * 60_000
}

fn now_ms() -> i64 {
    crate::now_ms()
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
