//! Webhooks end to end: the real daemon calls real HTTP receivers on 127.0.0.1 (the URL
//! policy is opened to loopback for these tests only), on SQLite and PostgreSQL.
//!
//! Addresses off this machine are never used here: the SSRF rules for them are unit tests
//! of the policy (src/webhooks/policy.rs) with an injected resolver.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::receiver::Received;
use crate::common::receiver::Receiver;
use crate::common::{Backend, Daemon, Storage, free_port, repo_root, test_python};

/// Standard Webhooks test secrets (24-byte keys), a new one and the one it replaces.
const NEW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The graphs these tests use, with the webhook policy opened to loopback.
fn config(extra: &str) -> String {
    let graphs = repo_root().join("tests/fixtures/graphs");
    format!(
        r#"
[graphs.agent]
kind = "echo"

[graphs.fail]
kind = "command"
command = ["{graphs}/fail.sh"]

[graphs.hang]
kind = "command"
command = ["{graphs}/hang.sh"]
env = {{ HANG_SECONDS = "30" }}
timeout = "500ms"

[webhooks.url]
disable_loopback = false
{extra}
"#,
        graphs = graphs.display()
    )
}

async fn start(backend: Backend, extra: &str) -> (Storage, Daemon) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &config(extra)).await;
    (storage, daemon)
}

/// The delivery log's entries for a run.
async fn deliveries_of(daemon: &Daemon, run_id: &str) -> Vec<Value> {
    let (status, list) = daemon
        .get(&format!("/webhooks/deliveries?run_id={run_id}"))
        .await;
    assert_eq!(status, 200, "{list}");
    list.as_array().expect("list").clone()
}

