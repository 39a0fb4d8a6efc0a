//! A cron created through the API fires at its first instant whether that instant comes
//! before the scheduler's next refresh (the create wakes the scheduler) or later (the
//! periodic refresh reads it, and the create leaves the scheduler asleep).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::common::{Backend, Daemon, Storage};

/// Polls the cron's history until its first entry has a started run.
async fn first_run(daemon: &Daemon, cron_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, entries) = daemon.get(&format!("/runs/crons/{cron_id}/history")).await;
        assert_eq!(status, 200, "{entries}");
        if let Some(entry) = entries.as_array().and_then(|e| e.last())
            && entry["started_at"].is_string()
        {
            return entry.clone();
        }
        assert!(Instant::now() < deadline, "no run started: {entries}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_due_after_the_next_refresh_fires_on_time() {
    let storage = Storage::new(Backend::Sqlite).await;
    let daemon = Daemon::start(&storage).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    // Its first instant 6 s away: beyond the next refresh (1 s) and its look-back (2 s).
    let second = (now + 6) % 60;
    let (status, cron) = daemon
        .post(
            "/runs/crons",
            &json!({"schedule": format!("* * * * * {second}"), "assistant_id": "agent", "input": {}}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    let cron_id = cron["cron_id"].as_str().unwrap_or_default();
    let entry = first_run(&daemon, cron_id).await;
    assert_eq!(entry["fire"], "fired", "{entry}");
    let lateness = entry["lateness_ms"].as_i64().unwrap_or(i64::MAX);
    assert!(
        lateness <= 250,
        "started {lateness} ms after its instant: {entry}"
    );
    daemon.stop();
}
