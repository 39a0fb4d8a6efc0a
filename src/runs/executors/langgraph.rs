//! `langgraph` graphs: the run executes on an upstream LangGraph / Agent Protocol server.
//! The thread is mirrored there (same id), the upstream stream is relayed event by event,
//! and its final values and errors are mapped back.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::{Emitter, Failure, RunInput};

#[derive(Debug, Clone)]
pub struct LanggraphGraph {
    pub client: reqwest::Client,
    pub url: String,
    pub assistant_id: String,
    pub api_key: Option<String>,
    pub timeout: Option<Duration>,
}

impl LanggraphGraph {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(key) = &self.api_key {
            request = request.header("x-api-key", key);
        }
        request
    }

    pub async fn run(&self, run: &RunInput<'_>, events: &Emitter) -> Result<Value, Failure> {
        let work = self.relay(run, events);
        match self.timeout {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .map_err(|_| Failure::timeout(limit))?,
            None => work.await,
        }
    }

    async fn relay(&self, run: &RunInput<'_>, events: &Emitter) -> Result<Value, Failure> {
        let response = self
            .request(reqwest::Method::POST, "/threads")
            .json(&json!({"thread_id": run.thread_id, "if_exists": "do_nothing"}))
            .send()
            .await
            .map_err(|err| upstream(format!("creating the thread: {err}")))?;
        if !response.status().is_success() {
            return Err(upstream(format!(
                "creating the thread answered {}",
                response.status()
            )));
        }

        let mut modes: Vec<String> = run.stream_modes.clone();
        if !modes.iter().any(|m| m == "values") {
            modes.push("values".into());
        }
        let mut body = Map::new();
        body.insert("assistant_id".into(), json!(self.assistant_id));
        body.insert("input".into(), run.input.clone());
        body.insert("stream_mode".into(), json!(modes));
        for (key, value) in [
            ("config", run.config),
            ("context", run.context),
            ("metadata", run.metadata),
        ] {
            if value.as_object().is_some_and(|m| !m.is_empty()) {
                body.insert(key.into(), value.clone());
            }
        }
        let response = self
            .request(
                reqwest::Method::POST,
                &format!("/threads/{}/runs/stream", run.thread_id),
            )
            .json(&Value::Object(body))
            .send()
            .await
            .map_err(|err| upstream(format!("starting the run: {err}")))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(upstream(format!(
                "starting the run answered {status}: {text}"
            )));
        }

        let mut last_values: Option<Value> = None;
        let mut upstream_run: Option<String> = None;
        let mut stream = response.bytes_stream().eventsource();
        while let Some(event) = stream.next().await {
            let event = event.map_err(|err| upstream(format!("reading the stream: {err}")))?;
            let data: Value =
                serde_json::from_str(&event.data).unwrap_or(Value::String(event.data));
            match event.event.as_str() {
                "metadata" => {
                    upstream_run = data
                        .get("run_id")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
                "error" => {
                    return Err(Failure {
                        timed_out: false,
                        error: match data {
                            Value::Object(_) => data,
                            other => json!({"error": "UpstreamError", "message": other}),
                        },
                    });
                }
                "values" => {
                    events.emit("values", data.clone());
                    last_values = Some(data);
                }
                name => events.emit(name, data),
            }
        }
        match (last_values, upstream_run) {
            (Some(values), _) => Ok(values),
            // The stream ended without values or an error: ask the upstream how the run ended
            // rather than take an empty answer for a success.
            (None, Some(run_id)) => self.join(run.thread_id, &run_id).await,
            (None, None) => Err(upstream(
                "the stream ended before the run started".to_string(),
            )),
        }
    }

    /// The upstream run's final values, or its error (`join` answers `__error__`).
    async fn join(&self, thread_id: &str, run_id: &str) -> Result<Value, Failure> {
        let body: Value = self
            .request(
                reqwest::Method::GET,
                &format!("/threads/{thread_id}/runs/{run_id}/join"),
            )
            .send()
            .await
            .map_err(|err| upstream(format!("joining the run: {err}")))?
            .json()
            .await
            .map_err(|err| upstream(format!("joining the run: {err}")))?;
        match body.get("__error__") {
            Some(error @ Value::Object(_)) => Err(Failure {
                timed_out: false,
                error: error.clone(),
            }),
            Some(other) => Err(upstream(other.to_string())),
            None => Ok(body),
        }
    }
}

fn upstream(message: String) -> Failure {
    Failure::error("UpstreamError", message)
}
