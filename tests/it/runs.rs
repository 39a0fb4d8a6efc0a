//! Runs end to end against the real binary: the four executors with real processes and a
//! real HTTP server, and crash recovery with SIGKILL, on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use crate::common::{Backend, Daemon, Storage, repo_root};
use serde_json::{Value, json};

/// A daemon with the test graphs configured.
async fn daemon_with_graphs(storage: &Storage, extra: &str) -> Daemon {
    let graphs = repo_root().join("tests/fixtures/graphs");
    let config = format!(
        r#"
[runs]
lease = "2s"
poll_interval = "100ms"

[graphs.agent]
kind = "echo"

[graphs.progress]
kind = "command"
command = ["python3", "{graphs}/progress.py"]

[graphs.fail]
kind = "command"
command = ["{graphs}/fail.sh"]

[graphs.missing]
kind = "command"
command = ["/nonexistent/graph-program"]
{extra}
"#,
        graphs = graphs.display()
    );
    let path = storage.dir.path().join("cronhook.toml");
    std::fs::write(&path, config).expect("write config");
    Daemon::start_with(storage, &["--config", &path.display().to_string()]).await
}

/// Polls a run until it reaches one of `statuses`.
async fn wait_status(daemon: &Daemon, thread_id: &str, run_id: &str, statuses: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, run) = daemon
            .get(&format!("/threads/{thread_id}/runs/{run_id}"))
            .await;
        if code == 200 && statuses.contains(&run["status"].as_str().unwrap_or("")) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} never reached {statuses:?}: {run}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_graph_streams_custom_events_and_returns_its_last_json_object() {
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = daemon_with_graphs(&storage, "").await;
    let thread_id = daemon.new_thread().await;
    let response = daemon
        .client
        .post(format!("{}/threads/{thread_id}/runs/stream", daemon.url))
        .json(&json!({"assistant_id": "progress", "input": {"n": 7}, "stream_mode": ["values", "custom"]}))
        .send()
        .await
        .expect("stream");
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let text = response.text().await.expect("body");
    let events: Vec<(String, Value)> = text
        .split("\r\n\r\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((
                event.to_string(),
                serde_json::from_str(data).expect("JSON data"),
            ))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, ["metadata", "custom", "custom", "values"], "{text}");
    assert_eq!(events[1].1, json!("step one"));
    assert_eq!(events[2].1, json!({"progress": 2}));
    assert_eq!(events[3].1["echo"], json!({"n": 7}));
    assert_eq!(events[3].1["thread_id"], thread_id.as_str());

    let (status, state) = daemon.get(&format!("/threads/{thread_id}/state")).await;
    assert_eq!(status, 200);
    assert_eq!(
        state["values"]["echo"],
        json!({"n": 7}),
        "the run's output became the thread's values"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_graph_failures_are_run_errors() {
    let storage = Storage::new(Backend::Sqlite).await;
    let marker = 3000 + (std::process::id() % 1000);
    let extra = format!(
        "[graphs.hang]\nkind = \"command\"\ncommand = [\"{}\"]\nenv = {{ HANG_SECONDS = \"{marker}\" }}\ntimeout = \"1s\"\n",
        repo_root().join("tests/fixtures/graphs/hang.sh").display()
    );
    let daemon = daemon_with_graphs(&storage, &extra).await;

    let (status, body) = daemon
        .post("/runs/wait", &json!({"assistant_id": "fail", "input": {}}))
        .await;
    assert_eq!(status, 200);
    let error = &body["__error__"];
    assert_eq!(error["error"], "CommandError", "{body}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("exit code 3") && message.contains("boom: the graph failed"),
        "{message}"
    );

    let (status, body) = daemon
        .post(
            "/runs/wait",
            &json!({"assistant_id": "missing", "input": {}}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body["__error__"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot start"),
        "{body}"
    );

    let thread_id = daemon.new_thread().await;
    let started = Instant::now();
    let (status, run) = daemon
        .post(
            &format!("/threads/{thread_id}/runs"),
            &json!({"assistant_id": "hang", "input": {}}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    let run_id = run["run_id"].as_str().expect("id");
    let run = wait_status(
        &daemon,
        &thread_id,
        run_id,
        &["timeout", "error", "success"],
    )
    .await;
    assert_eq!(run["status"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
    let (_, thread) = daemon.get(&format!("/threads/{thread_id}")).await;
    assert_eq!(thread["status"], "error");
    // The graph's own child process went with it: no orphan left behind.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let orphans = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .expect("pgrep");
    assert!(
        orphans.stdout.is_empty(),
        "orphan processes: {}",
        String::from_utf8_lossy(&orphans.stdout)
    );

    // A failing graph never blocks the others.
    let (status, body) = daemon
        .post("/runs/wait", &json!({"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "still here"}]}}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"][1]["content"], "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_graph_posts_the_run_and_takes_its_answer() {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/run",
            post(|axum::Json(run): axum::Json<Value>| async move {
                axum::Json(json!({"answer": run["input"]["question"], "graph": run["graph_id"]}))
            }),
        )
        .route(
            "/broken",
            post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "nope") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let storage = Storage::new(Backend::Sqlite).await;
    let extra = format!(
        "[graphs.remote]\nkind = \"http\"\nurl = \"http://{addr}/run\"\ntimeout = \"5s\"\n[graphs.broken]\nkind = \"http\"\nurl = \"http://{addr}/broken\"\n"
    );
    let daemon = daemon_with_graphs(&storage, &extra).await;
    let (status, body) = daemon
        .post(
            "/runs/wait",
            &json!({"assistant_id": "remote", "input": {"question": 42}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"answer": 42, "graph": "remote"}))
    );
    let (_, body) = daemon
        .post(
            "/runs/wait",
            &json!({"assistant_id": "broken", "input": {}}),
        )
        .await;
    let message = body["__error__"]["message"].as_str().unwrap_or("");
    assert!(message.contains("500"), "{body}");
}

on_both_backends!(
    runs_survive_kill_9,
    a_run_longer_than_its_lease_keeps_it,
    a_run_whose_worker_dies_twice_ends_in_error,
    concurrent_runs_share_transactions_and_refusals_stay_their_own,
    a_threads_queue_drains_without_waiting_for_polls
);

/// Twenty runs queued on one thread with polls a minute apart: each run's end lets the
/// next one start, so the queue drains in seconds (a poll per run would take twenty
/// minutes).
async fn a_threads_queue_drains_without_waiting_for_polls(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(
        &storage,
        "[runs]\npoll_interval = \"60s\"\n\n[graphs.agent]\nkind = \"echo\"\n",
    )
    .await;
    let thread_id = daemon.new_thread().await;
    let mut last = String::new();
    for n in 0..20 {
        let (code, run) = daemon
            .post(
                &format!("/threads/{thread_id}/runs"),
                &json!({"assistant_id": "agent", "input": {"n": n}, "multitask_strategy": "enqueue"}),
            )
            .await;
        assert_eq!(code, 200, "{run}");
        last = run["run_id"].as_str().expect("run_id").to_string();
    }
    let joined = tokio::time::timeout(
        Duration::from_secs(20),
        daemon.get(&format!("/threads/{thread_id}/runs/{last}/join")),
    )
    .await;
    let (code, values) = joined.expect("the queue drained within 20 s");
    assert_eq!(code, 200, "{values}");
    let (_, runs) = daemon
        .get(&format!("/threads/{thread_id}/runs?limit=100"))
        .await;
    let runs = runs.as_array().expect("runs").clone();
    assert_eq!(runs.len(), 20);
    assert!(
        runs.iter().all(|run| run["status"] == "success"),
        "{runs:?}"
    );
}

/// Many run creates and finishes at once go through shared transactions (group commit): the
/// refusals among them (409 on a busy thread under `reject`, 404 for a missing thread) reach
/// only their own callers, and every accepted run completes.
async fn concurrent_runs_share_transactions_and_refusals_stay_their_own(backend: Backend) {
    use futures_util::future::join_all;
    let storage = Storage::new(backend).await;
    let daemon = daemon_with_graphs(&storage, "").await;
    let busy = daemon.new_thread().await;
    let (code, slow) = daemon
        .post(
            &format!("/threads/{busy}/runs"),
            &json!({"assistant_id": "progress", "input": {"sleep": 3}}),
        )
        .await;
    assert_eq!(code, 200, "{slow}");
    let slow_id = slow["run_id"].as_str().expect("id").to_string();
    wait_status(&daemon, &busy, &slow_id, &["running"]).await;
    let mut fresh = Vec::new();
    for _ in 0..10 {
        fresh.push(daemon.new_thread().await);
    }
    let missing = "00000000-0000-4000-8000-000000000000";
    let message = |i: usize| json!({"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": format!("m{i}")}]}});

    let client = &daemon;
    let post = |path: String, body: Value| async move { client.post(&path, &body).await };
    let waits = join_all((0..40).map(|i| post("/runs/wait".into(), message(i))));
    let rejected = join_all((0..10).map(|i| {
        let mut body = message(i);
        body["multitask_strategy"] = json!("reject");
        post(format!("/threads/{busy}/runs"), body)
    }));
    let not_found = join_all((0..10).map(|i| post(format!("/threads/{missing}/runs"), message(i))));
    let on_threads = join_all(
        fresh
            .iter()
            .enumerate()
            .map(|(i, thread)| post(format!("/threads/{thread}/runs/wait"), message(i))),
    );
    let (waits, rejected, not_found, on_threads) =
        tokio::join!(waits, rejected, not_found, on_threads);

    for (i, (code, values)) in waits.iter().enumerate() {
        assert_eq!(*code, 200, "{values}");
        assert_eq!(
            values["messages"][1]["content"],
            format!("m{i}"),
            "{values}"
        );
    }
    for (code, body) in &rejected {
        assert_eq!(*code, 409, "{body}");
    }
    for (code, body) in &not_found {
        assert_eq!(*code, 404, "{body}");
    }
    for (i, (code, values)) in on_threads.iter().enumerate() {
        assert_eq!(*code, 200, "{values}");
        assert_eq!(
            values["messages"][1]["content"],
            format!("m{i}"),
            "{values}"
        );
    }
    // Nothing of the refused requests was written: the busy thread holds its one run.
    let (_, runs) = daemon.get(&format!("/threads/{busy}/runs")).await;
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    // And the writes were shared: some transaction carried more than one operation.
    let metrics = daemon
        .client
        .get(format!("{}/metrics", daemon.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let read = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
    };
    let (jobs, batches) = (
        read("cronhook_run_write_batch_size_sum"),
        read("cronhook_run_write_batch_size_count"),
    );
    assert!(jobs > batches, "{jobs} jobs in {batches} transactions");
}

/// kill -9 with a run running and others pending: after a restart the pending ones run and
/// the running one is re-queued (its lease expires) and completes.
async fn runs_survive_kill_9(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = daemon_with_graphs(&storage, "").await;
    let thread_id = daemon.new_thread().await;
    let slow = json!({"assistant_id": "progress", "input": {"sleep": 3}});
    let (_, running) = daemon
        .post(&format!("/threads/{thread_id}/runs"), &slow)
        .await;
    let running_id = running["run_id"].as_str().expect("id").to_string();
    wait_status(&daemon, &thread_id, &running_id, &["running"]).await;
    let (_, queued) = daemon
        .post(&format!("/threads/{thread_id}/runs"), &json!({"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "queued"}]}}))
        .await;
    let queued_id = queued["run_id"].as_str().expect("id").to_string();
    let other_thread = daemon.new_thread().await;
    let (_, delayed) = daemon
        .post(
            &format!("/threads/{other_thread}/runs"),
            &json!({"assistant_id": "agent", "input": {}, "after_seconds": 1}),
        )
        .await;
    let delayed_id = delayed["run_id"].as_str().expect("id").to_string();
    daemon.kill9();

    let daemon = daemon_with_graphs(&storage, "").await;
    let run = wait_status(&daemon, &thread_id, &running_id, &["success", "error"]).await;
    assert_eq!(
        run["status"], "success",
        "re-queued after its lease and completed: {run}"
    );
    let run = wait_status(&daemon, &thread_id, &queued_id, &["success", "error"]).await;
    assert_eq!(run["status"], "success");
    let run = wait_status(&daemon, &other_thread, &delayed_id, &["success", "error"]).await;
    assert_eq!(run["status"], "success");
    // The queued run ran after the interrupted one: the thread's messages show it last.
    let (_, state) = daemon.get(&format!("/threads/{thread_id}/state")).await;
    assert_eq!(
        state["values"]["messages"][1]["content"], "queued",
        "{state}"
    );
}

/// A run lasting several leases keeps its lease (renewed by its live worker): it runs once
/// and succeeds, never re-queued.
async fn a_run_longer_than_its_lease_keeps_it(backend: Backend) {
    let storage = Storage::new(backend).await;
    let starts = storage.dir.path().join("starts");
    // Each execution appends a line to `starts` before working for 3 leases (2 s each).
    let graph = format!(
        "[graphs.long]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo started >> {}; cat >/dev/null; sleep 6; echo '{{}}'\"]\n",
        starts.display()
    );
    let daemon = daemon_with_graphs(&storage, &graph).await;
    let thread_id = daemon.new_thread().await;
    let (code, run) = daemon
        .post(
            &format!("/threads/{thread_id}/runs"),
            &json!({"assistant_id": "long", "input": {}}),
        )
        .await;
    assert_eq!(code, 200, "{run}");
    let run_id = run["run_id"].as_str().expect("id");
    let run = wait_status(&daemon, &thread_id, run_id, &["success", "error"]).await;
    assert_eq!(run["status"], "success", "{run}");
    let started = std::fs::read_to_string(&starts).expect("the graph ran");
    assert_eq!(started.lines().count(), 1, "executed once: {started:?}");
}

/// A run is re-queued once; when its worker dies again it ends as `error` ("worker lost").
async fn a_run_whose_worker_dies_twice_ends_in_error(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = daemon_with_graphs(&storage, "").await;
    let thread_id = daemon.new_thread().await;
    let (_, run) = daemon
        .post(
            &format!("/threads/{thread_id}/runs"),
            &json!({"assistant_id": "progress", "input": {"sleep": 30}}),
        )
        .await;
    let run_id = run["run_id"].as_str().expect("id").to_string();
    wait_status(&daemon, &thread_id, &run_id, &["running"]).await;
    daemon.kill9();

    let daemon = daemon_with_graphs(&storage, "").await;
    // Re-claimed after the 2 s lease: running again, on its second attempt.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    wait_status(&daemon, &thread_id, &run_id, &["running"]).await;
    daemon.kill9();

    let daemon = daemon_with_graphs(&storage, "").await;
    let run = wait_status(&daemon, &thread_id, &run_id, &["error", "success"]).await;
    assert_eq!(run["status"], "error", "{run}");
    let (status, body) = daemon
        .get(&format!("/threads/{thread_id}/runs/{run_id}/join"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["__error__"]["message"], "worker lost");
}

/// PostgreSQL: a run write that waits on a row lock held elsewhere (here a thread row
/// another session locked) holds up no other run: a stateless run starts, ends and answers
/// meanwhile, and the waiting run goes through once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_write_waiting_on_a_lock_holds_up_no_other_run() {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};

    let (storage, daemon) = crate::common::started_with_loopback_hooks(Backend::Postgres).await;
    let thread_id = daemon.new_thread().await;
    let db = Database::connect(storage.database_url.as_str())
        .await
        .expect("connect");
    let other_session = db.begin().await.expect("begin");
    other_session
        .execute_unprepared(&format!(
            "SELECT 1 FROM threads WHERE thread_id = '{thread_id}' FOR UPDATE"
        ))
        .await
        .expect("lock the thread");

    // Polled by the timeouts below and kept between them: sent once, answered once.
    let (path, body) = (
        format!("/threads/{thread_id}/runs"),
        json!({"assistant_id": "agent", "input": {"n": 1}}),
    );
    let mut blocked = Box::pin(daemon.post(&path, &body));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut blocked)
            .await
            .is_err(),
        "the create waits for the thread's lock"
    );

    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        daemon.post(
            "/runs/wait",
            &json!({"assistant_id": "agent", "input": {"n": 2}}),
        ),
    )
    .await;
    let (code, output) = answered.expect("a stateless run answers while another run's write waits");
    assert_eq!(code, 200, "{output}");
    assert_eq!(output["n"], 2, "{output}");
    assert!(
        tokio::time::timeout(Duration::from_millis(1), &mut blocked)
            .await
            .is_err(),
        "the lock still holds the other create"
    );

    other_session.commit().await.expect("release the lock");
    let (code, run) = tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("the create goes through once the lock is released");
    assert_eq!(code, 200, "{run}");
    let run_id = run["run_id"].as_str().expect("run_id");
    let run = wait_status(&daemon, &thread_id, run_id, &["success", "error"]).await;
    assert_eq!(run["status"], "success", "{run}");
}
