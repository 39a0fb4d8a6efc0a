//! The console's page shell and the small pieces pages share: times, badges, charts
//! (inline SVG drawn here, so nothing is loaded to draw them), errors.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, html};

use entity::states::{DeliveryStatus, FireOutcome, RunStatus};

use super::Viewer;
use super::assets::{CSS, JS};
use crate::api::ApiError;
use crate::time::{Millis, iso, to_datetime};

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Crons,
    Deliveries,
}

/// The `<head>` of every console page; `extra` follows the stylesheet.
pub fn head(title: &str, extra: Markup) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · cronhook" }
            link rel="stylesheet" href=(CSS.path);
            (extra)
        }
    }
}

pub fn page(viewer: &Viewer, title: &str, nav: Nav, body: Markup) -> Markup {
    let current = |n: Nav| (n == nav).then_some("page");
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, html! {
                meta name="csrf-token" content=(viewer.csrf);
                script src=(JS.path) defer {}
            }))
            body data-stream="/ui/stream" {
                header.top {
                    a.brand href="/ui" { "cronhook" }
                    nav aria-label="Main" {
                        ul {
                            li { a href="/ui" aria-current=[current(Nav::Overview)] { "Overview" } }
                            li { a href="/ui/crons" aria-current=[current(Nav::Crons)] { "Crons" } }
                            li { a href="/ui/deliveries" aria-current=[current(Nav::Deliveries)] { "Deliveries" } }
                            li { a href="/docs" { "API docs" } }
                        }
                    }
                    div.who {
                        @if let Some(identity) = &viewer.caller.identity {
                            span { (identity) @if viewer.caller.admin { " (admin)" } }
                        }
                        @if viewer.logged_in {
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page of its own for a failure (no session needed).
pub fn failure_page(status: StatusCode, detail: &str) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Error · cronhook" }
                link rel="stylesheet" href=(CSS.path);
            }
            body {
                main {
                    h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
                    p.error-box role="alert" { (detail) }
                    p { a href="/ui" { "Back to the console" } }
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// A console handler's failure: the API's error, shown as a page.
pub struct Failure(pub ApiError);

impl<E: Into<ApiError>> From<E> for Failure {
    fn from(err: E) -> Failure {
        Failure(err.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        failure_page(self.0.status, &self.0.detail)
    }
}

pub type PageResult<T = Markup> = Result<T, Failure>;

/// An instant: UTC in the page, turned into the browser's zone (and "in 5 min") by the script.
pub fn time(ms: Millis, relative: bool) -> Markup {
    let text = to_datetime(ms).format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! {
        time datetime=(iso(ms)) data-local="" data-rel=[relative.then_some("")] { (text) }
    }
}

/// An instant in a cron's zone.
pub fn zoned(ms: Millis, zone: Tz) -> String {
    to_datetime(ms)
        .with_timezone(&zone)
        .format("%a %Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The colour class of a run status.
pub fn status_class(status: Option<RunStatus>) -> &'static str {
    match status {
        Some(RunStatus::Success) => "ok",
        Some(RunStatus::Error | RunStatus::Timeout) => "bad",
        Some(RunStatus::Interrupted) => "warn",
        _ => "idle",
    }
}

pub fn run_badge(status: Option<RunStatus>) -> Markup {
    let class = format!("badge b-{}", status_class(status));
    html! { span class=(class) { (status.map_or("none", RunStatus::as_str)) } }
}

pub fn delivery_badge(status: DeliveryStatus) -> Markup {
    let class = match status {
        DeliveryStatus::Delivered => "badge b-ok",
        DeliveryStatus::Failed => "badge b-bad",
        _ => "badge b-idle",
    };
    html! { span class=(class) { (status.as_str()) } }
}

/// The class of a history entry's outcome: its run's status, or what kept it from running.
pub fn outcome_class(outcome: FireOutcome, status: Option<RunStatus>) -> &'static str {
    match outcome {
        FireOutcome::Missed | FireOutcome::Rejected | FireOutcome::Skipped => "warn",
        _ => status_class(status),
    }
}

/// The last instants as coloured squares, oldest on the left.
pub fn strip(outcomes: &[(FireOutcome, Option<RunStatus>)]) -> Markup {
    let ok = outcomes
        .iter()
        .filter(|(o, s)| outcome_class(*o, *s) == "ok")
        .count();
    let bad = outcomes
        .iter()
        .filter(|(o, s)| outcome_class(*o, *s) == "bad")
        .count();
    let label = format!(
        "Last {} instants: {ok} succeeded, {bad} failed, {} other",
        outcomes.len(),
        outcomes.len() - ok - bad
    );
    let width = 30 * 6;
    html! {
        svg.strip role="img" aria-label=(label) width=(width) height="12" viewBox=(format!("0 0 {width} 12")) {
            title { (label) }
            @for (i, (outcome, status)) in outcomes.iter().rev().enumerate() {
                rect class=(format!("s-{}", outcome_class(*outcome, *status))) x=(i * 6) y="0" width="5" height="12" {}
            }
        }
    }
}

/// A bar chart of counts, with its label for assistive technology.
pub fn bars(values: &[u64], label: &str, x_caption: &str) -> Markup {
    let (w, h, pad) = (600.0_f64, 110.0_f64, 16.0_f64);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = (w - pad) / values.len().max(1) as f64;
    html! {
        svg.chart role="img" aria-label=(label) viewBox=(format!("0 0 {w} {h}")) {
            title { (label) }
            line.axis x1=(pad) y1=(h - pad) x2=(w) y2=(h - pad) {}
            text x="2" y="12" { (max as u64) }
            text x=(pad) y=(h - 4.0) { (x_caption) }
            @for (i, v) in values.iter().enumerate() {
                @let bh = (*v as f64 / max) * (h - 2.0 * pad);
                rect.bar x=(format!("{:.1}", pad + i as f64 * step + 1.0)) y=(format!("{:.1}", h - pad - bh))
                    width=(format!("{:.1}", (step - 2.0).max(1.0))) height=(format!("{bh:.1}")) {}
            }
        }
    }
}

/// A line of values (gaps where there is none), e.g. lateness per minute in milliseconds.
pub fn line(values: &[Option<f64>], label: &str, unit: &str, x_caption: &str) -> Markup {
    let (w, h, pad) = (600.0_f64, 110.0_f64, 16.0_f64);
    let max = values
        .iter()
        .flatten()
        .copied()
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let step = (w - pad) / (values.len().max(2) - 1) as f64;
    let mut path = String::new();
    let mut pen_down = false;
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                let x = pad + i as f64 * step;
                let y = h - pad - (v / max) * (h - 2.0 * pad);
                path.push_str(&format!(
                    "{}{x:.1},{y:.1} ",
                    if pen_down { "L" } else { "M" }
                ));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    html! {
        svg.chart role="img" aria-label=(label) viewBox=(format!("0 0 {w} {h}")) {
            title { (label) }
            line.axis x1=(pad) y1=(h - pad) x2=(w) y2=(h - pad) {}
            text x="2" y="12" { (format!("{max:.0} {unit}")) }
            text x=(pad) y=(h - 4.0) { (x_caption) }
            @if !path.is_empty() { path.line d=(path) {} }
            @for (i, v) in values.iter().enumerate() {
                @if let Some(v) = v {
                    @if values.len() <= 60 {
                        circle cx=(format!("{:.1}", pad + i as f64 * step)) cy=(format!("{:.1}", h - pad - (v / max) * (h - 2.0 * pad))) r="2" class="line" {}
                    }
                }
            }
        }
    }
}

/// A percentile of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn millis(ms: i64) -> String {
    if ms.abs() >= 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// The notice a finished action leaves (`?done=…`): fixed words, never the query's text.
pub fn notice(done: Option<&str>) -> Markup {
    let text = match done {
        Some("created") => "Cron created.",
        Some("saved") => "Changes saved.",
        Some("paused") => "Cron paused.",
        Some("resumed") => "Cron resumed.",
        Some("triggered") => "Run queued.",
        Some("deleted") => "Cron deleted.",
        Some("retried") => "Delivery queued again.",
        _ => return html! {},
    };
    html! { p.notice role="status" { (text) } }
}

/// Text as JSON, pretty, for display.
pub fn pretty(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.mono { (text) } }
}
