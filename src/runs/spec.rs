//! Building a queued run from a run-create body: used by the API for client requests and by
//! the scheduler for a cron's payload, so both produce the same kwargs.

use serde_json::{Map, Value, json};

use entity::states::{OnCompletion, RunStatus};
use entity::{cron, run};
use uuid::Uuid;

use crate::time::Millis;
use entity::states::MultitaskStrategy;

/// The run one instant of `cron` queues (a scheduled fire or a manual trigger): its payload,
/// on its thread (or a new one), with the cron's metadata under the payload's, as LangGraph
/// merges them.
/// The run of `cron`'s instant `instant`, built at `now`; it waits until `start` (its
/// instant plus the cron's jitter, or a manual trigger's own time).
pub fn cron_run(
    cron: &cron::Model,
    graph_id: String,
    instant: Millis,
    start: Millis,
    now: Millis,
) -> run::Model {
    let mut metadata = match &cron.metadata {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if let Some(Value::Object(own)) = cron.payload.get("metadata") {
        metadata.extend(own.clone());
    }
    RunSpec {
        run_id: Uuid::now_v7().to_string(),
        thread_id: cron
            .thread_id
            .clone()
            .unwrap_or_else(|| Uuid::now_v7().to_string()),
        assistant_id: cron.assistant_id.clone(),
        graph_id,
        body: &cron.payload,
        metadata,
        strategy: MultitaskStrategy::of_payload(&cron.payload),
        on_completion: cron
            .thread_id
            .is_none()
            .then(|| cron.on_run_completed.unwrap_or(OnCompletion::Delete)),
        // Fired ahead of its instant (stateless crons), it waits for the instant.
        available_at: now.max(start),
        cron_id: Some(cron.cron_id.clone()),
        scheduled_for: Some(instant),
        user_id: cron.user_id.clone(),
        now,
    }
    .into_model()
}

/// A run about to be queued.
pub struct RunSpec<'a> {
    pub run_id: String,
    pub thread_id: String,
    pub assistant_id: String,
    pub graph_id: String,
    /// The run-create body (input, config, context, webhook, stream_mode, …).
    pub body: &'a Value,
    pub metadata: Map<String, Value>,
    pub strategy: MultitaskStrategy,
    /// Stateless runs: what becomes of their throw-away thread afterwards.
    pub on_completion: Option<OnCompletion>,
    pub available_at: Millis,
    pub cron_id: Option<String>,
    pub scheduled_for: Option<Millis>,
    /// The identity (API key) the run belongs to; a cron's runs belong to its owner.
    pub user_id: Option<String>,
    pub now: Millis,
}

impl RunSpec<'_> {
    pub fn into_model(self) -> run::Model {
        let kwargs = self.kwargs();
        run::Model {
            run_id: self.run_id,
            thread_id: self.thread_id,
            assistant_id: self.assistant_id,
            status: RunStatus::Pending,
            metadata: Value::Object(self.metadata),
            kwargs,
            multitask_strategy: self.strategy,
            user_id: self.user_id,
            cron_id: self.cron_id,
            scheduled_for: self.scheduled_for,
            on_completion: self.on_completion,
            available_at: self.available_at,
            attempt: 0,
            lease_owner: None,
            lease_expires_at: None,
            cancel_action: None,
            output: None,
            error: None,
            started_at: None,
            ended_at: None,
            // As in LangGraph: a delayed run is "created" when it may start, which is also
            // its place in its thread's queue.
            created_at: self.available_at,
            updated_at: self.now,
        }
    }

    /// The run's kwargs, as LangGraph stores them: the body's run fields, with
    /// `config.configurable` carrying the run's ids (and the cron's, for a cron fire).
    fn kwargs(&self) -> Value {
        let field = |key: &str| self.body.get(key).cloned().unwrap_or(Value::Null);
        let flag = |key: &str, default: bool| {
            self.body
                .get(key)
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        let mut config = match self.body.get("config") {
            Some(Value::Object(config)) => config.clone(),
            _ => Map::new(),
        };
        let configurable = config
            .entry("configurable")
            .or_insert_with(|| Value::Object(Map::new()));
        if !configurable.is_object() {
            *configurable = Value::Object(Map::new());
        }
        if let Value::Object(configurable) = configurable {
            configurable.insert("run_id".into(), json!(self.run_id));
            configurable.insert("thread_id".into(), json!(self.thread_id));
            configurable.insert("graph_id".into(), json!(self.graph_id));
            configurable.insert("assistant_id".into(), json!(self.assistant_id));
            if let Some(cron_id) = &self.cron_id {
                configurable.insert("cron_id".into(), json!(cron_id));
            }
        }
        // LangGraph fills `context` from the caller's `configurable` when none is given.
        let context = match (self.body.get("context"), self.body.get("config")) {
            (Some(Value::Object(context)), _) => Value::Object(context.clone()),
            (_, Some(config)) => match config.get("configurable") {
                Some(Value::Object(configurable)) => Value::Object(configurable.clone()),
                _ => json!({}),
            },
            _ => json!({}),
        };
        let stream_mode = match self.body.get("stream_mode") {
            None | Some(Value::Null) => json!(["values"]),
            Some(Value::String(mode)) => json!([mode]),
            Some(modes) => modes.clone(),
        };
        json!({
            "input": field("input"),
            "command": field("command"),
            "config": config,
            "context": context,
            "stream_mode": stream_mode,
            "interrupt_before": field("interrupt_before"),
            "interrupt_after": field("interrupt_after"),
            "webhook": field("webhook"),
            "feedback_keys": field("feedback_keys"),
            "temporary": self.on_completion == Some(OnCompletion::Delete),
            "subgraphs": flag("stream_subgraphs", false),
            "resumable": flag("stream_resumable", false),
            "checkpoint_during": flag("checkpoint_during", true),
            "durability": self.body.get("durability").cloned().unwrap_or_else(|| json!("async")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kwargs_carry_ids_and_defaults() {
        let body = json!({"input": {"x": 1}, "config": {"tags": ["t"]}, "stream_mode": "updates"});
        let run = RunSpec {
            run_id: "r".into(),
            thread_id: "t".into(),
            assistant_id: "a".into(),
            graph_id: "agent".into(),
            body: &body,
            metadata: Map::new(),
            strategy: MultitaskStrategy::Enqueue,
            on_completion: Some(OnCompletion::Delete),
            available_at: 0,
            cron_id: Some("c".into()),
            scheduled_for: Some(1000),
            user_id: Some("alice".into()),
            now: 0,
        }
        .into_model();
        let kwargs = &run.kwargs;
        assert_eq!(kwargs["input"], json!({"x": 1}));
        assert_eq!(kwargs["config"]["tags"], json!(["t"]));
        assert_eq!(kwargs["config"]["configurable"]["cron_id"], "c");
        assert_eq!(kwargs["config"]["configurable"]["run_id"], "r");
        assert_eq!(kwargs["stream_mode"], json!(["updates"]));
        assert_eq!(kwargs["temporary"], true);
        assert_eq!(run.cron_id.as_deref(), Some("c"));
        assert_eq!(run.multitask_strategy, MultitaskStrategy::Enqueue);
    }
}
