//! Alerts: the events a cron's runs and fires raise (`run_failed`, `instant_missed`,
//! `run_late`, `cron_recovered`, `cron_paused`), matched against the `[[alerts.routes]]`
//! and written as outbox rows (deliveries of kind `alert`) in the transaction that raised
//! them, so they are delivered like run webhooks: signed, retried, at least once.

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use entity::states::{DeliveryKind, DeliveryStatus, RunStatus};
use entity::{cron, delivery, run};

use crate::config::{AlertEvent, AlertFormat, AlertMode, AlertRouteConfig};
use crate::time::{Millis, iso};

/// A store's routes, shared with its run writer and set once at start-up
/// (`Store::set_alert_routes`); none until then.
#[derive(Clone, Default)]
pub(super) struct AlertRoutes(Arc<OnceLock<Vec<AlertRouteConfig>>>);

impl AlertRoutes {
    pub(super) fn get(&self) -> &[AlertRouteConfig] {
        self.0.get().map(Vec::as_slice).unwrap_or(&[])
    }

    /// False when routes were set already (they stay as they were).
    pub(super) fn set(&self, routes: Vec<AlertRouteConfig>) -> bool {
        self.0.set(routes).is_ok()
    }
}

/// The JSON body of an alert (a `slack` route gets `{"text": …}` made from it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Alert {
    /// `run_failed`, `instant_missed`, `run_late`, `cron_recovered` or `cron_paused`.
    #[serde(rename = "type")]
    pub event: String,
    pub cron_id: String,
    /// The instant concerned (the first of the instants missed), ISO-8601 UTC.
    pub scheduled_for: Option<String>,
    /// The run that raised it (null for `instant_missed`).
    pub run_id: Option<String>,
    pub run_status: Option<RunStatus>,
    /// The run's error, `{"error", "message"}` cut to 1 KiB, or null.
    pub error: Option<Value>,
    /// Failed runs in a row after this event.
    pub consecutive_failures: i32,
    pub cron: AlertCron,
    /// When the event happened, ISO-8601 UTC.
    pub at: String,
}

/// The cron an alert is about.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertCron {
    pub schedule: String,
    pub timezone: Option<String>,
    pub metadata: Value,
    pub assistant_id: String,
}

/// What happened, before it is matched with the routes.
pub(super) struct Event<'a> {
    pub event: AlertEvent,
    pub cron: &'a cron::Model,
    pub run: Option<&'a run::Model>,
    pub scheduled_for: Option<Millis>,
    pub consecutive_failures: i32,
    /// A change of state (`change` routes get only these for `run_failed`).
    pub change: bool,
    /// How late the run started (for `run_late`: each route has its own threshold).
    pub lateness: Option<Millis>,
    /// The missed instants' count (for `instant_missed`'s text).
    pub missed: Option<u64>,
}

impl Event<'_> {
    fn body(&self, now: Millis) -> Alert {
        Alert {
            event: self.event.as_str().to_string(),
            cron_id: self.cron.cron_id.clone(),
            scheduled_for: self.scheduled_for.map(iso),
            run_id: self.run.map(|run| run.run_id.clone()),
            run_status: self.run.map(|run| run.status),
            error: self
                .run
                .and_then(|run| super::history::cut_error(run.error.as_ref())),
            consecutive_failures: self.consecutive_failures,
            cron: AlertCron {
                schedule: self.cron.schedule.clone(),
                timezone: self.cron.timezone.clone(),
                metadata: self.cron.metadata.clone(),
                assistant_id: self.cron.assistant_id.clone(),
            },
            at: iso(now),
        }
    }

    fn sent_to(&self, route: &AlertRouteConfig) -> bool {
        if !route.events.contains(&self.event) || !matches_metadata(route, &self.cron.metadata) {
            return false;
        }
        match self.event {
            AlertEvent::RunFailed => route.mode == AlertMode::Every || self.change,
            AlertEvent::RunLate => self
                .lateness
                .is_some_and(|late| late > route.late_after.as_millis() as Millis),
            AlertEvent::InstantMissed | AlertEvent::CronRecovered | AlertEvent::CronPaused => true,
        }
    }
}

