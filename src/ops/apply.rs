//! `cronhook apply` and `cronhook export`: a set of crons kept as a file.
//!
//! Each cron apply makes carries its set and name in its metadata ([`SET_KEY`],
//! [`NAME_KEY`]); a set's crons are found with `POST /runs/crons/search` on those keys, so
//! crons made through the API (or of another set) are never touched. apply compares
//! normalized values (defaults filled in, the server's additions taken out) and sends
//! only what differs. A difference `PATCH` cannot make (assistant, thread, multitask
//! strategy, or removing a value `PATCH` cannot clear) makes the cron a *replace*: deleted
//! and created again, only with `--replace`, since its id and history go with it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::num::NonZeroU32;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use entity::states::{DstGap, DstRepeat, MultitaskStrategy, OnCompletion, Overlap};

use super::client::{Client, OpsError, OpsResult};
use super::cronfile::{
    self, CronEntry, Input, Instant, Label, Metadata, NAME_KEY, SET_KEY, ScheduleText, WebhookUrl,
    Zone,
};
use crate::api::Cron;
use crate::cli::{ApplyArgs, ExportArgs};
use crate::store::assistants::assistant_id_for_graph;
use crate::store::fires::RUN_LIMIT_REACHED;
use crate::time::parse_instant;

/// What `apply` will do to one cron.
#[derive(Debug)]
pub enum Step {
    Create {
        name: String,
        path: String,
        body: Value,
    },
    Update {
        name: String,
        cron_id: String,
        fields: Vec<&'static str>,
        body: Value,
    },
    Replace {
        name: String,
        cron_id: String,
        reasons: Vec<String>,
        path: String,
        body: Value,
    },
    Delete {
        name: String,
        cron_id: String,
    },
}

/// Every change that brings a set to what its file says.
#[derive(Debug)]
pub struct Plan {
    pub set: String,
    pub steps: Vec<Step>,
    pub unchanged: usize,
    /// Crons of the set the file does not name, kept without `--prune`.
    pub unnamed_kept: Vec<String>,
}

/// Runs `apply`; the exit code is 0, or 2 for a dry run that found changes.
pub async fn run(client: &Client, args: &ApplyArgs) -> OpsResult<u8> {
    let loaded = cronfile::load(&args.file).map_err(|err| OpsError::Input(err.to_string()))?;
    let current = set_crons(client, &loaded.set).await?;
    let entries: Vec<CronEntry> = loaded.entries.into_iter().map(|(_, e)| e).collect();
    let plan = plan(&loaded.set, &entries, current, args.prune)?;
    print!("{}", describe(&plan, args.dry_run));
    // A dry run checks them too: a drift gate should fail on a graph the daemon lacks.
    check_references(client, &plan).await?;
    if args.dry_run {
        return Ok(if plan.steps.is_empty() { 0 } else { 2 });
    }
    let replaced: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|step| match step {
            Step::Replace { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if !replaced.is_empty() && !args.replace {
        return Err(OpsError::Input(format!(
            "nothing applied: {} must be deleted and created again (a new id, its history \
             gone) for a change PATCH cannot make; run again with --replace to do so",
            quoted(&replaced)
        )));
    }
    execute(client, &plan).await
}

/// Runs `export`: the set's crons as a crons file, on stdout or in `--output`.
pub async fn export(client: &Client, args: &ExportArgs) -> OpsResult<u8> {
    let set = Label::try_from(args.set.clone())
        .map_err(|detail| OpsError::Usage(format!("--set: {detail}")))?
        .0;
    let mut crons = set_crons(client, &set).await?;
    crons.retain(|cron| name_of(cron).is_some());
    crons.sort_by(|a, b| name_of(a).cmp(&name_of(b)));
    let mut graphs: BTreeMap<String, String> = BTreeMap::new();
    for cron in &crons {
        if !graphs.contains_key(&cron.assistant_id) {
            let graph = graph_name(client, &cron.assistant_id).await?;
            graphs.insert(cron.assistant_id.clone(), graph);
        }
    }
    let entries: Vec<CronEntry> = crons
        .iter()
        .map(|cron| entry_of(cron, &graphs))
        .collect::<OpsResult<_>>()?;
    let text = cronfile::render(&set, &entries, &[])
        .map_err(|detail| OpsError::Input(format!("cannot write set {set} as TOML: {detail}")))?;
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|err| {
            OpsError::Usage(format!("--output {}: cannot write: {err}", path.display()))
        })?,
        None => print!("{text}"),
    }
    if entries.is_empty() {
        eprintln!("cronhook: note: set {set} has no crons");
    }
    Ok(0)
}

