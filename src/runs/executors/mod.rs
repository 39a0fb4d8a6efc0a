//! Graph executors: how a configured graph turns a run's input into values and events.
//! One variant per `kind` in `[graphs.NAME]`.

mod command;
mod echo;
mod http;
mod langgraph;

use std::time::Duration;

use serde_json::{Value, json};

use super::events::EventHub;
use crate::config::GraphConfig;

/// Everything an executor sees of a run, borrowed from the run: a cron's run starts at its
/// instant, and copying its JSON there (cold in the cache by then) cost more than the rest.
#[derive(Debug, Clone)]
pub struct RunInput<'a> {
    pub run_id: &'a str,
    pub thread_id: &'a str,
    pub assistant_id: &'a str,
    pub graph_id: &'a str,
    pub input: &'a Value,
    pub config: &'a Value,
    pub context: &'a Value,
    pub metadata: &'a Value,
    pub stream_modes: Vec<String>,
    /// The thread's values before this run (null before its first successful run).
    pub values: Value,
}

impl RunInput<'_> {
    /// The JSON that `command` and `http` graphs receive.
    pub fn as_json(&self) -> Value {
        json!({
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "assistant_id": self.assistant_id,
            "graph_id": self.graph_id,
            "input": self.input,
            "config": self.config,
            "context": self.context,
            "metadata": self.metadata,
            "values": self.values,
        })
    }
}

/// A run that did not succeed: LangGraph's `{"error": type, "message": …}` plus whether it
/// was a timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub timed_out: bool,
    pub error: Value,
}

impl Failure {
    pub fn error(kind: &str, message: impl Into<String>) -> Failure {
        Failure {
            timed_out: false,
            error: json!({"error": kind, "message": message.into()}),
        }
    }

    pub fn timeout(limit: Duration) -> Failure {
        Failure {
            timed_out: true,
            error: json!({"error": "TimeoutError", "message": format!("run exceeded its timeout of {}", humantime::format_duration(limit))}),
        }
    }
}

/// Publishes a run's events, only in the stream modes the client asked for.
#[derive(Clone)]
pub struct Emitter {
    hub: EventHub,
    run_id: String,
    modes: Vec<String>,
}

impl Emitter {
    pub fn new(hub: EventHub, run_id: String, modes: Vec<String>) -> Emitter {
        Emitter { hub, run_id, modes }
    }

    pub fn emit(&self, mode: &str, data: Value) {
        self.emit_with(mode, || data);
    }

    /// Like `emit`, building the event only when its mode is streamed.
    pub fn emit_with(&self, mode: &str, data: impl FnOnce() -> Value) {
        if self.modes.iter().any(|m| m == mode) {
            self.hub.publish(&self.run_id, mode, data());
        }
    }

    /// Events that are not a stream mode of their own (errors): always sent.
    pub fn emit_always(&self, event: &str, data: Value) {
        self.hub.publish(&self.run_id, event, data);
    }
}

/// Why a configured graph cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("environment variable {0} (api_key_env) is not set")]
    ApiKeyEnvUnset(String),
}

#[derive(Debug, Clone)]
pub enum Executor {
    Echo,
    Command(command::CommandGraph),
    Http(http::HttpGraph),
    Langgraph(langgraph::LanggraphGraph),
}

impl Executor {
    /// Builds the executor of a graph; `env` gives the variables it reads now.
    pub fn from_config(
        config: &GraphConfig,
        client: &reqwest::Client,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Executor, GraphError> {
        Ok(match config {
            GraphConfig::Echo {} => Executor::Echo,
            GraphConfig::Command {
                command,
                cwd,
                env,
                inherit_env,
                timeout,
            } => Executor::Command(command::CommandGraph::new(
                command.clone(),
                cwd.clone(),
                env,
                *inherit_env,
                *timeout,
            )),
            GraphConfig::Http {
                url,
                headers,
                timeout,
            } => Executor::Http(http::HttpGraph {
                client: client.clone(),
                url: url.clone(),
                headers: headers.clone(),
                timeout: *timeout,
            }),
            GraphConfig::Langgraph {
                url,
                assistant_id,
                api_key,
                api_key_env,
                timeout,
            } => {
                let api_key = match (api_key, api_key_env) {
                    (Some(key), _) => Some(key.clone()),
                    (None, Some(var)) => {
                        Some(env(var).ok_or_else(|| GraphError::ApiKeyEnvUnset(var.clone()))?)
                    }
                    (None, None) => None,
                };
                Executor::Langgraph(langgraph::LanggraphGraph {
                    client: client.clone(),
                    url: url.trim_end_matches('/').to_string(),
                    assistant_id: assistant_id.clone(),
                    api_key,
                    timeout: *timeout,
                })
            }
        })
    }

    /// Why this graph's runs cannot start on this machine, when that can be told before a
    /// run (a `command` graph's program or working directory is missing).
    pub fn cannot_start(&self) -> Option<String> {
        match self {
            Executor::Command(graph) => graph.cannot_start(),
            _ => None,
        }
    }

    /// The graph's own timeout, if it has one.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Executor::Echo => None,
            Executor::Command(g) => g.timeout,
            Executor::Http(g) => g.timeout,
            Executor::Langgraph(g) => g.timeout,
        }
    }

    /// Runs the graph to its final values. Cancellation is the caller's (drop the future).
    pub async fn execute(&self, run: &RunInput<'_>, events: &Emitter) -> Result<Value, Failure> {
        match self {
            Executor::Echo => echo::run(run, events),
            Executor::Command(graph) => graph.run(run, events).await,
            Executor::Http(graph) => graph.run(run, events).await,
            Executor::Langgraph(graph) => graph.run(run, events).await,
        }
    }
}
