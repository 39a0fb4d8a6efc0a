//! Scheduling controls beside LangGraph's cron fields: a stateless cron's `overlap`, its run
//! limit, a pause until an instant, jitter and backfill; on both backends, with two replicas
//! at once on PostgreSQL.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Backend, Daemon, Storage};

on_both_backends!(
    overlap_policies_decide_each_instant_of_a_busy_cron,
    a_run_limit_disables_the_cron_after_its_last_run,
    a_cron_paused_until_an_instant_resumes_by_itself,
    jitter_delays_each_instant_as_next_says,
    controls_are_validated_field_by_field,
    dst_choices_give_the_instants_next_shows,
    a_backfill_fires_each_past_instant_once_through_a_crash,
    deleting_a_cron_withdraws_the_runs_waiting_behind_it,
);

/// A graph whose runs take 2.5 s, and the echo graph.
fn config() -> String {
    "[graphs.slow]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >/dev/null; sleep 2.5; echo '{}'\"]\n\n\
     [graphs.agent]\nkind = \"echo\"\n"
        .to_string()
}

/// Milliseconds since the epoch of an ISO-8601 field.
fn ms(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("an instant: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|err| panic!("{text}: {err}"))
        .timestamp_millis()
}

/// The daemons of a test: one on SQLite (one process per file), two replicas on PostgreSQL.
async fn daemons(storage: &Storage, backend: Backend, config: &str) -> Vec<Daemon> {
    let mut daemons = vec![Daemon::start_with_config(storage, config).await];
    if backend == Backend::Postgres {
        daemons.push(Daemon::start_with_config(storage, config).await);
    }
    daemons
}

async fn create(daemon: &Daemon, body: Value) -> Value {
    let (status, cron) = daemon.post("/runs/crons", &body).await;
    assert_eq!(status, 200, "{body} -> {cron}");
    cron
}

async fn history(daemon: &Daemon, cron_id: &str) -> Vec<Value> {
    let (status, page) = daemon
        .get(&format!("/runs/crons/{cron_id}/history?limit=1000"))
        .await;
    assert_eq!(status, 200, "{page}");
    let mut entries = page.as_array().expect("a list").clone();
    entries.reverse(); // oldest first
    entries
}

/// The cron's history once none of its runs is pending or running.
async fn settled_history(daemon: &Daemon, cron_id: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let entries = history(daemon, cron_id).await;
        let active = entries
            .iter()
            .any(|e| matches!(e["run_status"].as_str(), Some("pending" | "running")));
        if !active {
            return entries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "runs still active: {entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn with_fire<'a>(entries: &'a [Value], fire: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["fire"] == fire).collect()
}

/// The runs (fired entries that started), in order of start: no two ran at once.
fn one_at_a_time(entries: &[Value], policy: &str) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = entries
        .iter()
        .filter(|e| e["fire"] == "fired" && !e["started_at"].is_null())
        .map(|e| (ms(&e["started_at"]), ms(&e["ended_at"])))
        .collect();
    runs.sort_unstable();
    for pair in runs.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "{policy}: a run started at {} while another ran until {}: {entries:#?}",
            pair[1].0,
            pair[0].1
        );
    }
    runs
}

