//! The console's changes (create, edit, pause, resume, trigger, delete, retry), each made by
//! calling the REST API's own handler with the viewer's identity, and its login, logout and
//! schedule preview.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use entity::states::{DstGap, DstRepeat};

use super::pages::{graph_name, short};
use super::session::{is_https, set_cookie};
use super::view::{Failure, Nav, PageResult, page};
use super::{Console, Viewer};

use crate::api::extract::{RawJson, parse_uuid};
use crate::api::{ApiError, AppState, crons, webhooks};
use crate::auth::Refusal;
use crate::schedule::{Dst, Schedule, parse_timezone};
use crate::time::{iso, now_ms, to_datetime};

/// The create / edit form as posted (every field as typed).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct CronForm {
    assistant: String,
    schedule: String,
    timezone: String,
    input: String,
    metadata: String,
    webhook: String,
    end_time: String,
    misfire_policy: String,
    pause_after_failures: String,
    overlap: String,
    jitter_seconds: String,
    remaining_runs: String,
    paused_until: String,
    dst_repeat: String,
    dst_gap: String,
}

/// A form error and the field it belongs to (`None`: the form as a whole).
struct FormError {
    status: StatusCode,
    field: Option<&'static str>,
    detail: String,
}

/// The field an API error names, so its `detail` is shown beside it.
fn field_of(detail: &str) -> Option<&'static str> {
    let lower = detail.to_lowercase();
    let fields = [
        ("timezone", "timezone"),
        ("end_time", "end_time"),
        ("webhook", "webhook"),
        ("pause_after_failures", "pause_after_failures"),
        ("misfire_policy", "misfire_policy"),
        ("overlap", "overlap"),
        ("jitter_seconds", "jitter_seconds"),
        ("remaining_runs", "remaining_runs"),
        ("paused_until", "paused_until"),
        ("dst_repeat", "dst_repeat"),
        ("dst_gap", "dst_gap"),
        ("metadata", "metadata"),
        ("input", "input"),
        ("schedule", "schedule"),
        ("cron expression", "schedule"),
        ("assistant", "assistant"),
    ];
    fields
        .iter()
        .find(|(word, _)| lower.contains(word))
        .map(|(_, field)| *field)
}

fn json_field(text: &str, field: &'static str, label: &str) -> Result<Option<Value>, FormError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|err| FormError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            field: Some(field),
            detail: format!("{label}: not valid JSON ({err})"),
        })
}

/// The API body of a create (`edit: false`) or a PATCH (`edit: true`).
fn body_of(form: &CronForm, edit: bool) -> Result<Map<String, Value>, FormError> {
    let mut body = Map::new();
    if !edit {
        body.insert("assistant_id".into(), json!(form.assistant.trim()));
    }
    body.insert("schedule".into(), json!(form.schedule.trim()));
    match form.timezone.trim() {
        "" if edit => {
            body.insert("timezone".into(), json!("UTC"));
        }
        "" => {}
        zone => {
            body.insert("timezone".into(), json!(zone));
        }
    }
    if let Some(input) = json_field(&form.input, "input", "Input")? {
        body.insert("input".into(), input);
    }
    if let Some(metadata) = json_field(&form.metadata, "metadata", "Metadata")? {
        body.insert("metadata".into(), metadata);
    }
    if !form.webhook.trim().is_empty() {
        body.insert("webhook".into(), json!(form.webhook.trim()));
    }
    match form.end_time.trim() {
        "" if edit => {
            body.insert("end_time".into(), Value::Null);
        }
        "" => {}
        end => {
            body.insert("end_time".into(), json!(end));
        }
    }
    if !form.misfire_policy.is_empty() {
        body.insert("misfire_policy".into(), json!(form.misfire_policy));
    }
    for field in ["pause_after_failures", "remaining_runs"] {
        let text = match field {
            "pause_after_failures" => &form.pause_after_failures,
            _ => &form.remaining_runs,
        };
        match text.trim() {
            "" if edit => {
                body.insert(field.into(), Value::Null);
            }
            "" => {}
            count => {
                body.insert(field.into(), json!(whole_number(count, field)?));
            }
        }
    }
    if !form.jitter_seconds.trim().is_empty() {
        let seconds = whole_number(form.jitter_seconds.trim(), "jitter_seconds")?;
        body.insert("jitter_seconds".into(), json!(seconds));
    }
    match form.paused_until.trim() {
        "" if edit => {
            body.insert("paused_until".into(), Value::Null);
        }
        "" => {}
        until => {
            body.insert("paused_until".into(), json!(until));
        }
    }
    for (field, value) in [
        ("overlap", &form.overlap),
        ("dst_repeat", &form.dst_repeat),
        ("dst_gap", &form.dst_gap),
    ] {
        if !value.is_empty() {
            body.insert(field.into(), json!(value));
        }
    }
    Ok(body)
}

