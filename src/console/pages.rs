//! The console's read-only pages and its live stream.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use maud::{Markup, html};
use sea_orm::Iterable;
use serde::Deserialize;
use serde_json::{Map, Value};

use entity::states::{DeliveryKind, DeliveryStatus, FireOutcome, RunStatus};

use super::Viewer;
use super::view::{
    Nav, PageResult, bars, delivery_badge, line, millis, notice, outcome_class, page, percentile,
    pretty, run_badge, strip, time, zoned,
};
use crate::api::extract::parse_uuid;
use crate::api::{ApiError, AppState};
use crate::schedule::{Dst, Schedule, jitter, parse_timezone};
use crate::store::SortOrder;
use crate::store::assistants::assistant_id_for_graph;
use crate::store::crons::{CronFilter, CronSort};
use crate::store::deliveries::DeliveryFilter;
use crate::store::history::HistoryFilter;
use crate::time::{Millis, now_ms, to_datetime};

/// Rows on a page of crons or deliveries.
pub const PAGE_SIZE: u64 = 50;
/// Instants in a cron's strip.
const STRIP: u64 = 30;

#[derive(Debug, Deserialize, Default)]
pub struct Done {
    done: Option<String>,
}

/// The graph name of an assistant id, for display.
pub fn graph_name(state: &AppState, assistant_id: &str) -> String {
    state
        .config
        .graphs
        .keys()
        .find(|g| assistant_id_for_graph(g).to_string() == assistant_id)
        .cloned()
        .unwrap_or_else(|| assistant_id.to_string())
}

/// A schedule in words with its zone: "at 09:00, Monday to Friday, Europe/Paris".
pub fn schedule_words(schedule: &str, zone: Option<&str>) -> String {
    match Schedule::parse(schedule) {
        Ok(parsed) => format!("{}, {}", parsed.words(), zone.unwrap_or("UTC")),
        Err(_) => "not a valid schedule".to_string(),
    }
}