fn matches_metadata(route: &AlertRouteConfig, metadata: &Value) -> bool {
    let Some(wanted) = &route.match_metadata else {
        return true;
    };
    let empty = Map::new();
    let metadata = metadata.as_object().unwrap_or(&empty);
    wanted
        .iter()
        .all(|(key, value)| metadata.get(key) == Some(value))
}

/// A readable line for a Slack or Mattermost incoming webhook.
pub fn slack_text(alert: &Alert, missed: Option<u64>) -> String {
    let what = match alert.event.as_str() {
        "run_failed" => "run failed",
        "instant_missed" => "instant missed",
        "run_late" => "run started late",
        "cron_recovered" => "recovered",
        "cron_paused" => "paused",
        other => other,
    };
    let mut text = format!(
        "cronhook: cron {} ({}{}) {what}",
        alert.cron_id,
        alert.cron.schedule,
        alert
            .cron
            .timezone
            .as_deref()
            .map(|zone| format!(" {zone}"))
            .unwrap_or_default()
    );
    if let Some(instant) = &alert.scheduled_for {
        text.push_str(&format!(" at {instant}"));
    }
    if let Some(count) = missed.filter(|&count| count > 1) {
        text.push_str(&format!(" ({count} instants)"));
    }
    if let Some(status) = alert.run_status {
        text.push_str(&format!("; status {}", status.as_str()));
    }
    if alert.consecutive_failures > 0 {
        text.push_str(&format!(
            "; {} failure(s) in a row",
            alert.consecutive_failures
        ));
    }
    if let Some(error) = &alert.error {
        let kind = error
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("error");
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        text.push_str(&format!("; {kind}: {message}"));
    }
    if alert
        .cron
        .metadata
        .as_object()
        .is_some_and(|m| !m.is_empty())
    {
        text.push_str(&format!("; metadata {}", alert.cron.metadata));
    }
    text
}

/// The outbox rows of `events` for the routes that want them.
pub(super) fn deliveries(
    routes: &[AlertRouteConfig],
    events: &[Event],
    now: Millis,
) -> Vec<delivery::Model> {
    if routes.is_empty() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for event in events {
        let mut body = None;
        for route in routes.iter().filter(|route| event.sent_to(route)) {
            let alert = body.get_or_insert_with(|| event.body(now));
            let payload = match route.format {
                AlertFormat::Json => serde_json::to_value(&*alert).unwrap_or(Value::Null),
                AlertFormat::Slack => json!({ "text": slack_text(alert, event.missed) }),
            };
            rows.push(delivery::Model {
                delivery_id: uuid::Uuid::now_v7().to_string(),
                run_id: event.run.map(|run| run.run_id.clone()).unwrap_or_default(),
                thread_id: event
                    .run
                    .map(|run| run.thread_id.clone())
                    .unwrap_or_default(),
                cron_id: Some(event.cron.cron_id.clone()),
                scheduled_for: None,
                url: route.url.clone(),
                payload,
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: now,
                lease_owner: None,
                lease_expires_at: None,
                last_status_code: None,
                last_error: None,
                // The routes are the operator's: their deliveries are shown to admins only.
                user_id: None,
                created_at: now,
                updated_at: now,
                kind: DeliveryKind::Alert,
            });
        }
    }
    rows
}

