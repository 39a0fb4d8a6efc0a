//! Tables for people (comfy-table): lists as aligned columns, one object as key/value rows.
//! `--json` bypasses all of this and prints the daemon's answer as is.

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

/// A column: its header and how a row's value is read from the object.
type Column = (&'static str, fn(&Value) -> String);

const CRON_COLUMNS: &[Column] = &[
    ("CRON ID", |c| text(&c["cron_id"])),
    ("SCHEDULE", |c| text(&c["schedule"])),
    ("TIMEZONE", |c| {
        c["timezone"].as_str().unwrap_or("UTC").to_string()
    }),
    ("NEXT RUN", next_run),
    ("LAST STATUS", last_status),
    ("LAST RUN", |c| text(&c["last_run_at"])),
    ("THREAD", |c| match &c["thread_id"] {
        Value::Null => "stateless".to_string(),
        thread => text(thread),
    }),
];

const OWNER_COLUMN: Column = ("OWNER", |c| match c["user_id"].as_str() {
    Some("") | None => "-".to_string(),
    Some(owner) => owner.to_string(),
});

/// "paused" for a disabled cron (whatever its schedule says; "paused until …" when it
/// resumes by itself), "ended" past its end time.
fn next_run(cron: &Value) -> String {
    match (&cron["enabled"], &cron["next_run_date"]) {
        (Value::Bool(false), _) if cron["paused_until"].is_string() => {
            format!("paused until {}", text(&cron["paused_until"]))
        }
        (Value::Bool(false), _) => "paused".to_string(),
        (_, Value::Null) => "ended".to_string(),
        (_, next) => text(next),
    }
}

/// The last run's status, and how many runs in a row failed when more than one did.
fn last_status(cron: &Value) -> String {
    let status = text(&cron["last_run_status"]);
    match cron["consecutive_failures"].as_i64() {
        Some(failures) if failures > 1 => format!("{status} x{failures}"),
        _ => status,
    }
}

const THREAD_COLUMNS: &[Column] = &[
    ("THREAD ID", |t| text(&t["thread_id"])),
    ("STATUS", |t| text(&t["status"])),
    ("CREATED", |t| text(&t["created_at"])),
    ("UPDATED", |t| text(&t["updated_at"])),
    ("METADATA", |t| text(&t["metadata"])),
];

const ATTEMPT_COLUMNS: &[Column] = &[
    ("#", |a| text(&a["attempt"])),
    ("ATTEMPTED AT", |a| text(&a["attempted_at"])),
    ("CODE", |a| text(&a["status_code"])),
    ("LATENCY", |a| match a["latency_ms"].as_f64() {
        Some(ms) => format!("{ms:.1}ms"),
        None => "-".to_string(),
    }),
    ("ERROR", |a| text(&a["error"])),
];

const RUN_COLUMNS: &[Column] = &[
    ("RUN ID", |r| text(&r["run_id"])),
    ("STATUS", |r| text(&r["status"])),
    ("CREATED", |r| text(&r["created_at"])),
    ("UPDATED", |r| text(&r["updated_at"])),
    ("CRON ID", |r| text(&r["cron_id"])),
    ("SCHEDULED FOR", |r| text(&r["scheduled_for"])),
];

const DELIVERY_COLUMNS: &[Column] = &[
    ("DELIVERY ID", |d| text(&d["delivery_id"])),
    ("KIND", |d| text(&d["kind"])),
    ("RUN ID", |d| text(&d["run_id"])),
    ("STATUS", |d| text(&d["status"])),
    ("ATTEMPTS", |d| text(&d["attempts"])),
    ("LAST CODE", |d| text(&d["last_status_code"])),
    ("NEXT ATTEMPT", |d| text(&d["next_attempt_at"])),
    ("CREATED", |d| text(&d["created_at"])),
    ("LAST ERROR", |d| text(&d["last_error"])),
];

/// Crons; with `owners`, the identity each belongs to (for admins, who see everyone's).
pub fn crons(list: &Value, owners: bool) -> String {
    let mut columns = CRON_COLUMNS.to_vec();
    if owners {
        columns.push(OWNER_COLUMN);
    }
    rows(&columns, list)
}

pub fn threads(list: &Value) -> String {
    rows(THREAD_COLUMNS, list)
}

/// `GET /webhooks/deliveries/{id}`: the delivery's fields, then one row per attempt.
pub fn delivery(detail: &Value) -> String {
    let mut fields = detail.clone();
    let attempts = fields
        .as_object_mut()
        .and_then(|fields| fields.remove("attempt_log"))
        .unwrap_or(Value::Null);
    format!(
        "{}\n\nATTEMPTS\n{}",
        object(&fields),
        rows(ATTEMPT_COLUMNS, &attempts)
    )
}

pub fn runs(list: &Value) -> String {
    rows(RUN_COLUMNS, list)
}

pub fn deliveries(list: &Value) -> String {
    rows(DELIVERY_COLUMNS, list)
}

/// `GET /runs/crons/{id}/next`: one numbered row per instant, with its start when the
/// cron's jitter delays it.
pub fn next(answer: &Value) -> String {
    let instants = answer["next"].as_array().cloned().unwrap_or_default();
    let starts = answer["starts"].as_array().cloned().unwrap_or_default();
    let jittered = starts.len() == instants.len() && starts != instants;
    let header: &[&str] = if jittered {
        &["#", "NEXT RUN (UTC)", "STARTS (UTC)"]
    } else {
        &["#", "NEXT RUN (UTC)"]
    };
    let mut table = new_table(header);
    for (index, instant) in instants.iter().enumerate() {
        let mut row = vec![(index + 1).to_string(), text(instant)];
        if jittered {
            row.push(text(&starts[index]));
        }
        table.add_row(row);
    }
    table.trim_fmt()
}

/// `GET /runs/crons/{id}/history`: one row per entry, its instant in the cron's `zone` and
/// in UTC (a missed entry's first and last, a trigger's time of writing).
pub fn history(list: &Value, zone: chrono_tz::Tz) -> String {
    let local = format!("INSTANT ({zone})");
    let mut table = new_table(&[
        &local,
        "INSTANT (UTC)",
        "FIRE",
        "STATUS",
        "LATENESS",
        "DURATION",
        "WEBHOOK",
        "ERROR",
    ]);
    for entry in list.as_array().into_iter().flatten() {
        let at = |key: &str| crate::time::parse_instant(entry[key].as_str().unwrap_or_default());
        let (first, last) = match at("scheduled_for") {
            Some(first) => (Some(first), at("last_scheduled_for")),
            None => (at("fired_at"), None),
        };
        let shown = |to_text: &dyn Fn(chrono::DateTime<chrono::Utc>) -> String| match (first, last)
        {
            (Some(first), Some(last)) => format!("{} .. {}", to_text(first), to_text(last)),
            (Some(first), None) => to_text(first),
            _ => "-".to_string(),
        };
        let in_zone = |at: chrono::DateTime<chrono::Utc>| {
            at.with_timezone(&zone)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        };
        let in_utc =
            |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M:%SZ").to_string();
        let fire = match (entry["fire"].as_str(), entry["count"].as_i64()) {
            (Some("missed"), Some(count)) => format!(
                "missed x{count} ({})",
                entry["misfire_policy"].as_str().unwrap_or("-")
            ),
            (Some(fire), _) => fire.to_string(),
            _ => "-".to_string(),
        };
        let webhook = match &entry["webhook"] {
            Value::Object(webhook) => format!(
                "{} ({})",
                webhook.get("status").map(text).unwrap_or_default(),
                webhook.get("attempts").map(text).unwrap_or_default()
            ),
            _ => "-".to_string(),
        };
        let error = match &entry["error"] {
            Value::Object(error) => {
                let summary = format!(
                    "{}: {}",
                    error.get("error").map(text).unwrap_or_default(),
                    error.get("message").map(text).unwrap_or_default()
                );
                summary.chars().take(80).collect()
            }
            _ => "-".to_string(),
        };
        table.add_row(vec![
            shown(&in_zone),
            shown(&in_utc),
            fire,
            text(&entry["run_status"]),
            millis(&entry["lateness_ms"]),
            millis(&entry["duration_ms"]),
            webhook,
            error,
        ]);
    }
    table.trim_fmt()
}

/// Milliseconds as people read them: `850ms`, `2.4s`.
fn millis(value: &Value) -> String {
    match value.as_i64() {
        Some(ms) if ms.abs() < 1000 => format!("{ms}ms"),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
        None => "-".to_string(),
    }
}

/// One object as FIELD / VALUE rows, in the daemon's order; nested values as compact JSON.
pub fn object(value: &Value) -> String {
    let mut table = new_table(&["FIELD", "VALUE"]);
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                table.add_row(vec![key.clone(), text(value)]);
            }
        }
        other => {
            table.add_row(vec!["value".to_string(), text(other)]);
        }
    }
    table.trim_fmt()
}