pub async fn overview(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> PageResult {
    let scope = viewer.caller.scope();
    let now = now_ms();
    let hour_ago = now - 3_600_000;
    let (counts, fires, failed) = tokio::try_join!(
        state.store.console_counts(&scope),
        state.store.fires_since(hour_ago, &scope),
        state.store.recently_failed(&scope, 10),
    )
    .map_err(ApiError::from)?;

    let mut per_minute = vec![0u64; 60];
    let mut late_by_minute: Vec<Vec<i64>> = vec![Vec::new(); 60];
    let mut lateness: Vec<i64> = Vec::new();
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    for fire in &fires {
        let minute = ((fire.scheduled_for.max(hour_ago) - hour_ago) / 60_000).clamp(0, 59) as usize;
        let label = match fire.outcome {
            FireOutcome::Missed => "missed",
            FireOutcome::Rejected => "rejected",
            FireOutcome::Skipped => "skipped",
            FireOutcome::Scheduled => "scheduled",
            _ => fire.run_status.map_or("queued", RunStatus::as_str),
        };
        *outcomes.entry(label).or_default() += 1;
        if matches!(fire.outcome, FireOutcome::Fired | FireOutcome::Triggered) {
            per_minute[minute] += 1;
            if let Some(started) = fire.started_at {
                let late = (started - fire.due_at.unwrap_or(fire.scheduled_for)).max(0);
                lateness.push(late);
                late_by_minute[minute].push(late);
            }
        }
    }
    lateness.sort_unstable();
    let late_line: Vec<Option<f64>> = late_by_minute
        .iter_mut()
        .map(|values| {
            values.sort_unstable();
            percentile(values, 99.0).map(|v| v as f64)
        })
        .collect();
    let total: u64 = outcomes.values().sum();
    let fired: u64 = per_minute.iter().sum();
    let body = html! {
        (notice(done.done.as_deref()))
        div #overview-live data-live="" {
            section aria-labelledby="h-crons" {
                h2 #h-crons { "Crons" }
                div.cards {
                    a.card href="/ui/crons?status=enabled" { span.n { (counts.enabled) } span.l { "enabled" } }
                    a.card href="/ui/crons?status=paused" { span.n { (counts.paused) } span.l { "paused" } }
                    a.card href="/ui/crons?status=failing" { span.n { (counts.failing) } span.l { "failing" } }
                    a.card href="/ui/deliveries?status=pending" { span.n { (counts.deliveries_pending) } span.l { "deliveries pending" } }
                    a.card href="/ui/deliveries?status=failed" { span.n { (counts.deliveries_failed) } span.l { "deliveries failed" } }
                }
            }
            section aria-labelledby="h-hour" {
                h2 #h-hour { "The last hour" }
                div.cards {
                    div.card { span.n { (fired) } span.l { "runs fired" } }
                    div.card { span.n { (percentile(&lateness, 50.0).map_or("–".into(), millis)) } span.l { "lateness p50" } }
                    div.card { span.n { (percentile(&lateness, 99.0).map_or("–".into(), millis)) } span.l { "lateness p99" } }
                }
                @if total > 0 {
                    p { "Outcomes: "
                        @for (i, (label, n)) in outcomes.iter().enumerate() {
                            @if i > 0 { ", " }
                            (label) " " (format!("{:.0}%", *n as f64 * 100.0 / total as f64)) " (" (n) ")"
                        }
                    }
                }
                h3.small { "Fires per minute" }
                (bars(&per_minute, &format!("Fires per minute over the last hour: {fired} in all"), "60 minutes ago → now"))
                h3.small { "Lateness (p99 per minute)" }
                (line(&late_line, &format!("Lateness p99 per minute over the last hour; overall p99 {}",
                    percentile(&lateness, 99.0).map_or("none".into(), millis)), "ms", "60 minutes ago → now"))
            }
            section aria-labelledby="h-failed" {
                h2 #h-failed { "Failed most recently" }
                @if failed.is_empty() {
                    p.muted { "No enabled cron's last run failed." }
                } @else {
                    div.table-wrap tabindex="0" role="region" aria-label="Crons that failed most recently" { table {
                        thead { tr { th scope="col" { "Cron" } th scope="col" { "Schedule" } th scope="col" { "Last run" } th scope="col" { "Failures in a row" } } }
                        tbody {
                            @for cron in &failed {
                                tr {
                                    td { a href=(format!("/ui/crons/{}", cron.cron_id)) { code { (short(&cron.cron_id)) } } " " (graph_name(&state, &cron.assistant_id)) }
                                    td { code { (cron.schedule) } }
                                    td { (run_badge(cron.last_run_status)) " " @if let Some(at) = cron.last_run_at { (time(at, true)) } }
                                    td { (cron.consecutive_failures) }
                                }
                            }
                        }
                    } }
                }
            }
        }
    };
    Ok(page(&viewer, "Overview", Nav::Overview, body))
}

/// The last 8 digits of an id, enough to tell ids apart on a page (ids are UUIDv7: their
/// first digits are the time, shared by ids made in the same minute).
pub fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}

#[derive(Debug, Deserialize, Default)]
pub struct CronsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    assistant: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    meta: String,
    #[serde(default)]
    offset: u64,
    done: Option<String>,
}

/// `key=value, key2=value2` as a metadata filter; values that parse as JSON are JSON.
fn metadata_filter(text: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    let mut map = Map::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            ApiError::invalid(format!("metadata filter: '{pair}' is not key=value"))
        })?;
        let value = value.trim();
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        map.insert(key.trim().to_string(), value);
    }
    Ok((!map.is_empty()).then_some(map))
}