/// Every cron of `set` the API key can see, oldest first.
async fn set_crons(client: &Client, set: &str) -> OpsResult<Vec<Cron>> {
    let mut crons = Vec::new();
    let mut offset = 0u64;
    loop {
        let body = json!({
            "metadata": {SET_KEY: set},
            "limit": 1000,
            "offset": offset,
            "sort_by": "created_at",
            "sort_order": "asc",
        });
        let answer = client.post("/runs/crons/search", Some(&body)).await?;
        let page: Vec<Cron> =
            serde_json::from_value(answer.body.clone()).map_err(|err| OpsError::Unexpected {
                url: client.base().to_string(),
                detail: format!("a cron search answer that is not a list of crons ({err})"),
            })?;
        crons.extend(page);
        match answer.next_offset().and_then(|next| next.parse().ok()) {
            Some(next) if next > offset => offset = next,
            _ => return Ok(crons),
        }
    }
}

fn name_of(cron: &Cron) -> Option<&str> {
    cron.metadata.get(NAME_KEY).and_then(Value::as_str)
}

/// The plan: creates and updates in file order, then deletes (with `prune`).
pub fn plan(set: &str, entries: &[CronEntry], current: Vec<Cron>, prune: bool) -> OpsResult<Plan> {
    let mut by_name: BTreeMap<String, Cron> = BTreeMap::new();
    for cron in current {
        let Some(name) = name_of(&cron).map(str::to_string) else {
            eprintln!(
                "cronhook: cron {} has {SET_KEY} = \"{set}\" but no {NAME_KEY}: left alone",
                cron.cron_id
            );
            continue;
        };
        if let Some(other) = by_name.get(&name) {
            return Err(OpsError::Input(format!(
                "set {set} has two crons named \"{name}\" ({} and {}): delete one \
                 (cronhook crons delete ID), then apply again",
                other.cron_id, cron.cron_id
            )));
        }
        by_name.insert(name, cron);
    }
    let mut steps = Vec::new();
    let mut unchanged = 0;
    for entry in entries {
        let name = entry.name.0.clone();
        let path = create_path(entry);
        let body = create_body(set, entry);
        let Some(cron) = by_name.remove(&name) else {
            steps.push(Step::Create { name, path, body });
            continue;
        };
        let diff = diff(&wanted(set, entry), &state_of(&cron));
        if !diff.replace.is_empty() {
            steps.push(Step::Replace {
                name,
                cron_id: cron.cron_id,
                reasons: diff.replace,
                path,
                body,
            });
        } else if diff.fields.is_empty() {
            unchanged += 1;
        } else {
            steps.push(Step::Update {
                name,
                cron_id: cron.cron_id,
                fields: diff.fields,
                body: Value::Object(diff.patch),
            });
        }
    }
    let mut unnamed_kept = Vec::new();
    for (name, cron) in by_name {
        if prune {
            steps.push(Step::Delete {
                name,
                cron_id: cron.cron_id,
            });
        } else {
            unnamed_kept.push(name);
        }
    }
    Ok(Plan {
        set: set.to_string(),
        steps,
        unchanged,
        unnamed_kept,
    })
}