/// Whether any route wants events of this kind (so the work to raise them can be skipped).
pub(super) fn wanted(routes: &[AlertRouteConfig], event: AlertEvent) -> bool {
    routes.iter().any(|route| route.events.contains(&event))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cron(metadata: Value) -> cron::Model {
        cron::Model {
            cron_id: "c1".into(),
            assistant_id: "a".into(),
            thread_id: None,
            user_id: Some("someone".into()),
            schedule: "0 2 * * *".into(),
            timezone: Some("Europe/Paris".into()),
            end_time: None,
            payload: json!({}),
            metadata,
            enabled: true,
            on_run_completed: None,
            next_run_at: None,
            created_at: 0,
            updated_at: 0,
            misfire_policy: None,
            catchup_window_seconds: None,
            last_run_status: None,
            last_run_at: None,
            consecutive_failures: 0,
            pause_note: None,
            pause_after_failures: None,
            overlap: Default::default(),
            jitter_seconds: 0,
            remaining_runs: None,
            paused_until: None,
            dst_repeat: Default::default(),
            dst_gap: Default::default(),
            held_runs: 0,
        }
    }

    fn route(events: &[AlertEvent], mode: AlertMode, format: AlertFormat) -> AlertRouteConfig {
        AlertRouteConfig {
            url: "https://hooks.example.com/a".into(),
            events: events.to_vec(),
            match_metadata: None,
            mode,
            late_after: Duration::from_secs(60),
            format,
        }
    }

    fn event(cron: &cron::Model, event: AlertEvent, change: bool) -> Event<'_> {
        Event {
            event,
            cron,
            run: None,
            scheduled_for: Some(7_200_000),
            consecutive_failures: 2,
            change,
            lateness: None,
            missed: None,
        }
    }

    #[test]
    fn change_routes_get_the_first_failure_every_routes_each() {
        let cron = cron(json!({}));
        let change = route(
            &[AlertEvent::RunFailed],
            AlertMode::Change,
            AlertFormat::Json,
        );
        let every = route(
            &[AlertEvent::RunFailed],
            AlertMode::Every,
            AlertFormat::Json,
        );
        assert!(event(&cron, AlertEvent::RunFailed, true).sent_to(&change));
        assert!(!event(&cron, AlertEvent::RunFailed, false).sent_to(&change));
        assert!(event(&cron, AlertEvent::RunFailed, false).sent_to(&every));
        assert!(!event(&cron, AlertEvent::CronPaused, true).sent_to(&every));
    }

    #[test]
    fn metadata_must_hold_every_key_and_value() {
        let ops = cron(json!({"team": "ops", "tier": 1}));
        let mut route = route(
            &[AlertEvent::CronPaused],
            AlertMode::Change,
            AlertFormat::Json,
        );
        route.match_metadata = json!({"team": "ops"}).as_object().cloned();
        assert!(event(&ops, AlertEvent::CronPaused, true).sent_to(&route));
        route.match_metadata = json!({"team": "ops", "tier": 2}).as_object().cloned();
        assert!(!event(&ops, AlertEvent::CronPaused, true).sent_to(&route));
        let bare = cron(json!({}));
        route.match_metadata = json!({"team": "ops"}).as_object().cloned();
        assert!(!event(&bare, AlertEvent::CronPaused, true).sent_to(&route));
    }

    #[test]
    fn late_is_past_each_routes_threshold() {
        let cron = cron(json!({}));
        let route = route(&[AlertEvent::RunLate], AlertMode::Change, AlertFormat::Json);
        let late = |ms| Event {
            lateness: Some(ms),
            ..event(&cron, AlertEvent::RunLate, false)
        };
        assert!(!late(60_000).sent_to(&route));
        assert!(late(60_001).sent_to(&route));
    }

    #[test]
    fn rows_are_alert_deliveries_in_the_routes_format() {
        let cron = cron(json!({"team": "ops"}));
        let routes = [
            route(
                &[AlertEvent::InstantMissed],
                AlertMode::Change,
                AlertFormat::Json,
            ),
            route(
                &[AlertEvent::InstantMissed],
                AlertMode::Change,
                AlertFormat::Slack,
            ),
            route(
                &[AlertEvent::RunFailed],
                AlertMode::Every,
                AlertFormat::Json,
            ),
        ];
        let missed = Event {
            missed: Some(3),
            ..event(&cron, AlertEvent::InstantMissed, true)
        };
        let rows = deliveries(&routes, &[missed], 1_000);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|row| row.kind == DeliveryKind::Alert
            && row.run_id.is_empty()
            && row.user_id.is_none()
            && row.cron_id.as_deref() == Some("c1")));
        let body = &rows[0].payload;
        assert_eq!(body["type"], "instant_missed");
        assert_eq!(body["scheduled_for"], "1970-01-01T02:00:00+00:00");
        assert_eq!(body["run_id"], Value::Null);
        assert_eq!(body["cron"]["timezone"], "Europe/Paris");
        assert_eq!(body["cron"]["metadata"]["team"], "ops");
        let text = rows[1].payload["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("c1 (0 2 * * * Europe/Paris) instant missed"),
            "{text}"
        );
        assert!(
            text.contains("(3 instants)") && text.contains("\"team\":\"ops\""),
            "{text}"
        );
    }
}
