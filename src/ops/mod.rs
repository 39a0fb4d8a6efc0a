//! The ops commands (`cronhook crons|threads|runs|deliveries …`): each is one or two calls to a
//! running daemon's REST API (never the database), shown as a table or, with `--json`, as
//! the daemon's JSON. `apply` and `export` keep a set of crons as a file (`apply`).
//! Every failure is an [`OpsError`], turned into one stderr line and its exit code here
//! and nowhere else.

pub mod apply;
pub mod client;
pub mod cronfile;
pub mod render;

use std::io::Write;
use std::process::ExitCode;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::cli::{
    ClientArgs, CronFields, CronsBackfill, CronsCommand, CronsCreate, CronsHistory, CronsList,
    CronsNext, CronsUpdate, DeliveriesCommand, DeliveriesList, OpsCommand, RunsCommand, RunsList,
    ThreadsCommand, ThreadsList, value_name,
};
use crate::store::assistants::assistant_id_for_graph;
pub use client::{Answer, Client, OpsError, OpsResult};

/// Runs one ops command and prints its outcome; the exit code follows `cli::EXIT_CODES`.
pub async fn run(args: &ClientArgs, command: OpsCommand) -> ExitCode {
    let client = match Client::new(&args.url, args.api_key.as_ref()) {
        Ok(client) => client,
        Err(err) => return failed(&err),
    };
    let outcome = match command {
        OpsCommand::Apply(apply) => return finished(apply::run(&client, &apply).await),
        OpsCommand::Export(export) => return finished(apply::export(&client, &export).await),
        OpsCommand::Crons(command) => crons(&client, command).await,
        OpsCommand::Threads(command) => threads(&client, command).await,
        OpsCommand::Runs(command) => runs(&client, command).await,
        OpsCommand::Deliveries(command) => deliveries(&client, command).await,
    };
    match outcome {
        Ok(shown) => {
            print(&shown, args.json);
            ExitCode::SUCCESS
        }
        Err(err) => failed(&err),
    }
}

/// A command's own exit code, or its failure's.
fn finished(outcome: OpsResult<u8>) -> ExitCode {
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(err) => failed(&err),
    }
}

fn failed(err: &OpsError) -> ExitCode {
    eprintln!("cronhook: {err}");
    ExitCode::from(err.exit_code())
}

/// What a command got back and how a person sees it.
struct Shown {
    answer: Answer,
    view: View,
    /// A hint for people, printed to stderr after a table (never with `--json`).
    note: Option<String>,
}

impl Shown {
    fn new(answer: Answer, view: View) -> Shown {
        Shown {
            answer,
            view,
            note: None,
        }
    }
}

enum View {
    /// Crons, with their owner when the caller sees every identity's.
    Crons {
        owners: bool,
    },
    Threads,
    Runs,
    Deliveries,
    Next,
    /// A cron's history, instants shown in this zone too.
    History(chrono_tz::Tz),
    /// One delivery and its attempts.
    Delivery,
    Object,
    /// A sentence for answers without a body (delete).
    Message(String),
}

