//! The built-in `echo` graph: deterministic, no network. For `messages` input it appends an
//! assistant message echoing the last user message (state `messages` accumulates, as
//! LangGraph's `add` reducer does); any other input becomes the values as given.

use serde_json::{Map, Value, json};

use super::{Emitter, Failure, RunInput};

pub fn run(run: &RunInput<'_>, events: &Emitter) -> Result<Value, Failure> {
    let mut state = match &run.values {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    match run.input {
        Value::Object(input) => {
            for (key, value) in input {
                if key == "messages" {
                    append_messages(&mut state, value);
                } else {
                    state.insert(key.clone(), value.clone());
                }
            }
        }
        Value::Null => {
            return Err(Failure::error(
                "EmptyInputError",
                "Received no input for __start__",
            ));
        }
        other => return Ok(other.clone()),
    }
    // Events are built only in the modes streamed (a cron's run streams `values` alone): at
    // a burst's instant, every JSON value built here delays the start of the runs after it.
    events.emit_with("values", || Value::Object(state.clone()));

    let reply = state
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| messages.iter().rev().find(|m| is_user(m)))
        .map(|last| json!({"role": "assistant", "content": content(last)}));
    let Some(reply) = reply else {
        events.emit_with("updates", || json!({"echo": null}));
        return Ok(Value::Object(state));
    };
    events.emit_with("updates", || json!({"echo": {"messages": [reply.clone()]}}));
    with_messages(&mut state, |list| list.push(reply));
    let values = Value::Object(state);
    events.emit_with("values", || values.clone());
    Ok(values)
}

fn append_messages(state: &mut Map<String, Value>, new: &Value) {
    with_messages(state, |list| match new {
        Value::Array(items) => list.extend(items.iter().cloned()),
        Value::Null => {}
        one => list.push(one.clone()),
    });
}

/// Calls `f` on the state's `messages` list, made (or reset, if it is not a list) first.
fn with_messages(state: &mut Map<String, Value>, f: impl FnOnce(&mut Vec<Value>)) {
    let list = state
        .entry("messages")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Value::Array(list) = list {
        f(list);
    }
}

fn is_user(message: &Value) -> bool {
    let role = message
        .get("role")
        .or_else(|| message.get("type"))
        .and_then(Value::as_str);
    matches!(role, Some("user" | "human"))
}

fn content(message: &Value) -> Value {
    match message.get("content") {
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(other) => Value::String(other.to_string()),
        None => Value::String(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::events::{EventHub, Frame};

    static EMPTY: Value = Value::Null;

    fn input(input: &Value, values: Value) -> RunInput<'_> {
        RunInput {
            run_id: "r",
            thread_id: "t",
            assistant_id: "a",
            graph_id: "agent",
            input,
            config: &EMPTY,
            context: &EMPTY,
            metadata: &EMPTY,
            stream_modes: vec![],
            values,
        }
    }

    #[test]
    fn echoes_the_last_user_message_and_accumulates() {
        let hub = EventHub::new();
        let events = Emitter::new(
            hub.clone(),
            "r".into(),
            vec!["values".into(), "updates".into()],
        );
        let prior = json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "a"}]});
        let out = run(
            &input(
                &json!({"messages": [{"role": "user", "content": "hi"}]}),
                prior,
            ),
            &events,
        )
        .expect("echo never fails");
        let messages = out["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[3], json!({"role": "assistant", "content": "hi"}));
        let sub = hub.subscribe("r", None).expect("events");
        let names: Vec<String> = sub
            .replay
            .iter()
            .filter_map(|f| match f {
                Frame::Event { event, .. } => Some(event.clone()),
                Frame::End(_) => None,
            })
            .collect();
        assert_eq!(names, ["values", "updates", "values"]);
    }

    #[test]
    fn other_input_is_the_values() {
        let hub = EventHub::new();
        let events = Emitter::new(hub, "r".into(), vec![]);
        let out = run(&input(&json!({"x": 1}), Value::Null), &events).expect("ok");
        assert_eq!(out, json!({"x": 1}));
    }
}
