//! The ops CLI (`cronhook crons|runs|deliveries …`): the real binary against a real daemon
//! on 127.0.0.1 (SQLite), and against a closed port and a scripted loopback server for the
//! failures a daemon does not produce on demand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{Backend, Daemon, Storage};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const AGENT_ID: &str = "fe096781-5601-53d2-b2f6-0d3403f7e9ca";

/// What one CLI invocation did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:?}"))
    }

    #[track_caller]
    fn ok(self) -> Out {
        assert_eq!(self.code, 0, "{self:?}");
        assert!(self.stderr.is_empty(), "{self:?}");
        self
    }
}

/// Runs `cronhook ARGS` against `url` with a clean environment (no CRONHOOK_* leaking in).
async fn cli(url: &str, args: &[&str]) -> Out {
    cli_env(args, &[("CRONHOOK_URL", url)]).await
}

async fn cli_env(args: &[&str], envs: &[(&str, &str)]) -> Out {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cronhook"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CRONHOOK_") {
            command.env_remove(key);
        }
    }
    let output = command
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .await
        .expect("run cronhook");
    Out {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

async fn started(extra_config: &str) -> (Storage, Daemon) {
    let storage = Storage::new(Backend::Sqlite).await;
    let config = format!("[graphs.agent]\nkind = \"echo\"\n{extra_config}");
    let daemon = Daemon::start_with_config(&storage, &config).await;
    (storage, daemon)
}

fn instant(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|err| panic!("{text}: {err}"))
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_lifecycle_through_the_cli() {
    let (_storage, daemon) = started("").await;
    let url = daemon.url.as_str();
    let thread_id = daemon.new_thread().await;

    // create (a thread cron), as JSON for the id
    let created = cli(
        url,
        &[
            "crons",
            "create",
            "--thread",
            &thread_id,
            "--schedule",
            "*/5 * * * *",
            "--timezone",
            "Europe/Paris",
            "--input",
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            "--metadata",
            r#"{"team": "ops"}"#,
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    let cron_id = created["cron_id"].as_str().expect("cron_id").to_string();
    assert_eq!(
        created["assistant_id"], AGENT_ID,
        "--assistant defaults to agent"
    );
    assert_eq!(created["thread_id"], thread_id.as_str());
    assert_eq!(created["schedule"], "*/5 * * * *");
    assert_eq!(created["timezone"], "Europe/Paris");
    assert_eq!(created["metadata"], json!({"team": "ops"}));
    assert_eq!(created["payload"]["input"]["messages"][0]["content"], "hi");
    let (status, stored) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 200, "the daemon has it");
    assert_eq!(stored["schedule"], "*/5 * * * *");

    // list: an aligned table with the cron's row
    let list = cli(url, &["crons", "list"]).await.ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "header and one row: {list:?}");
    assert!(lines[0].starts_with("CRON ID"), "{list:?}");
    for column in ["SCHEDULE", "TIMEZONE", "NEXT RUN", "LAST STATUS", "THREAD"] {
        assert!(lines[0].contains(column), "{column}: {list:?}");
    }
    assert!(lines[1].starts_with(&cron_id), "{list:?}");
    for cell in ["*/5 * * * *", "Europe/Paris", &thread_id] {
        assert!(lines[1].contains(cell), "{cell}: {list:?}");
    }
    let at = lines[0].find("SCHEDULE").expect("SCHEDULE column");
    assert_eq!(
        &lines[1][at..at + 11],
        "*/5 * * * *",
        "columns line up: {list:?}"
    );
    // filters
    let rows = |out: Out| out.ok().json().as_array().expect("list").len();
    assert_eq!(
        rows(cli(url, &["crons", "list", "--json", "--thread", &thread_id]).await),
        1
    );
    assert_eq!(
        rows(cli(url, &["crons", "list", "--json", "--assistant", "agent"]).await),
        1
    );
    assert_eq!(
        rows(cli(url, &["crons", "list", "--json", "--assistant", "other"]).await),
        0
    );
    assert_eq!(
        rows(cli(url, &["crons", "list", "--json", "--disabled"]).await),
        0
    );
    assert_eq!(
        rows(cli(url, &["crons", "list", "--json", "--enabled"]).await),
        1
    );

    // get --json: the daemon's object as is
    let got = cli(url, &["crons", "get", &cron_id, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(got, stored);
    assert_eq!(got["enabled"], true);
    assert!(instant(&got["next_run_date"]) > Utc::now());
    // get as a table: one FIELD/VALUE row per key
    let table = cli(url, &["crons", "get", &cron_id]).await.ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("cron_id") && l.ends_with(&cron_id))
    );
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("enabled") && l.ends_with("true"))
    );

    // pause / resume
    let paused = cli(url, &["crons", "pause", &cron_id]).await.ok();
    assert!(
        paused
            .stdout
            .lines()
            .any(|l| l.starts_with("enabled") && l.ends_with("false")),
        "{paused:?}"
    );
    let (_, stored) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(stored["enabled"], false);
    assert_eq!(
        rows(cli(url, &["crons", "list", "--json", "--disabled"]).await),
        1
    );
    let resumed = cli(url, &["crons", "resume", &cron_id, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(resumed["enabled"], true);
    assert!(resumed["next_run_date"].is_string());
    let (_, stored) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(stored["enabled"], true);

    // next: N future instants, increasing, 5 minutes apart
    let next = cli(url, &["crons", "next", &cron_id, "-n", "4", "--json"])
        .await
        .ok()
        .json();
    let instants: Vec<DateTime<Utc>> = next["next"]
        .as_array()
        .expect("next")
        .iter()
        .map(instant)
        .collect();
    assert_eq!(instants.len(), 4, "{next}");
    assert!(
        instants[0] > Utc::now() - chrono::Duration::seconds(1),
        "{next}"
    );
    for pair in instants.windows(2) {
        assert_eq!(pair[1] - pair[0], chrono::Duration::minutes(5), "{next}");
    }
    let table = cli(url, &["crons", "next", &cron_id, "--count", "3"])
        .await
        .ok();
    assert_eq!(table.stdout.lines().count(), 4, "header + 3: {table:?}");
    let after = cli(
        url,
        &[
            "crons",
            "next",
            &cron_id,
            "-n",
            "2",
            "--after",
            "2030-01-01T00:00:00Z",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        after["next"],
        json!(["2030-01-01T00:05:00+00:00", "2030-01-01T00:10:00+00:00"])
    );

    // trigger: a run appears on the thread and completes
    let run = cli(url, &["crons", "trigger", &cron_id, "--json"])
        .await
        .ok()
        .json();
    let run_id = run["run_id"].as_str().expect("run_id").to_string();
    assert_eq!(run["cron_id"], cron_id.as_str());
    assert_eq!(run["thread_id"], thread_id.as_str());
    let runs = cli(url, &["runs", "list", "--thread", &thread_id])
        .await
        .ok();
    let lines: Vec<&str> = runs.stdout.lines().collect();
    assert!(
        lines[0].starts_with("RUN ID") && lines[0].contains("STATUS"),
        "{runs:?}"
    );
    assert_eq!(lines.len(), 2, "{runs:?}");
    assert!(
        lines[1].starts_with(&run_id) && lines[1].contains(&cron_id),
        "{runs:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = cli(
            url,
            &["runs", "get", "--thread", &thread_id, &run_id, "--json"],
        )
        .await
        .ok()
        .json();
        assert_eq!(got["run_id"], run_id.as_str());
        if got["status"] == "success" {
            break;
        }
        assert!(Instant::now() < deadline, "run did not finish: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = cli(
        url,
        &[
            "runs", "list", "--thread", &thread_id, "--status", "success", "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(done.as_array().map(Vec::len), Some(1), "{done}");
    assert_eq!(done[0]["run_id"], run_id.as_str());
    let pending = cli(
        url,
        &[
            "runs", "list", "--thread", &thread_id, "--status", "pending", "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(pending, json!([]));

    // update: only the fields given change
    let updated = cli(
        url,
        &[
            "crons",
            "update",
            &cron_id,
            "--schedule",
            "0 9 * * *",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(updated["schedule"], "0 9 * * *");
    assert_eq!(updated["timezone"], "Europe/Paris", "unchanged");
    assert_eq!(updated["metadata"], json!({"team": "ops"}), "unchanged");
    assert_eq!(updated["enabled"], true, "unchanged");
    let next_run = instant(&updated["next_run_date"]).with_timezone(&chrono_tz::Europe::Paris);
    assert_eq!(next_run.format("%H:%M").to_string(), "09:00");
    let (_, stored) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(stored["schedule"], "0 9 * * *");

    // delete, then get is "not found" (exit 3)
    let deleted = cli(url, &["crons", "delete", &cron_id]).await.ok();
    assert_eq!(deleted.stdout.trim(), format!("deleted cron {cron_id}"));
    let (status, _) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 404);
    let missing = cli(url, &["crons", "get", &cron_id]).await;
    assert_eq!(missing.code, 3, "{missing:?}");
    assert!(missing.stdout.is_empty(), "{missing:?}");
    assert_eq!(missing.stderr.lines().count(), 1, "{missing:?}");
    assert!(
        missing.stderr.contains("not found") && missing.stderr.contains(&cron_id),
        "{missing:?}"
    );
    let again = cli(url, &["crons", "delete", &cron_id]).await;
    assert_eq!(again.code, 3, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_create_with_every_json_flag() {
    let (_storage, daemon) = started("").await;
    let url = daemon.url.as_str();
    let created = cli(
        url,
        &[
            "crons",
            "create",
            "--assistant",
            AGENT_ID,
            "--schedule",
            "0 0 1 1 *",
            "--run-config",
            r#"{"configurable": {"user": "u1"}, "tags": ["t"]}"#,
            "--context",
            r#"{"k": 1}"#,
            "--end-time",
            "2099-01-01T00:00:00Z",
            "--on-run-completed",
            "keep",
            "--misfire-policy",
            "fire_all",
            "--catchup-window-seconds",
            "600",
            "--disabled",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    let cron_id = created["cron_id"].as_str().expect("cron_id");
    assert_eq!(created["thread_id"], Value::Null);
    assert_eq!(created["enabled"], false);
    assert_eq!(created["end_time"], "2099-01-01T00:00:00+00:00");
    assert_eq!(created["on_run_completed"], "keep");
    assert_eq!(created["misfire_policy"], "fire_all");
    assert_eq!(created["catchup_window_seconds"], 600);
    assert_eq!(created["payload"]["config"]["configurable"]["user"], "u1");
    assert_eq!(
        created["payload"]["config"]["configurable"]["cron_id"],
        cron_id
    );
    assert_eq!(created["payload"]["context"], json!({"k": 1}));

    // update --clear-end-time sends end_time: null; --enabled turns it on
    let updated = cli(
        url,
        &[
            "crons",
            "update",
            cron_id,
            "--clear-end-time",
            "--enabled",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(updated["end_time"], Value::Null);
    assert_eq!(updated["enabled"], true);
    assert_eq!(updated["misfire_policy"], "fire_all", "unchanged");

    // --json on delete prints nothing (the daemon answers 204)
    let deleted = cli(url, &["crons", "delete", cron_id, "--json"]).await.ok();
    assert_eq!(deleted.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_are_usage_errors_and_send_nothing() {
    let (_storage, daemon) = started("").await;
    let url = daemon.url.as_str();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "crons",
                "create",
                "--schedule",
                "* * * * *",
                "--input",
                "{not json",
            ],
            "--input",
        ),
        (
            &[
                "crons",
                "create",
                "--schedule",
                "* * * * *",
                "--metadata",
                "[1, 2]",
            ],
            "--metadata",
        ),
        (
            &[
                "crons",
                "create",
                "--schedule",
                "* * * * *",
                "--run-config",
                "3",
            ],
            "--run-config",
        ),
        (
            &[
                "crons",
                "create",
                "--schedule",
                "* * * * *",
                "--end-time",
                "tomorrow",
            ],
            "--end-time",
        ),
        (
            &[
                "crons",
                "create",
                "--schedule",
                "* * * * *",
                "--misfire-policy",
                "sometimes",
            ],
            "--misfire-policy",
        ),
        (&["crons", "create", "--input", "{}"], "--schedule"),
        (&["crons", "get", "not-a-uuid"], "CRON_ID"),
        (
            &["crons", "update", "0195d9a8-0000-7000-8000-000000000000"],
            "--schedule",
        ),
        (&["crons", "list", "--limit", "0"], "--limit"),
        (&["crons", "list", "--enabled", "--disabled"], "--disabled"),
        (&["runs", "list"], "--thread"),
        (&["deliveries", "list", "--status", "lost"], "--status"),
    ];
    for (args, flag) in cases {
        let out = cli(url, args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(flag),
            "{args:?} should name {flag}: {out:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    let (status, count) = daemon.post("/runs/crons/count", &json!({})).await;
    assert_eq!((status, count), (200, json!(0)), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_input_is_exit_5_with_the_daemons_detail() {
    let (_storage, daemon) = started("").await;
    let url = daemon.url.as_str();
    let (status, body) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "61 * * * *"}),
        )
        .await;
    assert_eq!(status, 422);
    let detail = body["detail"].as_str().expect("detail").to_string();
    assert!(detail.contains("61 * * * *"), "{detail}");

    let out = cli(url, &["crons", "create", "--schedule", "61 * * * *"]).await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
    assert!(out.stderr.contains(&detail), "{out:?}");
    assert!(out.stderr.contains("422"), "{out:?}");

    let out = cli(
        url,
        &[
            "crons",
            "create",
            "--schedule",
            "* * * * *",
            "--timezone",
            "Mars/Olympus",
        ],
    )
    .await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("Mars/Olympus"), "{out:?}");

    // an unknown assistant is a 404: exit 3
    let out = cli(
        url,
        &[
            "crons",
            "create",
            "--schedule",
            "* * * * *",
            "--assistant",
            "nope",
        ],
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("nope"), "{out:?}");
    let (_, count) = daemon.post("/runs/crons/count", &json!({})).await;
    assert_eq!(count, json!(0), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_daemon_is_exit_6() {
    // Port 9 (discard) on loopback: nothing listens there on a test machine.
    let out = cli("http://127.0.0.1:9", &["crons", "list"]).await;
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(
        out.stderr.trim_end(),
        "cronhook: cannot reach cronhook at http://127.0.0.1:9: connection refused — is the \
         daemon running? set --url or CRONHOOK_URL"
    );
    // --url wins over CRONHOOK_URL
    let out = cli_env(
        &["--url", "http://127.0.0.1:9/", "deliveries", "list"],
        &[("CRONHOOK_URL", "http://127.0.0.1:1")],
    )
    .await;
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("http://127.0.0.1:9:"), "{out:?}");
    // a malformed URL never leaves the machine: usage error
    let out = cli("not a url", &["crons", "list"]).await;
    assert_eq!(out.code, 2, "{out:?}");
}

/// A one-shot HTTP server on loopback: answers every request with `status` and `body`, and
/// hands back each request's head (lower-cased).
fn scripted_server(status: &'static str, body: &'static str) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                head.push_str(&lower);
            }
            let mut discard = vec![0; length];
            let _ = reader.read_exact(&mut discard);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            if tx.send(head).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_server_failures_map_to_4_and_6() {
    let key = "ck_test_5ecret_value";
    let (url, heads) = scripted_server("401 Unauthorized", r#"{"detail": "Invalid API key"}"#);
    let out = cli_env(
        &["crons", "list"],
        &[("CRONHOOK_URL", url.as_str()), ("CRONHOOK_API_KEY", key)],
    )
    .await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("Invalid API key"), "{out:?}");
    assert!(
        out.stderr.contains("CRONHOOK_API_KEY"),
        "says what to do: {out:?}"
    );
    assert!(
        !out.stderr.contains(key) && !out.stdout.contains(key),
        "key printed: {out:?}"
    );
    let head = heads
        .recv_timeout(Duration::from_secs(5))
        .expect("a request");
    assert!(head.starts_with("post /runs/crons/search "), "{head}");
    assert!(head.contains(&format!("x-api-key: {key}\r\n")), "{head}");

    let (url, _heads) = scripted_server("403 Forbidden", r#"{"detail": "Not yours"}"#);
    let out = cli_env(
        &[
            "--url",
            &url,
            "--api-key",
            key,
            "runs",
            "list",
            "--thread",
            "0195d9a8-0000-7000-8000-000000000000",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(!out.stderr.contains(key), "{out:?}");

    let (url, _heads) =
        scripted_server("503 Service Unavailable", r#"{"detail": "shutting down"}"#);
    let out = cli(&url, &["deliveries", "list"]).await;
    assert_eq!(out.code, 6, "{out:?}");
    assert!(
        out.stderr.contains("503") && out.stderr.contains("shutting down"),
        "{out:?}"
    );

    let (url, _heads) = scripted_server("409 Conflict", r#"{"detail": "thread is busy"}"#);
    let out = cli(
        &url,
        &["crons", "trigger", "0195d9a8-0000-7000-8000-000000000000"],
    )
    .await;
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("thread is busy"), "{out:?}");

    // a key that cannot be a header value is a usage error that does not show it
    let out = cli_env(
        &["crons", "list"],
        &[
            ("CRONHOOK_URL", url.as_str()),
            ("CRONHOOK_API_KEY", "ck_\u{1}5ecret"),
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("CRONHOOK_API_KEY") && !out.stderr.contains("5ecret"),
        "{out:?}"
    );

    // --help documents the codes and hides the key's value
    let help = cli_env(&["--help"], &[("CRONHOOK_API_KEY", key)])
        .await
        .ok();
    assert!(help.stdout.contains("Exit codes"), "{help:?}");
    assert!(help.stdout.contains("3  not found (404)"), "{help:?}");
    assert!(
        help.stdout.contains("6  cannot reach the daemon"),
        "{help:?}"
    );
    assert!(!help.stdout.contains(key), "{help:?}");
    let help = cli_env(&["crons", "--help"], &[]).await.ok();
    assert!(
        help.stdout.contains("5  input rejected by the daemon"),
        "{help:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_list_and_retry() {
    // Webhooks go to a closed loopback port: every attempt fails with nothing sent anywhere.
    let (_storage, daemon) = started(
        "[webhooks.url]\ndisable_loopback = false\n[webhooks.retry]\ndelays = [\"1h\"]\njitter = 0.0\n",
    )
    .await;
    let url = daemon.url.as_str();

    let empty = cli(url, &["deliveries", "list"]).await.ok();
    assert_eq!(
        empty.stdout.lines().count(),
        1,
        "the header alone: {empty:?}"
    );
    assert!(empty.stdout.starts_with("DELIVERY ID"), "{empty:?}");
    assert_eq!(
        cli(url, &["deliveries", "list", "--json"])
            .await
            .ok()
            .json(),
        json!([])
    );

    let thread_id = daemon.new_thread().await;
    let (status, _) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/wait"),
            &json!({"assistant_id": "agent", "input": {"x": 1}, "webhook": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, runs) = daemon.get(&format!("/threads/{thread_id}/runs")).await;
    let run_id = runs[0]["run_id"].as_str().expect("run_id").to_string();

    // the first attempt fails (connection refused) and waits an hour for the next
    let attempted = |list: &Value| list[0]["attempts"].as_i64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let list = loop {
        let list = cli(url, &["deliveries", "list", "--run", &run_id, "--json"])
            .await
            .ok()
            .json();
        if attempted(&list) >= 1 {
            break list;
        }
        assert!(Instant::now() < deadline, "no attempt: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["status"], "pending");
    let delivery_id = list[0]["delivery_id"]
        .as_str()
        .expect("delivery_id")
        .to_string();

    let table = cli(url, &["deliveries", "list"]).await.ok();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{table:?}");
    assert!(lines[1].starts_with(&delivery_id), "{table:?}");
    assert!(
        lines[1].contains(&run_id) && lines[1].contains("pending"),
        "{table:?}"
    );
    assert_eq!(
        cli(
            url,
            &["deliveries", "list", "--status", "delivered", "--json"]
        )
        .await
        .ok()
        .json(),
        json!([])
    );

    let retried = cli(url, &["deliveries", "retry", &delivery_id]).await.ok();
    assert!(
        retried
            .stdout
            .lines()
            .any(|l| l.starts_with("delivery_id") && l.ends_with(&delivery_id)),
        "{retried:?}"
    );
    // the retry is one more real attempt, now rather than in an hour
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = cli(url, &["deliveries", "list", "--run", &run_id, "--json"])
            .await
            .ok()
            .json();
        if attempted(&list) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "retry made no attempt: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let missing = cli(
        url,
        &[
            "deliveries",
            "retry",
            "0195d9a8-0000-7000-8000-000000000000",
        ],
    )
    .await;
    assert_eq!(missing.code, 3, "{missing:?}");
}

/// Against a daemon with real API keys: no key or a wrong one is exit 4, and each key sees
/// only its identity's crons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_against_a_real_daemon() {
    const ALICE: &str = "cli-alice-key-0a1b2c3d";
    const BOB: &str = "cli-bob-key-4e5f6a7b8c";
    let (_storage, daemon) = started(&format!(
        "[[auth.api_keys]]\nidentity = \"alice\"\nkey = \"{ALICE}\"\n\
         [[auth.api_keys]]\nidentity = \"bob\"\nkey = \"{BOB}\"\n"
    ))
    .await;
    let url = daemon.url.as_str();
    let out = cli(url, &["crons", "list"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    let out = cli(url, &["--api-key", "not-a-key-000000000", "crons", "list"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        !out.stderr.contains("not-a-key"),
        "the key is never printed: {out:?}"
    );

    let created = cli(
        url,
        &[
            "--api-key",
            ALICE,
            "--json",
            "crons",
            "create",
            "--schedule",
            "0 5 * * *",
        ],
    )
    .await
    .ok()
    .json();
    let cron_id = created["cron_id"].as_str().expect("cron_id").to_string();
    assert_eq!(created["user_id"], "alice");
    let mine = cli_env(
        &["--json", "crons", "list"],
        &[("CRONHOOK_URL", url), ("CRONHOOK_API_KEY", ALICE)],
    )
    .await
    .ok()
    .json();
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    let theirs = cli(url, &["--api-key", BOB, "--json", "crons", "list"])
        .await
        .ok()
        .json();
    assert_eq!(theirs, serde_json::json!([]));
    let out = cli(url, &["--api-key", BOB, "crons", "get", &cron_id]).await;
    assert_eq!(out.code, 3, "bob cannot see alice's cron: {out:?}");
}

/// A PostgreSQL that cannot be reached stops start-up with where and why, at once.
#[test]
fn an_unreachable_database_is_named_with_its_cause() {
    let port = crate::common::free_port(); // bound and released: nothing listens there
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cronhook"))
        .args([
            "--bind",
            &format!("127.0.0.1:{}", crate::common::free_port()),
        ])
        .args(["--data-dir", &dir.path().display().to_string()])
        .args([
            "--database-url",
            &format!("postgres://cronhook@127.0.0.1:{port}/cronhook"),
        ])
        .output()
        .expect("run cronhook");
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}"))
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
}

/// What a new user does with the CLI alone: make a thread and a thread cron on it, see crons
/// with their last status and next run ("paused" when paused, owners for an admin), read a
/// failed run's error, a delivery's attempts, and be told where a stateless run went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_crons_runs_and_deliveries_as_a_new_user_sees_them() {
    const ALICE: &str = "cli-alice-key-9f8e7d6c";
    const OPS: &str = "cli-ops-key-5b4a3c2d1e";
    let receiver = crate::common::receiver::Receiver::start().await;
    receiver.answer(&[500]);
    let graphs = crate::common::repo_root().join("tests/fixtures/graphs");
    let (_storage, daemon) = started(&format!(
        "[graphs.fail]\nkind = \"command\"\ncommand = [\"{}/fail.sh\"]\n\
         [webhooks.url]\ndisable_loopback = false\n[webhooks.retry]\ndelays = [\"100ms\"]\njitter = 0.0\n\
         [[auth.api_keys]]\nidentity = \"alice\"\nkey = \"{ALICE}\"\n\
         [[auth.api_keys]]\nidentity = \"ops\"\nkey = \"{OPS}\"\nadmin = true\n",
        graphs.display()
    ))
    .await;
    let url = daemon.url.as_str();
    let alice = |args: &'static [&'static str]| {
        let mut all = vec!["--api-key", ALICE];
        all.extend_from_slice(args);
        all
    };

    // threads create | get | list
    let thread = cli(
        url,
        &alice(&[
            "--json",
            "threads",
            "create",
            "--metadata",
            r#"{"team":"ops"}"#,
        ]),
    )
    .await
    .ok()
    .json();
    let thread_id = thread["thread_id"].as_str().expect("thread_id").to_string();
    assert_eq!(thread["metadata"]["team"], "ops", "{thread}");
    let got = cli(
        url,
        &["--api-key", ALICE, "--json", "threads", "get", &thread_id],
    )
    .await
    .ok()
    .json();
    assert_eq!(got["thread_id"], thread_id.as_str());
    let listed = cli(
        url,
        &alice(&["threads", "list", "--metadata", r#"{"team":"ops"}"#]),
    )
    .await
    .ok();
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert!(
        lines[0].starts_with("THREAD ID ") && lines[0].contains(" STATUS "),
        "{listed:?}"
    );
    assert_eq!(lines.len(), 2, "{listed:?}");
    assert!(lines[1].starts_with(&thread_id), "{listed:?}");
    let none = cli(
        url,
        &alice(&[
            "--json",
            "threads",
            "list",
            "--metadata",
            r#"{"team":"dev"}"#,
        ]),
    )
    .await
    .ok()
    .json();
    assert_eq!(none, json!([]));

    // A thread cron on it, made without curl, and a failing stateless cron with a webhook.
    let thread_cron = cli(
        url,
        &[
            "--api-key",
            ALICE,
            "--json",
            "crons",
            "create",
            "--thread",
            &thread_id,
            "--schedule",
            "0 0 1 1 *",
        ],
    )
    .await
    .ok()
    .json();
    let thread_cron_id = thread_cron["cron_id"]
        .as_str()
        .expect("cron_id")
        .to_string();
    let hook = receiver.url("/hook");
    let failing = cli(
        url,
        &[
            "--api-key",
            ALICE,
            "--json",
            "crons",
            "create",
            "--assistant",
            "fail",
            "--schedule",
            "0 0 1 1 *",
            "--webhook",
            &hook,
            "--on-run-completed",
            "keep",
        ],
    )
    .await
    .ok()
    .json();
    let failing_id = failing["cron_id"].as_str().expect("cron_id").to_string();

    // Triggered: the run fails; its webhook is refused once (500), then delivered.
    let run = cli(
        url,
        &[
            "--api-key",
            ALICE,
            "--json",
            "crons",
            "trigger",
            &failing_id,
        ],
    )
    .await
    .ok()
    .json();
    let run_id = run["run_id"].as_str().expect("run_id").to_string();
    let run_thread = run["thread_id"].as_str().expect("thread_id").to_string();
    receiver.wait_for(2, Duration::from_secs(15)).await;
    cli(url, &["--api-key", OPS, "crons", "pause", &thread_cron_id])
        .await
        .ok();

    let table = cli(url, &alice(&["crons", "list"])).await.ok();
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = table.stdout.lines().map(words).collect();
    assert_eq!(
        lines[0], "CRON ID SCHEDULE TIMEZONE NEXT RUN LAST STATUS LAST RUN THREAD",
        "a non-admin has no OWNER column: {table:?}"
    );
    let row = |id: &str| {
        lines
            .iter()
            .find(|line| line.starts_with(id))
            .unwrap_or_else(|| panic!("{id} in {table:?}"))
            .clone()
    };
    assert!(
        row(&thread_cron_id).ends_with(&format!("0 0 1 1 * UTC paused - - {thread_id}")),
        "{table:?}"
    );
    let failing_row = row(&failing_id);
    assert!(failing_row.contains(" UTC 20"), "a next run: {failing_row}");
    assert!(
        failing_row.contains(" error 20"),
        "last status: {failing_row}"
    );
    assert!(failing_row.ends_with(" stateless"), "{failing_row}");

    let as_admin = cli(url, &["--api-key", OPS, "crons", "list"]).await.ok();
    let lines: Vec<String> = as_admin.stdout.lines().map(words).collect();
    assert!(lines[0].ends_with("THREAD OWNER"), "{as_admin:?}");
    assert!(
        lines[1..].iter().all(|line| line.ends_with(" alice")),
        "{as_admin:?}"
    );

    // runs get shows the failed run's error.
    let shown = cli(
        url,
        &[
            "--api-key",
            ALICE,
            "runs",
            "get",
            "--thread",
            &run_thread,
            &run_id,
        ],
    )
    .await
    .ok();
    let error_line = shown
        .stdout
        .lines()
        .find(|line| line.starts_with("error "))
        .unwrap_or_else(|| panic!("an error row: {shown:?}"));
    assert!(error_line.contains("boom: the graph failed"), "{shown:?}");

    // deliveries get: the attempt log, the refused attempt first.
    let deliveries = cli(
        url,
        &[
            "--api-key",
            ALICE,
            "--json",
            "deliveries",
            "list",
            "--run",
            &run_id,
        ],
    )
    .await
    .ok()
    .json();
    let delivery_id = deliveries[0]["delivery_id"]
        .as_str()
        .expect("id")
        .to_string();
    let detail = cli(
        url,
        &["--api-key", ALICE, "deliveries", "get", &delivery_id],
    )
    .await
    .ok();
    let lines: Vec<String> = detail.stdout.lines().map(words).collect();
    let header = lines
        .iter()
        .position(|line| line == "# ATTEMPTED AT CODE LATENCY ERROR")
        .unwrap_or_else(|| panic!("attempts header: {detail:?}"));
    assert!(lines[header + 1].starts_with("1 20"), "{detail:?}");
    assert!(lines[header + 1].contains(" 500 "), "{detail:?}");
    assert!(lines[header + 2].starts_with("2 20"), "{detail:?}");
    assert!(lines[header + 2].contains(" 200 "), "{detail:?}");
    assert!(lines.iter().any(|l| l == "status delivered"), "{detail:?}");

    // A stateless cron that deletes its threads: the trigger says where to look, and the
    // thread it printed, gone after the run, is explained when asked for.
    let stateless = cli(
        url,
        &alice(&["--json", "crons", "create", "--schedule", "0 0 1 1 *"]),
    )
    .await
    .ok()
    .json();
    let stateless_id = stateless["cron_id"].as_str().expect("cron_id").to_string();
    let triggered = cli(
        url,
        &["--api-key", ALICE, "crons", "trigger", &stateless_id],
    )
    .await;
    assert_eq!(triggered.code, 0, "{triggered:?}");
    assert!(
        triggered
            .stderr
            .contains(&format!("cronhook crons history {stateless_id}")),
        "{triggered:?}"
    );
    let gone_thread = triggered
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("thread_id"))
        .map(str::trim)
        .expect("thread_id row")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = cli(
            url,
            &["--api-key", ALICE, "runs", "list", "--thread", &gone_thread],
        )
        .await;
        if out.code != 0 || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("cronhook crons history CRON_ID"),
        "{out:?}"
    );
}

/// The scheduling controls through the CLI: create with each flag, update a pause and clear
/// the run limit, `next` shows the jittered starts, `backfill --dry-run` lists the instants
/// and a backfill fires them (`history --fire backfilled`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_controls_and_backfill_through_the_cli() {
    let (_storage, daemon) = started("").await;
    let url = daemon.url.as_str();
    let created = cli(
        url,
        &[
            "crons",
            "create",
            "--schedule",
            "0 * * * *",
            "--overlap",
            "buffer_one",
            "--jitter-seconds",
            "600",
            "--remaining-runs",
            "5",
            "--dst-repeat",
            "twice",
            "--dst-gap",
            "skip",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(created["overlap"], "buffer_one", "{created}");
    assert_eq!(created["jitter_seconds"], 600);
    assert_eq!(created["remaining_runs"], 5);
    assert_eq!(
        (created["dst_repeat"].clone(), created["dst_gap"].clone()),
        (json!("twice"), json!("skip"))
    );
    let cron_id = created["cron_id"].as_str().expect("id").to_string();

    let paused = cli(
        url,
        &[
            "crons",
            "update",
            &cron_id,
            "--paused-until",
            "2099-01-01T00:00:00Z",
            "--clear-remaining-runs",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(paused["enabled"], false, "{paused}");
    assert_eq!(
        instant(&paused["paused_until"]).to_rfc3339(),
        "2099-01-01T00:00:00+00:00"
    );
    assert!(paused["remaining_runs"].is_null());

    let next = cli(url, &["crons", "next", &cron_id, "-n", "3"]).await.ok();
    assert!(next.stdout.contains("STARTS (UTC)"), "{}", next.stdout);

    let dry = cli(
        url,
        &[
            "crons",
            "backfill",
            &cron_id,
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-01T03:00:00Z",
            "--dry-run",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(dry["instants"], 3, "{dry}");
    assert_eq!(dry["scheduled_for"].as_array().map(Vec::len), Some(3));
    let done = cli(
        url,
        &[
            "crons",
            "backfill",
            &cron_id,
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-01T03:00:00Z",
            "--overlap",
            "allow",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        (done["instants"].clone(), done["dry_run"].clone()),
        (json!(3), json!(false))
    );
    let history = cli(
        url,
        &[
            "crons",
            "history",
            &cron_id,
            "--fire",
            "backfilled",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(history.as_array().map(Vec::len), Some(3), "{history}");

    let refused = cli(
        url,
        &[
            "crons",
            "create",
            "--schedule",
            "@daily",
            "--jitter-seconds",
            "4000",
        ],
    )
    .await;
    assert_eq!(refused.code, 2, "a usage error: {refused:?}");
}
