//! API keys and owner isolation, end to end on both backends: keys in `x-api-key` or
//! `Authorization: Bearer`, 401 without one, each identity sees and changes only its own
//! crons, threads, runs and deliveries (others' read as 404), an admin key sees all, and no
//! key ever reaches the log.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Backend, Daemon, KillOnDrop, Storage, free_port, wait_exit};

const ALICE: &str = "alice-key-5b0f7c1e9d2a";
const BOB: &str = "bob-key-93c4a7e1f0d6b";
const OPS: &str = "ops-key-e4d1c8a2b7f9";

fn config(bob_key_file: &std::path::Path) -> String {
    format!(
        r#"
[[auth.api_keys]]
identity = "alice"
key = "{ALICE}"

[[auth.api_keys]]
identity = "bob"
key_file = "{}"

[[auth.api_keys]]
identity = "ops"
key_env = "CRONHOOK_TEST_OPS_KEY"
admin = true

[webhooks.url]
disable_loopback = false
"#,
        bob_key_file.display()
    )
}

async fn start(backend: Backend) -> (Storage, Daemon) {
    let storage = Storage::new(backend).await;
    let key_file = storage.dir.path().join("bob.key");
    std::fs::write(&key_file, format!("{BOB}\n")).expect("write key file");
    let config_path = storage.dir.path().join("cronhook.toml");
    std::fs::write(&config_path, config(&key_file)).expect("write config");
    let daemon = Daemon::start_with_env(
        &storage,
        &["--config", &config_path.display().to_string()],
        &[("CRONHOOK_TEST_OPS_KEY", OPS)],
    )
    .await;
    (storage, daemon)
}

async fn keys_are_required_and_accepted_in_both_headers(backend: Backend) {
    let (_storage, daemon) = start(backend).await;
    // Readiness stays open for probes.
    assert_eq!(daemon.get("/ok").await.0, 200);
    for path in [
        "/info",
        "/threads/search",
        "/runs/crons/search",
        "/webhooks/deliveries",
    ] {
        let method = if path.ends_with("search") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, body) = daemon.send(method.clone(), path, Some(&json!({}))).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("API key")),
            "{body}"
        );
        let (status, _) = daemon
            .send_as(
                Some("not-a-configured-key-000"),
                method,
                path,
                Some(&json!({})),
            )
            .await;
        assert_eq!(status, 401, "{path} with a wrong key");
    }
    let response = daemon
        .client
        .get(format!("{}/info", daemon.url))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    for key in [ALICE, BOB, OPS] {
        let (status, _) = daemon.send_as(Some(key), Method::GET, "/info", None).await;
        assert_eq!(status, 200, "x-api-key {key}");
        let response = daemon
            .client
            .get(format!("{}/info", daemon.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "Bearer {key}");
    }
    let log = std::fs::read_to_string(&daemon.log).expect("log");
    for key in [ALICE, BOB, OPS] {
        assert!(!log.contains(key), "a key reached the log");
    }
}

/// Requests with one identity's key.
struct As<'a>(&'a Daemon, &'static str);

impl As<'_> {
    async fn req(&self, method: Method, path: String, body: Option<Value>) -> (u16, Value) {
        self.0
            .send_as(Some(self.1), method, &path, body.as_ref())
            .await
    }
}