/// The plan as people read it: one line per change, `+` create, `~` update (with the
/// fields), `-/+` replace (with why), `-` delete.
pub fn describe(plan: &Plan, dry_run: bool) -> String {
    let mut out = String::new();
    let count = |pick: fn(&Step) -> bool| plan.steps.iter().filter(|s| pick(s)).count();
    let creates = count(|s| matches!(s, Step::Create { .. }));
    let updates = count(|s| matches!(s, Step::Update { .. }));
    let replaces = count(|s| matches!(s, Step::Replace { .. }));
    let deletes = count(|s| matches!(s, Step::Delete { .. }));
    let _ = writeln!(
        out,
        "set {}: {creates} to create, {updates} to update, {replaces} to replace, {deletes} to \
         delete, {} unchanged",
        plan.set, plan.unchanged
    );
    for step in &plan.steps {
        let _ = match step {
            Step::Create { name, .. } => writeln!(out, "+ create {name}"),
            Step::Update { name, fields, .. } => {
                writeln!(out, "~ update {name}: {}", fields.join(", "))
            }
            Step::Replace { name, reasons, .. } => {
                writeln!(out, "-/+ replace {name}: {}", reasons.join("; "))
            }
            Step::Delete { name, cron_id } => writeln!(out, "- delete {name} ({cron_id})"),
        };
    }
    if !plan.unnamed_kept.is_empty() {
        let _ = writeln!(
            out,
            "not in the file, kept (--prune deletes them): {}",
            quoted(
                &plan
                    .unnamed_kept
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
            )
        );
    }
    if dry_run {
        let _ = writeln!(
            out,
            "{}",
            if plan.steps.is_empty() {
                "no changes"
            } else {
                "dry run: nothing changed"
            }
        );
    }
    out
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses before any change when a cron to create names an assistant or thread the
/// daemon does not know (the most common reason a create would fail half-way).
async fn check_references(client: &Client, plan: &Plan) -> OpsResult<()> {
    let mut assistants = BTreeSet::new();
    let mut threads = BTreeSet::new();
    for step in &plan.steps {
        if let Step::Create { name, path, body }
        | Step::Replace {
            name, path, body, ..
        } = step
        {
            if let Some(assistant) = body["assistant_id"].as_str()
                && assistants.insert(assistant.to_string())
                && let Err(err) = client
                    .get(
                        &format!("/assistants/{}", resolve_assistant(assistant)),
                        &[],
                    )
                    .await
            {
                return Err(refused(
                    err,
                    format!(
                        "nothing applied: cron \"{name}\": assistant \"{assistant}\" is not a graph of \
                     the daemon (add [graphs.{assistant}] to its config)"
                    ),
                ));
            }
            if let Some(thread) = path
                .strip_prefix("/threads/")
                .and_then(|rest| rest.split('/').next())
                && threads.insert(thread.to_string())
                && let Err(err) = client.get(&format!("/threads/{thread}"), &[]).await
            {
                return Err(refused(
                    err,
                    format!("nothing applied: cron \"{name}\": thread {thread} does not exist"),
                ));
            }
        }
    }
    Ok(())
}

/// A 404 becomes `detail`; any other failure stays as it is.
fn refused(err: OpsError, detail: String) -> OpsError {
    match err {
        OpsError::NotFound { .. } => OpsError::NotFound { detail },
        other => other,
    }
}

/// Carries out the plan in order; on a failure, says what was done before it.
async fn execute(client: &Client, plan: &Plan) -> OpsResult<u8> {
    let mut done = 0;
    for step in &plan.steps {
        let outcome = match step {
            Step::Create { name, path, body } => client
                .post(path, Some(body))
                .await
                .map(|answer| format!("created {name} ({})", id_in(&answer.body))),
            Step::Update {
                name,
                cron_id,
                body,
                ..
            } => client
                .patch(&format!("/runs/crons/{cron_id}"), body)
                .await
                .map(|_| format!("updated {name} ({cron_id})")),
            Step::Replace {
                name,
                cron_id,
                path,
                body,
                ..
            } => match client.delete(&format!("/runs/crons/{cron_id}")).await {
                Ok(_) => client
                    .post(path, Some(body))
                    .await
                    .map(|answer| format!("replaced {name} ({cron_id} → {})", id_in(&answer.body))),
                Err(err) => Err(err),
            },
            Step::Delete { name, cron_id } => client
                .delete(&format!("/runs/crons/{cron_id}"))
                .await
                .map(|_| format!("deleted {name} ({cron_id})")),
        };
        match outcome {
            Ok(line) => {
                println!("{line}");
                done += 1;
            }
            Err(err) => {
                eprintln!(
                    "cronhook: stopped after {done} of {} changes; the rest are not applied",
                    plan.steps.len()
                );
                return Err(err);
            }
        }
    }
    Ok(0)
}

fn id_in(body: &Value) -> &str {
    body["cron_id"].as_str().unwrap_or("?")
}

fn create_path(entry: &CronEntry) -> String {
    match entry.thread_id {
        Some(thread) => format!("/threads/{thread}/runs/crons"),
        None => "/runs/crons".to_string(),
    }
}

/// The create body: the entry's fields as the API names them, its set and name added to
/// its metadata.
fn create_body(set: &str, entry: &CronEntry) -> Value {
    let mut body = match serde_json::to_value(entry) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    body.remove("name");
    body.remove("thread_id");
    body.insert("metadata".into(), Value::Object(full_metadata(set, entry)));
    Value::Object(body)
}

fn full_metadata(set: &str, entry: &CronEntry) -> Map<String, Value> {
    let mut metadata = entry
        .metadata
        .as_ref()
        .map(|m| m.0.clone())
        .unwrap_or_default();
    metadata.insert(SET_KEY.into(), json!(set));
    metadata.insert(NAME_KEY.into(), json!(entry.name.0));
    metadata
}

/// A graph name stands for its assistant (UUIDv5 of the name, as the daemon derives it).
fn resolve_assistant(assistant: &str) -> String {
    match Uuid::parse_str(assistant) {
        Ok(id) => id.to_string(),
        Err(_) => assistant_id_for_graph(assistant).to_string(),
    }
}

/// How `PATCH` can bring a field to the wanted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Sent as wanted (null included).
    Set,
    /// Sent as wanted, but `PATCH` cannot take it back to unset.
    NoUnset,
    /// `PATCH` does not take it.
    Fixed,
}