/// A per-second stateless cron under each overlap policy, with runs of 2.5 s, for about 7
/// s (two replicas fire them on PostgreSQL): `allow` runs them side by side; `skip` never
/// runs two at once and skips the instants that found one active; `buffer_one` runs the
/// waiting one right after, skipping the rest; `buffer_all` runs every instant, one after
/// another, in order; `cancel_other` interrupts the running one for the newest instant.
async fn overlap_policies_decide_each_instant_of_a_busy_cron(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemons = daemons(&storage, backend, &config()).await;
    let api = &daemons[0];
    let mut crons = Vec::new();
    for policy in ["allow", "skip", "buffer_one", "buffer_all", "cancel_other"] {
        let cron = create(
            api,
            json!({"schedule": "* * * * * *", "assistant_id": "slow", "overlap": policy}),
        )
        .await;
        assert_eq!(cron["overlap"], policy);
        crons.push((policy, cron["cron_id"].as_str().expect("id").to_string()));
    }
    tokio::time::sleep(Duration::from_millis(7_000)).await;
    for (_, cron_id) in &crons {
        let (status, _) = api
            .patch(
                &format!("/runs/crons/{cron_id}"),
                &json!({"enabled": false}),
            )
            .await;
        assert_eq!(status, 200);
    }
    for (policy, cron_id) in &crons {
        let entries = settled_history(api, cron_id).await;
        let fired = with_fire(&entries, "fired");
        let skipped = with_fire(&entries, "skipped");
        assert!(entries.len() >= 5, "{policy}: {entries:#?}");
        // No instant twice, whichever replica decided it.
        let mut instants: Vec<i64> = entries.iter().map(|e| ms(&e["scheduled_for"])).collect();
        instants.dedup();
        assert_eq!(instants.len(), entries.len(), "{policy}: {entries:#?}");
        match *policy {
            "allow" => {
                assert!(skipped.is_empty());
                assert!(fired.iter().all(|e| e["run_status"] == "success"));
                let mut runs: Vec<(i64, i64)> = fired
                    .iter()
                    .map(|e| (ms(&e["started_at"]), ms(&e["ended_at"])))
                    .collect();
                runs.sort_unstable();
                assert!(
                    runs.windows(2).any(|pair| pair[1].0 < pair[0].1),
                    "allow runs side by side: {runs:?}"
                );
            }
            "skip" => {
                one_at_a_time(&entries, policy);
                assert!(skipped.len() >= 2, "{entries:#?}");
                // Each skipped instant was decided while a fired run had not ended.
                for entry in &skipped {
                    let decided = ms(&entry["fired_at"]);
                    assert!(
                        fired.iter().any(|run| ms(&run["fired_at"]) <= decided
                            && decided <= ms(&run["ended_at"])),
                        "skip: {entry} found no active run: {entries:#?}"
                    );
                    assert!(entry["run_id"].is_null());
                }
                assert!(fired.iter().all(|e| e["run_status"] == "success"));
            }
            "buffer_one" => {
                let runs = one_at_a_time(&entries, policy);
                assert!(skipped.len() >= 2, "{entries:#?}");
                assert!(runs.len() >= 2, "{entries:#?}");
                // The buffered run starts as soon as the one before it ends.
                for pair in runs.windows(2) {
                    assert!(
                        pair[1].0 - pair[0].1 < 1_500,
                        "buffer_one: {} ms between runs: {entries:#?}",
                        pair[1].0 - pair[0].1
                    );
                }
                // At most one waited: every skipped instant found one run active and one
                // waiting (decided while two fired runs had not ended).
                for entry in &skipped {
                    let decided = ms(&entry["fired_at"]);
                    let open = fired
                        .iter()
                        .filter(|run| {
                            ms(&run["fired_at"]) <= decided && decided <= ms(&run["ended_at"])
                        })
                        .count();
                    assert_eq!(open, 2, "buffer_one: {entry}: {entries:#?}");
                }
            }
            "buffer_all" => {
                let runs = one_at_a_time(&entries, policy);
                assert!(skipped.is_empty(), "{entries:#?}");
                assert_eq!(runs.len(), fired.len(), "every instant ran");
                assert!(fired.iter().all(|e| e["run_status"] == "success"));
                // In the order of their instants.
                let mut by_start: Vec<(i64, i64)> = fired
                    .iter()
                    .map(|e| (ms(&e["started_at"]), ms(&e["scheduled_for"])))
                    .collect();
                by_start.sort_unstable();
                assert!(by_start.windows(2).all(|pair| pair[0].1 < pair[1].1));
            }
            "cancel_other" => {
                one_at_a_time(&entries, policy);
                assert!(skipped.is_empty(), "{entries:#?}");
                let interrupted = fired
                    .iter()
                    .filter(|e| e["run_status"] == "interrupted")
                    .count();
                assert!(interrupted >= 3, "{entries:#?}");
                // The last instant's run was not cancelled by a newer one.
                assert_eq!(
                    fired.last().map(|e| e["run_status"].clone()),
                    Some(json!("success")),
                    "{entries:#?}"
                );
            }
            _ => unreachable!(),
        }
    }
}