/// Waits until the run's one delivery leaves `pending`, and returns it with its attempts.
async fn settled_delivery(daemon: &Daemon, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = deliveries_of(daemon, run_id).await;
        assert!(list.len() <= 1, "one delivery per run: {list:#?}");
        if let Some(delivery) = list.first()
            && delivery["status"] != "pending"
        {
            let id = delivery["delivery_id"].as_str().expect("id");
            let (status, full) = daemon.get(&format!("/webhooks/deliveries/{id}")).await;
            assert_eq!(status, 200, "{full}");
            return full;
        }
        assert!(
            Instant::now() < deadline,
            "delivery still pending: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// LangGraph's webhook body keys, plus cronhook's two cron fields.
const BODY_KEYS: [&str; 16] = [
    "run_id",
    "thread_id",
    "assistant_id",
    "created_at",
    "updated_at",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "run_started_at",
    "run_ended_at",
    "webhook_sent_at",
    "values",
    "cron_id",
    "scheduled_for",
    "langsmith_session_name",
];

async fn payloads_for_success_error_and_timeout(backend: Backend) {
    let (_storage, daemon) = start(backend, "").await;
    let receiver = Receiver::start().await;
    let thread_id = daemon.new_thread().await;
    let hook = receiver.url("/hook?token=abc%20def");
    let input = json!({"messages": [{"role": "user", "content": "Hello!"}]});

    let (status, values) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/wait"),
            &json!({"assistant_id": "agent", "input": input, "webhook": hook, "metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(status, 200, "{values}");
    let (status, _) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/wait"),
            &json!({"assistant_id": "fail", "input": {}, "webhook": hook}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = daemon
        .post(
            "/runs/wait",
            &json!({"assistant_id": "hang", "input": {}, "webhook": hook}),
        )
        .await;
    assert_eq!(status, 200);

    let seen = receiver.wait_for(3, Duration::from_secs(20)).await;
    let by_status: HashMap<String, &Received> = seen
        .iter()
        .map(|r| (r.json()["status"].as_str().expect("status").to_string(), r))
        .collect();

    let success = by_status.get("success").expect("a success webhook");
    assert_eq!(success.uri, "/hook?token=abc%20def", "query string kept");
    assert_eq!(success.headers["content-type"], "application/json");
    let body = success.json();
    for key in BODY_KEYS {
        assert!(
            body.get(key).is_some(),
            "success body lacks {key}: {body:#}"
        );
    }
    assert!(body.get("error").is_none(), "{body:#}");
    assert_eq!(body["thread_id"], thread_id);
    assert_eq!(body["values"], values, "final values are the run's output");
    assert_eq!(body["kwargs"]["input"], input);
    assert_eq!(body["kwargs"]["webhook"], hook);
    assert_eq!(body["metadata"]["k"], "v");
    for key in ["run_started_at", "run_ended_at", "webhook_sent_at"] {
        let text = body[key].as_str().expect(key);
        chrono::DateTime::parse_from_rfc3339(text).expect(key);
    }
    assert!(body["run_started_at"].as_str() <= body["run_ended_at"].as_str());
    assert!(body["run_ended_at"].as_str() <= body["webhook_sent_at"].as_str());

    let error = by_status.get("error").expect("an error webhook").json();
    assert_eq!(error["values"], Value::Null, "{error:#}");
    assert!(error["error"]["error"].is_string(), "{error:#}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("boom")),
        "{error:#}"
    );

    let timeout = by_status.get("timeout").expect("a timeout webhook").json();
    assert!(timeout["error"]["message"].is_string(), "{timeout:#}");
    assert_eq!(timeout["values"], Value::Null);

    // Each run has exactly one delivery, delivered on the first attempt.
    for received in &seen {
        let run_id = received.json()["run_id"]
            .as_str()
            .expect("run_id")
            .to_string();
        let delivery = settled_delivery(&daemon, &run_id).await;
        assert_eq!(delivery["status"], "delivered", "{delivery:#}");
        assert_eq!(delivery["attempts"], 1, "{delivery:#}");
        assert_eq!(delivery["attempt_log"][0]["status_code"], 200);
    }
    assert_eq!(seen.len(), 3, "no extra calls: {seen:#?}");
}

async fn headers_and_allowed_fields(backend: Backend) {
    let storage = Storage::new(backend).await;
    let extra = r#"
[webhooks]
headers = { "X-Auth" = "Bearer ${{ env.LG_WEBHOOK_TOKEN }}", "X-Static" = "plain" }
allowed_fields = ["run_id", "status", "values", "webhook_sent_at"]
"#;
    let path = storage.dir.path().join("cronhook.toml");
    std::fs::write(&path, config(extra)).expect("config");
    let daemon = Daemon::start_with_env(
        &storage,
        &["--config", &path.display().to_string()],
        &[("LG_WEBHOOK_TOKEN", "t0ken")],
    )
    .await;
    let receiver = Receiver::start().await;
    let (status, _) = daemon
        .post(
            "/runs/wait",
            &json!({"assistant_id": "agent", "input": {"x": 1}, "webhook": receiver.url("/h")}),
        )
        .await;
    assert_eq!(status, 200);
    let seen = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(seen[0].headers["x-auth"], "Bearer t0ken");
    assert_eq!(seen[0].headers["x-static"], "plain");
    let body = seen[0].json();
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["run_id", "status", "values", "webhook_sent_at"]);
    assert!(
        !std::fs::read_to_string(&daemon.log)
            .expect("log")
            .contains("t0ken"),
        "the header's secret value is never logged"
    );
}

#[tokio::test]
async fn a_missing_header_variable_stops_start_up() {
    let storage = Storage::new(Backend::Sqlite).await;
    let path = storage.dir.path().join("cronhook.toml");
    let extra = "[webhooks]\nheaders = { \"X-Auth\" = \"${{ env.LG_WEBHOOK_NOT_SET }}\" }\n";
    std::fs::write(&path, config(extra)).expect("config");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cronhook"))
        .args(["check-config", "--config", &path.display().to_string()])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LG_WEBHOOK_NOT_SET"), "{stderr}");
}

async fn the_disable_switch_sends_nothing(backend: Backend) {
    let (_storage, daemon) = start(backend, "[http]\ndisable_webhooks = true\n").await;
    let receiver = Receiver::start().await;
    let (status, run) = daemon
        .post(
            "/runs/wait",
            &json!({"assistant_id": "agent", "input": {}, "webhook": receiver.url("/h")}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(receiver.seen().is_empty());
    let (status, list) = daemon.get("/webhooks/deliveries").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));
    let log = std::fs::read_to_string(&daemon.log).expect("log");
    assert!(log.contains("webhooks are disabled"), "{log}");
}

async fn retried_until_accepted_with_a_stable_signed_id(backend: Backend) {
    let extra = format!(
        r#"
[webhooks.signing]
secrets = ["{NEW_SECRET}", "{OLD_SECRET}"]
[webhooks.retry]
delays = ["100ms", "200ms", "300ms"]
jitter = 0.0
"#
    );
    let (_storage, daemon) = start(backend, &extra).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[503, 500, 429]);
    let thread_id = daemon.new_thread().await;
    let (status, run) = daemon
        .post(
            &format!("/threads/{thread_id}/runs"),
            &json!({"assistant_id": "agent", "input": {"n": 1}, "webhook": receiver.url("/signed")}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    let run_id = run["run_id"].as_str().expect("run_id");

    let seen = receiver.wait_for(4, Duration::from_secs(20)).await;
    let ids: Vec<&str> = seen
        .iter()
        .map(|r| r.headers["webhook-id"].as_str())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one id across retries: {ids:?}"
    );
    let delivery = settled_delivery(&daemon, run_id).await;
    assert_eq!(delivery["delivery_id"], ids[0]);
    assert_eq!(delivery["status"], "delivered", "{delivery:#}");
    assert_eq!(delivery["attempt_log"].as_array().map(Vec::len), Some(4));
    let codes: Vec<i64> = delivery["attempt_log"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status_code"].as_i64().expect("code"))
        .collect();
    assert_eq!(codes, [503, 500, 429, 200]);
    assert_eq!(
        delivery["attempt_log"][3]["response_body"],
        "receiver says hello"
    );
    assert_eq!(delivery["payload"]["run_id"], run_id);

    // Each attempt's signature verifies with both secrets, by the PyPI package.
    let document = json!({
        "secrets": [NEW_SECRET, OLD_SECRET],
        "requests": seen.iter().map(|r| json!({"headers": r.headers, "body": r.body})).collect::<Vec<_>>(),
    });
    verify_with_standardwebhooks(&document);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.seen().len(), 4, "nothing after the success");
    let log = std::fs::read_to_string(&daemon.log).expect("log");
    for secret in [NEW_SECRET, OLD_SECRET] {
        let key = secret.trim_start_matches("whsec_");
        assert!(!log.contains(key), "a signing secret reached the log");
    }
}

fn verify_with_standardwebhooks(document: &Value) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(test_python())
        .arg(repo_root().join("tests/oracle/verify_signatures.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run verifier");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(document.to_string().as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("verifier output");
    assert!(
        output.status.success(),
        "standardwebhooks refused a signature:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn client_errors_and_redirects_give_up_and_can_be_redelivered(backend: Backend) {
    let extra = "[webhooks.retry]\ndelays = [\"100ms\"]\njitter = 0.0\n";
    let (_storage, daemon) = start(backend, extra).await;
    let receiver = Receiver::start().await;
    receiver.answer(&[404, 302]);
    let mut run_ids = Vec::new();
    for _ in 0..2 {
        let (status, run) = daemon
            .post(
                "/runs",
                &json!({"assistant_id": "agent", "input": {}, "webhook": receiver.url("/gone"),
                        "on_completion": "keep"}),
            )
            .await;
        assert_eq!(status, 200, "{run}");
        run_ids.push(run["run_id"].as_str().expect("id").to_string());
        // One at a time, so the 404 and the 302 go to known runs.
        settled_delivery(&daemon, run_ids.last().expect("id")).await;
    }
    for (run_id, code) in run_ids.iter().zip([404, 302]) {
        let delivery = settled_delivery(&daemon, run_id).await;
        assert_eq!(delivery["status"], "failed", "{delivery:#}");
        assert_eq!(delivery["attempt_log"].as_array().map(Vec::len), Some(1));
        assert_eq!(delivery["last_status_code"], code);
    }
    assert_eq!(receiver.seen().len(), 2);

    // Redelivery on request: the receiver now accepts.
    let first = deliveries_of(&daemon, &run_ids[0]).await;
    let id = first[0]["delivery_id"].as_str().expect("id");
    let (status, queued) = daemon
        .post(&format!("/webhooks/deliveries/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{queued}");
    assert_eq!(queued["status"], "pending");
    receiver.wait_for(3, Duration::from_secs(10)).await;
    let delivery = settled_delivery(&daemon, &run_ids[0]).await;
    assert_eq!(delivery["status"], "delivered", "{delivery:#}");
    assert_eq!(delivery["attempt_log"].as_array().map(Vec::len), Some(2));

    let (status, failed) = daemon.get("/webhooks/deliveries?status=failed").await;
    assert_eq!(status, 200);
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{failed:#}");
    let (status, body) = daemon
        .get(&format!("/webhooks/deliveries/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = daemon.get("/webhooks/deliveries?status=lost").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("status"))
    );
}

async fn delivered_after_a_kill_9_while_the_receiver_was_down(backend: Backend) {
    let extra =
        "[webhooks.retry]\ndelays = [\"1s\", \"1s\", \"1s\", \"1s\", \"1s\"]\njitter = 0.0\n";
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &config(extra)).await;
    let port = free_port(); // nothing listens here yet: connection refused
    let hook = format!("http://127.0.0.1:{port}/late");
    let (status, run) = daemon
        .post(
            "/runs/wait",
            &json!({"assistant_id": "agent", "input": {}, "webhook": hook}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    let (status, list) = daemon.get("/webhooks/deliveries").await;
    assert_eq!(status, 200);
    let list = list.as_array().expect("list").clone();
    assert_eq!(list.len(), 1);
    let delivery_id = list[0]["delivery_id"].as_str().expect("id").to_string();
    let run_id = list[0]["run_id"].as_str().expect("run").to_string();
    // Wait for the first failed attempt to be on record, then kill the daemon.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, delivery) = daemon
            .get(&format!("/webhooks/deliveries/{delivery_id}"))
            .await;
        if delivery["attempt_log"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            assert_eq!(delivery["status"], "pending");
            assert!(delivery["attempt_log"][0]["status_code"].is_null());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no attempt recorded: {delivery:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.kill9();

    let receiver = Receiver::start_on(port).await;
    let daemon = Daemon::start_with_config(&storage, &config(extra)).await;
    let seen = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(seen[0].json()["run_id"], run_id);
    let delivery = settled_delivery(&daemon, &run_id).await;
    assert_eq!(delivery["status"], "delivered", "{delivery:#}");
    let successes = delivery["attempt_log"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter(|a| a["status_code"] == 200)
        .count();
    assert_eq!(successes, 1, "{delivery:#}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.seen().len(), 1, "delivered exactly once");
}

/// A host name from /etc/hosts that points at 127.0.0.1 (not `localhost`, which has a rule
/// of its own): a "public-looking" name resolving to loopback, with no DNS query.
fn name_resolving_to_loopback() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|line| {
        let mut fields = line.split('#').next()?.split_whitespace();
        if fields.next()? != "127.0.0.1" {
            return None;
        }
        fields
            .find(|name| !name.starts_with("localhost"))
            .map(str::to_string)
    })
}

async fn ssrf_corpus_is_refused_at_acceptance(backend: Backend) {
    // The default policy: loopback refused.
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start(&storage).await;
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let mut corpus: Vec<String> = [
        "http://localhost:{port}/x",
        "http://127.0.0.1:{port}/x",
        "http://127.1:{port}/x",
        "http://2130706433:{port}/x",
        "http://0x7f000001:{port}/x",
        "http://[::1]:{port}/x",
        "http://[::ffff:127.0.0.1]:{port}/x",
        "http://0.0.0.0:{port}/x",
        "/x",
    ]
    .iter()
    .map(|u| u.replace("{port}", &port.to_string()))
    .collect();
    match name_resolving_to_loopback() {
        Some(name) => corpus.push(format!("http://{name}:{port}/x")),
        None => eprintln!("no 127.0.0.1 alias in /etc/hosts: the DNS case is left to unit tests"),
    }
    let thread_id = daemon.new_thread().await;
    let endpoints = [
        format!("/threads/{thread_id}/runs"),
        format!("/threads/{thread_id}/runs/wait"),
        format!("/threads/{thread_id}/runs/stream"),
        "/runs".to_string(),
        "/runs/wait".to_string(),
        "/runs/stream".to_string(),
        "/runs/crons".to_string(),
        format!("/threads/{thread_id}/runs/crons"),
    ];
    for url in &corpus {
        for endpoint in &endpoints {
            let mut body = json!({"assistant_id": "agent", "input": {}, "webhook": url});
            if endpoint.ends_with("/crons") {
                body["schedule"] = json!("* * * * * *");
            }
            let (status, answer) = daemon.post(endpoint, &body).await;
            assert_eq!(status, 422, "{url} on {endpoint}: {answer}");
            let detail = answer["detail"].as_str().expect("detail");
            assert!(
                detail.contains("Webhook") || detail.contains("webhook"),
                "{url}: {detail}"
            );
        }
    }
    // A cron patched to a refused URL is refused too.
    let (status, cron) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "0 0 1 1 *"}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    let cron_id = cron["cron_id"].as_str().expect("id");
    let (status, _) = daemon
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"webhook": corpus[1]}),
        )
        .await;
    assert_eq!(status, 422);

    // Nothing was stored: no run on the thread, one cron (the valid one), no delivery.
    let (status, runs) = daemon.get(&format!("/threads/{thread_id}/runs")).await;
    assert_eq!(status, 200);
    assert_eq!(runs, json!([]));
    let (_, count) = daemon.post("/runs/crons/count", &json!({})).await;
    assert_eq!(count, 1);
    let (_, cron) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert!(cron["payload"].get("webhook").is_none(), "{cron:#}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.seen().is_empty(), "{:#?}", receiver.seen());
    let (_, deliveries) = daemon.get("/webhooks/deliveries").await;
    assert_eq!(deliveries, json!([]));
}

async fn a_cron_fire_calls_its_webhook(backend: Backend) {
    let (_storage, daemon) = start(backend, "").await;
    let receiver = Receiver::start().await;
    let (status, cron) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "* * * * * *", "input": {"c": 1},
                    "webhook": receiver.url("/cron")}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    let cron_id = cron["cron_id"].as_str().expect("id");
    let seen = receiver.wait_for(1, Duration::from_secs(10)).await;
    let (status, _) = daemon.delete(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 204);
    let body = seen[0].json();
    assert_eq!(body["cron_id"], cron_id);
    assert!(body["scheduled_for"].is_string(), "{body:#}");
    assert_eq!(body["kwargs"]["config"]["configurable"]["cron_id"], cron_id);
    let (status, list) = daemon
        .get(&format!("/webhooks/deliveries?cron_id={cron_id}"))
        .await;
    assert_eq!(status, 200);
    assert!(!list.as_array().expect("list").is_empty(), "{list:#}");
}

on_both_backends!(
    payloads_for_success_error_and_timeout,
    headers_and_allowed_fields,
    the_disable_switch_sends_nothing,
    retried_until_accepted_with_a_stable_signed_id,
    client_errors_and_redirects_give_up_and_can_be_redelivered,
    delivered_after_a_kill_9_while_the_receiver_was_down,
    ssrf_corpus_is_refused_at_acceptance,
    a_cron_fire_calls_its_webhook,
);