/// One compared field: its name, the value compared, the value `PATCH` sends.
struct Field {
    name: &'static str,
    change: Change,
    compared: Value,
    sent: Value,
}

/// A cron reduced to what apply manages, defaults filled in.
struct State {
    fields: Vec<Field>,
    metadata: Map<String, Value>,
}

fn field(name: &'static str, change: Change, compared: Value, sent: Value) -> Field {
    Field {
        name,
        change,
        compared,
        sent,
    }
}

fn opt<T: serde::Serialize>(value: Option<T>) -> Value {
    value.map_or(Value::Null, |v| json!(v))
}

/// What the file wants.
fn wanted(set: &str, entry: &CronEntry) -> State {
    let zone = entry.timezone.as_ref().map_or("UTC", |z| z.0.as_str());
    let stateless = entry.thread_id.is_none();
    let on_completed = stateless.then(|| entry.on_run_completed.unwrap_or(OnCompletion::Delete));
    let config = entry.config.clone().map(Value::Object);
    let context = entry.context.clone().map(Value::Object);
    State {
        fields: vec![
            field(
                "assistant_id",
                Change::Fixed,
                json!(resolve_assistant(&entry.assistant_id.0)),
                Value::Null,
            ),
            field(
                "thread_id",
                Change::Fixed,
                opt(entry.thread_id.map(|t| t.to_string())),
                Value::Null,
            ),
            field(
                "multitask_strategy",
                Change::Fixed,
                json!(entry.multitask_strategy.unwrap_or_default()),
                Value::Null,
            ),
            field(
                "schedule",
                Change::Set,
                json!(entry.schedule.0),
                json!(entry.schedule.0),
            ),
            field("timezone", Change::Set, json!(zone), json!(zone)),
            field(
                "enabled",
                Change::Set,
                json!(entry.enabled.unwrap_or(true)),
                json!(entry.enabled.unwrap_or(true)),
            ),
            field(
                "end_time",
                Change::Set,
                opt(entry.end_time.as_ref().and_then(Instant::millis)),
                opt(entry.end_time.as_ref().map(|e| &e.0)),
            ),
            field(
                "on_run_completed",
                Change::Set,
                opt(on_completed),
                opt(on_completed),
            ),
            field(
                "pause_after_failures",
                Change::Set,
                opt(entry.pause_after_failures),
                opt(entry.pause_after_failures),
            ),
            field(
                "overlap",
                Change::Set,
                json!(entry.overlap.unwrap_or_default()),
                json!(entry.overlap.unwrap_or_default()),
            ),
            field(
                "jitter_seconds",
                Change::Set,
                json!(entry.jitter_seconds.unwrap_or(0)),
                json!(entry.jitter_seconds.unwrap_or(0)),
            ),
            field(
                "dst_repeat",
                Change::Set,
                json!(entry.dst_repeat.unwrap_or_default()),
                json!(entry.dst_repeat.unwrap_or_default()),
            ),
            field(
                "dst_gap",
                Change::Set,
                json!(entry.dst_gap.unwrap_or_default()),
                json!(entry.dst_gap.unwrap_or_default()),
            ),
            field(
                "config",
                Change::Set,
                normalized_config(config.as_ref()),
                config.unwrap_or_else(|| json!({})),
            ),
            field(
                "context",
                Change::Set,
                non_empty(context.as_ref()),
                context.unwrap_or_else(|| json!({})),
            ),
            field(
                "webhook",
                Change::NoUnset,
                opt(entry.webhook.as_ref().map(|w| &w.0)),
                opt(entry.webhook.as_ref().map(|w| &w.0)),
            ),
            field(
                "misfire_policy",
                Change::NoUnset,
                opt(entry.misfire_policy),
                opt(entry.misfire_policy),
            ),
            field(
                "catchup_window_seconds",
                Change::NoUnset,
                opt(entry.catchup_window_seconds),
                opt(entry.catchup_window_seconds),
            ),
            field(
                "input",
                Change::NoUnset,
                opt(entry.input.as_ref().map(|i| &i.0)),
                opt(entry.input.as_ref().map(|i| &i.0)),
            ),
        ],
        metadata: full_metadata(set, entry),
    }
}