/// `remaining_runs: 3` on a per-second cron: three instants fire, then the cron disables
/// itself with the note "run limit reached"; a new limit resumes it for that many more.
async fn a_run_limit_disables_the_cron_after_its_last_run(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemons = daemons(&storage, backend, &config()).await;
    let api = &daemons[0];
    let cron = create(
        api,
        json!({"schedule": "* * * * * *", "assistant_id": "agent", "remaining_runs": 3}),
    )
    .await;
    let cron_id = cron["cron_id"].as_str().expect("id");
    assert_eq!(cron["remaining_runs"], 3);
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let entries = settled_history(api, cron_id).await;
    assert_eq!(with_fire(&entries, "fired").len(), 3, "{entries:#?}");
    let (_, cron) = api.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(cron["enabled"], false, "{cron}");
    assert_eq!(cron["remaining_runs"], 0);
    assert_eq!(cron["pause_note"], "run limit reached");

    let (status, cron) = api
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"remaining_runs": 2}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    assert_eq!(cron["enabled"], true, "{cron}");
    assert!(cron["pause_note"].is_null());
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let entries = settled_history(api, cron_id).await;
    assert_eq!(with_fire(&entries, "fired").len(), 5, "{entries:#?}");
    let (_, cron) = api.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(cron["enabled"], false);
    assert_eq!(cron["remaining_runs"], 0);
}

/// A per-second cron paused until 3 s from now shows `enabled: false` and the pause, fires
/// nothing before it (and misses nothing: no `missed` entry), then fires by itself; PATCH
/// `{"enabled": true}` ends a pause at once.
async fn a_cron_paused_until_an_instant_resumes_by_itself(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemons = daemons(&storage, backend, &config()).await;
    let api = &daemons[0];
    let until = chrono::Utc::now() + chrono::TimeDelta::milliseconds(3_000);
    let until_text = until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let cron = create(
        api,
        json!({"schedule": "* * * * * *", "assistant_id": "agent", "paused_until": until_text}),
    )
    .await;
    let cron_id = cron["cron_id"].as_str().expect("id");
    assert_eq!(cron["enabled"], false, "{cron}");
    assert_eq!(ms(&cron["paused_until"]), until.timestamp_millis());
    assert!(ms(&cron["next_run_date"]) >= until.timestamp_millis());
    let (_, paused) = api
        .post("/runs/crons/search", &json!({"enabled": false}))
        .await;
    assert_eq!(paused.as_array().map(Vec::len), Some(1), "{paused}");
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let entries = settled_history(api, cron_id).await;
    assert!(with_fire(&entries, "missed").is_empty(), "{entries:#?}");
    let fired = with_fire(&entries, "fired");
    assert!((2..=3).contains(&fired.len()), "{entries:#?}");
    assert!(
        fired
            .iter()
            .all(|e| ms(&e["scheduled_for"]) >= until.timestamp_millis()),
        "{entries:#?}"
    );
    let (_, cron) = api.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(cron["enabled"], true, "{cron}");
    assert!(cron["paused_until"].is_null());

    // Paused for an hour, then resumed at once.
    let later = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let (status, cron) = api
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"paused_until": later}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    assert_eq!(cron["enabled"], false);
    let (status, cron) = api
        .patch(&format!("/runs/crons/{cron_id}"), &json!({"enabled": true}))
        .await;
    assert_eq!(status, 200, "{cron}");
    assert_eq!(cron["enabled"], true);
    assert!(cron["paused_until"].is_null());
    assert!(ms(&cron["next_run_date"]) - chrono::Utc::now().timestamp_millis() <= 1_000);
}