async fn identities_see_and_change_only_their_own(backend: Backend) {
    let (_storage, daemon) = start(backend).await;
    let alice = As(&daemon, ALICE);
    let bob = As(&daemon, BOB);
    let ops = As(&daemon, OPS);

    // Alice's thread, thread cron, stateless cron and run.
    let (status, thread) = alice
        .req(Method::POST, "/threads".into(), Some(json!({})))
        .await;
    assert_eq!(status, 200, "{thread}");
    let thread_id = thread["thread_id"].as_str().expect("thread_id").to_string();
    let (status, cron) = alice
        .req(
            Method::POST,
            format!("/threads/{thread_id}/runs/crons"),
            Some(json!({"assistant_id": "agent", "schedule": "0 0 1 1 *"})),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    assert_eq!(cron["user_id"], "alice");
    let cron_id = cron["cron_id"].as_str().expect("cron_id").to_string();
    let (status, stateless_cron) = alice
        .req(
            Method::POST,
            "/runs/crons".into(),
            Some(json!({"assistant_id": "agent", "schedule": "0 0 1 1 *", "on_run_completed": "keep"})),
        )
        .await;
    assert_eq!(status, 200, "{stateless_cron}");
    let stateless_cron_id = stateless_cron["cron_id"]
        .as_str()
        .expect("cron_id")
        .to_string();
    let (status, run) = alice.req(Method::POST,
        format!("/threads/{thread_id}/runs/wait"),
        Some(json!({"assistant_id": "agent", "input": {"n": 1}, "webhook": "http://127.0.0.1:9/hook"})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    let (status, runs) = alice
        .req(Method::GET, format!("/threads/{thread_id}/runs"), None)
        .await;
    assert_eq!(status, 200);
    let run_id = runs[0]["run_id"].as_str().expect("run_id").to_string();

    // Bob sees none of it, and cannot change it.
    for path in [
        format!("/threads/{thread_id}"),
        format!("/threads/{thread_id}/state"),
        format!("/threads/{thread_id}/runs"),
        format!("/threads/{thread_id}/runs/{run_id}"),
        format!("/threads/{thread_id}/runs/{run_id}/join"),
        format!("/runs/crons/{cron_id}"),
        format!("/runs/crons/{cron_id}/next"),
    ] {
        let (status, body) = bob.req(Method::GET, path.clone(), None).await;
        assert_eq!(status, 404, "bob GET {path}: {body}");
    }
    let (status, _) = bob
        .req(
            Method::PATCH,
            format!("/runs/crons/{cron_id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        bob.req(Method::DELETE, format!("/runs/crons/{cron_id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        bob.req(Method::POST, format!("/runs/crons/{cron_id}/trigger"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        bob.req(Method::DELETE, format!("/threads/{thread_id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        bob.req(
            Method::PATCH,
            format!("/threads/{thread_id}"),
            Some(json!({"metadata": {"x": 1}}))
        )
        .await
        .0,
        404
    );
    let (status, body) = bob
        .req(
            Method::POST,
            format!("/threads/{thread_id}/runs"),
            Some(json!({"assistant_id": "agent", "if_not_exists": "create"})),
        )
        .await;
    assert_eq!(status, 404, "bob queued a run on alice's thread: {body}");
    let (status, body) = bob
        .req(
            Method::POST,
            format!("/threads/{thread_id}/runs/crons"),
            Some(json!({"assistant_id": "agent", "schedule": "* * * * *"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = bob
        .req(
            Method::POST,
            "/threads".into(),
            Some(json!({"thread_id": thread_id, "if_exists": "do_nothing"})),
        )
        .await;
    assert_eq!(
        status, 404,
        "do_nothing must not hand over alice's thread: {body}"
    );
    assert_eq!(
        bob.req(
            Method::POST,
            format!("/threads/{thread_id}/runs/{run_id}/cancel"),
            None
        )
        .await
        .0,
        404
    );
    for (path, expected) in [("/runs/crons/count", 0), ("/threads/count", 0)] {
        let (status, count) = bob.req(Method::POST, path.into(), Some(json!({}))).await;
        assert_eq!((status, count), (200, json!(expected)), "{path}");
    }
    let (_, crons) = bob
        .req(Method::POST, "/runs/crons/search".into(), Some(json!({})))
        .await;
    assert_eq!(crons, json!([]));
    let (_, deliveries) = bob
        .req(Method::GET, "/webhooks/deliveries".into(), None)
        .await;
    assert_eq!(deliveries, json!([]));

    // Alice still sees and owns everything; her delivery is hers.
    let (_, count) = alice
        .req(Method::POST, "/runs/crons/count".into(), Some(json!({})))
        .await;
    assert_eq!(count, json!(2));
    let (_, cron_now) = alice
        .req(Method::GET, format!("/runs/crons/{cron_id}"), None)
        .await;
    assert_eq!(cron_now["enabled"], true, "bob's PATCH changed nothing");
    let (_, deliveries) = alice
        .req(
            Method::GET,
            format!("/webhooks/deliveries?run_id={run_id}"),
            None,
        )
        .await;
    assert_eq!(deliveries.as_array().map(Vec::len), Some(1), "{deliveries}");
    assert_eq!(deliveries[0]["user_id"], "alice");
    let delivery_id = deliveries[0]["delivery_id"]
        .as_str()
        .expect("delivery_id")
        .to_string();
    assert_eq!(
        bob.req(
            Method::GET,
            format!("/webhooks/deliveries/{delivery_id}"),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        bob.req(
            Method::POST,
            format!("/webhooks/deliveries/{delivery_id}/retry"),
            None
        )
        .await
        .0,
        404
    );

    // A cron's fire belongs to the cron's owner: its new thread is alice's, not bob's.
    let (status, fired) = alice
        .req(
            Method::POST,
            format!("/runs/crons/{stateless_cron_id}/trigger"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{fired}");
    let fired_thread = fired["thread_id"].as_str().expect("thread_id").to_string();
    let (status, fired_run) = alice
        .req(
            Method::GET,
            format!(
                "/threads/{fired_thread}/runs/{}",
                fired["run_id"].as_str().expect("run_id")
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{fired_run}");
    assert_eq!(
        bob.req(Method::GET, format!("/threads/{fired_thread}/runs"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        bob.req(Method::GET, format!("/threads/{fired_thread}"), None)
            .await
            .0,
        404
    );

    // Bob's own work is his; the admin sees both owners'.
    let (status, bob_cron) = bob
        .req(
            Method::POST,
            "/runs/crons".into(),
            Some(json!({"assistant_id": "agent", "schedule": "0 0 1 1 *"})),
        )
        .await;
    assert_eq!(status, 200, "{bob_cron}");
    assert_eq!(bob_cron["user_id"], "bob");
    let (_, count) = bob
        .req(Method::POST, "/runs/crons/count".into(), Some(json!({})))
        .await;
    assert_eq!(count, json!(1));
    let (_, count) = ops
        .req(Method::POST, "/runs/crons/count".into(), Some(json!({})))
        .await;
    assert_eq!(count, json!(3));
    let (status, _) = ops
        .req(
            Method::GET,
            format!("/threads/{thread_id}/runs/{run_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "the admin reads alice's run");
    let (status, _) = ops
        .req(
            Method::PATCH,
            format!("/runs/crons/{cron_id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "the admin changes alice's cron");
}

on_both_backends!(
    keys_are_required_and_accepted_in_both_headers,
    identities_see_and_change_only_their_own,
);

/// Without keys, the daemon serves loopback only, unless told explicitly.
#[tokio::test]
async fn no_keys_means_loopback_only_unless_allowed() {
    let storage = Storage::new(Backend::Sqlite).await;
    let port = free_port();
    let base = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cronhook"));
        command
            .args(["--bind", &format!("0.0.0.0:{port}")])
            .args(["--data-dir", &storage.dir.path().display().to_string()])
            .args(["--database-url", &storage.database_url])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    let output = base(&[]).output().expect("run cronhook");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("without API keys") && stderr.contains("--allow-unauthenticated"),
        "{stderr}"
    );

    let mut child = KillOnDrop(
        base(&["--allow-unauthenticated"])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cronhook"),
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/ok"))
            .send()
            .await
            && response.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::common::signal(&child.0, libc::SIGTERM);
    let status = wait_exit(&mut child.0, Duration::from_secs(20));
    assert!(
        ready,
        "the daemon did not serve with --allow-unauthenticated"
    );
    assert!(status.success());
}
