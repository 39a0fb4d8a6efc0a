//! The cron, thread and assistant API against the real binary, on SQLite and PostgreSQL.

use crate::common::{Backend, Daemon, Storage};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

const AGENT_ID: &str = "fe096781-5601-53d2-b2f6-0d3403f7e9ca";

on_both_backends!(
    cron_lifecycle,
    stateless_cron_defaults_and_end_time,
    invalid_input_is_422_and_changes_nothing,
    thread_lifecycle_and_cascade,
    assistants_are_the_configured_graphs,
    search_pages_sorts_and_filters,
    everything_survives_a_restart,
);

/// `/thread/…` (singular) creates the same thread cron as `/threads/…`; the addresses a
/// person types lead to the documentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn singular_thread_alias_and_the_root_redirect() {
    let (_storage, daemon) = started(Backend::Sqlite).await;
    let thread = daemon.new_thread().await;
    let body = json!({"assistant_id": "agent", "schedule": "0 9 * * 1-5", "input": {"x": 1}});
    let (status, cron) = daemon
        .post(&format!("/thread/{thread}/runs/crons"), &body)
        .await;
    assert_eq!(status, 200, "{cron}");
    assert_eq!(cron["thread_id"], thread.as_str());
    let (status, _) = daemon
        .post(&format!("/thread/{UNKNOWN_THREAD}/runs/crons"), &body)
        .await;
    assert_eq!(status, 404, "an unknown thread, as under /threads/");
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for path in ["/", "/docs/"] {
        let response = client
            .get(format!("{}{path}", daemon.url))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 307, "{path}");
        assert_eq!(response.headers()["location"], "/docs", "{path}");
    }
}

const UNKNOWN_THREAD: &str = "3f2b8c1e-6a47-4d0e-9b1c-2e5f7a9d4c61";

async fn started(backend: Backend) -> (Storage, Daemon) {
    crate::common::started_with_loopback_hooks(backend).await
}

async fn cron_count(daemon: &Daemon) -> u64 {
    let (status, count) = daemon.post("/runs/crons/count", &json!({})).await;
    assert_eq!(status, 200);
    count.as_u64().expect("bare integer count")
}

/// The next 15:27 in Paris after now, in UTC, as LangGraph renders it.
fn next_paris_1527() -> String {
    let zone = chrono_tz::Europe::Paris;
    let now = Utc::now().with_timezone(&zone);
    let today = zone
        .with_ymd_and_hms(
            now.date_naive().year_ce().1 as i32,
            now.date_naive().month0() + 1,
            now.date_naive().day0() + 1,
            15,
            27,
            0,
        )
        .single()
        .expect("unambiguous");
    let next = if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    };
    next.with_timezone(&Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

use chrono::Datelike;

async fn cron_lifecycle(backend: Backend) {
    let (_storage, daemon) = started(backend).await;
    let thread_id = daemon.new_thread().await;
    let (status, cron) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/crons"),
            &json!({
                "assistant_id": "agent",
                "schedule": "27 15 * * *",
                "timezone": "Europe/Paris",
                "input": {"messages": [{"role": "user", "content": "hi"}]},
                "webhook": "http://127.0.0.1:9/hook",
                "metadata": {"team": "ops"},
            }),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    let keys: Vec<&str> = cron
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "cron_id",
        "assistant_id",
        "thread_id",
        "on_run_completed",
        "end_time",
        "schedule",
        "timezone",
        "created_at",
        "updated_at",
        "user_id",
        "payload",
        "next_run_date",
        "metadata",
        "enabled",
    ] {
        assert!(keys.contains(&key), "missing {key} in {cron}");
    }
    assert_eq!(cron["assistant_id"], AGENT_ID);
    assert_eq!(cron["thread_id"], thread_id.as_str());
    assert_eq!(
        cron["on_run_completed"],
        Value::Null,
        "thread crons have none"
    );
    assert_eq!(cron["enabled"], true);
    assert_eq!(cron["next_run_date"], next_paris_1527().as_str());
    let cron_id = cron["cron_id"].as_str().expect("cron_id").to_string();
    assert_eq!(
        cron["payload"]["config"]["configurable"]["cron_id"],
        cron_id.as_str()
    );
    assert_eq!(cron["payload"]["assistant_id"], AGENT_ID);
    assert_eq!(cron["payload"]["input"]["messages"][0]["content"], "hi");

    let (status, fetched) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!((status, &fetched), (200, &cron));

    let (status, patched) = daemon
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"enabled": false, "metadata": {"owner": "ana"}, "input": {"x": 1}}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["metadata"], json!({"team": "ops", "owner": "ana"}));
    assert_eq!(patched["payload"]["input"], json!({"x": 1}));
    assert_eq!(
        patched["payload"]["config"]["configurable"]["cron_id"],
        cron_id.as_str()
    );

    let (status, patched) = daemon
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"schedule": "0 9 * * *", "timezone": "UTC"}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let next = patched["next_run_date"].as_str().expect("next");
    assert!(next.ends_with("T09:00:00+00:00"), "{next}");

    let (status, body) = daemon.delete(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 404);
    assert!(body["detail"].as_str().expect("detail").contains(&cron_id));
    let (status, _) = daemon.delete(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(status, 404);
}

