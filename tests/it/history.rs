//! Each cron's history against the real binary: every scheduled instant covered by exactly
//! one entry through SIGKILLs (missed ones where the misfire policy says), a stateless cron's
//! history outliving its runs and threads with their status, error and webhook, the Cron's
//! last-run fields and search filter, and bad input.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::receiver::Receiver;
use crate::common::{Backend, Daemon, Storage, free_port, repo_root};
use sea_orm::{ColumnTrait, Database, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use entity::states::FireOutcome;
use entity::{cron, cron_fire, run, thread};

on_both_backends!(
    every_instant_has_exactly_one_entry_through_kill_9,
    a_stateless_cron_history_outlives_its_runs,
    bad_history_queries_are_refused,
);

/// The scheduler's grace: an instant later than this is missed.
const GRACE: i64 = 1_000;

async fn thread_cron(daemon: &Daemon, thread_id: &str, body: Value) -> String {
    let mut body = body;
    body["assistant_id"] = json!("agent");
    let (status, cron) = daemon
        .post(&format!("/threads/{thread_id}/runs/crons"), &body)
        .await;
    assert_eq!(status, 200, "{cron}");
    cron["cron_id"].as_str().expect("cron_id").to_string()
}

/// Every history entry and cron, straight from the database.
async fn stored(database_url: &str) -> (Vec<cron_fire::Model>, Vec<cron::Model>) {
    let db = Database::connect(database_url).await.expect("connect");
    let entries = cron_fire::Entity::find()
        .order_by_asc(cron_fire::Column::ScheduledFor)
        .all(&db)
        .await
        .expect("history");
    let crons = cron::Entity::find().all(&db).await.expect("crons");
    let _ = db.close().await;
    (entries, crons)
}

/// Per-second crons under each misfire policy (thread crons, and stateless ones fired
/// ahead) through 12 SIGKILLs, some followed by seconds of downtime: each cron's entries
/// cover every second from its first instant up to its next one, one entry per instant (a
/// run of missed instants is one entry), with no gap and no overlap. An instant is missed
/// exactly when it was later than the grace when the scheduler decided, under `fire_once`
/// and `skip` (the latest due instant always fires on time for a per-second cron), never
/// under `fire_all`.
async fn every_instant_has_exactly_one_entry_through_kill_9(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start(&storage).await;
    let thread_id = daemon.new_thread().await;
    let mut policies = BTreeMap::new();
    for policy in ["fire_once", "skip", "fire_all"] {
        for _ in 0..2 {
            let body = json!({"schedule": "* * * * * *", "misfire_policy": policy});
            policies.insert(thread_cron(&daemon, &thread_id, body).await, policy);
        }
        let body = json!({"schedule": "* * * * * *", "misfire_policy": policy,
            "assistant_id": "agent"});
        let (status, cron) = daemon.post("/runs/crons", &body).await;
        assert_eq!(status, 200, "{cron}");
        policies.insert(cron["cron_id"].as_str().expect("id").to_string(), policy);
    }
    let mut daemon = Some(daemon);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    for round in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(300 + seed % 900)).await;
        if let Some(running) = daemon.take() {
            running.kill9();
        }
        if round % 4 == 1 {
            // Down long enough for instants to be missed.
            tokio::time::sleep(Duration::from_millis(3_200)).await;
        }
        daemon = Some(Daemon::start(&storage).await);
    }
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let running = daemon.take().expect("running");
    let (status, page) = {
        let cron_id = policies.keys().next().expect("a cron");
        running
            .get(&format!("/runs/crons/{cron_id}/history?limit=1000"))
            .await
    };
    assert_eq!(status, 200, "{page}");
    let stopping_at = chrono::Utc::now().timestamp_millis();
    assert!(running.stop().success());

    let (entries, crons) = stored(&storage.database_url).await;
    let mut by_cron: BTreeMap<&str, Vec<&cron_fire::Model>> = BTreeMap::new();
    for entry in &entries {
        by_cron.entry(&entry.cron_id).or_default().push(entry);
    }
    // The crons keep firing between the request and the stop: the page holds every entry
    // up to its latest instant.
    let first_cron = policies.keys().next().expect("a cron");
    let answered = page.as_array().expect("a list");
    let latest = answered
        .iter()
        .filter_map(|entry| entry["scheduled_for"].as_str())
        .map(|at| {
            chrono::DateTime::parse_from_rfc3339(at)
                .expect("an instant")
                .timestamp_millis()
        })
        .max()
        .expect("answered entries");
    let recorded = by_cron[first_cron.as_str()]
        .iter()
        .filter(|entry| entry.scheduled_for <= latest)
        .count();
    assert_eq!(answered.len(), recorded, "the API answers every entry");
    let mut missed_total = 0;
    for cron in &crons {
        let policy = policies[&cron.cron_id];
        let entries = &by_cron[cron.cron_id.as_str()];
        let next = cron.next_run_at.expect("still scheduled");
        assert!(
            entries[0].scheduled_for <= cron.created_at + 1_000,
            "cron {}: the first instant has its entry",
            cron.cron_id
        );
        let mut expected = entries[0].scheduled_for;
        for (index, entry) in entries.iter().enumerate() {
            let what = format!("cron {} ({policy}), entry {entry:?}", cron.cron_id);
            assert_eq!(
                entry.scheduled_for, expected,
                "gap or overlap before {what}"
            );
            let last = entry.last_scheduled_for.unwrap_or(entry.scheduled_for);
            assert_eq!(
                entry.instants,
                (last - entry.scheduled_for) / 1000 + 1,
                "{what}"
            );
            match entry.outcome {
                FireOutcome::Fired => {
                    assert!(entry.run_id.is_some(), "{what}");
                    if policy != "fire_all" {
                        assert!(
                            entry.fired_at - entry.scheduled_for <= GRACE,
                            "late: {what}"
                        );
                    }
                }
                FireOutcome::Missed => {
                    missed_total += 1;
                    assert_ne!(policy, "fire_all", "fire_all catches up: {what}");
                    assert_eq!(entry.misfire_policy.as_deref(), Some(policy), "{what}");
                    assert!(entry.fired_at - last > GRACE, "missed on time: {what}");
                    assert!(entry.run_id.is_none() && entry.run_status.is_none());
                    // The latest due instant fired in the same decision.
                    let after = entries.get(index + 1).expect("a fire follows");
                    assert_eq!(after.outcome, FireOutcome::Fired, "{what}");
                    assert_eq!(after.fired_at, entry.fired_at, "{what}");
                }
                // A thread cron's instant recorded ahead of the stop, for the next start
                // to fire: only the last entries, and only instants the stop came before.
                FireOutcome::Scheduled => {
                    assert!(
                        entry.scheduled_for > stopping_at - 1_000,
                        "never fired: {what}"
                    );
                    assert!(
                        entries[index..]
                            .iter()
                            .all(|later| later.outcome == FireOutcome::Scheduled),
                        "fired after an instant left unfired: {what}"
                    );
                }
                other => panic!("{other:?}: {what}"),
            }
            expected = last + 1_000;
        }
        assert_eq!(
            expected, next,
            "cron {}: no gap up to its next instant",
            cron.cron_id
        );
    }
    assert!(
        missed_total >= 4,
        "the downtimes missed instants: {missed_total} entries"
    );
}

