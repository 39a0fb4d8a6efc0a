//! How a run looks to clients: the Run object of the API and the webhook body.

use serde_json::{Map, Value, json};

use entity::run;

use crate::time::iso;

/// LangGraph's Run object, plus cronhook's `cron_id` and `scheduled_for` (null unless a
/// cron fired the run).
pub fn render_run(run: &run::Model) -> Value {
    json!({
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "status": run.status,
        "metadata": object(&run.metadata),
        "kwargs": object(&run.kwargs),
        "multitask_strategy": run.multitask_strategy,
        "langsmith_session_name": null,
        "cron_id": run.cron_id,
        "scheduled_for": run.scheduled_for.map(iso),
    })
}

/// The webhook body LangGraph posts when a run ends: the run plus its timing, its final
/// values (null when it has none) and, on failure, its error. `webhook_sent_at` is added
/// per attempt by the sender.
pub fn webhook_payload(run: &run::Model) -> Value {
    let mut body = match render_run(run) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    body.insert("run_started_at".into(), json!(run.started_at.map(iso)));
    body.insert("run_ended_at".into(), json!(run.ended_at.map(iso)));
    body.insert("values".into(), run.output.clone().unwrap_or(Value::Null));
    if let Some(error) = &run.error {
        body.insert("error".into(), error.clone());
    }
    Value::Object(body)
}

fn object(value: &Value) -> Value {
    match value {
        Value::Object(_) => value.clone(),
        _ => Value::Object(Map::new()),
    }
}
