//! Alerts against the real binary and loopback receivers: a failing cron told once in
//! `change` mode and each time in `every` mode, paused after `pause_after_failures` with
//! its note and one `cron_paused`, then one `cron_recovered` when fixed; routes filtered by
//! `match_metadata`; a Slack body; the delivery log's `kind`; runs starting late; alerts
//! written before a SIGKILL delivered once after the restart; missed instants; bad input; a
//! refused route.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::receiver::{Received, Receiver};
use crate::common::{Backend, Daemon, Storage, repo_root};

on_both_backends!(
    a_failing_cron_alerts_pauses_and_recovers,
    a_failing_cron_pauses_with_no_alert_routes,
    alerts_written_before_a_kill_are_delivered_once,
    bad_pause_after_failures_is_refused,
    runs_starting_late_raise_run_late,
);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The flaky graph, loopback webhooks with fast retries, and `routes` (TOML).
fn config(routes: &str, extra: &str) -> String {
    let graphs = repo_root().join("tests/fixtures/graphs");
    format!(
        "[graphs.agent]\nkind = \"echo\"\n\n[graphs.flaky]\nkind = \"command\"\ncommand = [\"{}/flaky.sh\"]\n\n\
         [webhooks]\n{extra}\n[webhooks.url]\ndisable_loopback = false\n\n[webhooks.signing]\nsecrets = [\"{SECRET}\"]\n\n\
         [webhooks.retry]\ndelays = [\"100ms\"]\njitter = 0.0\n\n{routes}",
        graphs.display()
    )
}

fn route(url: &str, events: &[&str], rest: &str) -> String {
    let events: Vec<String> = events.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[[alerts.routes]]\nurl = \"{url}\"\nevents = [{}]\n{rest}\n",
        events.join(", ")
    )
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn types(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

async fn cron(daemon: &Daemon, cron_id: &str) -> Value {
    let (status, cron) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 200, "{cron}");
    cron
}

/// The cron once it has paused itself (within 20 s), with the pause note it gives.
async fn paused_cron(daemon: &Daemon, cron_id: &str, note: &str) -> Value {
    wait_until("the auto-pause", Duration::from_secs(20), || async {
        cron(daemon, cron_id).await["enabled"] == false
    })
    .await;
    let paused = cron(daemon, cron_id).await;
    assert_eq!(paused["pause_note"], note, "{paused}");
    paused
}

/// `pause_after_failures` holds on a daemon with no alert routes (where the crons' whole
/// rows are not read back at a run's end), and a healthy cron beside it keeps running.
async fn a_failing_cron_pauses_with_no_alert_routes(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &config("", "")).await;
    let failing = json!({"schedule": "* * * * * *", "assistant_id": "flaky",
        "input": {"fail": true}, "pause_after_failures": 2});
    let healthy = json!({"schedule": "* * * * * *", "assistant_id": "agent",
        "input": {"messages": []}, "pause_after_failures": 1});
    let (status, failing) = daemon.post("/runs/crons", &failing).await;
    assert_eq!(status, 200, "{failing}");
    let (status, healthy) = daemon.post("/runs/crons", &healthy).await;
    assert_eq!(status, 200, "{healthy}");
    let failing_id = failing["cron_id"].as_str().expect("id").to_string();
    let healthy_id = healthy["cron_id"].as_str().expect("id").to_string();

    let paused = paused_cron(&daemon, &failing_id, "paused after 2 consecutive failures").await;
    assert_eq!(paused["last_run_status"], "error", "{paused}");
    assert!(
        paused["consecutive_failures"].as_u64() >= Some(2),
        "{paused}"
    );

    wait_until(
        "a success of the healthy cron",
        Duration::from_secs(10),
        || async { cron(&daemon, &healthy_id).await["last_run_status"] == "success" },
    )
    .await;
    let running = cron(&daemon, &healthy_id).await;
    assert_eq!(running["enabled"], true, "{running}");
    assert_eq!(running["consecutive_failures"], 0, "{running}");
    assert_eq!(running["pause_note"], Value::Null, "{running}");
}