fn whole_number(text: &str, field: &'static str) -> Result<i64, FormError> {
    text.parse().map_err(|_| FormError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        field: Some(field),
        detail: format!("{field}: '{text}' is not a whole number"),
    })
}

fn api_error(err: ApiError) -> FormError {
    FormError {
        status: err.status,
        field: field_of(&err.detail),
        detail: err.detail,
    }
}

pub async fn new_form(State(state): State<AppState>, viewer: Viewer) -> Markup {
    let form = CronForm {
        assistant: state
            .config
            .graphs
            .keys()
            .next()
            .cloned()
            .unwrap_or_default(),
        ..CronForm::default()
    };
    form_page(&state, &viewer, None, &form, None)
}

pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<CronForm>,
) -> Response {
    let result = async {
        let body = body_of(&form, false)?;
        let Json(cron) = crons::create_stateless(
            State(state.clone()),
            viewer.caller.clone(),
            RawJson(Value::Object(body)),
        )
        .await
        .map_err(api_error)?;
        Ok::<_, FormError>(cron_id_of(&cron))
    }
    .await;
    match result {
        Ok(cron_id) => Redirect::to(&format!("/ui/crons/{cron_id}?done=created")).into_response(),
        Err(err) => (
            err.status,
            form_page(&state, &viewer, None, &form, Some(&err)),
        )
            .into_response(),
    }
}

fn cron_id_of(cron: &crons::Cron) -> String {
    crate::api::to_json(cron)
        .get("cron_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub async fn edit_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(cron_id): Path<String>,
) -> PageResult {
    let cron_id = parse_uuid(&cron_id, "cron")?;
    let cron = state
        .store
        .get_cron(&cron_id, &viewer.caller.scope())
        .await
        .map_err(ApiError::from)?;
    let text = |value: Option<&Value>| match value {
        None | Some(Value::Null) => String::new(),
        Some(value) => serde_json::to_string_pretty(value).unwrap_or_default(),
    };
    let metadata = match &cron.metadata {
        Value::Object(map) if map.is_empty() => String::new(),
        other => text(Some(other)),
    };
    let form = CronForm {
        assistant: graph_name(&state, &cron.assistant_id),
        schedule: cron.schedule.clone(),
        timezone: cron.timezone.clone().unwrap_or_default(),
        input: text(cron.payload.get("input")),
        metadata,
        webhook: cron
            .payload
            .get("webhook")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        end_time: cron.end_time.map(iso).unwrap_or_default(),
        misfire_policy: cron.misfire_policy.clone().unwrap_or_default(),
        pause_after_failures: cron
            .pause_after_failures
            .map(|n| n.to_string())
            .unwrap_or_default(),
        overlap: cron.overlap.as_str().to_string(),
        jitter_seconds: cron.jitter_seconds.to_string(),
        remaining_runs: cron
            .remaining_runs
            .map(|n| n.to_string())
            .unwrap_or_default(),
        paused_until: cron
            .paused_until
            .filter(|&until| until > now_ms())
            .map(iso)
            .unwrap_or_default(),
        dst_repeat: cron.dst_repeat.as_str().to_string(),
        dst_gap: cron.dst_gap.as_str().to_string(),
    };
    Ok(form_page(&state, &viewer, Some(&cron_id), &form, None))
}

pub async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(cron_id): Path<String>,
    Form(form): Form<CronForm>,
) -> Response {
    let result = async {
        let body = body_of(&form, true)?;
        let _cron = crons::patch(
            State(state.clone()),
            viewer.caller.clone(),
            Path(cron_id.clone()),
            RawJson(Value::Object(body)),
        )
        .await
        .map_err(api_error)?;
        Ok::<_, FormError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/ui/crons/{cron_id}?done=saved")).into_response(),
        // Not found (or gone): no form to show again.
        Err(err) if err.status == StatusCode::NOT_FOUND => {
            Failure(ApiError::new(err.status, err.detail)).into_response()
        }
        Err(err) => (
            err.status,
            form_page(&state, &viewer, Some(&cron_id), &form, Some(&err)),
        )
            .into_response(),
    }
}