pub async fn crons(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<CronsQuery>,
) -> PageResult {
    let text = query.q.trim().to_lowercase();
    let filter = CronFilter {
        assistant_id: (!query.assistant.is_empty())
            .then(|| {
                state.assistant_id(&query.assistant).ok_or_else(|| {
                    ApiError::invalid(format!("assistant: no graph '{}'", query.assistant))
                })
            })
            .transpose()?,
        enabled: match query.status.as_str() {
            "enabled" => Some(true),
            "paused" => Some(false),
            _ => None,
        },
        failing: query.status == "failing",
        metadata: state.filter("metadata", metadata_filter(&query.meta)?)?,
        text_assistants: state
            .config
            .graphs
            .keys()
            .filter(|g| !text.is_empty() && g.to_lowercase().contains(&text))
            .map(|g| assistant_id_for_graph(g).to_string())
            .collect(),
        text: (!text.is_empty()).then(|| query.q.trim().to_string()),
        scope: viewer.caller.scope(),
        ..CronFilter::default()
    };
    let page_of = state
        .store
        .search_crons(
            &filter,
            (CronSort::CreatedAt, SortOrder::Desc),
            PAGE_SIZE,
            query.offset,
        )
        .await
        .map_err(ApiError::from)?;
    let ids: Vec<String> = page_of.items.iter().map(|c| c.cron_id.clone()).collect();
    let strips = state
        .store
        .recent_outcomes(&ids, STRIP)
        .await
        .map_err(ApiError::from)?;
    let link = |offset: u64| {
        format!(
            "/ui/crons?{}",
            serde_urlencoded::to_string([
                ("q", query.q.as_str()),
                ("assistant", query.assistant.as_str()),
                ("status", query.status.as_str()),
                ("meta", query.meta.as_str()),
                ("offset", &offset.to_string()),
            ])
            .unwrap_or_default()
        )
    };
    let body = html! {
        (notice(query.done.as_deref()))
        form.filters method="get" action="/ui/crons" role="search" {
            div { label for="q" { "Search" } input #q type="search" name="q" value=(query.q) placeholder="id, schedule, zone, metadata, graph"; }
            div { label for="f-assistant" { "Assistant" }
                select #f-assistant name="assistant" {
                    option value="" { "any" }
                    @for graph in state.config.graphs.keys() {
                        option value=(graph) selected[*graph == query.assistant] { (graph) }
                    }
                }
            }
            div { label for="f-status" { "Status" }
                select #f-status name="status" {
                    @for (value, text) in [("", "any"), ("enabled", "enabled"), ("paused", "paused"), ("failing", "failing")] {
                        option value=(value) selected[value == query.status] { (text) }
                    }
                }
            }
            div { label for="f-meta" { "Metadata (key=value)" } input #f-meta type="text" name="meta" value=(query.meta) placeholder="team=ops"; }
            div { button type="submit" { "Filter" } }
            div { a.button.primary href="/ui/crons/new" { "New cron" } }
        }
        div #crons-live data-live="" {
            div.table-wrap tabindex="0" role="region" aria-label="Crons" { table {
                thead { tr {
                    th scope="col" { "Cron" } th scope="col" { "Schedule" } th scope="col" { "Timezone" }
                    th scope="col" { "Next run" } th scope="col" { "Last status" } th scope="col" { "Last 30" }
                    th scope="col" class="hide-narrow" { "Tags" }
                } }
                tbody {
                    @for (cron, outcomes) in page_of.items.iter().zip(&strips) {
                        @let zone = parse_timezone(cron.timezone.as_deref()).unwrap_or(chrono_tz::UTC);
                        tr {
                            td {
                                a href=(format!("/ui/crons/{}", cron.cron_id)) { code { (short(&cron.cron_id)) } }
                                br; span.small.muted { (graph_name(&state, &cron.assistant_id)) }
                                @if !cron.enabled { " " span.badge.b-warn { "paused" } }
                            }
                            td { code { (cron.schedule) } br; span.small { (schedule_words(&cron.schedule, cron.timezone.as_deref())) } }
                            td { (cron.timezone.as_deref().unwrap_or("UTC")) }
                            td {
                                @if let Some(next) = cron.next_run_at.filter(|_| cron.enabled) {
                                    (time(next, true)) br; span.small.muted { (zoned(next, zone)) }
                                } @else { span.muted { "–" } }
                            }
                            td { (run_badge(cron.last_run_status)) }
                            td { (strip(outcomes)) }
                            td.hide-narrow { (tags(&cron.metadata)) }
                        }
                    }
                }
            } }
            @if page_of.items.is_empty() { p.muted { "No cron matches." } }
        }
        nav.pager aria-label="Pages" {
            @if query.offset > 0 { a href=(link(query.offset.saturating_sub(PAGE_SIZE))) { "Previous page" } }
            span.muted { "Crons " (query.offset + 1) "–" (query.offset + page_of.items.len() as u64) }
            @if page_of.has_more { a href=(link(query.offset + PAGE_SIZE)) { "Next page" } }
        }
    };
    Ok(page(&viewer, "Crons", Nav::Crons, body))
}

