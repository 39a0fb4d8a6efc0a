//! One HTTP client for every server measured, so the figures compare servers, not clients.
//! Only loopback URLs are accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "cronhook benchmarks")]
struct Args {
    /// Base URL of the server (loopback only).
    #[arg(long)]
    url: String,
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// POST /runs/crons `count` times from `concurrency` clients.
    Create {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        concurrency: u64,
    },
    /// POST /runs/crons/search `requests` times (sequential), one of several query shapes.
    Search {
        #[arg(long, default_value_t = 500)]
        requests: u64,
    },
}

#[derive(Debug)]
struct Summary {
    name: String,
    count: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Summary {
    fn new(name: &str, mut latencies: Vec<Duration>, elapsed: Duration) -> Summary {
        latencies.sort();
        let at = |q: f64| {
            let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies
                .get(index)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Summary {
            name: name.to_string(),
            count: latencies.len(),
            seconds: elapsed.as_secs_f64(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }

    fn print(&self) {
        println!(
            "{}",
            json!({
                "bench": self.name,
                "requests": self.count,
                "per_second": (self.count as f64 / self.seconds).round(),
                "p50_ms": (self.p50_ms * 100.0).round() / 100.0,
                "p99_ms": (self.p99_ms * 100.0).round() / 100.0,
                "max_ms": (self.max_ms * 100.0).round() / 100.0,
            })
        );
    }
}

fn is_loopback(url: &str) -> bool {
    ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|prefix| url.starts_with(prefix))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !is_loopback(&args.url) {
        return Err("benchmarks only talk to loopback (http://127.0.0.1:PORT)".into());
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()?;
    match args.command {
        Bench::Create { count, concurrency } => create(&client, &args.url, count, concurrency)
            .await?
            .print(),
        Bench::Search { requests } => {
            for summary in search(&client, &args.url, requests).await? {
                summary.print();
            }
        }
    }
    Ok(())
}

fn cron_body(i: u64) -> Value {
    json!({
        "assistant_id": "agent",
        "schedule": format!("{} {} * * *", i % 60, (i / 60) % 24),
        "input": {"messages": [{"role": "user", "content": format!("hello {i}")}]},
        "metadata": {"team": format!("team-{}", i % 100), "n": i},
    })
}

async fn create(
    client: &reqwest::Client,
    url: &str,
    count: u64,
    concurrency: u64,
) -> Result<Summary, Box<dyn std::error::Error>> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let next = next.clone();
        let endpoint = format!("{url}/runs/crons");
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let t = Instant::now();
                let response = client
                    .post(&endpoint)
                    .json(&cron_body(i))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                response.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("create answered {status}"));
                }
                latencies.push(t.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(Summary::new(
        &format!("create c={concurrency}"),
        latencies,
        started.elapsed(),
    ))
}

async fn search(
    client: &reqwest::Client,
    url: &str,
    requests: u64,
) -> Result<Vec<Summary>, Box<dyn std::error::Error>> {
    let endpoint = format!("{url}/runs/crons/search");
    let shapes = [
        ("search newest 10", json!({"limit": 10})),
        (
            "search next_run_date asc 100",
            json!({"limit": 100, "sort_by": "next_run_date", "sort_order": "asc"}),
        ),
        (
            "search deep page offset 5000",
            json!({"limit": 10, "offset": 5000}),
        ),
        (
            "search metadata team-7",
            json!({"limit": 10, "metadata": {"team": "team-7"}}),
        ),
    ];
    let mut summaries = Vec::new();
    for (name, body) in shapes {
        let mut latencies = Vec::new();
        let started = Instant::now();
        for _ in 0..requests {
            let t = Instant::now();
            let response = client.post(&endpoint).json(&body).send().await?;
            let status = response.status();
            response.bytes().await?;
            if !status.is_success() {
                return Err(format!("{name} answered {status}").into());
            }
            latencies.push(t.elapsed());
        }
        summaries.push(Summary::new(name, latencies, started.elapsed()));
    }
    Ok(summaries)
}
