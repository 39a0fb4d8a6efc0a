//! What an ordinary key holder (or anyone who can connect) must not be able to do, each a
//! regression test against the real binary: crash the daemon with a large filter, hold
//! its connection slots with idle HTTP/2 sockets, read a receiver's answers through the
//! delivery log, see the daemon's secrets from a graph, reach loopback through an IPv6
//! spelling, learn that another identity's thread exists, or go past the quotas.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::receiver::Receiver;
use crate::common::{Backend, Daemon, Storage};

const ALICE: &str = "alice-key-5b0f7c1e9d2a";
const BOB: &str = "bob-key-93c4a7e1f0d6b";
const OPS: &str = "ops-key-e4d1c8a2b7f9";

/// Three keys: alice and bob (ordinary, alice capped at 3 crons), ops (admin).
const KEYS: &str = r#"
[[auth.api_keys]]
identity = "alice"
key = "alice-key-5b0f7c1e9d2a"
max_crons = 3

[[auth.api_keys]]
identity = "bob"
key = "bob-key-93c4a7e1f0d6b"

[[auth.api_keys]]
identity = "ops"
key = "ops-key-e4d1c8a2b7f9"
admin = true
"#;

fn filter_of(keys: usize) -> Value {
    let map: Map<String, Value> = (0..keys).map(|i| (format!("k{i}"), json!(i))).collect();
    Value::Object(map)
}

/// The filter endpoints of every resource, with the JSON field each filter goes in.
const FILTERED: [(&str, &str); 8] = [
    ("/threads/search", "metadata"),
    ("/threads/search", "values"),
    ("/threads/count", "metadata"),
    ("/threads/count", "values"),
    ("/runs/crons/search", "metadata"),
    ("/runs/crons/count", "metadata"),
    ("/assistants/search", "metadata"),
    ("/assistants/count", "metadata"),
];

async fn large_filters_are_refused_and_the_daemon_keeps_serving(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start(&storage).await;
    for (path, field) in FILTERED {
        for keys in [5_000, 50_000, 65] {
            let body = serde_json::to_vec(&json!({ field: filter_of(keys) })).expect("json");
            let (status, answer) = daemon.post_raw(path, body).await;
            assert_eq!(status, 422, "{path} {field} with {keys} keys: {answer}");
            let detail = answer["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(&format!("filters on {keys} keys"))
                    && detail.contains("at most 64")
                    && detail.contains("max_filter_keys"),
                "{path}: {detail}"
            );
        }
        // At the cap the filter runs (and matches nothing).
        let (status, answer) = daemon.post(path, &json!({ field: filter_of(64) })).await;
        assert_eq!(status, 200, "{path} {field} with 64 keys: {answer}");
        assert!(
            answer == json!([]) || answer == json!(0),
            "{path}: {answer}"
        );
    }
    // A select list longer than the resource's fields (each would be looked for in every
    // item of the answer).
    let select = vec!["cron_id"; 10_000];
    let (status, answer) = daemon
        .post(
            "/runs/crons/search",
            &json!({"select": select, "limit": 1000}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("select: 10000 columns given")),
        "{answer}"
    );
    // NUL characters, in a filter key or anywhere else in a body.
    for (path, body) in [
        ("/threads/search", json!({"metadata": {"\u{0}": 1}})),
        (
            "/runs/crons/search",
            json!({"metadata": {"team\u{0}": "x"}}),
        ),
        ("/threads", json!({"metadata": {"note": "a\u{0}b"}})),
    ] {
        let (status, answer) = daemon.post(path, &body).await;
        assert_eq!(status, 422, "{path}: {answer}");
        assert!(
            answer["detail"]
                .as_str()
                .is_some_and(|d| d.contains("NUL character")),
            "{answer}"
        );
    }
    // Keys the SQL path quoting must carry literally.
    let (status, thread) = daemon
        .post(
            "/threads",
            &json!({"metadata": {"a\"b": 1, "c\\d": 2, "$.e[0]": 3, "line\nbreak": 4}}),
        )
        .await;
    assert_eq!(status, 200, "{thread}");
    for (key, value) in [("a\"b", 1), ("c\\d", 2), ("$.e[0]", 3), ("line\nbreak", 4)] {
        let (status, found) = daemon
            .post("/threads/search", &json!({"metadata": {key: value}}))
            .await;
        assert_eq!(status, 200, "{key:?}: {found}");
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{key:?}: {found}");
    }
    assert_eq!(daemon.get("/ok").await.0, 200);
}

