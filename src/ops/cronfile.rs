//! The crons file (`crons.toml`) that `apply` reads and `export` and `import-crontab`
//! write: one definition of the format, so what one writes the other reads back unchanged.
//!
//! Each value is checked as it is read (schedule, time zone, instant, URL, …), so a bad
//! value is reported by the TOML parser with its line, column and key.

use std::num::NonZeroU32;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use toml::Spanned;
use uuid::Uuid;

use entity::states::{DstGap, DstRepeat, MisfirePolicy, MultitaskStrategy, OnCompletion, Overlap};

use crate::schedule::{Schedule, parse_timezone};
use crate::time::parse_instant;

/// The metadata key holding a cron's set (the file's `set`).
pub const SET_KEY: &str = "cronhook.set";
/// The metadata key holding a cron's `name` within its set.
pub const NAME_KEY: &str = "cronhook.name";

/// A crons file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronsFile {
    /// The group the file's crons belong to; default: the file's name without extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Label>,
    #[serde(default)]
    pub crons: Vec<Spanned<CronEntry>>,
}

/// One `[[crons]]` table: the create body's fields and a `name`, stable within the set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronEntry {
    pub name: Label,
    /// A graph name or an assistant id.
    pub assistant_id: Label,
    pub schedule: ScheduleText,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Zone>,
    /// A thread cron on this thread; absent: stateless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Uuid>,
    /// Absent: enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Instant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_run_completed: Option<OnCompletion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multitask_strategy: Option<MultitaskStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire_policy: Option<MisfirePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catchup_window_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_after_failures: Option<NonZeroU32>,
    /// Stateless crons: absent is `allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// Absent: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_seconds: Option<u32>,
    /// Absent: `once`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_repeat: Option<DstRepeat>,
    /// Absent: `shift`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_gap: Option<DstGap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// The runs' `config` (e.g. `configurable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
}

/// A bad crons file: what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The TOML parser's message: line, column, the line itself and what is wrong.
    #[error("{path}: {detail}")]
    Toml { path: String, detail: String },
    #[error("{path}: line {line}: {detail}")]
    Invalid {
        path: String,
        line: usize,
        detail: String,
    },
    #[error("{path}: {detail}")]
    Other { path: String, detail: String },
}

/// A crons file read and checked: its set and entries (with the line each starts on).
#[derive(Debug)]
pub struct Loaded {
    pub set: String,
    pub entries: Vec<(usize, CronEntry)>,
}

/// Reads `path` (`-`: stdin) and checks it whole.
pub fn load(path: &Path) -> Result<Loaded, FileError> {
    let shown = path.display().to_string();
    let text = if shown == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|source| FileError::Read {
        path: shown.clone(),
        source,
    })?;
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .filter(|_| shown != "-");
    parse(&text, stem, &shown)
}

