//! The parts of `bench/faults.sh` ("an hour of faults") that are easier in Rust than in
//! shell: the webhook receivers (logging every request, answering 200, or failing every other
//! request on demand), the `/ok` watcher (every state change of each daemon's readiness, and
//! its RSS and open descriptors every 10 s), the wait for the queues to drain, and the report
//! that reads the databases and the logs, prints the table and says which invariant failed.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A line-per-record log, appended to (a restarted receiver or watcher goes on in it).
struct Log(Mutex<std::fs::File>);

impl Log {
    fn open(path: &Path) -> std::io::Result<Log> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Log(Mutex::new(file)))
    }

    fn line(&self, value: &Value) {
        let mut text = value.to_string();
        text.push('\n');
        if let Ok(mut file) = self.0.lock() {
            let _ = file.write_all(text.as_bytes());
        }
    }
}

struct Receiver {
    log: Log,
    /// Fail every other webhook with a 503.
    half: AtomicBool,
    count: AtomicU64,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    uri: axum::http::Uri,
    body: Bytes,
) -> StatusCode {
    match uri.path() {
        "/_mode/half" => {
            receiver.half.store(true, Ordering::SeqCst);
            return StatusCode::OK;
        }
        "/_mode/ok" => {
            receiver.half.store(false, Ordering::SeqCst);
            return StatusCode::OK;
        }
        _ => {}
    }
    let n = receiver.count.fetch_add(1, Ordering::SeqCst);
    let code = if receiver.half.load(Ordering::SeqCst) && n % 2 == 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    receiver.log.line(&json!({
        "t": now_ms(),
        "run_id": body.get("run_id"),
        "code": code.as_u16(),
    }));
    code
}

/// Receives webhooks on `listen` until killed; each request is a line of `log`:
/// `{"t", "run_id", "code"}`. `POST /_mode/half` makes it answer 503 to every other
/// webhook, `POST /_mode/ok` 200 to all again.
pub async fn receiver(listen: &str, log: &Path) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let state = Arc::new(Receiver {
        log: Log::open(log)?,
        half: AtomicBool::new(false),
        count: AtomicU64::new(0),
    });
    let app = axum::Router::new().fallback(receive).with_state(state);
    axum::serve(listener, app).await?;
    Ok(())
}

/// A daemon the watcher follows: `NAME,URL,PIDFILE`.
struct Watched {
    name: String,
    url: String,
    pidfile: PathBuf,
}

fn parse_watched(spec: &str) -> Result<Watched, Error> {
    let mut parts = spec.splitn(3, ',');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(url), Some(pidfile)) => Ok(Watched {
            name: name.to_string(),
            url: url.to_string(),
            pidfile: PathBuf::from(pidfile),
        }),
        _ => Err(format!("expected NAME,URL,PIDFILE: {spec}").into()),
    }
}