/// What the daemon has, in the same terms as [`wanted`].
fn state_of(cron: &Cron) -> State {
    let payload = &cron.payload;
    let strategy = MultitaskStrategy::of_payload(&Value::Object(payload.clone()));
    let end = cron
        .end_time
        .as_deref()
        .and_then(parse_instant)
        .map(|end| end.timestamp_millis());
    let fields = vec![
        ("assistant_id", json!(cron.assistant_id)),
        ("thread_id", opt(cron.thread_id.as_ref())),
        ("multitask_strategy", json!(strategy)),
        ("schedule", json!(cron.schedule)),
        ("timezone", json!(cron.timezone.as_deref().unwrap_or("UTC"))),
        // A pause until an instant, or a spent run limit, is the cron's operation, not its
        // definition: the file's `enabled` does not undo it.
        (
            "enabled",
            json!(
                cron.enabled
                    || cron.paused_until.is_some()
                    || cron.pause_note.as_deref() == Some(RUN_LIMIT_REACHED)
            ),
        ),
        ("end_time", opt(end)),
        ("on_run_completed", opt(cron.on_run_completed)),
        ("pause_after_failures", opt(cron.pause_after_failures)),
        ("overlap", json!(cron.overlap)),
        ("jitter_seconds", json!(cron.jitter_seconds)),
        ("dst_repeat", json!(cron.dst_repeat)),
        ("dst_gap", json!(cron.dst_gap)),
        ("config", normalized_config(payload.get("config"))),
        ("context", non_empty(payload.get("context"))),
        (
            "webhook",
            payload.get("webhook").cloned().unwrap_or(Value::Null),
        ),
        ("misfire_policy", opt(cron.misfire_policy)),
        ("catchup_window_seconds", opt(cron.catchup_window_seconds)),
        (
            "input",
            payload.get("input").cloned().unwrap_or(Value::Null),
        ),
    ];
    State {
        fields: fields
            .into_iter()
            .map(|(name, compared)| field(name, Change::Set, compared, Value::Null))
            .collect(),
        metadata: cron.metadata.clone(),
    }
}

/// An object with keys, else null.
fn non_empty(value: Option<&Value>) -> Value {
    match value {
        Some(Value::Object(map)) if !map.is_empty() => Value::Object(map.clone()),
        _ => Value::Null,
    }
}