async fn crons(client: &Client, command: CronsCommand) -> OpsResult<Shown> {
    let shown = |answer, view| Ok(Shown::new(answer, view));
    match command {
        CronsCommand::List(list) => {
            let answer = client
                .post("/runs/crons/search", Some(&search_body(&list)))
                .await?;
            let info = client.get("/info", &[]).await?;
            let owners =
                info.body["features"]["auth"] == true && info.body["caller"]["admin"] == true;
            shown(answer, View::Crons { owners })
        }
        CronsCommand::Get { cron_id } => {
            shown(client.get(&cron_path(cron_id), &[]).await?, View::Object)
        }
        CronsCommand::Create(create) => {
            let path = match create.thread {
                Some(thread) => format!("/threads/{thread}/runs/crons"),
                None => "/runs/crons".to_string(),
            };
            let answer = client.post(&path, Some(&create_body(&create))).await?;
            shown(answer, View::Object)
        }
        CronsCommand::Update(update) => {
            let body = update_body(&update);
            if body.as_object().is_some_and(Map::is_empty) {
                return Err(OpsError::Usage(
                    "crons update: nothing to change: give at least one field, e.g. --schedule, \
                     --timezone, --enabled/--disabled (see cronhook crons update --help)"
                        .into(),
                ));
            }
            let answer = client.patch(&cron_path(update.cron_id), &body).await?;
            shown(answer, View::Object)
        }
        CronsCommand::Pause { cron_id } => {
            let answer = client
                .patch(&cron_path(cron_id), &json!({"enabled": false}))
                .await?;
            shown(answer, View::Object)
        }
        CronsCommand::Resume { cron_id } => {
            let answer = client
                .patch(&cron_path(cron_id), &json!({"enabled": true}))
                .await?;
            shown(answer, View::Object)
        }
        CronsCommand::Delete { cron_id } => {
            let answer = client.delete(&cron_path(cron_id)).await?;
            shown(answer, View::Message(format!("deleted cron {cron_id}")))
        }
        CronsCommand::Trigger { cron_id } => {
            let cron = client.get(&cron_path(cron_id), &[]).await?;
            let path = format!("{}/trigger", cron_path(cron_id));
            let mut triggered = Shown::new(client.post(&path, None).await?, View::Object);
            if cron.body["thread_id"].is_null() && cron.body["on_run_completed"] != "keep" {
                triggered.note = Some(format!(
                    "(this stateless cron deletes the run's thread when the run ends; \
                     follow it with: cronhook crons history {cron_id})"
                ));
            }
            Ok(triggered)
        }
        CronsCommand::Next(next) => shown(
            client.get(&next_path(&next), &next_query(&next)).await?,
            View::Next,
        ),
        CronsCommand::Backfill(backfill) => {
            let path = format!("{}/backfill", cron_path(backfill.cron_id));
            let answer = client.post(&path, Some(&backfill_body(&backfill))).await?;
            shown(answer, View::Object)
        }
        CronsCommand::History(history) => {
            let cron = client.get(&cron_path(history.cron_id), &[]).await?;
            let zone = cron.body["timezone"]
                .as_str()
                .and_then(|zone| zone.parse().ok())
                .unwrap_or(chrono_tz::UTC);
            let path = format!("{}/history", cron_path(history.cron_id));
            let answer = client.get(&path, &history_query(&history)).await?;
            shown(answer, View::History(zone))
        }
    }
}

async fn threads(client: &Client, command: ThreadsCommand) -> OpsResult<Shown> {
    match command {
        ThreadsCommand::Create {
            metadata,
            thread_id,
        } => {
            let mut body = Map::new();
            if let Some(metadata) = metadata {
                body.insert("metadata".into(), metadata);
            }
            if let Some(thread_id) = thread_id {
                body.insert("thread_id".into(), json!(thread_id));
            }
            let answer = client.post("/threads", Some(&Value::Object(body))).await?;
            Ok(Shown::new(answer, View::Object))
        }
        ThreadsCommand::Get { thread_id } => {
            let answer = client.get(&format!("/threads/{thread_id}"), &[]).await?;
            Ok(Shown::new(answer, View::Object))
        }
        ThreadsCommand::List(list) => {
            let answer = client
                .post("/threads/search", Some(&threads_search_body(&list)))
                .await?;
            Ok(Shown::new(answer, View::Threads))
        }
    }
}

async fn runs(client: &Client, command: RunsCommand) -> OpsResult<Shown> {
    match command {
        RunsCommand::List(list) => {
            let answer = client
                .get(
                    &format!("/threads/{}/runs", list.thread),
                    &runs_query(&list),
                )
                .await
                .map_err(explain_missing_thread)?;
            Ok(Shown::new(answer, View::Runs))
        }
        RunsCommand::Get { thread, run_id } => {
            let path = format!("/threads/{thread}/runs/{run_id}");
            let mut answer = client
                .get(&path, &[])
                .await
                .map_err(explain_missing_thread)?;
            // The Run object is LangGraph's and has no error; an ended run's `join` answers it.
            if matches!(
                answer.body["status"].as_str(),
                Some("error" | "timeout" | "interrupted")
            ) {
                let outcome = client.get(&format!("{path}/join"), &[]).await?;
                if let (Some(error), Some(run)) =
                    (outcome.body.get("__error__"), answer.body.as_object_mut())
                {
                    run.insert("error".into(), error.clone());
                }
            }
            Ok(Shown::new(answer, View::Object))
        }
    }
}