/// HTTP/2's connection preface and an empty SETTINGS frame, then nothing.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Opens `count` connections that send the HTTP/2 preface and then stay silent.
async fn idle_h2_sockets(port: u16, count: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::new();
    for _ in 0..count {
        let mut socket = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        socket.write_all(H2_PREFACE).await.expect("preface");
        sockets.push(socket);
    }
    sockets
}

/// `GET /ok` on a fresh connection, with how long it took (None: no answer in `limit`).
async fn ok_within(daemon: &Daemon, limit: Duration) -> Option<Duration> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(limit)
        .build()
        .expect("client");
    let started = Instant::now();
    let response = client.get(format!("{}/ok", daemon.url)).send().await.ok()?;
    (response.status() == 200).then(|| started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_sockets_cannot_hold_the_connection_slots() {
    // Default: HTTP/1.1 only, so the preface is refused at once.
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(&storage, "[server]\nmax_connections = 50\n").await;
    let sockets = idle_h2_sockets(daemon.port, 55).await;
    let took = ok_within(&daemon, Duration::from_secs(5)).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(2)),
        "/ok behind 55 refused h2c sockets: {took:?}"
    );
    drop(sockets);
    drop(daemon);

    // With HTTP/2 on: a connection that makes no request within the header read timeout
    // is closed, so /ok is served once the slots free up, while the sockets stay open.
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(
        &storage,
        "[server]\nmax_connections = 50\nhttp2 = true\nheader_read_timeout = \"2s\"\nidle_timeout = \"2s\"\n",
    )
    .await;
    let sockets = idle_h2_sockets(daemon.port, 55).await;
    let took = ok_within(&daemon, Duration::from_secs(10)).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(5)),
        "/ok behind 55 idle h2c sockets: {took:?}"
    );
    drop(sockets);

    // A real HTTP/2 client is served, and its stream is not cut while it lasts.
    let output = std::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code}"])
        .arg(format!("{}/ok", daemon.url))
        .output()
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "2 200",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn start_with_keys(backend: Backend, extra: &str) -> (Storage, Daemon) {
    let storage = Storage::new(backend).await;
    let config = format!("{KEYS}\n[webhooks.url]\ndisable_loopback = false\n{extra}");
    let daemon = Daemon::start_with_config(&storage, &config).await;
    (storage, daemon)
}