/// A run config without the `configurable.cron_id` the daemon adds, null when nothing
/// else is left.
fn normalized_config(config: Option<&Value>) -> Value {
    let Some(Value::Object(config)) = config else {
        return Value::Null;
    };
    let mut config = config.clone();
    if let Some(Value::Object(configurable)) = config.get_mut("configurable") {
        configurable.remove("cron_id");
        if configurable.is_empty() {
            config.remove("configurable");
        }
    }
    non_empty(Some(&Value::Object(config)))
}

/// The differences between two states.
struct Diff {
    fields: Vec<&'static str>,
    patch: Map<String, Value>,
    replace: Vec<String>,
}

fn diff(want: &State, have: &State) -> Diff {
    let mut out = Diff {
        fields: Vec::new(),
        patch: Map::new(),
        replace: Vec::new(),
    };
    for (wanted, had) in want.fields.iter().zip(&have.fields) {
        debug_assert_eq!(wanted.name, had.name, "the states list the same fields");
        if wanted.compared == had.compared {
            continue;
        }
        out.fields.push(wanted.name);
        match wanted.change {
            Change::Fixed => out
                .replace
                .push(format!("{} cannot change in place", wanted.name)),
            Change::NoUnset if wanted.compared.is_null() => out
                .replace
                .push(format!("{} cannot be unset in place", wanted.name)),
            Change::Set | Change::NoUnset => {
                out.patch.insert(wanted.name.into(), wanted.sent.clone());
            }
        }
    }
    if want.metadata != have.metadata {
        out.fields.push("metadata");
        let gone: Vec<&str> = have
            .metadata
            .keys()
            .filter(|key| !want.metadata.contains_key(*key))
            .map(String::as_str)
            .collect();
        if gone.is_empty() {
            // PATCH merges metadata: the whole wanted map overwrites every key.
            out.patch
                .insert("metadata".into(), Value::Object(want.metadata.clone()));
        } else {
            out.replace.push(format!(
                "metadata key(s) {} cannot be removed in place",
                quoted(&gone)
            ));
        }
    }
    out
}

/// The graph name of an assistant, or its id when the daemon no longer has it.
async fn graph_name(client: &Client, assistant_id: &str) -> OpsResult<String> {
    match client
        .get(&format!("/assistants/{assistant_id}"), &[])
        .await
    {
        Ok(answer) => Ok(answer.body["graph_id"]
            .as_str()
            .filter(|graph| assistant_id_for_graph(graph).to_string() == assistant_id)
            .unwrap_or(assistant_id)
            .to_string()),
        Err(OpsError::NotFound { .. }) => Ok(assistant_id.to_string()),
        Err(err) => Err(err),
    }
}