fn read_pid(pidfile: &Path) -> Option<u32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// RSS in KiB and open descriptors of `pid`, or `None` when it is gone.
fn rss_and_fds(pid: u32) -> Option<(u64, u64)> {
    let rss = crate::rss_kib(pid)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

fn is_alive(pid: u32) -> bool {
    // A zombie (killed, not yet reaped by the script) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Polls each daemon's `/ok` every 100 ms and logs each change of its answer
/// (`{"t", "daemon", "status", "body"}`, status 0: no answer within 2 s); every 10 s logs
/// RSS and descriptors (`{"t", "daemon", "pid", "rss_kb", "fds"}`); logs `{"t", "daemon",
/// "exited": pid}` when the process in its pid file is gone (the script removes the pid file
/// before it kills a daemon on purpose).
pub async fn watch(daemons: &[String], log: &Path) -> Result<(), Error> {
    let daemons: Vec<Watched> = daemons
        .iter()
        .map(|spec| parse_watched(spec))
        .collect::<Result<_, _>>()?;
    let log = Log::open(log)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut last: HashMap<String, (u16, String)> = HashMap::new();
    let mut exited: HashMap<String, u32> = HashMap::new();
    let mut next_sample = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let sample = tokio::time::Instant::now() >= next_sample;
        if sample {
            next_sample += Duration::from_secs(10);
        }
        let answers = futures_join(&client, &daemons).await;
        for (daemon, (status, body)) in daemons.iter().zip(answers) {
            let pid = read_pid(&daemon.pidfile);
            if let Some(pid) = pid {
                if !is_alive(pid) && exited.get(&daemon.name) != Some(&pid) {
                    exited.insert(daemon.name.clone(), pid);
                    log.line(&json!({"t": now_ms(), "daemon": daemon.name, "exited": pid}));
                }
                if sample && let Some((rss, fds)) = rss_and_fds(pid) {
                    log.line(&json!({"t": now_ms(), "daemon": daemon.name, "pid": pid,
                                     "rss_kb": rss, "fds": fds}));
                }
            }
            let changed = last
                .get(&daemon.name)
                .is_none_or(|(s, b)| *s != status || (status != 200 && *b != body));
            if changed && pid.is_some() {
                log.line(
                    &json!({"t": now_ms(), "daemon": daemon.name, "status": status,
                                 "body": body}),
                );
                last.insert(daemon.name.clone(), (status, body));
            }
        }
    }
}

async fn futures_join(client: &reqwest::Client, daemons: &[Watched]) -> Vec<(u16, String)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, daemon) in daemons.iter().enumerate() {
        let client = client.clone();
        let url = format!("{}/ok", daemon.url);
        tasks.spawn(async move {
            let answer = match client.get(&url).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    (status, body.chars().take(300).collect())
                }
                Err(err) => (0, err.to_string()),
            };
            (i, answer)
        });
    }
    let mut answers = vec![(0, String::new()); daemons.len()];
    while let Some(Ok((i, answer))) = tasks.join_next().await {
        answers[i] = answer;
    }
    answers
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> Result<i64, Error> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .ok_or("no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// Waits (at most `timeout` s) until no instant before `horizon` is still recorded ahead
/// (`scheduled`), no run scheduled before it is pending or running and no run webhook is
/// pending in any of the databases.
pub async fn drain(urls: &[String], horizon: i64, timeout: u64) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut dbs = Vec::new();
    for url in urls {
        dbs.push(Database::connect(url.as_str()).await?);
    }
    loop {
        let mut left = 0;
        for db in &dbs {
            left += scalar(
                db,
                &format!(
                    "SELECT count(*) FROM runs WHERE cron_id IS NOT NULL \
                     AND scheduled_for <= {horizon} AND status IN ('pending', 'running')"
                ),
            )
            .await?;
            left += scalar(
                db,
                &format!(
                    "SELECT count(*) FROM webhook_deliveries WHERE kind = 'run' \
                     AND scheduled_for <= {horizon} AND status = 'pending'"
                ),
            )
            .await?;
            left += scalar(
                db,
                &format!(
                    "SELECT count(*) FROM cron_fires WHERE outcome = 'scheduled' \
                     AND scheduled_for <= {horizon}"
                ),
            )
            .await?;
        }
        if left == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "faults-drain: {left} instants, runs or webhooks still pending after {timeout} s"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One load cron, from the `load` key of its metadata.
struct Cron {
    id: String,
    db: String,
    load: String,
    period: i64,
    created_at: i64,
    policy: String,
}

struct Fire {
    scheduled_for: i64,
    last: i64,
    outcome: String,
    policy: Option<String>,
}

struct Run {
    cron_id: String,
    scheduled_for: i64,
    status: String,
    started_at: Option<i64>,
    worker_lost: bool,
}

/// What one phase (or the whole run) adds up to.
#[derive(Default, Clone)]
struct Tally {
    expected: u64,
    fired: u64,
    missed: u64,
    missed_against_policy: u64,
    duplicated: u64,
    unrecorded: u64,
    runs_ended: u64,
    runs_lost: u64,
    webhooks_expected: u64,
    webhooks_delivered: u64,
    webhooks_redone: u64,
    webhooks_duplicated: u64,
    lateness: Vec<i64>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.expected += other.expected;
        self.fired += other.fired;
        self.missed += other.missed;
        self.missed_against_policy += other.missed_against_policy;
        self.duplicated += other.duplicated;
        self.unrecorded += other.unrecorded;
        self.runs_ended += other.runs_ended;
        self.runs_lost += other.runs_lost;
        self.webhooks_expected += other.webhooks_expected;
        self.webhooks_delivered += other.webhooks_delivered;
        self.webhooks_redone += other.webhooks_redone;
        self.webhooks_duplicated += other.webhooks_duplicated;
        self.lateness.extend_from_slice(&other.lateness);
    }

    fn lateness_text(&mut self) -> String {
        if self.lateness.is_empty() {
            return "—".into();
        }
        self.lateness.sort_unstable();
        let at = |q: f64| {
            let i = ((self.lateness.len() as f64 - 1.0) * q).round() as usize;
            self.lateness[i]
        };
        format!("{} / {} / {} ms", at(0.5), at(0.99), at(1.0))
    }
}

fn period_of(schedule: &str) -> Option<i64> {
    match schedule.trim() {
        "* * * * * *" => Some(1_000),
        "* * * * *" => Some(60_000),
        "0 * * * *" => Some(3_600_000),
        _ => None,
    }
}

/// Descriptors the connection pools may open after the first sample without a leak: the
/// database pool opens its connections lazily up to `[database] max_connections` (8), and
/// each SQLite connection holds three (the database, its log and its index).
const POOL_DESCRIPTORS: f64 = 24.0;

/// The shortest run whose RSS and descriptor growth fails it (see the report).
const MIN_JUDGED_RUN: i64 = 30 * 60_000;

/// One of the watcher's RSS and descriptor samples.
struct Sample {
    t: i64,
    pid: i64,
    rss_kb: f64,
    fds: f64,
}

impl Sample {
    fn of(line: &Value) -> Option<Sample> {
        Some(Sample {
            t: line["t"].as_i64()?,
            pid: line["pid"].as_i64()?,
            rss_kb: line["rss_kb"].as_f64()?,
            fds: line["fds"].as_f64()?,
        })
    }
}

/// The lowest RSS and descriptor count of one process over a window.
struct Floor {
    pid: i64,
    rss_kb: f64,
    fds: f64,
}

impl Floor {
    /// Over the samples in `[from, to]` of the process that was running at the window's end
    /// (a restart within the window leaves the earlier process out); None when there are none.
    fn of(samples: &[Sample], from: i64, to: i64) -> Option<Floor> {
        let within = || samples.iter().filter(|s| s.t >= from && s.t <= to);
        let pid = within().next_back()?.pid;
        let lowest = |value: fn(&Sample) -> f64| {
            within()
                .filter(|s| s.pid == pid)
                .map(value)
                .fold(f64::INFINITY, f64::min)
        };
        Some(Floor {
            pid,
            rss_kb: lowest(|s| s.rss_kb),
            fds: lowest(|s| s.fds),
        })
    }
}

/// Inputs of the report.
pub struct ReportArgs {
    /// `name=url` of each database.
    pub databases: Vec<String>,
    pub receiver_logs: Vec<PathBuf>,
    pub watch_logs: Vec<PathBuf>,
    /// `start_ms name` lines, in order; a phase lasts until the next one starts.
    pub phases: PathBuf,
    /// `t_ms kind phase daemons detail` lines from the script.
    pub events: PathBuf,
    /// Instants up to this one are counted (the end of the fault schedule).
    pub horizon: i64,
    /// When the load started (RSS and descriptors are compared between the quiet phases of
    /// a window from `min(10 min, a third of the run)` after it and of the run's last window).
    pub started: i64,
    /// Where to write the report's JSON summary.
    pub json: Option<PathBuf>,
}

struct Phase {
    name: String,
    start: i64,
}

/// Reads everything, prints the per-phase table, the per-fault checks and the totals, and
/// answers the failed invariants (empty: all hold).
pub async fn report(args: &ReportArgs) -> Result<Vec<String>, Error> {
    let mut failures = Vec::new();
    let phases: Vec<Phase> = std::fs::read_to_string(&args.phases)?
        .lines()
        .filter_map(|line| {
            let (start, name) = line.split_once(' ')?;
            Some(Phase {
                name: name.to_string(),
                start: start.parse().ok()?,
            })
        })
        .collect();
    let phase_of = |t: i64| -> Option<usize> {
        if t > args.horizon {
            return None;
        }
        phases.iter().rposition(|phase| phase.start <= t)
    };

    let mut crons = Vec::new();
    let mut fires: HashMap<String, Vec<Fire>> = HashMap::new();
    let mut runs: HashMap<String, Run> = HashMap::new();
    let mut run_keys: HashMap<(String, i64), u32> = HashMap::new();
    let mut deliveries: HashMap<String, String> = HashMap::new();
    let mut integrity = Vec::new();
    for spec in &args.databases {
        let (name, url) = spec.split_once('=').ok_or("expected NAME=URL")?;
        let db = Database::connect(url).await?;
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT cron_id, schedule, created_at, misfire_policy, CAST(metadata AS TEXT) \
                 FROM crons",
            ))
            .await?;
        for row in rows {
            let metadata: String = row.try_get_by_index(4)?;
            let metadata: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
            let Some(load) = metadata.get("load").and_then(Value::as_str) else {
                continue;
            };
            let schedule: String = row.try_get_by_index(1)?;
            let period = period_of(&schedule).ok_or("a load cron with an unknown schedule")?;
            crons.push(Cron {
                id: row.try_get_by_index(0)?,
                db: name.to_string(),
                load: load.to_string(),
                period,
                created_at: row.try_get_by_index(2)?,
                policy: row
                    .try_get_by_index::<Option<String>>(3)?
                    .unwrap_or_else(|| "fire_once".into()),
            });
        }
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT cron_id, scheduled_for, last_scheduled_for, outcome, misfire_policy \
                 FROM cron_fires WHERE outcome <> 'triggered'",
            ))
            .await?;
        for row in rows {
            let scheduled_for: i64 = row.try_get_by_index(1)?;
            fires
                .entry(row.try_get_by_index(0)?)
                .or_default()
                .push(Fire {
                    scheduled_for,
                    last: row
                        .try_get_by_index::<Option<i64>>(2)?
                        .unwrap_or(scheduled_for),
                    outcome: row.try_get_by_index(3)?,
                    policy: row.try_get_by_index(4)?,
                });
        }
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT run_id, cron_id, scheduled_for, status, started_at, \
                 CASE WHEN CAST(error AS TEXT) LIKE '%worker lost%' THEN 1 ELSE 0 END \
                 FROM runs WHERE cron_id IS NOT NULL AND scheduled_for IS NOT NULL",
            ))
            .await?;
        for row in rows {
            let run = Run {
                cron_id: row.try_get_by_index(1)?,
                scheduled_for: row.try_get_by_index(2)?,
                status: row.try_get_by_index(3)?,
                started_at: row.try_get_by_index(4)?,
                worker_lost: row.try_get_by_index::<i32>(5)? == 1,
            };
            *run_keys
                .entry((run.cron_id.clone(), run.scheduled_for))
                .or_default() += 1;
            runs.insert(row.try_get_by_index(0)?, run);
        }
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT run_id, status FROM webhook_deliveries WHERE kind = 'run'",
            ))
            .await?;
        for row in rows {
            deliveries.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        }
        if backend == sea_orm::DatabaseBackend::Sqlite {
            let rows = db
                .query_all_raw(Statement::from_string(backend, "PRAGMA integrity_check"))
                .await?;
            let checked: Vec<String> = rows
                .iter()
                .filter_map(|row| row.try_get_by_index::<String>(0).ok())
                .collect();
            if checked != ["ok"] {
                failures.push(format!("{name}: PRAGMA integrity_check: {checked:?}"));
            }
            integrity.push(format!("{name}: integrity_check {}", checked.join(" ")));
        }
    }
    if crons.is_empty() {
        failures.push("no load crons found".into());
    }

    // Webhooks the receivers answered 200, per run.
    let mut received: HashMap<String, u32> = HashMap::new();
    let mut refused_by_receiver = 0u64;
    for path in &args.receiver_logs {
        for line in std::fs::read_to_string(path)?.lines() {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let Some(run_id) = value.get("run_id").and_then(Value::as_str) else {
                continue;
            };
            if value.get("code").and_then(Value::as_u64) == Some(200) {
                *received.entry(run_id.to_string()).or_default() += 1;
            } else {
                refused_by_receiver += 1;
            }
        }
    }

    let mut tallies = vec![Tally::default(); phases.len()];
    let mut by_load: BTreeMap<String, Tally> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    for cron in &crons {
        let mut tally_load = Tally::default();
        // Every instant in (created_at, horizon]: how many history entries cover it.
        let first = (cron.created_at / cron.period + 1) * cron.period;
        let mut cover: BTreeMap<i64, (u32, u32)> = BTreeMap::new(); // instant -> (fired, missed)
        let mut t = first;
        while t <= args.horizon {
            cover.insert(t, (0, 0));
            t += cron.period;
        }
        for fire in fires.get(&cron.id).map(Vec::as_slice).unwrap_or_default() {
            let mut t = fire.scheduled_for;
            while t <= fire.last {
                if let Some(entry) = cover.get_mut(&t) {
                    match fire.outcome.as_str() {
                        "fired" => entry.0 += 1,
                        // Recorded ahead and never fired: no run, so not covered.
                        "scheduled" => problems.push(format!(
                            "{} {} ({}): instant {t} recorded ahead, never fired",
                            cron.db, cron.id, cron.load
                        )),
                        _ => entry.1 += 1,
                    }
                    if fire.outcome == "missed"
                        && (cron.policy == "fire_all"
                            || fire.policy.as_deref() != Some(cron.policy.as_str()))
                        && let Some(p) = phase_of(t)
                    {
                        tallies[p].missed_against_policy += 1;
                        problems.push(format!(
                            "{} {} ({}, {}): instant {t} missed under {:?}",
                            cron.db, cron.id, cron.load, cron.policy, fire.policy
                        ));
                    }
                }
                t += cron.period;
            }
        }
        for (&t, &(fired, missed)) in &cover {
            let Some(p) = phase_of(t) else { continue };
            let tally = &mut tallies[p];
            tally.expected += 1;
            tally_load.expected += 1;
            match (fired, missed) {
                (0, 0) => {
                    tally.unrecorded += 1;
                    tally_load.unrecorded += 1;
                    if tally_load.unrecorded <= 3 {
                        problems.push(format!(
                            "{} {} ({}): instant {t} has no history entry",
                            cron.db, cron.id, cron.load
                        ));
                    }
                }
                (1, 0) => {
                    tally.fired += 1;
                    tally_load.fired += 1;
                }
                (0, 1) => {
                    tally.missed += 1;
                    tally_load.missed += 1;
                }
                _ => {
                    tally.duplicated += 1;
                    tally_load.duplicated += 1;
                    problems.push(format!(
                        "{} {}: instant {t} covered {} times",
                        cron.db,
                        cron.id,
                        fired + missed
                    ));
                }
            }
        }
        by_load
            .entry(format!("{} {}", cron.db, cron.load))
            .or_default()
            .add(&tally_load);
    }
    let policies: HashMap<&str, &Cron> = crons.iter().map(|c| (c.id.as_str(), c)).collect();
    for ((cron_id, t), count) in &run_keys {
        if *count > 1 && policies.contains_key(cron_id.as_str()) {
            if let Some(p) = phase_of(*t) {
                tallies[p].duplicated += 1;
            }
            problems.push(format!("{cron_id}: {count} runs for instant {t}"));
        }
    }
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for (run_id, run) in &runs {
        let Some(cron) = policies.get(run.cron_id.as_str()) else {
            continue;
        };
        let Some(p) = phase_of(run.scheduled_for) else {
            continue;
        };
        if run.scheduled_for <= cron.created_at {
            continue;
        }
        *statuses.entry(run.status.clone()).or_default() += 1;
        let tally = &mut tallies[p];
        let ended = matches!(
            run.status.as_str(),
            "success" | "error" | "timeout" | "interrupted"
        );
        if ended && !run.worker_lost {
            tally.runs_ended += 1;
        } else {
            tally.runs_lost += 1;
            problems.push(format!(
                "run {run_id} of {} for {}: {}{}",
                run.cron_id,
                run.scheduled_for,
                run.status,
                if run.worker_lost {
                    " (worker lost)"
                } else {
                    ""
                }
            ));
        }
        if let Some(started) = run.started_at {
            tally.lateness.push(started - run.scheduled_for);
        }
        if ended {
            tally.webhooks_expected += 1;
            let got = received.get(run_id).copied().unwrap_or(0);
            match got {
                0 => {
                    problems.push(format!(
                        "run {run_id} of {} for {}: webhook not received (delivery {})",
                        run.cron_id,
                        run.scheduled_for,
                        deliveries.get(run_id).map_or("missing", String::as_str)
                    ));
                }
                1 => tally.webhooks_delivered += 1,
                2 => {
                    tally.webhooks_delivered += 1;
                    tally.webhooks_redone += 1;
                }
                _ => {
                    tally.webhooks_delivered += 1;
                    tally.webhooks_duplicated += 1;
                    problems.push(format!("run {run_id}: webhook received {got} times"));
                }
            }
        }
    }
    // Fired instants whose run is gone altogether are lost too.
    for cron in &crons {
        for fire in fires.get(&cron.id).map(Vec::as_slice).unwrap_or_default() {
            if fire.outcome != "fired" || fire.scheduled_for <= cron.created_at {
                continue;
            }
            let Some(p) = phase_of(fire.scheduled_for) else {
                continue;
            };
            if !run_keys.contains_key(&(cron.id.clone(), fire.scheduled_for)) {
                tallies[p].runs_lost += 1;
                problems.push(format!(
                    "{} {}: instant {} fired, its run is gone",
                    cron.db, cron.id, fire.scheduled_for
                ));
            }
        }
    }

    // The /ok watcher and the script's events: outages, recoveries, exits, memory.
    let mut watch: Vec<Value> = Vec::new();
    for path in &args.watch_logs {
        for line in std::fs::read_to_string(path)?.lines() {
            if let Ok(value) = serde_json::from_str::<Value>(line) {
                watch.push(value);
            }
        }
    }
    watch.sort_by_key(|v| v["t"].as_i64().unwrap_or(0));
    let events: Vec<Vec<String>> = std::fs::read_to_string(&args.events)?
        .lines()
        .map(|line| line.splitn(5, ' ').map(str::to_string).collect())
        .filter(|parts: &Vec<String>| parts.len() >= 4)
        .collect();
    let mut checks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for value in &watch {
        if let Some(pid) = value.get("exited") {
            failures.push(format!(
                "{} (pid {pid}) exited unasked at {}",
                value["daemon"], value["t"]
            ));
        }
    }
    let mut down_at: HashMap<&str, i64> = HashMap::new();
    for event in &events {
        let t: i64 = event[0].parse().unwrap_or(0);
        let (kind, phase, daemons) = (event[1].as_str(), event[2].as_str(), event[3].as_str());
        let detail = event.get(4).map(String::as_str).unwrap_or("");
        match kind {
            "db-down" => {
                down_at.insert(phase, t);
            }
            "db-back" => {
                let since = down_at.get(phase).copied().unwrap_or(t);
                for daemon in daemons.split(',') {
                    let seen: Vec<&Value> = watch
                        .iter()
                        .filter(|v| v["daemon"] == daemon && v.get("status").is_some())
                        .collect();
                    let state_at = |at: i64| {
                        seen.iter()
                            .rev()
                            .find(|v| v["t"].as_i64().unwrap_or(0) <= at)
                            .map(|v| v["status"].as_u64().unwrap_or(0))
                    };
                    // What /ok answered while the database was away.
                    let during: Vec<&&Value> = seen
                        .iter()
                        .filter(|v| {
                            let vt = v["t"].as_i64().unwrap_or(0);
                            vt >= since && vt <= t
                        })
                        .collect();
                    let mut answers: Vec<u64> = during
                        .iter()
                        .map(|v| v["status"].as_u64().unwrap_or(0))
                        .collect();
                    if let Some(status) = state_at(since) {
                        answers.insert(0, status);
                    }
                    answers.dedup();
                    let bad_503 = during.iter().any(|v| {
                        v["status"] == 503
                            && serde_json::from_str::<Value>(v["body"].as_str().unwrap_or(""))
                                .ok()
                                .and_then(|b| b.get("detail").and_then(Value::as_str).map(|_| ()))
                                .is_none()
                    });
                    if answers.iter().any(|&s| s != 200 && s != 503) || bad_503 {
                        failures.push(format!(
                            "{phase}: {daemon} answered /ok with {answers:?} while the database \
                             was away (want 503 with a JSON detail)"
                        ));
                    }
                    let recovered = if state_at(t) == Some(200) {
                        Some(0)
                    } else {
                        seen.iter()
                            .find(|v| v["t"].as_i64().unwrap_or(0) > t && v["status"] == 200)
                            .map(|v| v["t"].as_i64().unwrap_or(0) - t)
                    };
                    match recovered {
                        Some(ms) if ms <= 5_000 => {}
                        Some(ms) => failures.push(format!(
                            "{phase}: {daemon} ready {ms} ms after the database came back"
                        )),
                        None => failures.push(format!(
                            "{phase}: {daemon} never ready after the database came back"
                        )),
                    }
                    checks.entry(phase.to_string()).or_default().push(format!(
                        "{daemon}: /ok {} while away ({} s), ready {} after",
                        answers
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join("→"),
                        (t - since) / 1000,
                        recovered.map_or("never".into(), |ms| format!("{ms} ms"))
                    ));
                }
            }
            "ok" => {
                checks
                    .entry(phase.to_string())
                    .or_default()
                    .push(format!("{daemons}: {detail}"));
            }
            "fail" => {
                failures.push(format!("{phase}: {daemons}: {detail}"));
                checks
                    .entry(phase.to_string())
                    .or_default()
                    .push(format!("{daemons}: FAILED {detail}"));
            }
            _ => {}
        }
    }
    // Resources: the low point over the quiet phases (the baseline and the gaps after the
    // faults) of an early window, from min(10 min, a third of the run) after the start, and
    // of the run's last window. Quiet phases only, so that like is compared with like: with
    // the receivers down no webhook connection is open and descriptors fall to the pools'
    // own. A leak raises the low point; the swings between (connections opened and closed
    // with the load, a backlog drained) do not. Growth fails the run only when it lasts
    // 30 minutes or more: in a shorter one the early window is still the daemons' warm-up
    // (pools and caches filling), not a leak.
    let early = args.started + ((args.horizon - args.started) / 3).min(600_000);
    let (early_end, late) = (
        early + (args.horizon - early) * 2 / 5,
        args.horizon - (args.horizon - early) * 3 / 10,
    );
    let quiet = |t: i64| {
        phase_of(t).is_some_and(|p| {
            let name = &phases[p].name;
            name == "baseline" || name.starts_with("after-")
        })
    };
    let judged = args.horizon - args.started >= MIN_JUDGED_RUN;
    let mut resources = Vec::new();
    let mut names: Vec<&str> = watch
        .iter()
        .filter(|v| v.get("rss_kb").is_some())
        .filter_map(|v| v["daemon"].as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let samples: Vec<Sample> = watch
            .iter()
            .filter(|v| v["daemon"] == name)
            .filter_map(Sample::of)
            .filter(|sample| sample.t <= args.horizon && quiet(sample.t))
            .collect();
        let (Some(first), Some(last)) = (
            Floor::of(&samples, early, early_end),
            Floor::of(&samples, late, args.horizon),
        ) else {
            resources.push(format!("| {name} | no quiet sample in a window | | |"));
            continue;
        };
        let minutes = |t: i64| (t - args.started) as f64 / 60_000.0;
        if first.pid != last.pid {
            resources.push(format!(
                "| {name} | restarted in between (pid {} → {}) | | |",
                first.pid, last.pid
            ));
            continue;
        }
        let growth = |a: f64, b: f64| if a > 0.0 { (b - a) / a * 100.0 } else { 0.0 };
        let (rss, fds) = (
            growth(first.rss_kb, last.rss_kb),
            growth(first.fds, last.fds),
        );
        resources.push(format!(
            "| {name} | {:.1}–{:.1} → {:.1}–{:.1} min | {:.1} → {:.1} MB ({rss:+.1} %) | {} → {} ({fds:+.1} %) |",
            minutes(early),
            minutes(early_end),
            minutes(late),
            minutes(args.horizon),
            first.rss_kb / 1024.0,
            last.rss_kb / 1024.0,
            first.fds,
            last.fds,
        ));
        if judged && rss > 10.0 {
            failures.push(format!(
                "{name}: RSS grew {rss:.1} % ({:.1} → {:.1} MB)",
                first.rss_kb / 1024.0,
                last.rss_kb / 1024.0
            ));
        }
        if judged && fds > 10.0 && last.fds - first.fds > POOL_DESCRIPTORS {
            failures.push(format!(
                "{name}: open descriptors grew {} → {}",
                first.fds, last.fds
            ));
        }
    }

    // The table.
    println!(
        "| phase | instants expected | fired | missed (policy) | duplicated | no entry | runs ended | lost | webhooks expected | delivered | redone once | beyond one redo | start lateness p50 / p99 / max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut total = Tally::default();
    for (phase, tally) in phases.iter().zip(tallies.iter_mut()) {
        total.add(tally);
        print_row(&phase.name, tally);
    }
    print_row("**total**", &mut total);
    println!();
    println!("By load (instants): ");
    for (load, tally) in &by_load {
        println!(
            "- {load}: expected {}, fired {}, missed {}, duplicated {}, no entry {}",
            tally.expected, tally.fired, tally.missed, tally.duplicated, tally.unrecorded
        );
    }
    println!();
    println!("Per fault:");
    for phase in &phases {
        for line in checks
            .get(&phase.name)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            println!("- {}: {line}", phase.name);
        }
    }
    println!();
    println!(
        "| daemon | windows compared (quiet phases) | RSS, low point | open descriptors, low point |"
    );
    println!("|---|---|---|---|");
    for line in &resources {
        println!("{line}");
    }
    if !judged {
        println!("(growth is shown, not judged: the run is shorter than 30 minutes)");
    }
    println!();
    println!(
        "Run statuses: {}; receiver answers other than 200: {refused_by_receiver}; {}",
        statuses
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        integrity.join("; ")
    );

    if total.duplicated > 0 {
        failures.push(format!("{} duplicated instants", total.duplicated));
    }
    if total.unrecorded > 0 {
        failures.push(format!(
            "{} instants with no history entry",
            total.unrecorded
        ));
    }
    if total.missed_against_policy > 0 {
        failures.push(format!(
            "{} instants missed against the misfire policy",
            total.missed_against_policy
        ));
    }
    if total.runs_lost > 0 {
        failures.push(format!("{} runs lost", total.runs_lost));
    }
    if total.webhooks_delivered < total.webhooks_expected {
        failures.push(format!(
            "{} webhooks never delivered",
            total.webhooks_expected - total.webhooks_delivered
        ));
    }
    if total.webhooks_duplicated > 0 {
        failures.push(format!(
            "{} webhooks delivered more than twice",
            total.webhooks_duplicated
        ));
    }
    if !problems.is_empty() {
        println!();
        println!("Details ({} lines, the first 40):", problems.len());
        for problem in problems.iter().take(40) {
            println!("- {problem}");
        }
    }
    if let Some(path) = &args.json {
        let summary = json!({
            "instants_expected": total.expected, "fired": total.fired, "missed": total.missed,
            "duplicated": total.duplicated, "no_entry": total.unrecorded,
            "runs_ended": total.runs_ended, "runs_lost": total.runs_lost,
            "webhooks_expected": total.webhooks_expected,
            "webhooks_delivered": total.webhooks_delivered,
            "webhooks_redone": total.webhooks_redone,
            "webhooks_beyond_one_redo": total.webhooks_duplicated,
            "lateness": total.lateness_text(),
            "failures": failures,
        });
        std::fs::write(path, format!("{summary}\n"))?;
    }
    Ok(failures)
}

