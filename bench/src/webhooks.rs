//! Webhook benchmarks. The receiver runs inside this process on 127.0.0.1 and stamps each
//! arrival with the wall clock, so "run end to arrival" is `arrival − run_ended_at` (the
//! run's own timestamp in the body; cronhook stores milliseconds, so its figure can read
//! up to 1 ms high).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

use crate::Summary;

#[derive(Default)]
pub struct Arrivals {
    /// (arrival wall time, arrival monotonic time, body)
    seen: Mutex<Vec<(SystemTime, Instant, Bytes)>>,
}

impl Arrivals {
    pub fn count(&self) -> usize {
        self.seen.lock().map(|seen| seen.len()).unwrap_or(0)
    }

    /// What arrived so far, in order of arrival.
    pub fn take(&self) -> Vec<(SystemTime, Instant, Bytes)> {
        self.seen
            .lock()
            .map(|mut seen| std::mem::take(&mut *seen))
            .unwrap_or_default()
    }
}

async fn receive(State(arrivals): State<Arc<Arrivals>>, body: Bytes) -> &'static str {
    let now = (SystemTime::now(), Instant::now());
    arrivals
        .seen
        .lock()
        .expect("arrivals")
        .push((now.0, now.1, body));
    "ok"
}

pub async fn receiver(port: u16) -> std::io::Result<(u16, Arc<Arrivals>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let arrivals = Arc::new(Arrivals::default());
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(arrivals.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, arrivals))
}

fn run_ended_at(body: &Bytes) -> Option<SystemTime> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let text = body.get("run_ended_at")?.as_str()?;
    let ended = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    let micros = u64::try_from(ended.timestamp_micros()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_micros(micros))
}

/// Starts `rate` stateless runs per second for `seconds` (POST /runs, echo graph, each with
/// a webhook to the local receiver), then reports run-end-to-arrival latency.
pub async fn at_rate(
    client: &reqwest::Client,
    url: &str,
    rate: u64,
    seconds: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let (port, arrivals) = receiver(0).await?;
    let hook = format!("http://127.0.0.1:{port}/hook");
    let total = rate * seconds;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let client = client.clone();
        let endpoint = format!("{url}/runs");
        let body = json!({"assistant_id": "agent", "webhook": hook,
                          "input": {"messages": [{"role": "user", "content": format!("m{i}")}]}});
        requests.spawn(async move {
            let response = client.post(endpoint).json(&body).send().await?;
            response.error_for_status()?.bytes().await?;
            Ok::<_, reqwest::Error>(())
        });
    }
    let offered = started.elapsed();
    let mut failed = 0;
    while let Some(done) = requests.join_next().await {
        if !matches!(done, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.seen.lock().expect("arrivals").len() < (total - failed) as usize
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = arrivals.seen.lock().expect("arrivals");
    let latencies: Vec<Duration> = seen
        .iter()
        .filter_map(|(at, _, body)| {
            let ended = run_ended_at(body)?;
            Some(at.duration_since(ended).unwrap_or(Duration::ZERO))
        })
        .collect();
    let summary = Summary::new("webhook run-end-to-arrival", latencies, offered);
    println!(
        "{}",
        json!({
            "bench": summary.name,
            "offered_per_second": (total as f64 / offered.as_secs_f64()).round(),
            "runs": total,
            "create_failures": failed,
            "received": seen.len(),
            "p50_ms": round2(summary.p50_ms),
            "p99_ms": round2(summary.p99_ms),
            "max_ms": round2(summary.max_ms),
        })
    );
    Ok(())
}

/// Listens on `port` until `expect` webhooks arrived, then reports the sustained rate
/// between the first and the last arrival (a backlog drained by a daemon started after
/// this receiver).
pub async fn drain(
    port: u16,
    expect: usize,
    timeout: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let (_, arrivals) = receiver(port).await?;
    eprintln!("receiver listening on 127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(timeout);
    while arrivals.seen.lock().expect("arrivals").len() < expect && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = arrivals.seen.lock().expect("arrivals");
    let (Some(first), Some(last)) = (seen.first(), seen.last()) else {
        return Err("no webhook arrived".into());
    };
    let span = last.1.duration_since(first.1).as_secs_f64();
    let mut run_ids: Vec<String> = seen
        .iter()
        .filter_map(|(_, _, body)| {
            let body: Value = serde_json::from_slice(body).ok()?;
            Some(body.get("run_id")?.as_str()?.to_string())
        })
        .collect();
    run_ids.sort();
    run_ids.dedup();
    println!(
        "{}",
        json!({
            "bench": "webhook backlog drain",
            "received": seen.len(),
            "distinct_runs": run_ids.len(),
            "seconds_first_to_last": (span * 1000.0).round() / 1000.0,
            "deliveries_per_second": ((seen.len() as f64 - 1.0) / span).round(),
        })
    );
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