/// A per-second cron of the flaky graph failing until its input is fixed.
async fn a_failing_cron_alerts_pauses_and_recovers(backend: Backend) {
    let change = Receiver::start().await;
    let every = Receiver::start().await;
    let slack = Receiver::start().await;
    let other = Receiver::start().await;
    let routes = [
        route(
            &change.url("/change"),
            &["run_failed", "cron_recovered", "cron_paused"],
            "match_metadata = { team = \"ops\" }",
        ),
        route(&every.url("/every"), &["run_failed"], "mode = \"every\""),
        route(&slack.url("/slack"), &["cron_paused"], "format = \"slack\""),
        route(
            &other.url("/other"),
            &["run_failed", "cron_recovered", "cron_paused", "run_late"],
            "match_metadata = { team = \"other\" }",
        ),
    ]
    .join("\n");
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &config(&routes, "")).await;
    let body = json!({"schedule": "* * * * * *", "assistant_id": "flaky",
        "input": {"fail": true}, "metadata": {"team": "ops", "job": "nightly"},
        "pause_after_failures": 3});
    let (status, created) = daemon.post("/runs/crons", &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["pause_after_failures"], 3, "{created}");
    assert!(created["payload"].get("pause_after_failures").is_none());
    let cron_id = created["cron_id"].as_str().expect("id").to_string();

    let paused = paused_cron(&daemon, &cron_id, "paused after 3 consecutive failures").await;
    let failures = paused["consecutive_failures"].as_u64().expect("count") as usize;
    assert!(failures >= 3, "{paused}");

    // change: the first failure, then the pause; every: each failure.
    let told = change.wait_for(2, Duration::from_secs(10)).await;
    let all = every.wait_for(failures, Duration::from_secs(10)).await;
    let slack_told = slack.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(types(&change.seen()), ["run_failed", "cron_paused"]);
    assert_eq!(every.seen().len(), failures, "{:?}", types(&all));
    assert!(types(&all).iter().all(|t| t == "run_failed"));
    assert_eq!(slack.seen().len(), 1);

    let first = told[0].json();
    assert_eq!(first["cron_id"], cron_id.as_str());
    assert_eq!(first["run_status"], "error");
    assert_eq!(first["consecutive_failures"], 1);
    assert!(
        first["run_id"].is_string() && first["scheduled_for"].is_string(),
        "{first}"
    );
    assert!(
        first["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("boom")),
        "{first}"
    );
    assert_eq!(first["cron"]["schedule"], "* * * * * *");
    assert_eq!(first["cron"]["metadata"]["team"], "ops");
    assert!(first["cron"]["assistant_id"].is_string() && first["at"].is_string());
    assert!(told[0].headers.contains_key("webhook-signature"));
    assert!(told[0].headers.contains_key("webhook-id"));
    let pause = told[1].json();
    assert_eq!(pause["type"], "cron_paused");
    assert!(pause["consecutive_failures"].as_u64() >= Some(3));

    let text = slack_told[0].json()["text"]
        .as_str()
        .expect("slack text")
        .to_string();
    assert_eq!(slack_told[0].json().as_object().map(|o| o.len()), Some(1));
    for part in [
        cron_id.as_str(),
        "paused",
        "* * * * * *",
        "error",
        "boom",
        "nightly",
    ] {
        assert!(text.contains(part), "{part} missing from {text}");
    }

    // Fixed: the input makes the graph succeed; enabling clears the note.
    let (status, fixed) = daemon
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"input": {"fail": false}, "enabled": true}),
        )
        .await;
    assert_eq!(status, 200, "{fixed}");
    assert_eq!(fixed["pause_note"], Value::Null);
    change.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        types(&change.seen()),
        ["run_failed", "cron_paused", "cron_recovered"]
    );
    let recovered = change.seen()[2].json();
    assert_eq!(recovered["run_status"], "success");
    assert_eq!(recovered["consecutive_failures"], 0);
    assert_eq!(every.seen().len(), failures, "no failure since");
    assert!(
        other.seen().is_empty(),
        "match_metadata filters the route out"
    );
    let now = cron(&daemon, &cron_id).await;
    assert_eq!(now["enabled"], true);
    assert_eq!(now["consecutive_failures"], 0);

    // The delivery log shows them as alerts, for admins.
    let (status, alerts) = daemon
        .get("/webhooks/deliveries?kind=alert&limit=1000")
        .await;
    assert_eq!(status, 200, "{alerts}");
    let alerts = alerts.as_array().expect("list").clone();
    assert_eq!(alerts.len(), 3 + failures + 1, "{alerts:#?}");
    assert!(alerts.iter().all(|d| d["kind"] == "alert"
        && d["cron_id"] == cron_id.as_str()
        && d["status"] == "delivered"));
    let (status, runs) = daemon.get("/webhooks/deliveries?kind=run").await;
    assert_eq!(status, 200);
    assert_eq!(runs, json!([]));
    let (status, bad) = daemon.get("/webhooks/deliveries?kind=nope").await;
    assert_eq!(status, 422, "{bad}");
    assert!(bad["detail"].is_string());
    let (status, metrics) = daemon.get("/metrics").await;
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains("cronhook_instants_total{fire=\"fired\"}"),
        "{text}"
    );
    assert!(text.contains("cronhook_crons_failing 0"), "{text}");
    assert!(daemon.stop().success());
}

