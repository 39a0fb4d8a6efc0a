//! One HTTP client for every server measured, so the figures compare servers, not clients.
//! Only loopback URLs are accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod faults;
mod herd;
mod history;
mod webhooks;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "cronhook benchmarks")]
struct Args {
    /// Base URL of the server (loopback only); the `faults-*` commands take none.
    #[arg(long)]
    url: Option<String>,
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
    /// POST /runs/wait (stateless, the echo graph) `count` times from `concurrency` clients.
    Wait {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: u64,
    },
    /// Creates `crons` thread crons (a share of them every second, the rest every minute),
    /// lets them fire for `seconds`, then reads every fired run from the database and
    /// reports fire lateness (fire-log row written − scheduled) and start lateness (started −
    /// scheduled).
    Fires {
        #[arg(long)]
        crons: u64,
        /// Share of the crons that fire every second (the rest fire every minute).
        #[arg(long, default_value_t = 0.5)]
        per_second: f64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The daemon's database, to read the runs from.
        #[arg(long)]
        database_url: String,
        /// `stateless`: crons made with POST /runs/crons (a new thread per fire);
        /// `thread`: each cron on a thread of its own, whose state grows with every run.
        #[arg(long, default_value = "stateless")]
        kind: String,
    },
    /// The top-of-the-minute herd: `crons` crons due at one minute boundary (stateless, or
    /// thread crons with `--on-threads`), each with a webhook to a receiver in this process,
    /// beside `per_second` per-second crons; reports webhook arrival against the boundary
    /// and, given the database and the daemon's pid, when the burst was written, the
    /// per-second crons' instants, peak RSS and CPU.
    Herd {
        #[arg(long)]
        crons: u64,
        /// Each burst cron on a thread of its own (thread crons) instead of stateless.
        #[arg(long)]
        on_threads: bool,
        #[arg(long, default_value_t = 100)]
        per_second: u64,
        /// Seconds between the end of creation and the boundary, at least.
        #[arg(long, default_value_t = 20)]
        margin: u64,
        /// Seconds after the boundary to wait for the webhooks.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        pid: Option<u32>,
        /// The server's name in the report.
        #[arg(long, default_value = "cronhook")]
        label: String,
    },
    /// Creates `crons` crons, writes `entries` history entries for `with_history` of them and
    /// a failed last run for `failing` of them into the daemon's SQLite file, then times a
    /// history page and the failing-crons search and count (`requests` each, sequential).
    History {
        #[arg(long, default_value_t = 100_000)]
        crons: u64,
        #[arg(long, default_value_t = 1_000)]
        with_history: u64,
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        #[arg(long, default_value_t = 1_000)]
        failing: u64,
        #[arg(long, default_value_t = 1_000)]
        requests: u64,
        /// The daemon's database (written to: `sqlite://…/cronhook.db?mode=rw`).
        #[arg(long)]
        database_url: String,
        /// Only measure, on what an earlier run created and wrote.
        #[arg(long)]
        measure_only: bool,
    },
    /// Starts `rate` stateless runs/s for `seconds`, each with a webhook to a receiver in
    /// this process; reports run-end-to-arrival latency.
    Webhooks {
        #[arg(long, default_value_t = 500)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// POST /runs `count` times (concurrency 32) with a webhook to 127.0.0.1:`port`,
    /// for a daemon that delivers nothing yet (`webhooks.workers = 0`).
    WebhookFill {
        #[arg(long)]
        count: u64,
        #[arg(long)]
        port: u16,
    },
    /// GET the console's pages `requests` times each (sequential, a daemon without keys):
    /// the crons list (first page, a deep page, a search, a filter), the overview and a
    /// cron's page; reports latency and each page's weight with its assets.
    Console {
        #[arg(long, default_value_t = 200)]
        requests: u64,
    },
    /// Receives on 127.0.0.1:`port` until `expect` webhooks arrived; reports deliveries/s.
    WebhookDrain {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        expect: usize,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// A webhook receiver for bench/faults.sh on `listen` (ADDR:PORT), logging each request
    /// to `log`; `POST /_mode/half` fails every other webhook, `POST /_mode/ok` stops that.
    FaultsReceiver {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        log: std::path::PathBuf,
    },
    /// Follows daemons (`--daemon NAME,URL,PIDFILE`, repeated) for bench/faults.sh: each
    /// change of their `/ok` answer, their RSS and descriptors every 10 s, unasked exits.
    FaultsWatch {
        #[arg(long = "daemon")]
        daemons: Vec<String>,
        #[arg(long)]
        log: std::path::PathBuf,
    },
    /// Waits until the runs and run webhooks of instants up to `horizon` (epoch ms) are no
    /// longer pending in the databases (`--database-url`, repeated), at most `timeout` s.
    FaultsDrain {
        #[arg(long = "database-url")]
        database_urls: Vec<String>,
        #[arg(long)]
        horizon: i64,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Reads bench/faults.sh's databases and logs, prints the per-phase table, and exits 1
    /// when an invariant failed.
    FaultsReport {
        /// NAME=URL of a database, repeated.
        #[arg(long = "database")]
        databases: Vec<String>,
        #[arg(long = "receiver-log")]
        receiver_logs: Vec<std::path::PathBuf>,
        #[arg(long = "watch-log")]
        watch_logs: Vec<std::path::PathBuf>,
        #[arg(long)]
        phases: std::path::PathBuf,
        #[arg(long)]
        events: std::path::PathBuf,
        /// Epoch ms: when the load started.
        #[arg(long)]
        started: i64,
        /// Epoch ms: instants up to this one are counted.
        #[arg(long)]
        horizon: i64,
        /// Where to write a JSON summary.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
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
    match &args.command {
        Bench::FaultsReceiver { listen, log } => return faults::receiver(listen, log).await,
        Bench::FaultsWatch { daemons, log } => return faults::watch(daemons, log).await,
        Bench::FaultsDrain {
            database_urls,
            horizon,
            timeout,
        } => return faults::drain(database_urls, *horizon, *timeout).await,
        Bench::FaultsReport {
            databases,
            receiver_logs,
            watch_logs,
            phases,
            events,
            started,
            horizon,
            json,
        } => {
            let failures = faults::report(&faults::ReportArgs {
                databases: databases.clone(),
                receiver_logs: receiver_logs.clone(),
                watch_logs: watch_logs.clone(),
                phases: phases.clone(),
                events: events.clone(),
                horizon: *horizon,
                started: *started,
                json: json.clone(),
            })
            .await?;
            if failures.is_empty() {
                println!("\nAll invariants hold.");
                return Ok(());
            }
            println!("\nFAILED:");
            for failure in &failures {
                println!("- {failure}");
            }
            std::process::exit(1);
        }
        _ => {}
    }
    let url = args.url.clone().unwrap_or_default();
    if !is_loopback(&url) {
        return Err("benchmarks only talk to loopback (http://127.0.0.1:PORT)".into());
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()?;
    match args.command {
        Bench::Create { count, concurrency } => {
            create(&client, &url, count, concurrency).await?.print()
        }
        Bench::Search { requests } => {
            for summary in search(&client, &url, requests).await? {
                summary.print();
            }
        }
        Bench::Wait { count, concurrency } => {
            wait(&client, &url, count, concurrency).await?.print()
        }
        Bench::Fires {
            crons,
            per_second,
            seconds,
            database_url,
            kind,
        } => {
            fires(
                &client,
                &url,
                crons,
                per_second,
                seconds,
                &database_url,
                kind == "thread",
            )
            .await?
        }
        Bench::Herd {
            crons,
            on_threads,
            per_second,
            margin,
            timeout,
            database_url,
            pid,
            label,
        } => {
            let herd = herd::Herd {
                crons,
                on_threads,
                per_second,
                margin: Duration::from_secs(margin),
                timeout: Duration::from_secs(timeout),
                database_url: database_url.as_deref(),
                pid,
                label: &label,
            };
            herd::run(&client, &url, &herd).await?
        }
        Bench::History {
            crons,
            with_history,
            entries,
            failing,
            requests,
            database_url,
            measure_only,
        } => {
            let sizes = history::Sizes {
                crons,
                with_history,
                entries,
                failing,
                requests,
                measure_only,
            };
            history::run(&client, &url, &database_url, &sizes).await?
        }
        Bench::Webhooks { rate, seconds } => {
            webhooks::at_rate(&client, &url, rate, seconds).await?
        }
        Bench::WebhookFill { count, port } => {
            webhook_fill(&client, &url, count, port).await?.print()
        }
        Bench::Console { requests } => console(&client, &url, requests).await?,
        Bench::WebhookDrain {
            port,
            expect,
            timeout,
        } => webhooks::drain(port, expect, timeout).await?,
        // Answered above.
        Bench::FaultsReceiver { .. }
        | Bench::FaultsWatch { .. }
        | Bench::FaultsDrain { .. }
        | Bench::FaultsReport { .. } => {}
    }
    Ok(())
}

/// POSTs `body` and reads the whole answer; an error unless it is a 2xx.
async fn post_ok(client: &reqwest::Client, endpoint: &str, body: &Value) -> Result<(), String> {
    let response = client
        .post(endpoint)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("POST {endpoint} answered {status}"));
    }
    Ok(())
}

async fn webhook_fill(
    client: &reqwest::Client,
    url: &str,
    count: u64,
    port: u16,
) -> Result<Summary, Box<dyn std::error::Error>> {
    let client = client.clone();
    let endpoint = format!("{url}/runs");
    let hook = format!("http://127.0.0.1:{port}/hook");
    drive("webhook fill (POST /runs)".into(), count, 32, move |i| {
        let client = client.clone();
        let endpoint = endpoint.clone();
        let body = json!({"assistant_id": "agent", "webhook": hook, "input": {"n": i}});
        async move { post_ok(&client, &endpoint, &body).await }
    })
    .await
}

/// The console's pages under load: latency per page shape, and the bytes a browser fetches
/// for the page (HTML, then the stylesheet and script it links, once each).
async fn console(
    client: &reqwest::Client,
    url: &str,
    requests: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let get = |path: String| {
        let client = client.clone();
        let url = url.to_string();
        async move {
            let response = client.get(format!("{url}{path}")).send().await?;
            let status = response.status();
            let body = response.text().await?;
            if !status.is_success() {
                return Err::<String, Box<dyn std::error::Error>>(
                    format!("GET {path} answered {status}").into(),
                );
            }
            Ok(body)
        }
    };
    let first = get("/ui/crons".into()).await?;
    let cron_id = first
        .split("href=\"/ui/crons/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|id| id.len() == 36)
        .ok_or("no cron on the crons page: fill the daemon first")?
        .to_string();
    let shapes = [
        ("console crons page 1", "/ui/crons".to_string()),
        (
            "console crons offset 5000",
            "/ui/crons?offset=5000".to_string(),
        ),
        (
            "console crons search team-7",
            "/ui/crons?q=team-7".to_string(),
        ),
        (
            "console crons metadata team=team-7",
            "/ui/crons?meta=team%3Dteam-7".to_string(),
        ),
        (
            "console crons failing",
            "/ui/crons?status=failing".to_string(),
        ),
        ("console overview", "/ui".to_string()),
        ("console cron page", format!("/ui/crons/{cron_id}")),
    ];
    for (name, path) in shapes {
        let mut latencies = Vec::new();
        let started = Instant::now();
        let mut html = String::new();
        for _ in 0..requests {
            let t = Instant::now();
            html = get(path.clone()).await?;
            latencies.push(t.elapsed());
        }
        let mut weight = html.len();
        for asset in html
            .split(['"', '\''])
            .filter(|part| part.starts_with("/ui/assets/"))
        {
            weight += get(asset.to_string()).await?.len();
        }
        let summary = Summary::new(name, latencies, started.elapsed());
        println!(
            "{}",
            json!({
                "bench": summary.name,
                "requests": summary.count,
                "p50_ms": (summary.p50_ms * 100.0).round() / 100.0,
                "p99_ms": (summary.p99_ms * 100.0).round() / 100.0,
                "max_ms": (summary.max_ms * 100.0).round() / 100.0,
                "html_bytes": html.len(),
                "page_weight_bytes": weight,
            })
        );
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

/// Sends `count` requests from `concurrency` clients and times each; `request(i)` sends the
/// i-th and says whether it succeeded.
async fn drive<F, Fut>(
    name: String,
    count: u64,
    concurrency: u64,
    request: F,
) -> Result<Summary, Box<dyn std::error::Error>>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, String>(latencies);
                }
                let t = Instant::now();
                request(i).await?;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(Summary::new(&name, latencies, started.elapsed()))
}

async fn create(
    client: &reqwest::Client,
    url: &str,
    count: u64,
    concurrency: u64,
) -> Result<Summary, Box<dyn std::error::Error>> {
    let client = client.clone();
    let endpoint = format!("{url}/runs/crons");
    drive(
        format!("create c={concurrency}"),
        count,
        concurrency,
        move |i| {
            let client = client.clone();
            let endpoint = endpoint.clone();
            async move { post_ok(&client, &endpoint, &cron_body(i)).await }
        },
    )
    .await
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

async fn wait(
    client: &reqwest::Client,
    url: &str,
    count: u64,
    concurrency: u64,
) -> Result<Summary, Box<dyn std::error::Error>> {
    let client = client.clone();
    let endpoint = format!("{url}/runs/wait");
    drive(format!("runs.wait c={concurrency}"), count, concurrency, move |i| {
        let client = client.clone();
        let endpoint = endpoint.clone();
        async move {
            let body = json!({"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": format!("hi {i}")}]}});
            let response = client
                .post(&endpoint)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let values: Value = response.json().await.map_err(|e| e.to_string())?;
            if !status.is_success() || values.get("messages").is_none() {
                return Err(format!("wait answered {status}: {values}"));
            }
            Ok(())
        }
    })
    .await
}

/// Where a cron is created: `/runs/crons`, or on a new thread of its own.
async fn crons_endpoint(
    client: &reqwest::Client,
    url: &str,
    on_thread: bool,
) -> Result<String, String> {
    if !on_thread {
        return Ok(format!("{url}/runs/crons"));
    }
    let thread: Value = client
        .post(format!("{url}/threads"))
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let thread_id = thread["thread_id"].as_str().unwrap_or_default();
    Ok(format!("{url}/threads/{thread_id}/runs/crons"))
}

async fn fires(
    client: &reqwest::Client,
    url: &str,
    crons: u64,
    per_second: f64,
    seconds: u64,
    database_url: &str,
    on_threads: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter};

    let every_second = (crons as f64 * per_second).round() as u64;
    let created = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        let next = next.clone();
        let url = url.to_string();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= crons {
                    return Ok::<_, String>(());
                }
                let schedule = if i < every_second { "* * * * * *" } else { "* * * * *" };
                // Stateless crons keep their runs' threads, so the runs can be read back.
                let mut body = json!({"assistant_id": "agent", "schedule": schedule, "input": {"messages": [{"role": "user", "content": "tick"}]}});
                if !on_threads {
                    body["on_run_completed"] = json!("keep");
                }
                let endpoint = crons_endpoint(&client, &url, on_threads).await?;
                let response = client
                    .post(endpoint)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("cron create answered {}", response.status()));
                }
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let setup = created.elapsed();
    let from = now_ms() + 1_000;
    // The daemon's histogram is read at both ends of the window: before it, the crons were
    // still being created, and the first fires of a cron created for the coming second are
    // written at its instant, not ahead (a different workload: creation, not steady firing).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = fire_lateness(client, url).await?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let until = now_ms() - 1_000;
    // Let the last fires' runs start.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = fire_lateness(client, url).await?;

    let db = Database::connect(database_url).await?;
    let runs = entity::run::Entity::find()
        .filter(entity::run::Column::ScheduledFor.gte(from))
        .filter(entity::run::Column::ScheduledFor.lt(until))
        .all(&db)
        .await?;
    let window_s = (until - from) as f64 / 1000.0;
    let expected = (every_second as f64 * window_s).round() as u64
        + (crons - every_second) * ((until / 60_000) - (from / 60_000)).max(0) as u64;
    // When each instant was written (its fire-log row), against the instant: negative for
    // stateless crons, which are fired ahead (`scheduler.prefire`).
    let mut fire: Vec<i64> = entity::cron_fire::Entity::find()
        .filter(entity::cron_fire::Column::ScheduledFor.gte(from))
        .filter(entity::cron_fire::Column::ScheduledFor.lt(until))
        .all(&db)
        .await?
        .iter()
        .map(|f| f.fired_at - f.scheduled_for)
        .collect();
    let mut start: Vec<i64> = runs
        .iter()
        .filter_map(|r| Some(r.started_at? - r.scheduled_for?))
        .collect();
    let not_started = runs.iter().filter(|r| r.started_at.is_none()).count();
    // The daemon's own histogram: for runs fired ahead, from the instant to the executor's
    // launch (after the claim commits), which `started_at` precedes. Over the window, and
    // over the daemon's whole life (creation included) for comparison.
    let shares = |histogram: &[(String, f64)], base: Option<&[(String, f64)]>| {
        let count_of = |h: &[(String, f64)], le: &str| {
            h.iter()
                .find(|(bound, _)| bound == le)
                .map_or(f64::NAN, |(_, n)| *n)
        };
        let delta = |le: &str| count_of(histogram, le) - base.map_or(0.0, |b| count_of(b, le));
        let count = delta("+Inf");
        ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25"]
            .iter()
            .map(|le| {
                let share = (delta(le) / count * 1000.0).round() / 1000.0;
                (format!("{le}s"), json!(share))
            })
            .collect::<serde_json::Map<String, Value>>()
    };
    let launched_within = shares(&after, Some(&before));
    let launched_within_whole_life = shares(&after, None);
    fire.sort();
    start.sort();
    let pct = |v: &Vec<i64>, q: f64| -> i64 {
        if v.is_empty() {
            return -1;
        }
        v[((v.len() as f64 - 1.0) * q).round() as usize]
    };
    println!(
        "{}",
        json!({
            "bench": "fires",
            "kind": if on_threads { "thread" } else { "stateless" },
            "crons": crons,
            "every_second": every_second,
            "setup_s": setup.as_secs(),
            "window_s": window_s,
            "fires": runs.len(),
            "expected_fires": expected,
            "fires_per_second": (runs.len() as f64 / window_s).round(),
            "fire_lateness_ms": {"p50": pct(&fire, 0.5), "p99": pct(&fire, 0.99), "max": pct(&fire, 1.0)},
            "start_lateness_ms": {"p50": pct(&start, 0.5), "p99": pct(&start, 0.99), "max": pct(&start, 1.0)},
            "not_started": not_started,
            "metric_share_launched_within": launched_within,
            "metric_share_launched_within_whole_life": launched_within_whole_life,
        })
    );
    Ok(())
}

/// The daemon's fire-lateness histogram: (bucket bound, count) pairs, "+Inf" last.
async fn fire_lateness(
    client: &reqwest::Client,
    url: &str,
) -> Result<Vec<(String, f64)>, Box<dyn std::error::Error>> {
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cronhook_fire_lateness_seconds_bucket{le=\"")?;
            let (bound, count) = rest.split_once("\"}")?;
            Some((bound.to_string(), count.trim().parse().ok()?))
        })
        .collect())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