async fn only_admins_read_receiver_answers(backend: Backend) {
    let (_storage, daemon) = start_with_keys(backend, "").await;
    let receiver = Receiver::start().await;
    let (status, run) = daemon
        .send_as(
            Some(ALICE),
            Method::POST,
            "/runs/wait",
            Some(&json!({"assistant_id": "agent", "input": {"x": 1}, "webhook": receiver.url("/hook")})),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let delivery_id = loop {
        let (_, list) = daemon
            .send_as(Some(ALICE), Method::GET, "/webhooks/deliveries", None)
            .await;
        if let Some(d) = list
            .as_array()
            .and_then(|l| l.first())
            .filter(|d| d["status"] == "delivered")
        {
            break d["delivery_id"].as_str().expect("id").to_string();
        }
        assert!(Instant::now() < deadline, "no delivered delivery: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let path = format!("/webhooks/deliveries/{delivery_id}");
    let (status, owner_view) = daemon.send_as(Some(ALICE), Method::GET, &path, None).await;
    assert_eq!(status, 200, "{owner_view}");
    let attempt = &owner_view["attempt_log"][0];
    assert_eq!(attempt["status_code"], 200, "{owner_view}");
    assert!(attempt["latency_ms"].is_number(), "{owner_view}");
    assert_eq!(attempt["response_body"], Value::Null, "{owner_view}");
    let (status, admin_view) = daemon.send_as(Some(OPS), Method::GET, &path, None).await;
    assert_eq!(status, 200, "{admin_view}");
    assert_eq!(
        admin_view["attempt_log"][0]["response_body"], "receiver says hello",
        "{admin_view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_graphs_start_with_a_clean_environment() {
    let storage = Storage::new(Backend::Sqlite).await;
    let print_env =
        r#"["python3", "-c", "import json, os; print(json.dumps({'env': dict(os.environ)}))"]"#;
    let config = format!(
        "[graphs.clean]\nkind = \"command\"\ncommand = {print_env}\nenv = {{ MODE = \"nightly\" }}\n\
         [graphs.inheriting]\nkind = \"command\"\ncommand = {print_env}\ninherit_env = true\n"
    );
    let path = storage.dir.path().join("cronhook.toml");
    std::fs::write(&path, config).expect("config");
    let daemon = Daemon::start_with_env(
        &storage,
        &["--config", &path.display().to_string()],
        &[
            ("CRONHOOK_KEY_OPS", "secret-admin-key-0123"),
            ("LG_WEBHOOK_TOKEN", "secret-header"),
            ("LC_ALL", "C.UTF-8"),
        ],
    )
    .await;
    let env_of = |graph: &'static str| {
        let daemon = &daemon;
        async move {
            let (status, output) = daemon
                .post(
                    "/runs/wait",
                    &json!({"assistant_id": graph, "input": {"x": 1}}),
                )
                .await;
            assert_eq!(status, 200, "{output}");
            output["env"].as_object().cloned().expect("env object")
        }
    };
    let clean = env_of("clean").await;
    assert!(!clean.contains_key("CRONHOOK_KEY_OPS"), "{clean:?}");
    assert!(!clean.contains_key("LG_WEBHOOK_TOKEN"), "{clean:?}");
    assert!(!clean.contains_key("CRONHOOK_LOG"), "{clean:?}");
    assert_eq!(clean.get("MODE"), Some(&json!("nightly")));
    assert_eq!(clean.get("LC_ALL"), Some(&json!("C.UTF-8")));
    assert!(clean.contains_key("PATH"), "{clean:?}");
    let inherited = env_of("inheriting").await;
    assert_eq!(
        inherited.get("CRONHOOK_KEY_OPS"),
        Some(&json!("secret-admin-key-0123"))
    );
}

/// IPv6 spellings of refused IPv4 ranges, and deprecated site-local addresses.
const SMUGGLED: [&str; 4] = [
    "http://[::ffff:0:7f00:1]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://[2001::7f00:1]/hook",
    "http://[fec0::1]/hook",
];

async fn ipv6_forms_of_refused_ranges_are_refused_everywhere(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon =
        Daemon::start_with_config(&storage, "[webhooks.url]\ndisable_private_ips = true\n").await;
    let thread = daemon.new_thread().await;
    let (status, cron) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "0 0 * * *", "input": {"x": 1}}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    let cron_path = format!("/runs/crons/{}", cron["cron_id"].as_str().expect("id"));
    for url in SMUGGLED {
        let run = json!({"assistant_id": "agent", "input": {"x": 1}, "webhook": url});
        let cron_body = json!({"assistant_id": "agent", "schedule": "0 0 * * *", "input": {"x": 1}, "webhook": url});
        for (method, path, body) in [
            (Method::POST, "/runs/crons".to_string(), cron_body.clone()),
            (
                Method::POST,
                format!("/threads/{thread}/runs/crons"),
                cron_body,
            ),
            (Method::PATCH, cron_path.clone(), json!({"webhook": url})),
            (Method::POST, "/runs".to_string(), run.clone()),
            (Method::POST, "/runs/wait".to_string(), run.clone()),
            (Method::POST, format!("/threads/{thread}/runs"), run.clone()),
            (Method::POST, "/runs/batch".to_string(), json!([run])),
        ] {
            let (status, answer) = daemon.send(method.clone(), &path, Some(&body)).await;
            assert_eq!(status, 422, "{method} {path} {url}: {answer}");
            assert!(
                answer["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("Webhook host blocked")),
                "{path} {url}: {answer}"
            );
        }
    }
    // Nothing was created by the refused requests.
    assert_eq!(daemon.post("/runs/crons/count", &json!({})).await.1, 1);
}

async fn another_identitys_thread_id_reads_as_unknown(backend: Backend) {
    let (_storage, daemon) = start_with_keys(backend, "").await;
    let (status, thread) = daemon
        .send_as(Some(BOB), Method::POST, "/threads", Some(&json!({})))
        .await;
    assert_eq!(status, 200, "{thread}");
    let thread_id = thread["thread_id"].as_str().expect("id");
    let (get_status, get_answer) = daemon
        .send_as(
            Some(ALICE),
            Method::GET,
            &format!("/threads/{thread_id}"),
            None,
        )
        .await;
    assert_eq!(get_status, 404);
    for if_exists in ["raise", "do_nothing"] {
        let (status, answer) = daemon
            .send_as(
                Some(ALICE),
                Method::POST,
                "/threads",
                Some(&json!({"thread_id": thread_id, "if_exists": if_exists})),
            )
            .await;
        assert_eq!(
            (status, &answer),
            (404, &get_answer),
            "if_exists {if_exists}"
        );
    }
    // The owner still gets the conflict.
    let (status, _) = daemon
        .send_as(
            Some(BOB),
            Method::POST,
            "/threads",
            Some(&json!({"thread_id": thread_id, "if_exists": "raise"})),
        )
        .await;
    assert_eq!(status, 409);
}

async fn quotas_answer_with_the_limit_they_hit(backend: Backend) {
    let (_storage, daemon) = start_with_keys(
        backend,
        "[limits]\nmax_batch = 100\n[[auth.api_keys]]\nidentity = \"burst\"\nkey = \"burst-key-0123456789ab\"\nrequests_per_second = 2\nburst = 5\n",
    )
    .await;
    let cron = json!({"assistant_id": "agent", "schedule": "0 0 * * *", "input": {"x": 1}});
    for _ in 0..3 {
        let (status, answer) = daemon
            .send_as(Some(ALICE), Method::POST, "/runs/crons", Some(&cron))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = daemon
        .send_as(Some(ALICE), Method::POST, "/runs/crons", Some(&cron))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("owns 3 crons") && d.contains("max_crons")),
        "{answer}"
    );
    // Another identity has its own count; an admin has none by default.
    for key in [BOB, OPS, OPS, OPS, OPS] {
        let (status, answer) = daemon
            .send_as(Some(key), Method::POST, "/runs/crons", Some(&cron))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (_, count) = daemon
        .send_as(
            Some(ALICE),
            Method::POST,
            "/runs/crons/count",
            Some(&json!({})),
        )
        .await;
    assert_eq!(count, 3);

    // Batches over max_batch queue nothing.
    let runs: Vec<Value> = (0..101)
        .map(|i| json!({"assistant_id": "agent", "input": {"i": i}}))
        .collect();
    let (status, answer) = daemon
        .send_as(Some(BOB), Method::POST, "/runs/batch", Some(&json!(runs)))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("101 items") && d.contains("max_batch")),
        "{answer}"
    );
    let (status, answer) = daemon
        .send_as(
            Some(BOB),
            Method::POST,
            "/runs/batch",
            Some(&json!(runs[..100])),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    // A key with a rate: its burst passes, then 429 with Retry-After.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut refused = None;
    for _ in 0..20 {
        let response = client
            .get(format!("{}/info", daemon.url))
            .header("x-api-key", "burst-key-0123456789ab")
            .send()
            .await
            .expect("request");
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("a 429 within 20 requests at a rate of 2/s, burst 5");
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.expect("json");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("requests_per_second")),
        "{body}"
    );
    // Other keys are not held back by it.
    let (status, _) = daemon
        .send_as(Some(ALICE), Method::GET, "/info", None)
        .await;
    assert_eq!(status, 200);
}

on_both_backends!(
    large_filters_are_refused_and_the_daemon_keeps_serving,
    only_admins_read_receiver_answers,
    ipv6_forms_of_refused_ranges_are_refused_everywhere,
    another_identitys_thread_id_reads_as_unknown,
    quotas_answer_with_the_limit_they_hit,
);