fn graphs(extra: &str) -> String {
    let graphs = repo_root().join("tests/fixtures/graphs");
    format!(
        "[graphs.agent]\nkind = \"echo\"\n\n[graphs.fail]\nkind = \"command\"\ncommand = [\"{}/fail.sh\"]\n\n\
         [webhooks.url]\ndisable_loopback = false\n\n[webhooks.retry]\ndelays = [\"100ms\"]\njitter = 0.0\n{extra}",
        graphs.display()
    )
}

async fn history(daemon: &Daemon, cron_id: &str, query: &str) -> Vec<Value> {
    let (status, page) = daemon
        .get(&format!("/runs/crons/{cron_id}/history?limit=1000{query}"))
        .await;
    assert_eq!(status, 200, "{page}");
    page.as_array().expect("a list").clone()
}

/// Stateless crons deleting each run's thread: a failing one whose webhook is delivered, a
/// succeeding one whose webhook cannot be delivered. The runs and threads are gone; the
/// history shows each run's status, error, lateness, duration and webhook outcome; the Cron
/// shows its last run and failures; search and count filter on `last_run_status`; a pause
/// keeps its note until enabled; a trigger has its entry; deleting the cron deletes it all.
async fn a_stateless_cron_history_outlives_its_runs(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &graphs("")).await;
    let receiver = Receiver::start().await;
    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    let create = |assistant: &str, webhook: String| {
        json!({"schedule": "* * * * * *", "assistant_id": assistant, "webhook": webhook,
               "input": {"x": 1}, "metadata": {"team": "history"}})
    };
    let (status, failing) = daemon
        .post("/runs/crons", &create("fail", receiver.url("/hook")))
        .await;
    assert_eq!(status, 200, "{failing}");
    let (status, healthy) = daemon.post("/runs/crons", &create("agent", closed)).await;
    assert_eq!(status, 200, "{healthy}");
    for cron in [&failing, &healthy] {
        assert_eq!(cron["last_run_status"], Value::Null, "{cron}");
        assert_eq!(cron["last_run_at"], Value::Null, "{cron}");
        assert_eq!(cron["consecutive_failures"], 0, "{cron}");
        assert_eq!(cron["pause_note"], Value::Null, "{cron}");
    }
    let failing = failing["cron_id"].as_str().expect("id").to_string();
    let healthy = healthy["cron_id"].as_str().expect("id").to_string();
    tokio::time::sleep(Duration::from_millis(3_600)).await;
    for cron_id in [&failing, &healthy] {
        let (status, paused) = daemon
            .patch(
                &format!("/runs/crons/{cron_id}"),
                &json!({"enabled": false, "pause_note": "maintenance window"}),
            )
            .await;
        assert_eq!(status, 200, "{paused}");
        assert_eq!(paused["pause_note"], "maintenance window");
        assert!(paused["payload"].get("pause_note").is_none(), "{paused}");
    }
    // The runs end and their webhooks settle (one retry after 100 ms for the closed port).
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let failed = history(&daemon, &failing, "").await;
    assert!(failed.len() >= 2, "{failed:?}");
    for entry in &failed {
        assert_eq!(entry["fire"], "fired", "{entry}");
        assert_eq!(entry["run_status"], "error", "{entry}");
        assert!(entry["scheduled_for"].is_string(), "{entry}");
        assert!(
            entry["lateness_ms"]
                .as_i64()
                .is_some_and(|ms| (0..1_000).contains(&ms)),
            "{entry}"
        );
        assert!(
            entry["duration_ms"].as_i64().is_some_and(|ms| ms >= 0),
            "{entry}"
        );
        assert!(entry["ended_at"].is_string(), "{entry}");
        let error = &entry["error"];
        assert!(error["error"].is_string(), "{entry}");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("boom")),
            "{entry}"
        );
        assert_eq!(entry["webhook"]["status"], "delivered", "{entry}");
        assert_eq!(entry["webhook"]["attempts"], 1, "{entry}");
        assert!(entry["webhook"]["delivery_id"].is_string(), "{entry}");
    }
    let instants: Vec<&str> = failed
        .iter()
        .filter_map(|e| e["scheduled_for"].as_str())
        .collect();
    assert!(
        instants.windows(2).all(|w| w[0] > w[1]),
        "newest first: {instants:?}"
    );
    let fine = history(&daemon, &healthy, "").await;
    assert!(fine.len() >= 2, "{fine:?}");
    for entry in &fine {
        assert_eq!(entry["run_status"], "success", "{entry}");
        assert_eq!(entry["error"], Value::Null, "{entry}");
        assert_eq!(entry["webhook"]["status"], "failed", "{entry}");
        assert_eq!(entry["webhook"]["attempts"], 2, "{entry}");
    }
    assert_eq!(
        receiver.seen().len(),
        failed.len(),
        "one webhook per failed run"
    );

    // Filters.
    assert_eq!(
        history(&daemon, &failing, "&run_status=success")
            .await
            .len(),
        0
    );
    assert_eq!(
        history(&daemon, &failing, "&fire=fired").await.len(),
        failed.len()
    );
    assert_eq!(history(&daemon, &failing, "&fire=missed").await.len(), 0);
    let second = failed[1]["scheduled_for"].as_str().expect("instant");
    let since = history(
        &daemon,
        &failing,
        &format!("&since={}", second.replace('+', "%2B")),
    )
    .await;
    assert_eq!(since.len(), 2, "since is inclusive: {since:?}");
    let until = history(
        &daemon,
        &failing,
        &format!("&until={}", second.replace('+', "%2B")),
    )
    .await;
    assert_eq!(until.len(), failed.len() - 2, "until is exclusive");
    let response = daemon
        .client
        .get(format!(
            "{}/runs/crons/{failing}/history?limit=1",
            daemon.url
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.headers()["x-pagination-total"].to_str().ok(),
        Some("2"),
        "one more than the page when there are more"
    );

    // The runs and their threads are gone; the history stayed.
    let db = Database::connect(storage.database_url.as_str())
        .await
        .expect("connect");
    let runs = run::Entity::find()
        .filter(run::Column::CronId.is_in([failing.clone(), healthy.clone()]))
        .all(&db)
        .await
        .expect("runs");
    assert!(runs.is_empty(), "{} runs left", runs.len());
    let threads = thread::Entity::find().all(&db).await.expect("threads");
    assert!(threads.is_empty(), "{} threads left", threads.len());

    // The Cron's last run, and search by it.
    let (_, cron) = daemon.get(&format!("/runs/crons/{failing}")).await;
    assert_eq!(cron["last_run_status"], "error", "{cron}");
    assert_eq!(cron["consecutive_failures"], failed.len(), "{cron}");
    assert!(cron["last_run_at"].is_string(), "{cron}");
    let (_, cron) = daemon.get(&format!("/runs/crons/{healthy}")).await;
    assert_eq!(cron["last_run_status"], "success", "{cron}");
    assert_eq!(cron["consecutive_failures"], 0, "{cron}");
    let (status, found) = daemon
        .post(
            "/runs/crons/search",
            &json!({"last_run_status": "error", "select": ["cron_id", "last_run_status", "consecutive_failures"]}),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found,
        json!([{"cron_id": failing, "last_run_status": "error", "consecutive_failures": failed.len()}])
    );
    let (_, sorted) = daemon
        .post(
            "/runs/crons/search",
            &json!({"sort_by": "consecutive_failures", "sort_order": "desc", "select": ["cron_id"]}),
        )
        .await;
    assert_eq!(sorted, json!([{"cron_id": failing}, {"cron_id": healthy}]));
    let (_, sorted) = daemon
        .post(
            "/runs/crons/search",
            &json!({"sort_by": "last_run_at", "select": ["cron_id"]}),
        )
        .await;
    assert_eq!(sorted.as_array().map(Vec::len), Some(2), "{sorted}");
    let (status, count) = daemon
        .post("/runs/crons/count", &json!({"last_run_status": "success"}))
        .await;
    assert_eq!((status, count), (200, json!(1)));

    // Enabling clears the note; a trigger has its own entry, without an instant.
    let (_, resumed) = daemon
        .patch(&format!("/runs/crons/{healthy}"), &json!({"enabled": true}))
        .await;
    assert_eq!(resumed["pause_note"], Value::Null, "{resumed}");
    let (_, resumed) = daemon
        .patch(
            &format!("/runs/crons/{healthy}"),
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(resumed["pause_note"], Value::Null, "{resumed}");
    let (status, run) = daemon
        .post(&format!("/runs/crons/{healthy}/trigger"), &json!({}))
        .await;
    assert_eq!(status, 200, "{run}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let triggered = history(&daemon, &healthy, "&fire=triggered").await;
    assert_eq!(triggered.len(), 1, "{triggered:?}");
    assert_eq!(triggered[0]["scheduled_for"], Value::Null);
    assert_eq!(triggered[0]["run_id"], run["run_id"]);
    assert_eq!(triggered[0]["run_status"], "success", "{}", triggered[0]);
    assert!(
        triggered[0]["lateness_ms"]
            .as_i64()
            .is_some_and(|ms| ms >= 0)
    );

    // Deleting the cron deletes its history.
    let (status, _) = daemon.delete(&format!("/runs/crons/{failing}")).await;
    assert_eq!(status, 204);
    let (status, body) = daemon.get(&format!("/runs/crons/{failing}/history")).await;
    assert_eq!(status, 404, "{body}");
    let left = cron_fire::Entity::find()
        .filter(cron_fire::Column::CronId.eq(failing.clone()))
        .all(&db)
        .await
        .expect("history");
    assert!(left.is_empty(), "{} entries left", left.len());
    let _ = db.close().await;
    assert!(daemon.stop().success());
}

/// Unknown values, bad instants and pages are 422 with a `detail`; an unknown cron, or
/// another identity's, is 404.
async fn bad_history_queries_are_refused(backend: Backend) {
    let storage = Storage::new(backend).await;
    let config = graphs(
        "\n[[auth.api_keys]]\nidentity = \"alice\"\nkey = \"alice-key-0123456789abcdef\"\n\n\
         [[auth.api_keys]]\nidentity = \"bob\"\nkey = \"bob-key-0123456789abcdef01\"\n",
    );
    let daemon = Daemon::start_with_config(&storage, &config).await;
    let alice = Some("alice-key-0123456789abcdef");
    let bob = Some("bob-key-0123456789abcdef01");
    let (status, cron) = daemon
        .send_as(
            alice,
            reqwest::Method::POST,
            "/runs/crons",
            Some(&json!({"schedule": "@daily", "assistant_id": "agent"})),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    let cron_id = cron["cron_id"].as_str().expect("id");
    let get = |key, path: String| {
        let daemon = &daemon;
        async move { daemon.send_as(key, reqwest::Method::GET, &path, None).await }
    };
    let base = format!("/runs/crons/{cron_id}/history");
    let (status, page) = get(alice, base.clone()).await;
    assert_eq!((status, page), (200, json!([])));
    for query in [
        "?fire=exploded",
        "?fire=manual",
        "?run_status=done",
        "?since=yesterday",
        "?until=2026-13-01T00:00:00Z",
        "?limit=0",
        "?limit=1001",
        "?offset=-1",
        "?color=blue",
    ] {
        let (status, body) = get(alice, format!("{base}{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert!(body["detail"].is_string(), "{query}: {body}");
    }
    let (status, body) = get(alice, format!("{base}?fire=exploded")).await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("fire") && d.contains("'missed'")),
        "{status} {body}"
    );
    let (status, _) = get(bob, base.clone()).await;
    assert_eq!(status, 404, "another identity's cron");
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = get(alice, format!("/runs/crons/{unknown}/history")).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get(alice, "/runs/crons/not-a-uuid/history".into()).await;
    assert_eq!(status, 422, "{body}");
    for patch in [
        json!({"pause_note": "why"}),
        json!({"enabled": true, "pause_note": "why"}),
        json!({"enabled": false, "pause_note": null}),
        json!({"enabled": false, "pause_note": "x".repeat(1025)}),
    ] {
        let (status, body) = daemon
            .send_as(
                alice,
                reqwest::Method::PATCH,
                &format!("/runs/crons/{cron_id}"),
                Some(&patch),
            )
            .await;
        assert_eq!(status, 422, "{patch}: {body}");
    }
    let (status, body) = daemon
        .send_as(
            alice,
            reqwest::Method::POST,
            "/runs/crons/search",
            Some(&json!({"last_run_status": "broken"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(daemon.stop().success());
}
