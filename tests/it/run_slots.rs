//! The worker pool's two limits against the real binary: runs of `command` graphs (a
//! process each) never exceed `[runs] command_concurrency`, runs of in-process graphs never
//! exceed `[runs] concurrency`, and neither kind takes the other's slots: both kinds run at
//! their limits at the same moment. Runs submitted through the API and runs of crons fired by
//! the scheduler (whose slots are reserved before the run's graph is known) both keep to them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::{Backend, Daemon, Storage};

const COMMANDS: usize = 2;
const IN_PROCESS: usize = 3;
/// How long each run of either kind takes.
const HOLD: Duration = Duration::from_millis(400);

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or_default()
}

/// One run of either kind starting (+1) or ending (−1), at a wall-clock instant (ns).
#[derive(Debug, Clone, Copy)]
struct Edge {
    at: i128,
    command: bool,
    delta: i32,
}

/// An `http` graph's endpoint on loopback: it holds each request for `HOLD` and records
/// when each began and ended.
#[derive(Clone)]
struct SlowEndpoint {
    port: u16,
    edges: Arc<Mutex<Vec<Edge>>>,
    served: Arc<AtomicUsize>,
}

impl SlowEndpoint {
    async fn start() -> SlowEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let endpoint = SlowEndpoint {
            port,
            edges: Arc::default(),
            served: Arc::default(),
        };
        let serving = endpoint.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serving.clone().serve(stream));
            }
        });
        endpoint
    }

    /// One connection: each request (head, then a `content-length` body) is answered
    /// `{"ok": true}` after `HOLD`.
    async fn serve(self, mut stream: tokio::net::TcpStream) {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let Some(head_end) = find(&buffer, b"\r\n\r\n") else {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            while buffer.len() < head_end + 4 + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            buffer.drain(..head_end + 4 + length);
            self.edge(1);
            tokio::time::sleep(HOLD).await;
            self.edge(-1);
            self.served.fetch_add(1, Ordering::SeqCst);
            let body = br#"{"ok":true}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err()
                || stream.write_all(body).await.is_err()
            {
                return;
            }
        }
    }

    fn edge(&self, delta: i32) {
        let edge = Edge {
            at: now_ns(),
            command: false,
            delta,
        };
        self.edges.lock().expect("edges").push(edge);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A daemon with a slow `command` graph (`cmd`, logging its start and end to `log`) and a
/// slow `http` graph (`web`, on `endpoint`), under small limits of each kind.
async fn daemon(storage: &Storage, endpoint: &SlowEndpoint) -> (Daemon, std::path::PathBuf) {
    let log = storage.dir.path().join("command.log");
    let script = storage.dir.path().join("slow.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat >/dev/null\necho \"+ $(date +%s%N)\" >> \"$LOG\"\nsleep {}\necho \"- $(date +%s%N)\" >> \"$LOG\"\necho '{{\"ok\": true}}'\n",
            HOLD.as_secs_f64()
        ),
    )
    .expect("write script");
    let config = format!(
        r#"
[runs]
concurrency = {IN_PROCESS}
command_concurrency = {COMMANDS}
poll_interval = "100ms"

[graphs.cmd]
kind = "command"
command = ["sh", "{script}"]
env = {{ LOG = "{log}" }}

[graphs.web]
kind = "http"
url = "http://127.0.0.1:{port}/run"
"#,
        script = script.display(),
        log = log.display(),
        port = endpoint.port,
    );
    (Daemon::start_with_config(storage, &config).await, log)
}

/// The command runs' edges, from their log.
fn command_edges(log: &std::path::Path) -> Vec<Edge> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (sign, at) = line.split_once(' ')?;
            Some(Edge {
                at: at.trim().parse().ok()?,
                command: true,
                delta: if sign == "+" { 1 } else { -1 },
            })
        })
        .collect()
}