/// A cron as a file entry: only what differs from the defaults, so that applying the
/// entry changes nothing.
fn entry_of(cron: &Cron, graphs: &BTreeMap<String, String>) -> OpsResult<CronEntry> {
    let payload = &cron.payload;
    let name = name_of(cron).unwrap_or_default().to_string();
    let bad = |what: &str| {
        OpsError::Input(format!(
            "cron \"{name}\" ({}): {what} cannot be written to a crons file",
            cron.cron_id
        ))
    };
    let mut metadata = cron.metadata.clone();
    metadata.remove(SET_KEY);
    metadata.remove(NAME_KEY);
    let config = match normalized_config(payload.get("config")) {
        Value::Object(config) => Some(config),
        _ => None,
    };
    let context = match non_empty(payload.get("context")) {
        Value::Object(context) => Some(context),
        _ => None,
    };
    let input = match payload.get("input") {
        None | Some(Value::Null) => None,
        Some(value) => Some(Input::try_from(value.clone()).map_err(|_| bad("its input"))?),
    };
    let thread_id = match &cron.thread_id {
        Some(thread) => Some(Uuid::parse_str(thread).map_err(|_| bad("its thread_id"))?),
        None => None,
    };
    Ok(CronEntry {
        name: Label::try_from(name.clone()).map_err(|_| bad("its name"))?,
        assistant_id: Label(
            graphs
                .get(&cron.assistant_id)
                .cloned()
                .unwrap_or_else(|| cron.assistant_id.clone()),
        ),
        schedule: ScheduleText(cron.schedule.clone()),
        timezone: cron.timezone.clone().map(Zone),
        thread_id,
        enabled: (!cron.enabled).then_some(false),
        end_time: cron.end_time.clone().map(Instant),
        webhook: payload
            .get("webhook")
            .and_then(Value::as_str)
            .map(|url| WebhookUrl(url.to_string())),
        on_run_completed: cron
            .on_run_completed
            .filter(|on| *on != OnCompletion::Delete),
        multitask_strategy: payload
            .get("multitask_strategy")
            .is_some_and(|v| !v.is_null())
            .then(|| MultitaskStrategy::of_payload(&Value::Object(payload.clone()))),
        misfire_policy: cron.misfire_policy,
        catchup_window_seconds: cron
            .catchup_window_seconds
            .and_then(|s| u32::try_from(s).ok()),
        pause_after_failures: cron
            .pause_after_failures
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new),
        overlap: (cron.overlap != Overlap::Allow).then_some(cron.overlap),
        jitter_seconds: u32::try_from(cron.jitter_seconds)
            .ok()
            .filter(|seconds| *seconds > 0),
        dst_repeat: (cron.dst_repeat != DstRepeat::Once).then_some(cron.dst_repeat),
        dst_gap: (cron.dst_gap != DstGap::Shift).then_some(cron.dst_gap),
        input,
        metadata: (!metadata.is_empty()).then_some(Metadata(metadata)),
        config,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(extra: &str) -> CronEntry {
        let text = format!(
            "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\n{extra}"
        );
        cronfile::parse(&text, Some("s"), "t.toml")
            .expect("valid")
            .entries
            .remove(0)
            .1
    }

    /// The cron the daemon would answer for `entry` (its create as the daemon stores it).
    fn created(entry: &CronEntry) -> Cron {
        let body = create_body("s", entry);
        let mut payload = body.as_object().cloned().unwrap_or_default();
        for key in [
            "pause_after_failures",
            "overlap",
            "jitter_seconds",
            "dst_repeat",
            "dst_gap",
        ] {
            payload.remove(key);
        }
        payload.insert(
            "assistant_id".into(),
            json!(resolve_assistant(&entry.assistant_id.0)),
        );
        let config = payload
            .entry("config")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object");
        config
            .entry("configurable")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert("cron_id".into(), json!("c1"));
        serde_json::from_value(json!({
            "cron_id": "c1",
            "assistant_id": resolve_assistant(&entry.assistant_id.0),
            "thread_id": entry.thread_id.map(|t| t.to_string()),
            "on_run_completed": entry.thread_id.is_none().then(|| entry.on_run_completed.unwrap_or(OnCompletion::Delete)),
            "end_time": entry.end_time.as_ref().and_then(Instant::millis).map(crate::time::iso),
            "schedule": entry.schedule.0,
            "timezone": entry.timezone.as_ref().map(|z| &z.0),
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "user_id": "",
            "payload": payload,
            "next_run_date": null,
            "metadata": body["metadata"],
            "enabled": entry.enabled.unwrap_or(true),
            "misfire_policy": entry.misfire_policy,
            "catchup_window_seconds": entry.catchup_window_seconds,
            "last_run_status": null,
            "last_run_at": null,
            "consecutive_failures": 0,
            "pause_note": null,
            "pause_after_failures": entry.pause_after_failures,
            "overlap": entry.overlap.unwrap_or_default(),
            "jitter_seconds": entry.jitter_seconds.unwrap_or(0),
            "remaining_runs": null,
            "paused_until": null,
            "dst_repeat": entry.dst_repeat.unwrap_or_default(),
            "dst_gap": entry.dst_gap.unwrap_or_default(),
        }))
        .expect("a cron")
    }

    const FULL: &str = "timezone = \"Europe/Paris\"\nenabled = false\n\
        end_time = \"2030-01-01T01:00:00+01:00\"\nwebhook = \"https://example.com/hook\"\n\
        on_run_completed = \"keep\"\nmultitask_strategy = \"enqueue\"\n\
        misfire_policy = \"skip\"\ncatchup_window_seconds = 60\npause_after_failures = 2\n\
        overlap = \"buffer_one\"\njitter_seconds = 30\ndst_repeat = \"twice\"\ndst_gap = \"skip\"\n\
        input = { x = 1 }\nmetadata = { team = \"ops\" }\n\
        config = { configurable = { k = \"v\" } }\ncontext = { c = 1 }\n";

    #[test]
    fn a_cron_as_created_matches_its_entry() {
        for extra in ["", FULL] {
            let entry = entry(extra);
            let plan = plan(
                "s",
                std::slice::from_ref(&entry),
                vec![created(&entry)],
                true,
            )
            .expect("plan");
            assert!(plan.steps.is_empty(), "{extra}: {plan:?}");
            assert_eq!(plan.unchanged, 1);
        }
    }

    #[test]
    fn export_of_a_cron_is_its_entry_again() {
        let entry = entry(FULL);
        let graphs = BTreeMap::from([(resolve_assistant("agent"), "agent".to_string())]);
        let exported = entry_of(&created(&entry), &graphs).expect("exports");
        let plan = plan("s", &[exported], vec![created(&entry)], true).expect("plan");
        assert!(plan.steps.is_empty(), "{plan:?}");
    }

    #[test]
    fn only_differing_fields_are_patched() {
        let before = entry("timezone = \"Europe/Paris\"\ninput = { x = 1 }\n");
        let after = entry("timezone = \"Europe/Paris\"\ninput = { x = 2 }\nenabled = false\n");
        let plan = plan("s", &[after], vec![created(&before)], false).expect("plan");
        match &plan.steps[..] {
            [Step::Update { fields, body, .. }] => {
                assert_eq!(fields, &["enabled", "input"]);
                assert_eq!(body, &json!({"enabled": false, "input": {"x": 2}}));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn clearing_what_patch_can_clear_is_an_update() {
        let before = entry(FULL);
        let after = entry(
            "webhook = \"https://example.com/hook\"\non_run_completed = \"keep\"\n\
             misfire_policy = \"skip\"\ncatchup_window_seconds = 60\ninput = { x = 1 }\n\
             metadata = { team = \"ops\" }\n",
        );
        let plan = plan("s", &[after], vec![created(&before)], false).expect("plan");
        match &plan.steps[..] {
            [Step::Update { body, .. }] => assert_eq!(
                body,
                &json!({"timezone": "UTC", "enabled": true, "end_time": null,
                        "pause_after_failures": null, "overlap": "allow", "jitter_seconds": 0,
                        "dst_repeat": "once", "dst_gap": "shift", "config": {}, "context": {}})
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_patch_cannot_do_is_a_replace() {
        let before = entry("input = { x = 1 }\nmetadata = { team = \"ops\" }\n");
        for (after, reason) in [
            ("metadata = { team = \"ops\" }\n", "input cannot be unset"),
            ("input = { x = 1 }\n", "metadata key(s) \"team\""),
            (
                "input = { x = 1 }\nmetadata = { team = \"ops\" }\nmultitask_strategy = \"reject\"\n",
                "multitask_strategy cannot change",
            ),
            (
                "input = { x = 1 }\nmetadata = { team = \"ops\" }\n\
                 thread_id = \"0190a4b8-0000-7000-8000-000000000001\"\n",
                "thread_id cannot change",
            ),
        ] {
            let plan = plan("s", &[entry(after)], vec![created(&before)], false).expect("plan");
            match &plan.steps[..] {
                [Step::Replace { reasons, .. }] => {
                    assert!(reasons.join(";").contains(reason), "{reasons:?}")
                }
                other => panic!("{after}: {other:?}"),
            }
        }
    }

    #[test]
    fn prune_deletes_only_what_the_file_no_longer_names() {
        let kept = entry("");
        let mut gone = entry("");
        gone.name = Label("gone".into());
        let current = vec![created(&kept), created(&gone)];
        let without = plan("s", std::slice::from_ref(&kept), current, false).expect("plan");
        assert!(without.steps.is_empty());
        assert_eq!(without.unnamed_kept, ["gone"]);
        let current = vec![created(&kept), created(&gone)];
        let with = plan("s", &[kept], current, true).expect("plan");
        assert!(matches!(&with.steps[..], [Step::Delete { name, .. }] if name == "gone"));
        assert!(describe(&with, true).contains("- delete gone"));
    }
}