/// A stateless cron's thread is gone once its run ends (`on_run_completed: delete`), which
/// surprises whoever copied the `thread_id` a trigger printed: say where the outcome is.
fn explain_missing_thread(err: OpsError) -> OpsError {
    match err {
        OpsError::NotFound { detail } => OpsError::NotFound {
            detail: format!(
                "{detail} (a stateless cron's run deletes its thread when it ends unless the \
                 cron has on_run_completed=keep; its outcome stays in: cronhook crons history CRON_ID)"
            ),
        },
        other => other,
    }
}

async fn deliveries(client: &Client, command: DeliveriesCommand) -> OpsResult<Shown> {
    match command {
        DeliveriesCommand::List(list) => {
            let answer = client
                .get("/webhooks/deliveries", &deliveries_query(&list))
                .await?;
            Ok(Shown::new(answer, View::Deliveries))
        }
        DeliveriesCommand::Get { delivery_id } => {
            let answer = client
                .get(&format!("/webhooks/deliveries/{delivery_id}"), &[])
                .await?;
            Ok(Shown::new(answer, View::Delivery))
        }
        DeliveriesCommand::Retry { delivery_id } => {
            let answer = client
                .post(&format!("/webhooks/deliveries/{delivery_id}/retry"), None)
                .await?;
            Ok(Shown::new(answer, View::Object))
        }
    }
}

fn cron_path(cron_id: Uuid) -> String {
    format!("/runs/crons/{cron_id}")
}

fn next_path(next: &CronsNext) -> String {
    format!("{}/next", cron_path(next.cron_id))
}

fn next_query(next: &CronsNext) -> Vec<(&'static str, String)> {
    let mut query = vec![("count", next.count.to_string())];
    if let Some(after) = &next.after {
        query.push(("after", after.clone()));
    }
    query
}

/// `GET /runs/crons/{id}/history`: paging and the filters given.
fn history_query(history: &CronsHistory) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("limit", history.limit.to_string()),
        ("offset", history.offset.to_string()),
    ];
    if let Some(fire) = &history.fire {
        query.push(("fire", value_name(fire)));
    }
    if let Some(status) = &history.status {
        query.push(("run_status", value_name(status)));
    }
    query
}

/// `POST /threads/search`: only the filters given.
fn threads_search_body(list: &ThreadsList) -> Value {
    let mut body = Map::new();
    body.insert("limit".into(), json!(list.limit));
    body.insert("offset".into(), json!(list.offset));
    if let Some(status) = &list.status {
        body.insert("status".into(), json!(value_name(status)));
    }
    if let Some(metadata) = &list.metadata {
        body.insert("metadata".into(), metadata.clone());
    }
    Value::Object(body)
}

/// `POST /runs/crons/search`: only the filters given.
fn search_body(list: &CronsList) -> Value {
    let mut body = Map::new();
    body.insert("limit".into(), json!(list.limit));
    body.insert("offset".into(), json!(list.offset));
    if let Some(assistant) = &list.assistant {
        body.insert("assistant_id".into(), json!(assistant_id(assistant)));
    }
    if let Some(thread) = list.thread {
        body.insert("thread_id".into(), json!(thread));
    }
    if list.enabled || list.disabled {
        body.insert("enabled".into(), json!(list.enabled));
    }
    Value::Object(body)
}

/// Search filters by assistant id; a graph name stands for its assistant, whose id cronhook
/// derives from the name (UUIDv5, as LangGraph does).
fn assistant_id(assistant: &str) -> String {
    match Uuid::parse_str(assistant) {
        Ok(id) => id.to_string(),
        Err(_) => assistant_id_for_graph(assistant).to_string(),
    }
}

fn create_body(create: &CronsCreate) -> Value {
    let mut body = Map::new();
    body.insert("assistant_id".into(), json!(create.assistant));
    body.insert("schedule".into(), json!(create.schedule));
    if create.disabled {
        body.insert("enabled".into(), json!(false));
    }
    add_fields(&mut body, &create.fields);
    Value::Object(body)
}