fn form_page(
    state: &AppState,
    viewer: &Viewer,
    cron_id: Option<&str>,
    form: &CronForm,
    error: Option<&FormError>,
) -> Markup {
    let error_for = |field: &str| {
        error
            .filter(|e| e.field == Some(field))
            .map(|e| e.detail.clone())
    };
    let field = |id: &'static str, label: &str, control: Markup, hint: Option<&str>| {
        let message = error_for(id);
        let hint_id = format!("{id}-hint");
        let error_id = format!("{id}-error");
        html! {
            div.field {
                label for=(id) { (label) }
                (control)
                @if let Some(hint) = hint { div.hint id=(hint_id) { (hint) } }
                @if let Some(message) = message { div.error id=(error_id) role="alert" { (message) } }
            }
        }
    };
    let described = |id: &str, hint: bool| {
        let mut ids = Vec::new();
        if hint {
            ids.push(format!("{id}-hint"));
        }
        if error_for(id).is_some() {
            ids.push(format!("{id}-error"));
        }
        (!ids.is_empty()).then(|| ids.join(" "))
    };
    let invalid = |id: &str| error_for(id).map(|_| "true");
    let choice = |id: &'static str,
                  label: &str,
                  current: &str,
                  options: &[(&str, &str)],
                  hint: Option<&str>| {
        field(
            id,
            label,
            html! {
                select id=(id) name=(id) aria-invalid=[invalid(id)] aria-describedby=[described(id, hint.is_some())] {
                    @for (value, text) in options {
                        option value=(value) selected[*value == current] { (text) }
                    }
                }
            },
            hint,
        )
    };
    let number = |id: &'static str, label: &str, value: &str, min: &str, max: &str, hint: &str| {
        field(
            id,
            label,
            html! {
                input id=(id) type="number" name=(id) value=(value) min=(min) max=[(!max.is_empty()).then_some(max)]
                    aria-invalid=[invalid(id)] aria-describedby=(described(id, true).unwrap_or_default());
            },
            Some(hint),
        )
    };
    let action = match cron_id {
        Some(id) => format!("/ui/crons/{id}/edit"),
        None => "/ui/crons/new".to_string(),
    };
    let title = match cron_id {
        Some(id) => format!("Edit cron {}", short(id)),
        None => "New cron".to_string(),
    };
    let zones = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name());
    let body = html! {
        @if let Some(err) = error.filter(|e| e.field.is_none()) {
            p.error-box role="alert" { (err.detail) }
        }
        form method="post" action=(action) novalidate {
            input type="hidden" name="csrf" value=(viewer.csrf);
            (field("assistant", "Assistant", html! {
                select #assistant name="assistant" disabled[cron_id.is_some()] aria-invalid=[invalid("assistant")] aria-describedby=[described("assistant", false)] {
                    @for graph in state.config.graphs.keys() {
                        option value=(graph) selected[*graph == form.assistant] { (graph) }
                    }
                }
            }, None))
            (field("schedule", "Schedule", html! {
                input #schedule type="text" name="schedule" value=(form.schedule) required autocomplete="off" spellcheck="false"
                    placeholder="0 9 * * 1-5" aria-invalid=[invalid("schedule")] aria-describedby=(described("schedule", true).unwrap_or_default());
                div #schedule-preview.preview aria-live="polite" data-src="/ui/preview" {}
            }, Some("Five fields (minute hour day month weekday), or six with seconds last.")))
            (field("timezone", "Timezone", html! {
                input #timezone type="text" name="timezone" value=(form.timezone) list="zones" autocomplete="off" placeholder="UTC"
                    aria-invalid=[invalid("timezone")] aria-describedby=(described("timezone", true).unwrap_or_default());
                datalist #zones { @for zone in zones { option value=(zone) {} } }
            }, Some("An IANA zone (type to search); empty is UTC.")))
            (field("input", "Input", html! {
                textarea #input name="input" rows="4" spellcheck="false" aria-invalid=[invalid("input")] aria-describedby=(described("input", true).unwrap_or_default()) { (form.input) }
            }, Some("JSON: an object, or a list of objects.")))
            (field("metadata", "Metadata", html! {
                textarea #metadata name="metadata" rows="3" spellcheck="false" aria-invalid=[invalid("metadata")] aria-describedby=(described("metadata", true).unwrap_or_default()) { (form.metadata) }
            }, Some("JSON object, e.g. {\"team\": \"ops\"}.")))
            (field("webhook", "Webhook URL", html! {
                input #webhook type="url" name="webhook" value=(form.webhook) autocomplete="off" aria-invalid=[invalid("webhook")] aria-describedby=[described("webhook", false)];
            }, None))
            (field("end_time", "End time", html! {
                input #end_time type="text" name="end_time" value=(form.end_time) placeholder="2026-12-31T23:59:00Z" autocomplete="off"
                    aria-invalid=[invalid("end_time")] aria-describedby=(described("end_time", true).unwrap_or_default());
            }, Some("ISO-8601; empty: no end.")))
            (field("misfire_policy", "Misfire policy", html! {
                select #misfire_policy name="misfire_policy" aria-invalid=[invalid("misfire_policy")] aria-describedby=[described("misfire_policy", false)] {
                    @for (value, text) in [("", "default (daemon's setting)"), ("fire_once", "fire_once"), ("skip", "skip"), ("fire_all", "fire_all")] {
                        option value=(value) selected[value == form.misfire_policy] { (text) }
                    }
                }
            }, None))
            (field("pause_after_failures", "Pause after failures", html! {
                input #pause_after_failures type="number" min="1" name="pause_after_failures" value=(form.pause_after_failures)
                    aria-invalid=[invalid("pause_after_failures")] aria-describedby=(described("pause_after_failures", true).unwrap_or_default());
            }, Some("Pause the cron after this many failed runs in a row; empty: never.")))
            (choice("overlap", "Overlap", &form.overlap, &[
                ("allow", "allow: run beside the active run"),
                ("skip", "skip: not while an earlier run of the cron is active"),
                ("buffer_one", "buffer_one: one waits, the rest are skipped"),
                ("buffer_all", "buffer_all: each waits its turn"),
                ("cancel_other", "cancel_other: interrupt the active run"),
            ], Some("Stateless crons: what an instant does while an earlier run of the cron is still pending or running.")))
            (number("jitter_seconds", "Jitter (seconds)", &form.jitter_seconds, "0", "3600",
                "Start each instant a delay drawn from [0, jitter) after it, the same on every replica."))
            (number("remaining_runs", "Run limit", &form.remaining_runs, "1", "",
                "Fire this many more times, then pause; empty: no limit."))
            (field("paused_until", "Paused until", html! {
                input #paused_until type="text" name="paused_until" value=(form.paused_until) placeholder="2026-12-07T09:00:00Z" autocomplete="off"
                    aria-invalid=[invalid("paused_until")] aria-describedby=(described("paused_until", true).unwrap_or_default());
            }, Some("ISO-8601; the first instant at or after it fires. Empty: not paused until a time.")))
            (choice("dst_repeat", "Repeated hour (DST)", &form.dst_repeat, &[
                ("once", "once: the first occurrence"),
                ("twice", "twice: both occurrences"),
            ], None))
            (choice("dst_gap", "Skipped hour (DST)", &form.dst_gap, &[
                ("shift", "shift: right after the gap"),
                ("skip", "skip: not that day"),
            ], None))
            @if cron_id.is_some() {
                button.primary type="submit" { "Save" }
            } @else {
                button.primary type="submit" { "Create cron" }
            }
            " "
            a href=(cron_id.map_or("/ui/crons".to_string(), |id| format!("/ui/crons/{id}"))) { "Cancel" }
        }
    };
    page(viewer, &title, Nav::Crons, body)
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct PauseForm {
    note: String,
}

