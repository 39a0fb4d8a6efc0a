//! Stopping the daemon: systemd's notification protocol on a real Unix datagram socket, and
//! a SIGTERM that lets running runs finish within the grace period, hands the rest back to
//! the queue, refuses new requests meanwhile, exits 0 and loses nothing.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{
    Backend, Daemon, KillOnDrop, Storage, free_port, repo_root, signal, wait_exit,
};

/// Reads notification datagrams until `until` holds for one of them (or the time is up).
fn read_until(socket: &UnixDatagram, limit: Duration, until: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .expect("read timeout");
        let Ok(n) = socket.recv(&mut buffer) else {
            break;
        };
        let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
        let done = until(&message);
        seen.push(message);
        if done {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notifications_ready_status_watchdog_stopping() {
    let storage = Storage::new(Backend::Sqlite).await;
    let socket_path = storage.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    let port = free_port();
    // As systemd does: WATCHDOG_PID names the service's process (the shell's pid, which
    // `exec` hands to cronhook), WATCHDOG_USEC a 400 ms watchdog (pings every 200 ms).
    let mut child = KillOnDrop(
        Command::new("sh")
            .args([
                "-c",
                "WATCHDOG_PID=$$ exec \"$0\" \"$@\"",
                env!("CARGO_BIN_EXE_cronhook"),
            ])
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", &storage.dir.path().display().to_string()])
            .args(["--database-url", &storage.database_url])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cronhook"),
    );

    let before_ready = read_until(&socket, Duration::from_secs(30), |m| m.contains("READY=1"));
    let ready = before_ready.last().cloned().unwrap_or_default();
    assert!(ready.contains("READY=1"), "no READY=1: {before_ready:?}");
    assert!(
        ready.contains("STATUS=listening on 127.0.0.1:") && ready.contains("enabled crons"),
        "{ready}"
    );
    // READY means the API answers and the schema is in place.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let ok = client
        .get(format!("http://127.0.0.1:{port}/ok"))
        .send()
        .await
        .expect("/ok after READY=1");
    assert_eq!(ok.status(), 200);

    let started = Instant::now();
    let pings = read_until(&socket, Duration::from_secs(2), |_| false);
    let watchdog = pings.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(
        watchdog >= 5,
        "{watchdog} watchdog pings in {:?}: {pings:?}",
        started.elapsed()
    );
    assert!(pings.iter().any(|m| m.starts_with("STATUS=")), "{pings:?}");

    signal(&child.0, libc::SIGTERM);
    let last = read_until(&socket, Duration::from_secs(10), |m| {
        m.contains("STOPPING=1")
    });
    assert!(last.iter().any(|m| m.contains("STOPPING=1")), "{last:?}");
    let status = wait_exit(&mut child.0, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}

fn config(grace: &str) -> String {
    format!(
        r#"
[server]
shutdown_grace = "{grace}"

[graphs.slow]
kind = "command"
command = ["python3", "{}"]

[webhooks.url]
disable_loopback = false
"#,
        repo_root()
            .join("tests/fixtures/graphs/progress.py")
            .display()
    )
}

async fn run_status(daemon: &Daemon, thread_id: &str, run_id: &str) -> String {
    let (status, run) = daemon
        .get(&format!("/threads/{thread_id}/runs/{run_id}"))
        .await;
    assert_eq!(status, 200, "{run}");
    run["status"].as_str().unwrap_or_default().to_string()
}

async fn wait_for_status(
    daemon: &Daemon,
    thread_id: &str,
    run_id: &str,
    wanted: &str,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let status = run_status(daemon, thread_id, run_id).await;
        if status == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} is {status}, not {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sigterm_finishes_what_it_can_and_hands_back_the_rest(backend: Backend) {
    let storage = Storage::new(backend).await;
    let receiver = crate::common::receiver::Receiver::start().await;
    let daemon = Daemon::start_with_config(&storage, &config("2s")).await;
    let hook = format!("http://{}/hook", receiver.addr);
    // One run that ends within the grace period, one that cannot.
    let short_thread = daemon.new_thread().await;
    let long_thread = daemon.new_thread().await;
    let mut runs = Vec::new();
    for (thread_id, sleep) in [(&short_thread, 1.0), (&long_thread, 4.0)] {
        let (status, run) = daemon
            .post(
                &format!("/threads/{thread_id}/runs"),
                &json!({"assistant_id": "slow", "input": {"sleep": sleep}, "webhook": hook}),
            )
            .await;
        assert_eq!(status, 200, "{run}");
        runs.push((
            thread_id.clone(),
            run["run_id"].as_str().expect("run_id").to_string(),
        ));
    }
    for (thread_id, run_id) in &runs {
        wait_for_status(
            &daemon,
            thread_id,
            run_id,
            "running",
            Duration::from_secs(10),
        )
        .await;
    }

    let stopping_at = Instant::now();
    signal(&daemon.child, libc::SIGTERM);
    // While it drains, new work is refused and readiness fails; the process is still there.
    let mut refused = false;
    for _ in 0..40 {
        let (status, body) = daemon
            .send(Method::POST, "/threads", Some(&json!({})))
            .await;
        if status == 503 {
            assert!(
                body["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("shutting down")),
                "{body}"
            );
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused, "new requests were not refused during the drain");
    assert_eq!(daemon.get("/ok").await.0, 503);

    let mut daemon = daemon;
    let status = wait_exit(&mut daemon.child, Duration::from_secs(30));
    let stopped_after = stopping_at.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        stopped_after < Duration::from_secs(12),
        "took {stopped_after:?} with a 2 s grace period"
    );
    std::mem::forget(daemon);

    // The short run finished and its webhook went out before the exit.
    let delivered = receiver.seen();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].json()["run_id"], json!(runs[0].1));
    assert_eq!(delivered[0].json()["status"], "success");

    // A new daemon on the same database finds the long run queued, runs it, calls its
    // webhook: nothing was lost.
    let daemon = Daemon::start_with_config(&storage, &config("2s")).await;
    assert_eq!(run_status(&daemon, &runs[0].0, &runs[0].1).await, "success");
    wait_for_status(
        &daemon,
        &runs[1].0,
        &runs[1].1,
        "success",
        Duration::from_secs(20),
    )
    .await;
    let (_, run) = daemon
        .get(&format!("/threads/{}/runs/{}", runs[1].0, runs[1].1))
        .await;
    assert_eq!(run["status"], "success", "{run}");
    let (_, state) = daemon.get(&format!("/threads/{}/state", runs[1].0)).await;
    assert_eq!(state["values"]["echo"], json!({"sleep": 4.0}), "{state}");
    receiver.wait_for(2, Duration::from_secs(20)).await;
    let bodies: Vec<Value> = receiver.seen().iter().map(|r| r.json()).collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[1]["run_id"], json!(runs[1].1));
    assert_eq!(bodies[1]["status"], "success");
}

on_both_backends!(sigterm_finishes_what_it_can_and_hands_back_the_rest);