async fn stateless_cron_defaults_and_end_time(backend: Backend) {
    let (_storage, daemon) = started(backend).await;
    let (status, cron) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": AGENT_ID, "schedule": "*/5 * * * *"}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    assert_eq!(cron["thread_id"], Value::Null);
    assert_eq!(cron["on_run_completed"], "delete");
    assert_eq!(cron["timezone"], Value::Null);
    let next = chrono::DateTime::parse_from_rfc3339(cron["next_run_date"].as_str().expect("next"))
        .expect("ISO instant");
    assert_eq!(next.timestamp() % 300, 0, "on a 5-minute boundary");
    assert!(next.timestamp() > Utc::now().timestamp() - 1);

    let (status, cron) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "* * * * *", "end_time": "2020-01-01T00:00:00Z", "on_run_completed": "keep"}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    assert_eq!(cron["next_run_date"], Value::Null, "past its end");
    assert_eq!(cron["end_time"], "2020-01-01T00:00:00+00:00");
    assert_eq!(cron["on_run_completed"], "keep");

    // A naive end_time (what the Python SDK sends for a naive datetime) is UTC.
    let (status, cron) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "0 0 1 1 *", "end_time": "2099-01-01T00:00:00"}),
        )
        .await;
    assert_eq!(status, 200, "{cron}");
    assert_eq!(cron["end_time"], "2099-01-01T00:00:00+00:00");
    assert!(cron["next_run_date"].is_string());

    // Clearing end_time with an explicit null brings the schedule back.
    let cron_id = cron["cron_id"].as_str().expect("id");
    let (status, cron) = daemon
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"end_time": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(cron["next_run_date"], Value::Null);
    let (status, cron) = daemon
        .patch(
            &format!("/runs/crons/{cron_id}"),
            &json!({"end_time": null}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(cron["end_time"], Value::Null);
    assert!(cron["next_run_date"].is_string());
}

async fn invalid_input_is_422_and_changes_nothing(backend: Backend) {
    let (_storage, daemon) = started(backend).await;
    let thread_id = daemon.new_thread().await;
    let (_, existing) = daemon
        .post(
            "/runs/crons",
            &json!({"assistant_id": "agent", "schedule": "0 * * * *"}),
        )
        .await;
    let cron_id = existing["cron_id"].as_str().expect("id").to_string();
    let before = cron_count(&daemon).await;
    let this_cron = format!("/runs/crons/{cron_id}");

    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/runs/crons",
            json!({"assistant_id": "agent", "schedule": "61 * * * *"}),
            422,
            "61 * * * *",
        ),
        (
            "POST",
            "/runs/crons",
            json!({"assistant_id": "agent", "schedule": "* * * * *", "timezone": "Mars/Olympus"}),
            422,
            "Invalid timezone: 'Mars/Olympus'",
        ),
        (
            "POST",
            "/runs/crons",
            json!({"assistant_id": "agent"}),
            422,
            "schedule",
        ),
        (
            "POST",
            "/runs/crons",
            json!({"schedule": "* * * * *"}),
            422,
            "assistant_id",
        ),
        (
            "POST",
            "/runs/crons",
            json!({"assistant_id": "agent", "schedule": "* * * * *", "end_time": "yesterday"}),
            422,
            "end_time",
        ),
        (
            "POST",
            "/runs/crons",
            json!({"assistant_id": "agent", "schedule": "* * * * *", "surprise": 1}),
            422,
            "surprise",
        ),
        (
            "POST",
            "/runs/crons",
            json!({"assistant_id": "agent", "schedule": "* * * * *", "on_run_completed": "later"}),
            422,
            "on_run_completed",
        ),
        (
            "POST",
            "/runs/crons",
            json!({"assistant_id": "agent", "schedule": "* * * * *", "webhook": "not a url"}),
            422,
            "webhook",
        ),
        (
            "POST",
            "/runs/crons",
            json!({"assistant_id": "nope", "schedule": "* * * * *"}),
            404,
            "Assistant 'nope' not found",
        ),
        (
            "POST",
            "/threads/not-a-uuid/runs/crons",
            json!({"assistant_id": "agent", "schedule": "* * * * *"}),
            422,
            "Invalid thread ID: must be a UUID",
        ),
        (
            "POST",
            "/threads/00000000-0000-0000-0000-000000000000/runs/crons",
            json!({"assistant_id": "agent", "schedule": "* * * * *"}),
            404,
            "Thread",
        ),
        (
            "POST",
            "/runs/crons/search",
            json!({"limit": 0}),
            422,
            "limit",
        ),
        (
            "POST",
            "/runs/crons/search",
            json!({"limit": 1001}),
            422,
            "limit",
        ),
        (
            "POST",
            "/runs/crons/search",
            json!({"offset": -1}),
            422,
            "offset",
        ),
        (
            "POST",
            "/runs/crons/search",
            json!({"sort_by": "schedule"}),
            422,
            "sort_by",
        ),
        (
            "POST",
            "/runs/crons/search",
            json!({"select": ["cron_id", "secret"]}),
            422,
            "secret",
        ),
        (
            "POST",
            "/runs/crons/search",
            json!({"assistant_id": "agent"}),
            422,
            "Invalid assistant ID: must be a UUID",
        ),
        (
            "GET",
            "/runs/crons/123",
            Value::Null,
            422,
            "Invalid cron ID: must be a UUID",
        ),
        (
            "GET",
            "/runs/crons/00000000-0000-0000-0000-000000000000",
            Value::Null,
            404,
            "not found",
        ),
        (
            "PATCH",
            &this_cron,
            json!({}),
            400,
            "Request body cannot be empty",
        ),
        (
            "PATCH",
            &this_cron,
            json!({"schedule": "every minute"}),
            422,
            "every minute",
        ),
        (
            "PATCH",
            &this_cron,
            json!({"assistant_id": AGENT_ID}),
            422,
            "assistant_id",
        ),
        (
            "PATCH",
            &this_cron,
            json!({"enabled": "yes"}),
            422,
            "enabled",
        ),
    ];
    for (method, path, body, expected, fragment) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let body = (!body.is_null()).then_some(&body);
        let (status, answer) = daemon.send(method.clone(), path, body).await;
        assert_eq!(status, expected, "{method} {path} {body:?} -> {answer}");
        let detail = answer["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail: {answer}"));
        assert!(
            detail.contains(fragment),
            "{method} {path}: {detail:?} lacks {fragment:?}"
        );
    }
    let (status, answer) = daemon
        .post_raw("/runs/crons", b"{\"schedule\": ".to_vec())
        .await;
    assert_eq!(
        (status, answer["detail"].as_str()),
        (422, Some("Invalid JSON in request body"))
    );
    let (status, answer) = daemon
        .post_raw("/runs/crons", vec![b' '; 2 * 1024 * 1024])
        .await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["detail"].is_string());

    assert_eq!(
        cron_count(&daemon).await,
        before,
        "rejected requests stored nothing"
    );
    let (_, unchanged) = daemon.get(&format!("/runs/crons/{cron_id}")).await;
    assert_eq!(unchanged, existing, "rejected patches changed nothing");
    let _ = thread_id;
}