fn tags(metadata: &Value) -> Markup {
    html! {
        @if let Value::Object(map) = metadata {
            @for (key, value) in map {
                span.tag { (key) "=" (match value { Value::String(s) => s.clone(), other => other.to_string() }) }
            }
        }
    }
}

pub async fn cron(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(cron_id): Path<String>,
    Query(done): Query<Done>,
) -> PageResult {
    let cron_id = parse_uuid(&cron_id, "cron")?;
    let scope = viewer.caller.scope();
    let cron = state
        .store
        .get_cron(&cron_id, &scope)
        .await
        .map_err(ApiError::from)?;
    let all = HistoryFilter::default();
    let of_cron = DeliveryFilter {
        cron_id: Some(cron_id.clone()),
        scope: scope.clone(),
        ..DeliveryFilter::default()
    };
    let (history, deliveries) = tokio::try_join!(
        state.store.cron_history(&cron_id, &scope, &all, 50, 0),
        state.store.list_deliveries(&of_cron, 20, 0),
    )
    .map_err(ApiError::from)?;
    let zone = parse_timezone(cron.timezone.as_deref()).unwrap_or(chrono_tz::UTC);
    // A cron paused until an instant fires from then on.
    let from = cron
        .paused_until
        .map_or(now_ms(), |until| now_ms().max(until - 1));
    let next: Vec<Millis> = Schedule::parse(&cron.schedule)
        .map(|s| {
            s.upcoming(
                to_datetime(from),
                zone,
                cron.end_time.map(to_datetime),
                10,
                Dst::of(&cron),
            )
            .into_iter()
            .map(|t| t.timestamp_millis())
            .collect()
        })
        .unwrap_or_default();
    let lateness: Vec<Option<f64>> = history
        .items
        .iter()
        .rev()
        .map(|e| {
            e.started_at
                .map(|s| (s - e.due_at.unwrap_or(e.scheduled_for)).max(0) as f64)
        })
        .collect();
    let name = format!("{} ({})", short(&cron.cron_id), cron.schedule);
    let payload = &cron.payload;
    let body = html! {
        (notice(done.done.as_deref()))
        div.actions {
            @if cron.enabled {
                form.inline method="post" action=(format!("/ui/crons/{}/pause", cron.cron_id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label for="pause-note" { "Pause note" }
                    input #pause-note type="text" name="note" maxlength="1024" placeholder="optional: why";
                    button type="submit" { "Pause" }
                }
            } @else {
                form.inline method="post" action=(format!("/ui/crons/{}/resume", cron.cron_id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button type="submit" { "Resume" }
                }
            }
            form.inline method="post" action=(format!("/ui/crons/{}/trigger", cron.cron_id)) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button type="submit" { "Trigger now" }
            }
            form.inline method="get" action=(format!("/ui/crons/{}/edit", cron.cron_id)) {
                button type="submit" { "Edit" }
            }
            form.inline method="post" action=(format!("/ui/crons/{}/delete", cron.cron_id))
                data-confirm=(format!("Delete cron {name}? Its history goes with it.")) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button.danger type="submit" { "Delete" }
            }
        }
        div #cron-live data-live="" {
            section aria-labelledby="h-def" {
                h2 #h-def { "Definition" }
                dl.def {
                    dt { "Cron id" } dd { code { (cron.cron_id) } }
                    dt { "Assistant" } dd { (graph_name(&state, &cron.assistant_id)) }
                    dt { "Schedule" } dd { code { (cron.schedule) } " — " (schedule_words(&cron.schedule, cron.timezone.as_deref())) }
                    dt { "Timezone" } dd { (cron.timezone.as_deref().unwrap_or("UTC")) }
                    dt { "State" } dd {
                        @if let Some(until) = cron.paused_until.filter(|&until| until > now_ms()) {
                            span.badge.b-warn { "paused until " (time(until, false)) }
                        } @else if cron.enabled { span.badge.b-ok { "enabled" } } @else { span.badge.b-warn { "paused" } }
                        @if let Some(note) = &cron.pause_note { " " span #pause-note-text { (note) } }
                    }
                    dt { "Last run" } dd { (run_badge(cron.last_run_status)) " "
                        @if let Some(at) = cron.last_run_at { (time(at, true)) }
                        @if cron.consecutive_failures > 0 { " · " (cron.consecutive_failures) " failures in a row" } }
                    dt { "Pause after failures" } dd { (cron.pause_after_failures.map_or("never".to_string(), |n| n.to_string())) }
                    dt { "End time" } dd { @if let Some(end) = cron.end_time { (time(end, false)) } @else { "none" } }
                    dt { "Thread" } dd { (cron.thread_id.as_deref().unwrap_or("stateless: a new thread per run")) }
                    dt { "Webhook URL" } dd { (payload.get("webhook").and_then(Value::as_str).unwrap_or("none")) }
                    dt { "Misfire policy" } dd { (cron.misfire_policy.as_deref().unwrap_or("default")) }
                    @if cron.thread_id.is_none() { dt { "Overlap" } dd { (cron.overlap.as_str()) } }
                    dt { "Jitter" } dd { @if cron.jitter_seconds > 0 { (cron.jitter_seconds) " s" } @else { "none" } }
                    dt { "Run limit" } dd { @if let Some(left) = cron.remaining_runs { (left) " runs left" } @else { "none" } }
                    dt { "Daylight saving" } dd { "repeated hour: " (cron.dst_repeat.as_str()) " · skipped hour: " (cron.dst_gap.as_str()) }
                    dt { "Metadata" } dd { (tags(&cron.metadata)) }
                    dt { "Input" } dd { (pretty(payload.get("input").unwrap_or(&Value::Null))) }
                    dt { "Owner" } dd { (cron.user_id.as_deref().unwrap_or("–")) }
                }
            }
            section aria-labelledby="h-next" {
                h2 #h-next { "Next 10 instants" }
                @if !cron.enabled { p.muted { "Paused: these instants fire only if it is resumed." } }
                ol #next-instants {
                    @for at in &next {
                        li {
                            (zoned(*at, zone)) " · " (time(*at, true))
                            @if cron.jitter_seconds > 0 { " · starts " (time(jitter::start(&cron, *at), true)) }
                        }
                    }
                }
                @if next.is_empty() { p.muted { "None: the schedule ends." } }
            }
            section aria-labelledby="h-history" {
                h2 #h-history { "History" }
                (line(&lateness, &format!("Lateness of the last {} entries, oldest first", lateness.len()), "ms", "oldest → newest"))
                div.table-wrap tabindex="0" role="region" aria-label="History" { table #history {
                    thead { tr {
                        th scope="col" { "Instant" } th scope="col" { "Outcome" } th scope="col" { "Lateness" }
                        th scope="col" { "Duration" } th scope="col" { "Error" } th scope="col" { "Webhook" }
                    } }
                    tbody {
                        @for entry in &history.items {
                            tr {
                                td { @if matches!(entry.outcome, FireOutcome::Triggered | FireOutcome::Backfilled) { (entry.outcome.as_str()) " " } (time(entry.scheduled_for, false))
                                    @if entry.instants > 1 { " (" (entry.instants) " instants)" } }
                                td {
                                    @match entry.outcome {
                                        FireOutcome::Missed | FireOutcome::Rejected | FireOutcome::Skipped | FireOutcome::Scheduled => {
                                            span class=(format!("badge b-{}", outcome_class(entry.outcome, entry.run_status))) { (entry.outcome.as_str()) }
                                        }
                                        _ => { (run_badge(entry.run_status)) }
                                    }
                                }
                                td { (entry.started_at.map_or("–".to_string(), |s| millis(s - entry.due_at.unwrap_or(entry.scheduled_for)))) }
                                td { (entry.started_at.zip(entry.ended_at).map_or("–".to_string(), |(s, e)| millis(e - s))) }
                                td.small { @if let Some(error) = &entry.error {
                                    (error.get("error").and_then(Value::as_str).unwrap_or("")) ": "
                                    (error.get("message").and_then(Value::as_str).unwrap_or("")) } }
                                td { @if let Some(status) = entry.webhook_status { (delivery_badge(status)) } @else if entry.delivery_id.is_some() { (delivery_badge(DeliveryStatus::Pending)) } }
                            }
                        }
                    }
                } }
                @if history.items.is_empty() { p.muted { "Nothing yet." } }
            }
            section aria-labelledby="h-deliveries" {
                h2 #h-deliveries { "Deliveries" }
                (delivery_table(&viewer, &deliveries.items, &[], "cron"))
            }
        }
    };
    Ok(page(
        &viewer,
        &format!("Cron {}", short(&cron.cron_id)),
        Nav::Crons,
        body,
    ))
}