/// Parses a crons file's text; `stem` is the default set.
pub fn parse(text: &str, stem: Option<&str>, path: &str) -> Result<Loaded, FileError> {
    let file: CronsFile = toml::from_str(text).map_err(|err| FileError::Toml {
        path: path.to_string(),
        detail: err.to_string().trim_end().to_string(),
    })?;
    let set = match (file.set, stem) {
        (Some(set), _) => set.0,
        (None, Some(stem)) => {
            Label::try_from(stem.to_string())
                .map_err(|detail| FileError::Other {
                    path: path.to_string(),
                    detail: format!(
                        "the file's name is no set name ({detail}): give `set = \"…\"`"
                    ),
                })?
                .0
        }
        (None, None) => {
            return Err(FileError::Other {
                path: path.to_string(),
                detail: "give `set = \"…\"` in a file read from stdin".into(),
            });
        }
    };
    let invalid = |span: Range<usize>, detail: String| FileError::Invalid {
        path: path.to_string(),
        line: line_of(text, span.start),
        detail,
    };
    let mut entries: Vec<(usize, CronEntry)> = Vec::new();
    for spanned in file.crons {
        let span = spanned.span();
        let entry = spanned.into_inner();
        let line = line_of(text, span.start);
        if let Some((first, _)) = entries.iter().find(|(_, e)| e.name == entry.name) {
            return Err(invalid(
                span,
                format!(
                    "name \"{}\" is used twice (also on line {first}): names are unique in a set",
                    entry.name.0
                ),
            ));
        }
        if entry.thread_id.is_some() && entry.on_run_completed.is_some() {
            return Err(invalid(
                span,
                format!(
                    "cron \"{}\": on_run_completed is for stateless crons, not with thread_id",
                    entry.name.0
                ),
            ));
        }
        entries.push((line, entry));
    }
    Ok(Loaded { set, entries })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// Writes a crons file: `set`, then each cron as a `[[crons]]` table, each preceded by
/// its comment lines (from `comments`, same order; none when empty).
pub fn render(
    set: &str,
    entries: &[CronEntry],
    comments: &[Vec<String>],
) -> Result<String, String> {
    let mut out = toml::to_string(&CronsFile {
        set: Some(Label(set.to_string())),
        crons: Vec::new(),
    })
    .map_err(|err| err.to_string())?;
    // An empty `crons = []` says nothing the reader needs.
    out = out
        .lines()
        .filter(|line| line.trim() != "crons = []")
        .map(|line| format!("{line}\n"))
        .collect();
    for (index, entry) in entries.iter().enumerate() {
        let one = CronsFile {
            set: None,
            crons: vec![Spanned::new(0..0, entry.clone())],
        };
        let table =
            toml::to_string(&one).map_err(|err| format!("cron \"{}\": {err}", entry.name.0))?;
        out.push('\n');
        for comment in comments.get(index).into_iter().flatten() {
            for line in comment.lines() {
                out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
            }
        }
        out.push_str(&table);
    }
    Ok(out)
}

/// Any non-empty text without control characters or surrounding spaces (names, sets,
/// assistant ids).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(pub String);

impl TryFrom<String> for Label {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.trim() != text {
            return Err(format!("\"{text}\" has spaces around it"));
        }
        if text.chars().any(char::is_control) {
            return Err("must not hold control characters".into());
        }
        Ok(Label(text))
    }
}

impl From<Label> for String {
    fn from(label: Label) -> String {
        label.0
    }
}

/// A schedule the daemon accepts (five fields, an optional sixth for seconds, `@daily`…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScheduleText(pub String);

impl TryFrom<String> for ScheduleText {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Schedule::parse(&text)
            .map(|_| ScheduleText(text))
            .map_err(|err| err.to_string())
    }
}

impl From<ScheduleText> for String {
    fn from(schedule: ScheduleText) -> String {
        schedule.0
    }
}

/// An IANA time zone name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Zone(pub String);

impl TryFrom<String> for Zone {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        parse_timezone(Some(&text))
            .map(|_| Zone(text))
            .map_err(|err| err.to_string())
    }
}

impl From<Zone> for String {
    fn from(zone: Zone) -> String {
        zone.0
    }
}

/// An ISO-8601 instant (`2026-12-31T23:59:00Z`), kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Instant(pub String);

impl Instant {
    /// Milliseconds since the epoch (checked when read).
    pub fn millis(&self) -> Option<i64> {
        parse_instant(&self.0).map(|instant| instant.timestamp_millis())
    }
}

impl TryFrom<String> for Instant {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match parse_instant(&text) {
            Some(_) => Ok(Instant(text)),
            None => Err(format!(
                "'{text}' is not an ISO-8601 instant (e.g. \"2026-12-31T23:59:00Z\", a string)"
            )),
        }
    }
}

impl From<Instant> for String {
    fn from(instant: Instant) -> String {
        instant.0
    }
}

/// An http:// or https:// URL (the daemon also applies its webhook URL policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl(pub String);

impl TryFrom<String> for WebhookUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        match url::Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(WebhookUrl(text)),
            Ok(_) => Err(format!("'{text}' is not an http:// or https:// URL")),
            Err(err) => Err(format!("'{text}' is not a URL: {err}")),
        }
    }
}

impl From<WebhookUrl> for String {
    fn from(url: WebhookUrl) -> String {
        url.0
    }
}

/// A run input: a table or a list of tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Input(pub Value);

impl TryFrom<Value> for Input {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        match &value {
            Value::Object(_) => Ok(Input(value)),
            Value::Array(items) if items.iter().all(Value::is_object) => Ok(Input(value)),
            _ => Err("must be a table or a list of tables".into()),
        }
    }
}

impl From<Input> for Value {
    fn from(input: Input) -> Value {
        input.0
    }
}

