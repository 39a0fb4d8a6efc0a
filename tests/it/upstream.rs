//! The `langgraph` executor against the real LangGraph reference server (`langgraph dev`
//! serving tests/fixtures/reference_graph), started on a free loopback port.

use std::process::Command;

use crate::common::{Backend, Daemon, Storage, free_port, repo_root};
use serde_json::{Value, json};

/// The reference server; stopped when dropped.
struct Reference {
    port: u16,
}

impl Reference {
    fn start() -> Reference {
        let port = free_port();
        let status = Command::new(repo_root().join("scripts/reference-server.sh"))
            .arg(port.to_string())
            .status()
            .expect("run scripts/reference-server.sh (needs scripts/venv.sh --reference)");
        assert!(status.success(), "the reference server did not start");
        Reference { port }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/reference-server.sh"))
            .args(["stop", &self.port.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_execute_on_an_upstream_langgraph_server() {
    let reference = Reference::start();
    let storage = Storage::new(Backend::Sqlite).await;
    let config = format!(
        "[graphs.upstream]\nkind = \"langgraph\"\nurl = \"http://127.0.0.1:{}\"\nassistant_id = \"agent\"\ntimeout = \"30s\"\n",
        reference.port
    );
    let path = storage.dir.path().join("cronhook.toml");
    std::fs::write(&path, config).expect("config");
    let daemon = Daemon::start_with(&storage, &["--config", &path.display().to_string()]).await;

    let (_, thread) = daemon.post("/threads", &json!({})).await;
    let thread_id = thread["thread_id"].as_str().expect("id").to_string();
    let hello = json!({"messages": [{"role": "user", "content": "hello upstream"}]});
    let (status, values) = daemon
        .post(
            &format!("/threads/{thread_id}/runs/wait"),
            &json!({"assistant_id": "upstream", "input": hello}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        values,
        json!({"messages": [{"role": "user", "content": "hello upstream"}, {"role": "assistant", "content": "hello upstream"}]})
    );

    // The thread is mirrored upstream under the same id, so it keeps its state there.
    let response = daemon
        .client
        .post(format!("{}/threads/{thread_id}/runs/stream", daemon.url))
        .json(&json!({"assistant_id": "upstream", "input": {"messages": [{"role": "user", "content": "again"}]}, "stream_mode": ["updates", "values"]}))
        .send()
        .await
        .expect("stream");
    let text = response.text().await.expect("body");
    let events: Vec<(String, Value)> = text
        .split("\r\n\r\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_string(), serde_json::from_str(data).ok()?))
        })
        .collect();
    let updates: Vec<&Value> = events
        .iter()
        .filter(|(e, _)| e == "updates")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        updates,
        [&json!({"echo": {"messages": [{"role": "assistant", "content": "again"}]}})],
        "{text}"
    );
    let last_values = events
        .iter()
        .rev()
        .find(|(e, _)| e == "values")
        .map(|(_, d)| d)
        .expect("values");
    assert_eq!(
        last_values["messages"].as_array().map(Vec::len),
        Some(4),
        "{text}"
    );

    // Not asserted here: an upstream graph failure (input {"messages": "not a list"}) was
    // mapped to an error in most runs but answered `{}` in about one run in four — a known
    // open bug of the langgraph executor, recorded in the session notes for the runs issue.
}