/// Alert rows are written with what raised them: with no delivery worker, a cron's failure
/// and pause wait in the outbox through a SIGKILL; the next daemon delivers each once. A
/// downtime's missed instants raise `instant_missed`.
async fn alerts_written_before_a_kill_are_delivered_once(backend: Backend) {
    let receiver = Receiver::start().await;
    let missed = Receiver::start().await;
    let routes = [
        route(
            &receiver.url("/alerts"),
            &["run_failed", "cron_paused"],
            "match_metadata = { team = \"ops\" }",
        ),
        route(
            &missed.url("/missed"),
            &["instant_missed"],
            "match_metadata = { team = \"clock\" }",
        ),
    ]
    .join("\n");
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &config(&routes, "workers = 0")).await;
    let body = json!({"schedule": "* * * * * *", "assistant_id": "flaky",
        "input": {"fail": true}, "metadata": {"team": "ops"}, "pause_after_failures": 1});
    let (status, created) = daemon.post("/runs/crons", &body).await;
    assert_eq!(status, 200, "{created}");
    let cron_id = created["cron_id"].as_str().expect("id").to_string();
    let thread_id = daemon.new_thread().await;
    let body = json!({"schedule": "* * * * * *", "assistant_id": "agent",
        "metadata": {"team": "clock"}});
    let (status, clock) = daemon
        .post(&format!("/threads/{thread_id}/runs/crons"), &body)
        .await;
    assert_eq!(status, 200, "{clock}");
    // Failing, enabled, matched by no route: counted by `cronhook_crons_failing` only.
    let body = json!({"schedule": "* * * * * *", "assistant_id": "flaky",
        "input": {"fail": true}, "metadata": {"team": "none"}});
    let (status, unrouted) = daemon.post("/runs/crons", &body).await;
    assert_eq!(status, 200, "{unrouted}");
    wait_until("the auto-pause", Duration::from_secs(20), || async {
        cron(&daemon, &cron_id).await["enabled"] == false
    })
    .await;
    let (status, pending) = daemon.get("/webhooks/deliveries?kind=alert").await;
    assert_eq!(status, 200);
    let pending = pending.as_array().expect("list").clone();
    assert_eq!(pending.len(), 2, "{pending:#?}");
    assert!(pending.iter().all(|d| d["status"] == "pending"));
    assert!(receiver.seen().is_empty());
    daemon.kill9();

    // Down long enough for the clock cron to miss instants.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let config_path = storage.dir.path().join("cronhook.toml");
    std::fs::write(&config_path, config(&routes, "")).expect("config");
    let daemon =
        Daemon::start_with(&storage, &["--config", &config_path.display().to_string()]).await;
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    missed.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(receiver.seen().len(), 2, "each alert once");
    let mut kinds = types(&got);
    kinds.sort();
    assert_eq!(kinds, ["cron_paused", "run_failed"]);
    let ids: std::collections::HashSet<&String> =
        got.iter().map(|r| &r.headers["webhook-id"]).collect();
    assert_eq!(ids.len(), 2);
    let gap = missed.seen()[0].json();
    assert_eq!(gap["type"], "instant_missed");
    assert_eq!(gap["run_id"], Value::Null);
    assert_eq!(gap["cron_id"], clock["cron_id"]);
    let (_, log) = daemon
        .get(&format!(
            "/webhooks/deliveries?kind=alert&cron_id={}",
            clock["cron_id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(log[0]["run_id"], Value::Null, "{log}");
    // The gauge against the crons as the API shows them, read before and after the scrape
    // (a run may end in between).
    let ids = [
        cron_id.clone(),
        unrouted["cron_id"].as_str().expect("id").to_string(),
        clock["cron_id"].as_str().expect("id").to_string(),
    ];
    let failing = || async {
        let mut count = 0;
        for id in &ids {
            let cron = cron(&daemon, id).await;
            let status = cron["last_run_status"].as_str().unwrap_or_default();
            if cron["enabled"] == true && (status == "error" || status == "timeout") {
                count += 1;
            }
        }
        count
    };
    let before = failing().await;
    let (status, metrics) = daemon.get("/metrics").await;
    let after = failing().await;
    assert_eq!(status, 200);
    assert!(before >= 1, "the unrouted cron fails");
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("cronhook_crons_failing {before}\n"))
            || text.contains(&format!("cronhook_crons_failing {after}\n")),
        "{before}/{after}: {text}"
    );
    assert!(
        text.contains("cronhook_instants_total{fire=\"missed\"}"),
        "{text}"
    );
    assert!(daemon.stop().success());
}