/// `PATCH /runs/crons/{id}`: the fields given and nothing else.
fn update_body(update: &CronsUpdate) -> Value {
    let mut body = Map::new();
    if let Some(schedule) = &update.schedule {
        body.insert("schedule".into(), json!(schedule));
    }
    if update.enabled || update.disabled {
        body.insert("enabled".into(), json!(update.enabled));
    }
    if update.clear_end_time {
        body.insert("end_time".into(), Value::Null);
    }
    if update.clear_remaining_runs {
        body.insert("remaining_runs".into(), Value::Null);
    }
    add_fields(&mut body, &update.fields);
    Value::Object(body)
}

fn add_fields(body: &mut Map<String, Value>, fields: &CronFields) {
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(key.to_string(), value);
        }
    };
    put("timezone", fields.timezone.as_ref().map(|v| json!(v)));
    put("input", fields.input.clone());
    put("metadata", fields.metadata.clone());
    put("config", fields.run_config.clone());
    put("context", fields.context.clone());
    put("webhook", fields.webhook.as_ref().map(|v| json!(v)));
    put("end_time", fields.end_time.as_ref().map(|v| json!(v)));
    put(
        "on_run_completed",
        fields.on_run_completed.map(|v| json!(value_name(&v))),
    );
    put(
        "multitask_strategy",
        fields.multitask_strategy.map(|v| json!(value_name(&v))),
    );
    put(
        "misfire_policy",
        fields.misfire_policy.map(|v| json!(value_name(&v))),
    );
    put(
        "catchup_window_seconds",
        fields.catchup_window_seconds.map(|v| json!(v)),
    );
    put("overlap", fields.overlap.map(|v| json!(value_name(&v))));
    put("jitter_seconds", fields.jitter_seconds.map(|v| json!(v)));
    put("remaining_runs", fields.remaining_runs.map(|v| json!(v)));
    put(
        "paused_until",
        fields.paused_until.as_ref().map(|v| json!(v)),
    );
    put(
        "dst_repeat",
        fields.dst_repeat.map(|v| json!(value_name(&v))),
    );
    put("dst_gap", fields.dst_gap.map(|v| json!(value_name(&v))));
}

/// `POST /runs/crons/{id}/backfill`.
fn backfill_body(backfill: &CronsBackfill) -> Value {
    let mut body = json!({
        "start_time": backfill.from,
        "end_time": backfill.to,
        "dry_run": backfill.dry_run,
    });
    if let Some(overlap) = backfill.overlap {
        body["overlap"] = json!(value_name(&overlap));
    }
    body
}

fn runs_query(list: &RunsList) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("limit", list.limit.to_string()),
        ("offset", list.offset.to_string()),
    ];
    if let Some(status) = &list.status {
        query.push(("status", value_name(status)));
    }
    query
}

fn deliveries_query(list: &DeliveriesList) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("limit", list.limit.to_string()),
        ("offset", list.offset.to_string()),
    ];
    if let Some(run) = list.run {
        query.push(("run_id", run.to_string()));
    }
    if let Some(cron) = list.cron {
        query.push(("cron_id", cron.to_string()));
    }
    if let Some(status) = &list.status {
        query.push(("status", value_name(status)));
    }
    if let Some(kind) = &list.kind {
        query.push(("kind", value_name(kind)));
    }
    query
}

/// Prints to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print(shown: &Shown, json: bool) {
    let body = &shown.answer.body;
    let text = if json {
        if body.is_null() {
            return;
        }
        serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string())
    } else {
        match &shown.view {
            View::Crons { owners } => render::crons(body, *owners),
            View::Threads => render::threads(body),
            View::Runs => render::runs(body),
            View::Deliveries => render::deliveries(body),
            View::Next => render::next(body),
            View::History(zone) => render::history(body, *zone),
            View::Delivery => render::delivery(body),
            View::Object => render::object(body),
            View::Message(message) => message.clone(),
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
    if json {
        return;
    }
    if let Some(note) = &shown.note {
        eprintln!("{note}");
    }
    if matches!(
        shown.view,
        View::Crons { .. } | View::Threads | View::Runs | View::Deliveries | View::History(_)
    ) && let Some(next) = shown.answer.next_offset()
    {
        let total = shown
            .answer
            .total()
            .map(|total| format!(" of {total}"))
            .unwrap_or_default();
        eprintln!("(more{total}: add --offset {next})");
    }
}
