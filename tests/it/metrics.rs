//! `GET /metrics`: Prometheus text with the counters moved by real work (a cron firing on
//! its schedule, runs, a webhook delivered to a loopback receiver) and the queue depths; it
//! needs a key when keys are configured, unless `[metrics] public`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::receiver::Receiver;
use crate::common::{Backend, Daemon, Storage};

const KEY: &str = "metrics-test-key-6c1d2e";

/// The value of one sample line (`name{labels} value`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
}

async fn scrape(daemon: &Daemon, key: Option<&str>) -> (u16, String) {
    let mut request = daemon.client.get(format!("{}/metrics", daemon.url));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.expect("scrape");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_fires_runs_and_webhooks() {
    let storage = Storage::new(Backend::Sqlite).await;
    let receiver = Receiver::start().await;
    let daemon = Daemon::start_with_config(
        &storage,
        &format!(
            "[[auth.api_keys]]\nidentity = \"ops\"\nkey = \"{KEY}\"\nadmin = true\n\
             [webhooks.url]\ndisable_loopback = false\n"
        ),
    )
    .await;
    assert_eq!(
        scrape(&daemon, None).await.0,
        401,
        "keys configured: /metrics needs one"
    );

    let (status, run) = daemon
        .send_as(
            Some(KEY),
            Method::POST,
            "/runs/wait",
            Some(&json!({"assistant_id": "agent", "input": {"x": 1}, "webhook": receiver.url("/hook")})),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // A cron due every second fires on its schedule.
    let (status, cron) = daemon
        .send_as(
            Some(KEY),
            Method::POST,
            "/runs/crons",
            Some(&json!({"assistant_id": "agent", "schedule": "* * * * * *", "input": {"y": 2}})),
        )
        .await;
    assert_eq!(status, 200, "{cron}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let (status, text) = scrape(&daemon, Some(KEY)).await;
        assert_eq!(status, 200);
        let fired = sample(&text, "cronhook_fires_total").unwrap_or(0.0);
        // A stateless cron's fire is written ahead of its instant; its lateness is recorded
        // when its run is launched, at the instant.
        let launched = sample(&text, "cronhook_fire_lateness_seconds_count").unwrap_or(0.0);
        let delivered = sample(
            &text,
            "cronhook_webhook_attempts_total{outcome=\"delivered\"}",
        );
        if fired >= 1.0 && launched >= 1.0 && delivered == Some(1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "metrics did not move:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        sample(&text, "cronhook_runs_finished_total{status=\"success\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "cronhook_webhook_latency_seconds_count") >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "cronhook_run_duration_seconds_count{status=\"success\"}"
        ) >= Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "cronhook_crons_enabled"), Some(1.0), "{text}");
    assert!(sample(&text, "cronhook_runs_queued").is_some(), "{text}");
    assert_eq!(
        sample(&text, "cronhook_webhooks_pending"),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE cronhook_fire_lateness_seconds histogram"),
        "{text}"
    );
    assert!(!text.contains(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_metrics_need_no_key_but_the_rest_does() {
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start_with_config(
        &storage,
        &format!(
            "[metrics]\npublic = true\n[[auth.api_keys]]\nidentity = \"ops\"\nkey = \"{KEY}\"\n"
        ),
    )
    .await;
    let (status, text) = scrape(&daemon, None).await;
    assert_eq!(status, 200);
    assert!(text.contains("cronhook_runs_queued"), "{text}");
    assert_eq!(daemon.get("/info").await.0, 401);
}