pub async fn pause(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(cron_id): Path<String>,
    Form(form): Form<PauseForm>,
) -> Result<Redirect, Failure> {
    let mut body = json!({"enabled": false});
    if !form.note.trim().is_empty() {
        body["pause_note"] = json!(form.note.trim());
    }
    let _cron = crons::patch(
        State(state),
        viewer.caller,
        Path(cron_id.clone()),
        RawJson(body),
    )
    .await?;
    Ok(Redirect::to(&format!("/ui/crons/{cron_id}?done=paused")))
}

pub async fn resume(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(cron_id): Path<String>,
) -> Result<Redirect, Failure> {
    let _cron = crons::patch(
        State(state),
        viewer.caller,
        Path(cron_id.clone()),
        RawJson(json!({"enabled": true})),
    )
    .await?;
    Ok(Redirect::to(&format!("/ui/crons/{cron_id}?done=resumed")))
}

pub async fn trigger(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(cron_id): Path<String>,
) -> Result<Redirect, Failure> {
    let _run = crons::trigger(State(state), viewer.caller, Path(cron_id.clone())).await?;
    Ok(Redirect::to(&format!("/ui/crons/{cron_id}?done=triggered")))
}

pub async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(cron_id): Path<String>,
) -> Result<Redirect, Failure> {
    crons::delete(State(state), viewer.caller, Path(cron_id)).await?;
    Ok(Redirect::to("/ui/crons?done=deleted"))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RetryForm {
    from: String,
}

pub async fn retry(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(delivery_id): Path<String>,
    Form(form): Form<RetryForm>,
) -> Result<Redirect, Failure> {
    let delivery = webhooks::retry(State(state), viewer.caller, Path(delivery_id)).await?;
    let cron_id = crate::api::to_json(&delivery.0)
        .get("cron_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(match (form.from.as_str(), cron_id) {
        ("cron", Some(cron_id)) => Redirect::to(&format!("/ui/crons/{cron_id}?done=retried")),
        _ => Redirect::to("/ui/deliveries?done=retried"),
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct PreviewQuery {
    schedule: String,
    timezone: String,
    /// The form's daylight-saving choices (absent or unknown: the defaults).
    dst_repeat: String,
    dst_gap: String,
}

/// The schedule in words and its next 5 instants, by the daemon's parser (the API's).
pub async fn preview(_viewer: Viewer, Query(query): Query<PreviewQuery>) -> Response {
    let zone_name = Some(query.timezone.trim()).filter(|z| !z.is_empty());
    let dst = Dst {
        repeat: DstRepeat::parse(&query.dst_repeat).unwrap_or_default(),
        gap: DstGap::parse(&query.dst_gap).unwrap_or_default(),
    };
    let parsed = Schedule::parse(query.schedule.trim())
        .and_then(|schedule| Ok((schedule, parse_timezone(zone_name)?)));
    match parsed {
        Ok((schedule, zone)) => {
            let next: Vec<Value> = schedule
                .upcoming(to_datetime(now_ms()), zone, None, 5, dst)
                .into_iter()
                .map(|t| {
                    json!({
                        "utc": iso(t.timestamp_millis()),
                        "zoned": super::view::zoned(t.timestamp_millis(), zone),
                    })
                })
                .collect();
            Json(json!({
                "words": format!("{}, {}", schedule.words(), zone_name.unwrap_or("UTC")),
                "next": next,
            }))
            .into_response()
        }
        Err(err) => ApiError::invalid(err.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct LoginQuery {
    next: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    key: String,
    next: String,
}

/// Where to go after logging in: a console path, nothing else (no open redirect).
fn after_login(next: &str) -> String {
    if next.starts_with("/ui") && !next.starts_with("//") && !next.contains('\\') {
        next.to_string()
    } else {
        "/ui".to_string()
    }
}

fn login_markup(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (super::view::head("Log in", html! {}))
            body {
                main.login {
                    h1 { "cronhook console" }
                    @if let Some(error) = error { p.error-box role="alert" { (error) } }
                    form method="post" action="/ui/login" {
                        input type="hidden" name="next" value=(next);
                        div.field {
                            label for="key" { "API key" }
                            input #key type="password" name="key" required autocomplete="current-password";
                        }
                        button.primary type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

pub async fn login_page(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
) -> Response {
    if state.api_keys.is_empty() {
        return Redirect::to("/ui").into_response();
    }
    Html(login_markup(&after_login(&query.next), None).into_string()).into_response()
}

pub async fn login(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = after_login(&form.next);
    if state.api_keys.is_empty() {
        return Redirect::to(&next).into_response();
    }
    let refuse = |status: StatusCode, message: &str| {
        (
            status,
            Html(login_markup(&next, Some(message)).into_string()),
        )
            .into_response()
    };
    match state.api_keys.admit(form.key.trim()) {
        Ok(caller) => {
            tracing::info!(identity = caller.identity.as_deref(), "console login");
            console.sessions.end(&headers);
            let (id, _) = console.sessions.start(caller, true);
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(Some(&id), console.sessions.ttl(), is_https(&headers, &uri)),
            );
            response
        }
        Err(Refusal::Unknown) => refuse(StatusCode::UNAUTHORIZED, "That API key is not valid."),
        Err(Refusal::RateLimited(wait)) => refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many requests with this key: try again in {} s.",
                wait.as_secs().max(1)
            ),
        ),
    }
}

pub async fn logout(
    Extension(console): Extension<Arc<Console>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    console.sessions.end(&headers);
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(None, console.sessions.ttl(), is_https(&headers, &uri)),
    );
    response
}