/// The most runs of each kind at once, and the most of both kinds at the same moment.
fn peaks(mut edges: Vec<Edge>) -> (usize, usize, usize) {
    // Ends before starts at the same instant: a slot freed and taken again is not an overlap.
    edges.sort_by_key(|edge| (edge.at, edge.delta));
    let (mut commands, mut in_process) = (0i32, 0i32);
    let (mut most_commands, mut most_in_process, mut most_both) = (0, 0, 0);
    for edge in edges {
        if edge.command {
            commands += edge.delta;
        } else {
            in_process += edge.delta;
        }
        most_commands = most_commands.max(commands);
        most_in_process = most_in_process.max(in_process);
        most_both = most_both.max(commands + in_process);
    }
    (
        most_commands as usize,
        most_in_process as usize,
        most_both as usize,
    )
}

/// Waits until `done` holds, for up to 60 s.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ended_commands(log: &std::path::Path) -> usize {
    command_edges(log).iter().filter(|e| e.delta < 0).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_runs_keep_to_the_limit_of_their_kind() {
    let storage = Storage::new(Backend::Sqlite).await;
    let endpoint = SlowEndpoint::start().await;
    let (daemon, log) = daemon(&storage, &endpoint).await;
    // Commands first, then in-process runs: were commands to take in-process slots, the
    // in-process runs would wait behind them.
    let (commands, in_process) = (8, 12);
    for (graph, count) in [("cmd", commands), ("web", in_process)] {
        for _ in 0..count {
            let (status, run) = daemon
                .post("/runs", &json!({"assistant_id": graph, "input": {}}))
                .await;
            assert_eq!(status, 200, "{run}");
        }
    }
    until("every run to end", || {
        ended_commands(&log) == commands && endpoint.served.load(Ordering::SeqCst) == in_process
    })
    .await;
    let mut edges = command_edges(&log);
    edges.extend(endpoint.edges.lock().expect("edges").iter().copied());
    let (most_commands, most_in_process, most_both) = peaks(edges);
    assert_eq!(most_commands, COMMANDS, "command runs at once");
    assert_eq!(most_in_process, IN_PROCESS, "in-process runs at once");
    assert_eq!(
        most_both,
        COMMANDS + IN_PROCESS,
        "each kind ran at its own limit beside the other"
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_runs_keep_to_the_limit_of_their_kind() {
    let storage = Storage::new(Backend::Sqlite).await;
    let endpoint = SlowEndpoint::start().await;
    let (daemon, log) = daemon(&storage, &endpoint).await;
    // Every second, 5 command runs of 400 ms meet 2 process slots and 6 in-process runs meet
    // 3 slots: both pools stay full, and the scheduler's slots (reserved in-process before it
    // knows the graphs) are handed command runs it must not start beyond their limit.
    let mut crons = Vec::new();
    for (graph, count) in [("cmd", 5), ("web", 6)] {
        for _ in 0..count {
            let (status, cron) = daemon
                .post(
                    "/runs/crons",
                    &json!({"schedule": "* * * * * *", "assistant_id": graph, "input": {}}),
                )
                .await;
            assert_eq!(status, 200, "{cron}");
            crons.push(cron["cron_id"].as_str().unwrap_or_default().to_string());
        }
    }
    until("command and in-process runs of several seconds", || {
        ended_commands(&log) >= 12 && endpoint.served.load(Ordering::SeqCst) >= 18
    })
    .await;
    for cron_id in &crons {
        let (status, body) = daemon.delete(&format!("/runs/crons/{cron_id}")).await;
        assert_eq!(status, 204, "{body}");
    }
    let mut edges = command_edges(&log);
    edges.extend(endpoint.edges.lock().expect("edges").iter().copied());
    let (most_commands, most_in_process, most_both) = peaks(edges);
    assert_eq!(most_commands, COMMANDS, "command runs at once");
    assert_eq!(most_in_process, IN_PROCESS, "in-process runs at once");
    assert_eq!(
        most_both,
        COMMANDS + IN_PROCESS,
        "both kinds at their limits at once"
    );
    daemon.stop();
}