/// Jitter: over 1,000 crons sharing one instant the starts `/next` gives spread over
/// [instant, instant + jitter), the same on every replica and after a restart; a cron that
/// fires starts when `/next` said, with `due_at` in its history.
async fn jitter_delays_each_instant_as_next_says(backend: Backend) {
    let storage = Storage::new(backend).await;
    let mut daemons = daemons(&storage, backend, &config()).await;
    let api = &daemons[0];
    let mut ids = Vec::new();
    for _ in 0..1_000 {
        let cron = create(
            api,
            json!({"schedule": "0 0 1 1 *", "assistant_id": "agent", "jitter_seconds": 60,
                   "enabled": false}),
        )
        .await;
        ids.push(cron["cron_id"].as_str().expect("id").to_string());
    }
    let starts = |daemon: &Daemon, ids: Vec<String>| {
        let client = daemon.client.clone();
        let url = daemon.url.clone();
        async move {
            let mut delays = Vec::new();
            for id in ids {
                let next: Value = client
                    .get(format!("{url}/runs/crons/{id}/next?count=1"))
                    .send()
                    .await
                    .expect("next")
                    .json()
                    .await
                    .expect("json");
                delays.push(ms(&next["starts"][0]) - ms(&next["next"][0]));
            }
            delays
        }
    };
    let delays = starts(api, ids.clone()).await;
    assert!(delays.iter().all(|d| (0..60_000).contains(d)), "{delays:?}");
    for tenth in 0..10 {
        let held = delays.iter().filter(|d| **d / 6_000 == tenth).count();
        assert!((60..=140).contains(&held), "tenth {tenth}: {held} of 1,000");
    }
    let sample: Vec<String> = ids.iter().take(50).cloned().collect();
    let expected: Vec<i64> = delays.iter().take(50).copied().collect();
    assert_eq!(
        starts(daemons.last().expect("a daemon"), sample.clone()).await,
        expected
    );
    let restarted = daemons.pop().expect("a daemon");
    assert!(restarted.stop().success());
    daemons.push(Daemon::start_with_config(&storage, &config()).await);
    assert_eq!(
        starts(daemons.last().expect("a daemon"), sample).await,
        expected
    );

    // A cron every 5 s with 3 s of jitter starts each run when `/next` says.
    let api = &daemons[0];
    let cron = create(
        api,
        json!({"schedule": "* * * * * */5", "assistant_id": "agent", "jitter_seconds": 3}),
    )
    .await;
    let cron_id = cron["cron_id"].as_str().expect("id");
    let (_, next) = api
        .get(&format!("/runs/crons/{cron_id}/next?count=3"))
        .await;
    tokio::time::sleep(Duration::from_millis(13_000)).await;
    let entries = settled_history(api, cron_id).await;
    let mut checked = 0;
    for (instant, start) in next["next"]
        .as_array()
        .expect("instants")
        .iter()
        .zip(next["starts"].as_array().expect("starts"))
    {
        let Some(entry) = entries.iter().find(|e| e["scheduled_for"] == *instant) else {
            continue;
        };
        let started = ms(&entry["started_at"]);
        let due = ms(start);
        assert!(
            (due..due + 1_500).contains(&started),
            "due {start}, started {}: {entries:#?}",
            entry["started_at"]
        );
        if due > ms(instant) {
            assert_eq!(ms(&entry["due_at"]), due, "{entry}");
        }
        checked += 1;
    }
    assert!(checked >= 2, "{next} {entries:#?}");
}