/// A cron's own metadata; the set and name keys are apply's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct Metadata(pub Map<String, Value>);

impl TryFrom<Map<String, Value>> for Metadata {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        for key in [SET_KEY, NAME_KEY] {
            if map.contains_key(key) {
                return Err(format!(
                    "\"{key}\" is set by apply (from `set` and `name`); leave it out"
                ));
            }
        }
        Ok(Metadata(map))
    }
}

impl From<Metadata> for Map<String, Value> {
    fn from(metadata: Metadata) -> Map<String, Value> {
        metadata.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Loaded, FileError> {
        parse(text, Some("nightly"), "crons.toml")
    }

    #[test]
    fn the_set_defaults_to_the_file_stem() {
        let loaded =
            parsed("[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\n")
                .expect("valid");
        assert_eq!(loaded.set, "nightly");
        assert_eq!(loaded.entries[0].0, 1);
        let loaded = parsed("set = \"other\"\n").expect("valid");
        assert_eq!(loaded.set, "other");
        assert!(loaded.entries.is_empty());
    }

    #[test]
    fn a_bad_value_names_its_line_and_key() {
        let err = parsed(
            "set = \"s\"\n\n[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"61 * * * *\"\n",
        )
        .expect_err("bad schedule");
        let text = err.to_string();
        assert!(text.contains("line 6"), "{text}");
        assert!(text.contains("Invalid cron schedule"), "{text}");
        let err = parsed(
            "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\ntimezone = \"Mars/Base\"\n",
        )
        .expect_err("bad zone");
        assert!(err.to_string().contains("line 5"), "{err}");
        let err = parsed(
            "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\nschedul = \"x\"\n",
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("schedul"), "{err}");
        let err = parsed(
            "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\nmetadata = { \"cronhook.set\" = \"x\" }\n",
        )
        .expect_err("reserved key");
        assert!(err.to_string().contains("set by apply"), "{err}");
        let err = parsed(
            "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\ninput = [1]\n",
        )
        .expect_err("bad input");
        assert!(err.to_string().contains("list of tables"), "{err}");
        let err = parsed(
            "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\nend_time = \"tomorrow\"\n",
        )
        .expect_err("bad instant");
        assert!(err.to_string().contains("ISO-8601"), "{err}");
    }

    #[test]
    fn names_are_unique_and_thread_crons_keep_their_threads() {
        let twice = "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\n\n\
                     [[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@hourly\"\n";
        let err = parsed(twice).expect_err("duplicate");
        let text = err.to_string();
        assert!(text.contains("line 6") && text.contains("line 1"), "{text}");
        let err = parsed(
            "[[crons]]\nname = \"a\"\nassistant_id = \"agent\"\nschedule = \"@daily\"\n\
             thread_id = \"0190a4b8-0000-7000-8000-000000000001\"\non_run_completed = \"keep\"\n",
        )
        .expect_err("thread cron with on_run_completed");
        assert!(err.to_string().contains("stateless"), "{err}");
        let err = parse("crons = []\n", None, "-").expect_err("stdin without set");
        assert!(err.to_string().contains("set"), "{err}");
    }

    #[test]
    fn render_then_parse_gives_the_same_entries() {
        let text = "set = \"s\"\n\n[[crons]]\nname = \"a b\"\nassistant_id = \"agent\"\n\
                    schedule = \"*/5 * * * *\"\ntimezone = \"Europe/Paris\"\nenabled = false\n\
                    end_time = \"2030-01-01T00:00:00Z\"\npause_after_failures = 3\n\
                    input = { messages = [{ role = \"user\", content = \"hi\" }] }\n\
                    metadata = { team = \"ops\", n = 1.5 }\nconfig = { configurable = { x = 1 } }\n";
        let loaded = parsed(text).expect("valid");
        let entries: Vec<CronEntry> = loaded.entries.into_iter().map(|(_, e)| e).collect();
        let out = render("s", &entries, &[vec!["a comment".into()]]).expect("renders");
        assert!(out.contains("# a comment\n[[crons]]"), "{out}");
        let again = parsed(&out).expect("re-reads");
        assert_eq!(again.set, "s");
        let again: Vec<CronEntry> = again.entries.into_iter().map(|(_, e)| e).collect();
        assert_eq!(
            serde_json::to_value(&again).expect("json"),
            serde_json::to_value(&entries).expect("json")
        );
    }
}