fn print_row(name: &str, tally: &mut Tally) {
    let lateness = tally.lateness_text();
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        tally.expected,
        tally.fired,
        tally.missed,
        tally.duplicated,
        tally.unrecorded,
        tally.runs_ended,
        tally.runs_lost,
        tally.webhooks_expected,
        tally.webhooks_delivered,
        tally.webhooks_redone,
        tally.webhooks_duplicated,
        lateness
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64, pid: i64, rss_kb: f64, fds: f64) -> Sample {
        Sample {
            t,
            pid,
            rss_kb,
            fds,
        }
    }

    #[test]
    fn a_window_s_floor_is_its_low_point_of_the_last_process() {
        let samples = [
            sample(0, 1, 500.0, 90.0),
            sample(10, 1, 100.0, 21.0),
            sample(20, 1, 300.0, 118.0),
            sample(30, 2, 400.0, 40.0),
            sample(40, 2, 350.0, 60.0),
            sample(50, 2, 50.0, 10.0),
        ];
        let floor = Floor::of(&samples, 0, 20).expect("samples in the window");
        assert_eq!((floor.pid, floor.rss_kb, floor.fds), (1, 100.0, 21.0));
        // Pid 1 was replaced within the window: only pid 2's samples count.
        let floor = Floor::of(&samples, 10, 40).expect("samples in the window");
        assert_eq!((floor.pid, floor.rss_kb, floor.fds), (2, 350.0, 40.0));
        assert!(Floor::of(&samples, 60, 90).is_none());
    }
}