/// Each control refuses a bad value with a 422 naming the field and what it takes, and
/// changes nothing; `overlap` is refused on a thread cron.
async fn controls_are_validated_field_by_field(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &config()).await;
    let base = json!({"schedule": "0 * * * *", "assistant_id": "agent"});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    let refused = [
        (with("overlap", json!("sometimes")), "overlap"),
        (with("jitter_seconds", json!(3601)), "jitter_seconds"),
        (with("jitter_seconds", json!(-1)), "jitter_seconds"),
        (with("remaining_runs", json!(0)), "remaining_runs"),
        (with("paused_until", json!("tomorrow")), "paused_until"),
        (
            with("paused_until", json!("2020-01-01T00:00:00Z")),
            "paused_until",
        ),
        (with("dst_repeat", json!("thrice")), "dst_repeat"),
        (with("dst_gap", json!("jump")), "dst_gap"),
    ];
    for (body, field) in &refused {
        let (status, error) = daemon.post("/runs/crons", body).await;
        assert_eq!(status, 422, "{body} -> {error}");
        let detail = error["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(field), "{detail}");
    }
    let (status, error) = daemon
        .post("/runs/crons", &with("overlap", json!("sometimes")))
        .await;
    assert_eq!(status, 422);
    assert!(
        error["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("buffer_one"),
        "names the values: {error}"
    );
    let thread_id = daemon.new_thread().await;
    let (status, error) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/crons"),
            &with("overlap", json!("skip")),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("multitask_strategy"),
        "{error}"
    );
    let (_, count) = daemon.post("/runs/crons/count", &json!({})).await;
    assert_eq!(count, 0, "nothing was created");

    let (_, cron) = daemon
        .post(&format!("/threads/{thread_id}/runs/crons"), &base)
        .await;
    let cron_id = cron["cron_id"].as_str().expect("id");
    let (status, error) = daemon
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"overlap": "cancel_other", "jitter_seconds": 5}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    for (body, field) in [
        (json!({"jitter_seconds": 4000}), "jitter_seconds"),
        (json!({"remaining_runs": -2}), "remaining_runs"),
        (
            json!({"paused_until": "2020-01-01T00:00:00Z"}),
            "paused_until",
        ),
        (
            json!({"paused_until": "2099-01-01T00:00:00Z", "enabled": true}),
            "paused_until",
        ),
    ] {
        let (status, error) = daemon.patch(&format!("/runs/crons/{cron_id}"), &body).await;
        assert_eq!(status, 422, "{body} -> {error}");
        assert!(
            error["detail"].as_str().unwrap_or_default().contains(field),
            "{error}"
        );
    }
    let (_, unchanged) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(unchanged["jitter_seconds"], 0, "{unchanged}");
    assert_eq!(unchanged["overlap"], "allow");
    assert!(unchanged["remaining_runs"].is_null());
    assert!(unchanged["payload"].get("jitter_seconds").is_none());
}

/// `dst_repeat` and `dst_gap` around both changes in New York and London, as `/next` shows
/// them: a fall-back repeat fires once or twice, a spring-forward gap shifts or skips; a
/// PATCH of either changes the instants.
async fn dst_choices_give_the_instants_next_shows(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &config()).await;
    let next = |cron_id: String, after: &'static str| {
        let daemon = &daemon;
        async move {
            let (status, next) = daemon
                .get(&format!("/runs/crons/{cron_id}/next?count=3&after={after}"))
                .await;
            assert_eq!(status, 200, "{next}");
            next["next"]
                .as_array()
                .expect("instants")
                .iter()
                .map(|at| {
                    chrono::DateTime::parse_from_rfc3339(at.as_str().expect("text"))
                        .expect("an instant")
                        .with_timezone(&chrono::Utc)
                        .format("%m-%d %H:%M")
                        .to_string()
                })
                .collect::<Vec<_>>()
        }
    };
    // (zone, schedule, after, choices, the first three instants in UTC)
    let cases = [
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31T12:00:00Z",
            json!({}),
            ["11-01 05:30", "11-02 06:30", "11-03 06:30"],
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31T12:00:00Z",
            json!({"dst_repeat": "twice"}),
            ["11-01 05:30", "11-01 06:30", "11-02 06:30"],
        ),
        (
            "Europe/London",
            "30 1 * * *",
            "2026-10-24T12:00:00Z",
            json!({}),
            ["10-25 00:30", "10-26 01:30", "10-27 01:30"],
        ),
        (
            "Europe/London",
            "30 1 * * *",
            "2026-10-24T12:00:00Z",
            json!({"dst_repeat": "twice"}),
            ["10-25 00:30", "10-25 01:30", "10-26 01:30"],
        ),
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-07T12:00:00Z",
            json!({}),
            ["03-08 07:00", "03-09 06:30", "03-10 06:30"],
        ),
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-07T12:00:00Z",
            json!({"dst_gap": "skip"}),
            ["03-09 06:30", "03-10 06:30", "03-11 06:30"],
        ),
        (
            "Europe/London",
            "30 1 * * *",
            "2026-03-28T12:00:00Z",
            json!({}),
            ["03-29 01:00", "03-30 00:30", "03-31 00:30"],
        ),
        (
            "Europe/London",
            "30 1 * * *",
            "2026-03-28T12:00:00Z",
            json!({"dst_gap": "skip"}),
            ["03-30 00:30", "03-31 00:30", "04-01 00:30"],
        ),
    ];
    for (zone, schedule, after, choices, expected) in cases {
        let mut body = json!({"schedule": schedule, "timezone": zone, "assistant_id": "agent"});
        for (key, value) in choices.as_object().expect("choices") {
            body[key] = value.clone();
        }
        let cron = create(&daemon, body.clone()).await;
        let cron_id = cron["cron_id"].as_str().expect("id").to_string();
        assert_eq!(next(cron_id, after).await, expected, "{body}");
    }
    // A PATCH of the choices changes the instants.
    let cron = create(
        &daemon,
        json!({"schedule": "30 1 * * *", "timezone": "America/New_York", "assistant_id": "agent"}),
    )
    .await;
    let cron_id = cron["cron_id"].as_str().expect("id").to_string();
    let (status, patched) = daemon
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"dst_repeat": "twice"}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["dst_repeat"], "twice");
    assert_eq!(
        next(cron_id, "2026-10-31T12:00:00Z").await,
        ["11-01 05:30", "11-01 06:30", "11-02 06:30"]
    );
}