/// Deliveries with their Retry buttons and, when given, their latest attempts.
fn delivery_table(
    viewer: &Viewer,
    deliveries: &[entity::delivery::Model],
    attempts: &[Vec<entity::attempt::Model>],
    from: &str,
) -> Markup {
    html! {
        @if deliveries.is_empty() {
            p.muted { "No deliveries." }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-label="Deliveries" { table {
                thead { tr {
                    th scope="col" { "Delivery" } th scope="col" { "Kind" } th scope="col" { "Status" }
                    th scope="col" { "Attempts" } th scope="col" class="hide-narrow" { "URL" } th scope="col" { "Last error" }
                    th scope="col" { "Created" } th scope="col" { "Action" }
                } }
                tbody {
                    @for (i, d) in deliveries.iter().enumerate() {
                        tr {
                            td { code { (short(&d.delivery_id)) }
                                @if let Some(cron_id) = &d.cron_id { br; a.small href=(format!("/ui/crons/{cron_id}")) { "cron " (short(cron_id)) } } }
                            td { (d.kind.as_str()) }
                            td { (delivery_badge(d.status)) }
                            td {
                                (d.attempts)
                                @if let Some(list) = attempts.get(i).filter(|l| !l.is_empty()) {
                                    ul.small {
                                        @for a in list.iter().rev().take(5) {
                                            li { "#" (a.attempt) " " (time(a.attempted_at, false)) " · "
                                                (a.status_code.map_or("no answer".to_string(), |c| c.to_string())) " · "
                                                (format!("{:.1} ms", a.latency_us as f64 / 1000.0))
                                                @if let Some(e) = &a.error { " · " (e) } }
                                        }
                                    }
                                }
                            }
                            td.hide-narrow.small { code { (d.url) } }
                            td.small { (d.last_error.clone().or(d.last_status_code.filter(|c| !(200..300).contains(c)).map(|c| format!("HTTP {c}"))).unwrap_or_default()) }
                            td { (time(d.created_at, true)) }
                            td {
                                form method="post" action=(format!("/ui/deliveries/{}/retry", d.delivery_id)) {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    input type="hidden" name="from" value=(from);
                                    button type="submit" aria-describedby=(format!("retry-{}", d.delivery_id)) { "Retry" }
                                    span.sr-only id=(format!("retry-{}", d.delivery_id)) { "delivery " (short(&d.delivery_id)) }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct DeliveriesQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    offset: u64,
    done: Option<String>,
}

pub async fn deliveries(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<DeliveriesQuery>,
) -> PageResult {
    let status = DeliveryStatus::iter().find(|s| s.as_str() == query.status);
    let kind = DeliveryKind::iter().find(|k| k.as_str() == query.kind);
    let scope = viewer.caller.scope();
    let page_of = state
        .store
        .list_deliveries(
            &DeliveryFilter {
                status,
                kind,
                scope: scope.clone(),
                ..DeliveryFilter::default()
            },
            PAGE_SIZE,
            query.offset,
        )
        .await
        .map_err(ApiError::from)?;
    let attempts = futures_util::future::try_join_all(
        page_of
            .items
            .iter()
            .map(|d| state.store.get_delivery(&d.delivery_id, &scope)),
    )
    .await
    .map_err(ApiError::from)?
    .into_iter()
    .map(|(_, attempts)| attempts)
    .collect::<Vec<_>>();
    let link = |offset: u64| {
        format!(
            "/ui/deliveries?{}",
            serde_urlencoded::to_string([
                ("status", query.status.as_str()),
                ("kind", query.kind.as_str()),
                ("offset", &offset.to_string()),
            ])
            .unwrap_or_default()
        )
    };
    let body = html! {
        (notice(query.done.as_deref()))
        form.filters method="get" action="/ui/deliveries" {
            div { label for="d-status" { "Status" }
                select #d-status name="status" {
                    option value="" { "any" }
                    @for s in DeliveryStatus::iter() {
                        option value=(s.as_str()) selected[s.as_str() == query.status] { (s.as_str()) }
                    }
                }
            }
            div { label for="d-kind" { "Kind" }
                select #d-kind name="kind" {
                    option value="" { "any" }
                    @for k in DeliveryKind::iter() {
                        option value=(k.as_str()) selected[k.as_str() == query.kind] { (k.as_str()) }
                    }
                }
            }
            div { button type="submit" { "Filter" } }
        }
        div #deliveries-live data-live="" {
            (delivery_table(&viewer, &page_of.items, &attempts, "deliveries"))
        }
        nav.pager aria-label="Pages" {
            @if query.offset > 0 { a href=(link(query.offset.saturating_sub(PAGE_SIZE))) { "Previous page" } }
            @if page_of.has_more { a href=(link(query.offset + PAGE_SIZE)) { "Next page" } }
        }
    };
    Ok(page(&viewer, "Deliveries", Nav::Deliveries, body))
}

/// Server-sent events for live pages: `change` when fires, run writes or delivery attempts
/// committed (at most one a second), a comment every 15 s to keep proxies from closing.
pub async fn stream(State(state): State<AppState>, _viewer: Viewer) -> Response {
    let watcher = state.store.changes().watch();
    // A shutdown ends the stream, so an open page does not hold the server's drain.
    let draining = state.draining.clone();
    let events = futures_util::stream::unfold(watcher, move |mut watcher| {
        let draining = draining.clone();
        async move {
            let quiet = tokio::time::sleep(Duration::from_secs(15));
            let frame = tokio::select! {
                () = watcher.changed() => {
                    // Changes come in bursts around whole seconds: one signal covers a burst.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Bytes::from_static(b"event: change\ndata: {}\n\n")
                }
                () = quiet => Bytes::from_static(b": keep-alive\n\n"),
                () = draining.cancelled() => return None,
            };
            Some((Ok::<Bytes, std::io::Error>(frame), watcher))
        }
    });
    let mut response = Body::from_stream(events).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
