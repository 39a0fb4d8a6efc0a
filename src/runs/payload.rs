//! How a run looks to clients: the Run object of the API (its wire format and its OpenAPI
//! schema, one struct) and the webhook body built on it.

use entity::run;
use entity::states::{MultitaskStrategy, RunStatus};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::time::iso;

/// A run: LangGraph's Run object, plus cronhook's `cron_id` and `scheduled_for` (null unless
/// a cron fired the run).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Run {
    #[schema(format = Uuid)]
    pub run_id: String,
    #[schema(format = Uuid)]
    pub thread_id: String,
    #[schema(format = Uuid)]
    pub assistant_id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub status: RunStatus,
    pub metadata: Map<String, Value>,
    /// The create body's run settings (input, config, context, stream_mode, webhook, …).
    pub kwargs: Map<String, Value>,
    pub multitask_strategy: MultitaskStrategy,
    /// Always null.
    pub langsmith_session_name: Option<String>,
    /// The cron that fired it, if one did.
    #[schema(format = Uuid)]
    pub cron_id: Option<String>,
    /// The instant its cron fired for.
    #[schema(format = DateTime)]
    pub scheduled_for: Option<String>,
}

impl From<&run::Model> for Run {
    fn from(run: &run::Model) -> Run {
        Run {
            run_id: run.run_id.clone(),
            thread_id: run.thread_id.clone(),
            assistant_id: run.assistant_id.clone(),
            created_at: iso(run.created_at),
            updated_at: iso(run.updated_at),
            status: run.status,
            metadata: object(&run.metadata),
            kwargs: object(&run.kwargs),
            multitask_strategy: run.multitask_strategy,
            langsmith_session_name: None,
            cron_id: run.cron_id.clone(),
            scheduled_for: run.scheduled_for.map(iso),
        }
    }
}

/// The webhook body LangGraph posts when a run ends: the run plus its timing, its final
/// values (null when it has none) and, on failure, its error. `webhook_sent_at` is added
/// per attempt by the sender.
#[derive(Debug, Clone, Serialize)]
pub struct RunEnded {
    #[serde(flatten)]
    pub run: Run,
    pub run_started_at: Option<String>,
    pub run_ended_at: Option<String>,
    pub values: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl From<&run::Model> for RunEnded {
    fn from(run: &run::Model) -> RunEnded {
        RunEnded {
            run: Run::from(run),
            run_started_at: run.started_at.map(iso),
            run_ended_at: run.ended_at.map(iso),
            values: run.output.clone().unwrap_or(Value::Null),
            error: run.error.clone(),
        }
    }
}

/// The webhook body of a run that ended, as JSON (kept in the outbox row).
pub fn webhook_payload(run: &run::Model) -> Value {
    to_json(&RunEnded::from(run))
}

/// An API object as JSON. The objects are maps with string keys and JSON values, which
/// always serialize; `Null` would only come of a broken `Serialize` impl.
pub fn to_json<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or_default()
}

/// A JSON column that holds an object, as that object (`{}` for anything else).
pub fn object(value: &Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    }
}