/// A list answer (a JSON array) under the given columns; an empty list is the header alone.
fn rows(columns: &[Column], list: &Value) -> String {
    let headers: Vec<&str> = columns.iter().map(|(header, _)| *header).collect();
    let mut table = new_table(&headers);
    for item in list.as_array().into_iter().flatten() {
        table.add_row(
            columns
                .iter()
                .map(|(_, read)| read(item))
                .collect::<Vec<_>>(),
        );
    }
    table.trim_fmt()
}

/// Columns separated by two spaces, no borders: easy to read and to `grep`/`awk`.
fn new_table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
}

/// A cell: strings as they are, null as `-`, anything else as compact JSON.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(text) => text.replace(['\n', '\r'], " "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_are_aligned_columns() {
        let list = json!([
            {"cron_id": "c1", "schedule": "* * * * *", "timezone": null, "enabled": true,
             "next_run_date": "2026-01-01T00:00:00+00:00", "thread_id": null,
             "last_run_status": "error", "consecutive_failures": 3,
             "last_run_at": "2025-12-31T23:59:00+00:00", "user_id": "alice"},
            {"cron_id": "c22", "schedule": "0 9 * * mon", "timezone": "Europe/Paris",
             "enabled": false, "next_run_date": "2026-01-05T08:00:00+00:00", "thread_id": "t1",
             "last_run_status": null, "consecutive_failures": 0, "last_run_at": null,
             "user_id": ""},
        ]);
        let out = crons(&list, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("CRON ID  SCHEDULE"), "{out}");
        assert!(!lines[0].contains("OWNER"), "{out}");
        let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            words(lines[1]),
            "c1 * * * * * UTC 2026-01-01T00:00:00+00:00 error x3 2025-12-31T23:59:00+00:00 stateless",
            "{out}"
        );
        // A disabled cron says "paused" where its next run would be.
        assert_eq!(
            words(lines[2]),
            "c22 0 9 * * mon Europe/Paris paused - - t1",
            "{out}"
        );
        let mut resuming = list.clone();
        resuming[1]["paused_until"] = json!("2026-01-05T08:00:00+00:00");
        assert!(
            crons(&resuming, false).contains("paused until 2026-01-05T08:00:00+00:00"),
            "{}",
            crons(&resuming, false)
        );
        let with_owners = crons(&list, true);
        let lines: Vec<&str> = with_owners.lines().collect();
        assert!(lines[0].trim_end().ends_with("OWNER"), "{with_owners}");
        assert!(lines[1].trim_end().ends_with("alice"), "{with_owners}");
        assert!(lines[2].trim_end().ends_with('-'), "{with_owners}");
        // Columns line up: SCHEDULE starts at the same offset on every line.
        let at = lines[0].find("SCHEDULE").expect("header");
        assert_eq!(&lines[1][at..at + 9], "* * * * *");
        assert_eq!(&lines[2][at..at + 11], "0 9 * * mon");
    }

    #[test]
    fn history_shows_instants_in_the_zone_and_utc() {
        let list = json!([
            {"scheduled_for": "2026-01-01T08:00:00+00:00", "fire": "fired", "count": 1,
             "run_status": "error", "lateness_ms": 12, "duration_ms": 2400,
             "webhook": {"delivery_id": "d", "status": "delivered", "attempts": 1},
             "error": {"error": "ValueError", "message": "boom"}},
            {"scheduled_for": "2026-01-01T05:00:00+00:00",
             "last_scheduled_for": "2026-01-01T07:00:00+00:00", "fire": "missed", "count": 3,
             "misfire_policy": "skip", "run_status": null, "webhook": null, "error": null},
        ]);
        let out = history(&list, chrono_tz::Europe::Paris);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("INSTANT (Europe/Paris)"), "{out}");
        let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            words(lines[1]),
            "2026-01-01 09:00:00 2026-01-01 08:00:00Z fired error 12ms 2.4s delivered (1) ValueError: boom",
            "{out}"
        );
        assert!(
            lines[2].contains("2026-01-01 06:00:00 .. 2026-01-01 08:00:00"),
            "{out}"
        );
        assert!(lines[2].contains("missed x3 (skip)"), "{out}");
    }

    #[test]
    fn a_delivery_lists_its_attempts_under_its_fields() {
        let detail = json!({
            "delivery_id": "d1", "status": "failed", "attempts": 2,
            "attempt_log": [
                {"attempt": 1, "attempted_at": "2026-01-01T00:00:00+00:00", "status_code": 500,
                 "latency_ms": 3.4, "error": "HTTP 500", "response_body": null},
                {"attempt": 2, "attempted_at": "2026-01-01T00:00:05+00:00", "status_code": null,
                 "latency_ms": 1000.0, "error": "connection refused", "response_body": null},
            ],
        });
        let out = delivery(&detail);
        assert!(out.contains("status       failed"), "{out}");
        assert!(!out.contains("attempt_log"), "{out}");
        let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
        let lines: Vec<String> = out.lines().map(words).collect();
        let header = lines
            .iter()
            .position(|l| l.starts_with("# ATTEMPTED AT"))
            .expect("header");
        assert_eq!(
            lines[header + 1],
            "1 2026-01-01T00:00:00+00:00 500 3.4ms HTTP 500"
        );
        assert_eq!(
            lines[header + 2],
            "2 2026-01-01T00:00:05+00:00 - 1000.0ms connection refused"
        );
    }

    #[test]
    fn an_empty_list_is_the_header() {
        assert_eq!(deliveries(&json!([])).lines().count(), 1);
    }

    #[test]
    fn objects_are_field_value_rows() {
        let out = object(&json!({"cron_id": "c1", "metadata": {"a": 1}, "end_time": null}));
        assert!(out.contains("cron_id   c1"), "{out}");
        assert!(out.contains(r#"metadata  {"a":1}"#), "{out}");
        assert!(out.contains("end_time  -"), "{out}");
    }
}