async fn thread_lifecycle_and_cascade(backend: Backend) {
    let (_storage, daemon) = started(backend).await;
    let id = "6f1c1a0e-8a7b-4c43-9a47-1e6a1d9b0c11";
    let (status, thread) = daemon
        .post("/threads", &json!({"thread_id": id, "metadata": {"a": 1}}))
        .await;
    assert_eq!(status, 200, "{thread}");
    for key in [
        "thread_id",
        "created_at",
        "updated_at",
        "metadata",
        "status",
        "values",
    ] {
        assert!(thread.get(key).is_some(), "missing {key}");
    }
    assert_eq!(thread["status"], "idle");
    let (status, conflict) = daemon.post("/threads", &json!({"thread_id": id})).await;
    assert_eq!(status, 409, "{conflict}");
    let (status, same) = daemon
        .post(
            "/threads",
            &json!({"thread_id": id, "if_exists": "do_nothing"}),
        )
        .await;
    assert_eq!((status, &same["metadata"]), (200, &json!({"a": 1})));

    let (status, patched) = daemon
        .patch(&format!("/threads/{id}"), &json!({"metadata": {"b": 2}}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["metadata"], json!({"a": 1, "b": 2}));

    let (status, found) = daemon
        .post(
            "/threads/search",
            &json!({"metadata": {"b": 2}, "status": "idle"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let (_, count) = daemon
        .post("/threads/count", &json!({"metadata": {"a": 1}}))
        .await;
    assert_eq!(count, 1);

    let (status, state) = daemon.get(&format!("/threads/{id}/state")).await;
    assert_eq!(status, 200);
    assert_eq!(state["next"], json!([]));

    let (status, _) = daemon
        .post(
            &format!("/threads/{id}/runs/crons"),
            &json!({"assistant_id": "agent", "schedule": "@hourly"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(cron_count(&daemon).await, 1);
    let (status, _) = daemon.delete(&format!("/threads/{id}")).await;
    assert_eq!(status, 204);
    assert_eq!(cron_count(&daemon).await, 0, "a thread's crons go with it");
    let (status, _) = daemon.get(&format!("/threads/{id}")).await;
    assert_eq!(status, 404);
}

async fn assistants_are_the_configured_graphs(backend: Backend) {
    let (_storage, daemon) = started(backend).await;
    let (status, list) = daemon.post("/assistants/search", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["assistant_id"], AGENT_ID);
    assert_eq!(list[0]["graph_id"], "agent");
    let (status, one) = daemon.get(&format!("/assistants/{AGENT_ID}")).await;
    assert_eq!((status, &one), (200, &list[0]));
    let (_, count) = daemon
        .post("/assistants/count", &json!({"graph_id": "agent"}))
        .await;
    assert_eq!(count, 1);
    let (status, _) = daemon.get("/assistants/agent").await;
    assert_eq!(status, 422);
    let (status, _) = daemon
        .get("/assistants/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(status, 404);
    let (status, _) = daemon
        .post("/assistants/search", &json!({"graph_id": "missing"}))
        .await;
    assert_eq!(status, 404);
}

async fn search_pages_sorts_and_filters(backend: Backend) {
    let (_storage, daemon) = started(backend).await;
    let thread_id = daemon.new_thread().await;
    for i in 0..5 {
        let (status, _) = daemon
            .post(
                "/runs/crons",
                &json!({"assistant_id": "agent", "schedule": format!("{i} 0 * * *"), "metadata": {"i": i, "team": "ops"}}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/crons"),
            &json!({"assistant_id": "agent", "schedule": "0 12 * * *", "enabled": false}),
        )
        .await;
    assert_eq!(status, 200);

    let response = daemon
        .client
        .post(format!("{}/runs/crons/search", daemon.url))
        .json(&json!({"limit": 2, "offset": 1, "sort_by": "next_run_date", "sort_order": "asc", "select": ["cron_id", "next_run_date"]}))
        .send()
        .await
        .expect("search");
    assert_eq!(response.headers()["x-pagination-next"], "3");
    let page: Value = response.json().await.expect("json");
    let page = page.as_array().expect("list");
    assert_eq!(page.len(), 2);
    assert_eq!(
        page[0].as_object().map(|o| o.len()),
        Some(2),
        "select keeps two keys"
    );
    assert!(page[0]["next_run_date"].as_str() <= page[1]["next_run_date"].as_str());

    let (_, found) = daemon
        .post("/runs/crons/search", &json!({"metadata": {"i": 3}}))
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    assert_eq!(found[0]["schedule"], "3 0 * * *");
    let (_, found) = daemon
        .post("/runs/crons/search", &json!({"enabled": false}))
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let (_, found) = daemon
        .post("/runs/crons/search", &json!({"thread_id": thread_id}))
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let (_, count) = daemon
        .post("/runs/crons/count", &json!({"metadata": {"team": "ops"}}))
        .await;
    assert_eq!(count, 5);
    let (_, count) = daemon
        .post("/runs/crons/count", &json!({"assistant_id": AGENT_ID}))
        .await;
    assert_eq!(count, 6);
    let (_, all) = daemon
        .post("/runs/crons/search", &json!({"limit": 100}))
        .await;
    let created: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["created_at"].as_str().unwrap_or(""))
        .collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted, "default order is created_at desc");
}

async fn everything_survives_a_restart(backend: Backend) {
    let storage = Storage::new(backend).await;
    let daemon = Daemon::start(&storage).await;
    let thread_id = daemon.new_thread().await;
    let (_, thread_cron) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/crons"),
            &json!({"assistant_id": "agent", "schedule": "*/10 * * * *", "metadata": {"k": "v"}}),
        )
        .await;
    let (_, stateless) = daemon
        .post("/runs/crons", &json!({"assistant_id": "agent", "schedule": "0 3 * * 1", "timezone": "America/New_York"}))
        .await;
    let status = daemon.stop();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");

    let daemon = Daemon::start(&storage).await;
    for cron in [&thread_cron, &stateless] {
        let (status, after) = daemon
            .get(&format!(
                "/runs/crons/{}",
                cron["cron_id"].as_str().expect("id")
            ))
            .await;
        assert_eq!((status, &after), (200, cron));
    }
    let (status, _) = daemon.get(&format!("/threads/{thread_id}")).await;
    assert_eq!(status, 200);
    let (_, assistants) = daemon.post("/assistants/count", &json!({})).await;
    assert_eq!(assistants, 1, "assistants are not duplicated on restart");
}