/// A 2-hour backfill of a minute cron (runs of 0.1 s): a dry run names the 120 instants;
/// the backfill queues them, a second one overlapping it by 50 minutes fires only its 10
/// new instants, and a daemon killed with SIGKILL midway loses none: every instant runs
/// exactly once, one run at a time, each backfill's in order, while the live schedule goes
/// on.
async fn a_backfill_fires_each_past_instant_once_through_a_crash(backend: Backend) {
    let config = "[graphs.quick]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >/dev/null; sleep 0.1; echo '{}'\"]\n\n\
                  [runs]\nlease = \"2s\"\n";
    let storage = Storage::new(backend).await;
    let mut daemons = daemons(&storage, backend, config).await;
    let cron = create(
        &daemons[0],
        json!({"schedule": "* * * * *", "assistant_id": "quick"}),
    )
    .await;
    let cron_id = cron["cron_id"].as_str().expect("id").to_string();
    let minute = 60_000;
    let end = chrono::Utc::now().timestamp_millis() / minute * minute;
    let start = end - 120 * minute;
    let iso = |at: i64| {
        chrono::DateTime::from_timestamp_millis(at)
            .expect("an instant")
            .to_rfc3339()
    };
    let path = format!("/runs/crons/{cron_id}/backfill");
    let (status, dry) = daemons[0]
        .post(
            &path,
            &json!({"start_time": iso(start), "end_time": iso(end), "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["instants"], 120, "{dry}");
    assert_eq!(ms(&dry["first"]), start);
    assert_eq!(ms(&dry["last"]), end - minute);
    assert_eq!(dry["scheduled_for"].as_array().map(Vec::len), Some(120));
    // The live schedule may fire meanwhile (a minute boundary can fall here): a dry run
    // backfills nothing.
    let entries = history(&daemons[0], &cron_id).await;
    assert!(
        entries.iter().all(|e| e["fire"] != "backfilled"),
        "a dry run fires nothing: {entries:#?}"
    );

    let (status, done) = daemons[0]
        .post(
            &path,
            &json!({"start_time": iso(start), "end_time": iso(end)}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["instants"].clone(), done["already_fired"].clone()),
        (json!(120), json!(0))
    );
    let (status, again) = daemons[daemons.len() - 1]
        .post(
            &path,
            &json!({"start_time": iso(start - 10 * minute), "end_time": iso(start + 50 * minute)}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["instants"].clone(), again["already_fired"].clone()),
        (json!(10), json!(50))
    );

    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let victim = daemons.remove(0);
    victim.kill9();
    daemons.push(Daemon::start_with_config(&storage, config).await);
    let entries = settled_history(&daemons[0], &cron_id).await;
    let backfilled: Vec<&Value> = entries
        .iter()
        .filter(|e| e["fire"] == "backfilled")
        .collect();
    let instants: Vec<i64> = backfilled.iter().map(|e| ms(&e["scheduled_for"])).collect();
    let expected: Vec<i64> = (0..130).map(|n| start - 10 * minute + n * minute).collect();
    let mut sorted = instants.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected, "every instant once: {entries:#?}");
    assert!(
        backfilled.iter().all(|e| e["run_status"] == "success"),
        "{entries:#?}"
    );
    let mut run_ids: Vec<&str> = backfilled
        .iter()
        .filter_map(|e| e["run_id"].as_str())
        .collect();
    run_ids.sort_unstable();
    run_ids.dedup();
    assert_eq!(run_ids.len(), 130);
    // One at a time; within each request, in the order of the instants.
    let mut runs: Vec<(i64, i64, i64)> = backfilled
        .iter()
        .map(|e| {
            (
                ms(&e["started_at"]),
                ms(&e["ended_at"]),
                ms(&e["scheduled_for"]),
            )
        })
        .collect();
    runs.sort_unstable();
    for pair in runs.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "overlap: {pair:?}");
    }
    for (from, to) in [(start, end), (start - 10 * minute, start)] {
        let order: Vec<i64> = runs
            .iter()
            .map(|run| run.2)
            .filter(|at| (from..to).contains(at))
            .collect();
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
    }
    // The live schedule's instants are its own.
    assert!(
        entries
            .iter()
            .filter(|e| e["fire"] == "fired")
            .all(|e| ms(&e["scheduled_for"]) >= end),
        "{entries:#?}"
    );

    // Bounds: more than 10,000 instants, a future range, a bad range.
    let (status, error) = daemons[0]
        .post(
            &path,
            &json!({"start_time": iso(end - 20_000 * minute), "end_time": iso(end)}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("20000"),
        "{error}"
    );
    let (status, error) = daemons[0]
        .post(
            &path,
            &json!({"start_time": iso(end), "end_time": iso(start)}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    let (status, future) = daemons[0]
        .post(
            &path,
            &json!({"start_time": iso(end + 60 * minute), "end_time": iso(end + 120 * minute), "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{future}");
    assert_eq!(
        future["instants"], 0,
        "instants to come are the schedule's: {future}"
    );
}

/// A backfill of ten instants of a cron whose runs take 2.5 s: one runs, nine wait (each on
/// its own thread). Deleting the cron withdraws the nine with their threads; the running
/// one ends as usual.
async fn deleting_a_cron_withdraws_the_runs_waiting_behind_it(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start_with_config(&storage, &config()).await;
    let cron = create(
        &daemon,
        json!({"schedule": "0 0 1 1 *", "assistant_id": "slow", "on_run_completed": "keep"}),
    )
    .await;
    let cron_id = cron["cron_id"].as_str().expect("id");
    let (status, done) = daemon
        .post(
            &format!("/runs/crons/{cron_id}/backfill"),
            &json!({"start_time": "2010-01-01T00:00:00Z", "end_time": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["instants"], 10);
    let (_, threads) = daemon.post("/threads/count", &json!({})).await;
    assert_eq!(threads, 10, "a thread per instant");
    let (status, _) = daemon.delete(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 204);
    let (_, threads) = daemon.post("/threads/count", &json!({})).await;
    assert_eq!(threads, 1, "only the running run's thread is left");
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let (_, busy) = daemon
        .post("/threads/count", &json!({"status": "busy"}))
        .await;
    assert_eq!(busy, 0, "nothing else ran");
}