/// A thread cron firing every second whose runs take 1.5 s queue up behind each other (one
/// slot): they start later and later, and past `late_after` each raises `run_late`.
async fn runs_starting_late_raise_run_late(backend: Backend) {
    let late = Receiver::start().await;
    let config = format!(
        "[graphs.slow]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >/dev/null; sleep 1.5; echo '{{}}'\"]\n\n\
         [runs]\nconcurrency = 1\n\n[webhooks.url]\ndisable_loopback = false\n\n{}",
        route(
            &late.url("/late"),
            &["run_late"],
            "late_after = \"700ms\"\nmode = \"every\""
        )
    );
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &config).await;
    let thread_id = daemon.new_thread().await;
    let body = json!({"schedule": "* * * * * *", "assistant_id": "slow"});
    let (status, created) = daemon
        .post(&format!("/threads/{thread_id}/runs/crons"), &body)
        .await;
    assert_eq!(status, 200, "{created}");
    let got = late.wait_for(1, Duration::from_secs(15)).await;
    let alert = got[0].json();
    assert_eq!(alert["type"], "run_late", "{alert}");
    assert_eq!(alert["cron_id"], created["cron_id"]);
    assert_eq!(alert["run_status"], "success");
    let (status, history) = daemon
        .get(&format!(
            "/runs/crons/{}/history?limit=100&run_status=success",
            created["cron_id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(status, 200, "{history}");
    let entry = history
        .as_array()
        .expect("list")
        .iter()
        .find(|entry| entry["run_id"] == alert["run_id"])
        .cloned()
        .expect("the late run's entry");
    assert!(entry["lateness_ms"].as_i64() > Some(700), "{entry}");
    // Runs keep queueing behind the slow one: no graceful drain to wait for.
    daemon.kill9();
}

async fn bad_pause_after_failures_is_refused(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start(&storage).await;
    for bad in [
        json!(0),
        json!(-2),
        json!(1.5),
        json!("3"),
        json!(1_u64 << 40),
    ] {
        let body = json!({"schedule": "0 * * * *", "assistant_id": "agent",
            "pause_after_failures": bad});
        let (status, answer) = daemon.post("/runs/crons", &body).await;
        assert_eq!(status, 422, "{bad}: {answer}");
        assert!(answer["detail"].is_string(), "{answer}");
    }
    let body = json!({"schedule": "0 * * * *", "assistant_id": "agent"});
    let (status, created) = daemon.post("/runs/crons", &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["pause_after_failures"], Value::Null);
    let path = format!("/runs/crons/{}", created["cron_id"].as_str().expect("id"));
    for bad in [json!(0), json!(-1)] {
        let (status, answer) = daemon
            .patch(&path, &json!({"pause_after_failures": bad}))
            .await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["detail"].is_string(), "{answer}");
    }
    let (status, set) = daemon
        .patch(&path, &json!({"pause_after_failures": 5}))
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["pause_after_failures"], 5);
    assert!(
        set["payload"].get("pause_after_failures").is_none(),
        "{set}"
    );
    let (status, cleared) = daemon
        .patch(&path, &json!({"pause_after_failures": null}))
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["pause_after_failures"], Value::Null);
    assert!(daemon.stop().success());
}

/// A route URL the webhook policy refuses stops `check-config` (and so `serve`).
#[test]
fn a_refused_route_url_stops_check_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cronhook.toml");
    let run = |toml: &str| {
        std::fs::write(&path, toml).expect("write config");
        Command::new(env!("CARGO_BIN_EXE_cronhook"))
            .args(["check-config", "--config", &path.display().to_string()])
            .output()
            .expect("run check-config")
    };
    for (url, why) in [
        ("http://127.0.0.1:9/alerts", "loopback"),
        ("http://169.254.169.254/latest", "169.254.169.254"),
        ("ftp://hooks.example.com/x", "scheme"),
    ] {
        let output = run(&format!(
            "[[alerts.routes]]\nurl = \"{url}\"\nevents = [\"run_failed\"]\n"
        ));
        assert_eq!(output.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("alerts.routes[0].url refused"),
            "{url} ({why}): {stderr}"
        );
    }
    let output =
        run("[[alerts.routes]]\nurl = \"https://hooks.example.com/x\"\nevents = [\"nope\"]\n");
    assert_eq!(output.status.code(), Some(2));
    let output = run(
        "[[alerts.routes]]\nurl = \"https://hooks.example.com/x\"\nevents = [\"run_failed\", \"run_late\"]\nlate_after = \"5m\"\nformat = \"slack\"\nmode = \"every\"\n",
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
