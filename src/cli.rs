//! Command-line contract. Other tooling depends on these names exactly:
//! `cronhook [serve|migrate|check-config]`, `--bind`, `--data-dir`, `--database-url`,
//! `--config` and their `CRONHOOK_*` variables.
//!
//! The ops commands (`crons`, `runs`, `deliveries`) are defined here too; `crate::ops`
//! carries them out against the daemon's REST API.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;
use uuid::Uuid;

use crate::config::Overrides;

/// The exit codes of the ops commands, shown by `--help` (and in docs/operations.md).
pub const EXIT_CODES: &str = "\
Exit codes of the ops commands (crons, threads, runs, deliveries, apply, export):
  0  success
  2  usage error: bad command line or flag value (nothing was sent);
     apply --dry-run: the plan has changes
  3  not found (404)
  4  authentication or permission refused (401/403): check --api-key / CRONHOOK_API_KEY
  5  input rejected by the daemon (400/409/422, any other 4xx); its detail is printed;
     apply: the crons file is not valid (its line and key are printed), or a change
     needs --replace
  6  cannot reach the daemon, or it failed (connection refused, timeout, 5xx)
serve and migrate exit 1 on failure; every command exits 2 on an invalid configuration;
import-crontab exits 5 when a crontab line cannot be converted.";

/// How `apply` reads its file, shown by `apply --help`.
pub const APPLY_HELP: &str = "\
The file: an optional top-level `set = \"NAME\"` (default: the file's name without its
extension) and one [[crons]] table per cron, each with a `name` unique in the set plus the
fields of a cron create: assistant_id, schedule, timezone, thread_id, enabled, end_time,
webhook, on_run_completed, multitask_strategy, misfire_policy, catchup_window_seconds,
pause_after_failures, input, metadata, config, context. The set and name are kept in each
cron's metadata as \"cronhook.set\" and \"cronhook.name\"; only crons carrying the file's
set are ever changed. See docs/files.md.

The plan prints one line per change: `+ create`, `~ update` (with the fields that differ),
`-/+ replace` (a change PATCH cannot make: assistant_id, thread_id, multitask_strategy, or
unsetting webhook, input, misfire_policy, catchup_window_seconds or a metadata key),
`- delete` (with --prune).";

#[derive(Debug, Parser)]
#[command(
    name = "cronhook",
    version,
    about = "LangGraph-compatible cron and webhook daemon",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Daemon options")]
pub struct GlobalArgs {
    /// TOML config file (keys in docs/configuration.md). Without one, built-in defaults apply.
    #[arg(long, env = "CRONHOOK_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address the API listens on [default: 127.0.0.1:8123].
    #[arg(long, env = "CRONHOOK_BIND", global = true)]
    pub bind: Option<SocketAddr>,
    /// Data directory, created if missing [default: ./data].
    #[arg(long, env = "CRONHOOK_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` or `sqlite://…` [default: SQLite file cronhook.db in the data dir].
    #[arg(long, env = "CRONHOOK_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(
        long,
        env = "CRONHOOK_LOG_FORMAT",
        global = true,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Serve without API keys on a non-loopback address.
    #[arg(
        long,
        env = "CRONHOOK_ALLOW_UNAUTHENTICATED",
        global = true,
        value_parser = BoolishValueParser::new()
    )]
    pub allow_unauthenticated: bool,
}

/// How the ops commands reach the daemon.
#[derive(Debug, Args, Clone)]
#[command(
    next_help_heading = "API client options (crons, threads, runs, deliveries, apply, export)"
)]
pub struct ClientArgs {
    /// Base URL of the cronhook API (ops commands).
    #[arg(
        long,
        env = "CRONHOOK_URL",
        global = true,
        default_value = "http://127.0.0.1:8123"
    )]
    pub url: url::Url,
    /// API key for the ops commands, sent as `x-api-key` (never printed).
    #[arg(long, env = "CRONHOOK_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<ApiKey>,
    /// Print the daemon's JSON answer as is (pretty) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// An API key; its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Any text is taken here: checking it in a value parser would echo it in clap's error.
/// The client refuses one that cannot be a header value, without showing it.
impl FromStr for ApiKey {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(ApiKey(text.to_string()))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default when no subcommand is given).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Convert a crontab into command graphs (for the config) and a crons file (for
    /// apply), calling nothing.
    #[command(after_help = IMPORT_HELP)]
    ImportCrontab(ImportCrontabArgs),
    /// Write the man pages or shell completions generated from this command line
    /// (packaging: scripts/deb.sh).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
    #[command(flatten)]
    Ops(OpsCommand),
}

/// What `cronhook generate` writes.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Man pages (section 1) of cronhook and each of its subcommands into DIR.
    Man { dir: PathBuf },
    /// Completions for bash, zsh and fish into DIR (cronhook.bash, _cronhook, cronhook.fish).
    Completions { dir: PathBuf },
}

/// Commands that talk to a running daemon over its REST API (`--url`, `--api-key`).
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// List, read, create, change, pause, fire and delete crons.
    #[command(subcommand, after_help = EXIT_CODES)]
    Crons(CronsCommand),
    /// Create, read and list threads (a thread cron runs on one).
    #[command(subcommand, after_help = EXIT_CODES)]
    Threads(ThreadsCommand),
    /// List and read runs of a thread.
    #[command(subcommand, after_help = EXIT_CODES)]
    Runs(RunsCommand),
    /// List and read webhook deliveries, and send one again.
    #[command(subcommand, after_help = EXIT_CODES)]
    Deliveries(DeliveriesCommand),
    /// Make a set of crons match a crons file: create what is missing, update only the
    /// fields that differ, with --prune delete what the file no longer names.
    #[command(after_help = format!("{APPLY_HELP}\n\n{EXIT_CODES}"))]
    Apply(ApplyArgs),
    /// Write a set's crons as a crons file, in the format apply reads.
    #[command(after_help = EXIT_CODES)]
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The crons file (TOML; `-` reads stdin, which then needs `set = "…"`).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: PathBuf,
    /// Also delete the set's crons the file no longer names.
    #[arg(long)]
    pub prune: bool,
    /// Print the plan and change nothing: exit 0 when there is nothing to do, 2 when there is.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete and create again the crons whose change PATCH cannot make (their id and
    /// history go with them); without it such a plan is refused, nothing applied.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The set to write (the `set` of the file that made it).
    #[arg(long)]
    pub set: String,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// How `import-crontab` converts, shown by its `--help`.
pub const IMPORT_HELP: &str = "\
Each distinct command becomes a `command` graph running it with the crontab's shell
(SHELL=, default /bin/sh) and the VAR=value lines above it as its env; each schedule line
becomes a [[crons]] entry named after the comment line right above it (else its graph),
in the time zone of the CRON_TZ= line above it (else --timezone, else UTC). As cron(8)
does, an unescaped % ends the command and the rest, each further % a newline, is its
standard input; \\% is a literal %. @reboot, unknown @specials and malformed lines are
listed with their line numbers and nothing is written. Converting the same crontab
again gives the same names. See docs/files.md.

Exit codes: 0 both files written; 2 usage error, the crontab cannot be read or a file
cannot be written; 5 lines that cannot be converted (listed; nothing written).";

#[derive(Debug, Args)]
pub struct ImportCrontabArgs {
    /// The crontab (user crontab format, as `crontab -l` prints it); `-` reads stdin.
    #[arg(value_name = "FILE")]
    pub crontab: PathBuf,
    /// Where to write the graphs (`[graphs.NAME]` tables to add to the daemon's config).
    #[arg(long, value_name = "FILE")]
    pub graphs_out: PathBuf,
    /// Where to write the crons file (for apply).
    #[arg(long, value_name = "FILE")]
    pub crons_out: PathBuf,
    /// Time zone of schedules with no CRON_TZ= line above them [default: UTC].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// The crons file's set [default: the --crons-out file's name without its extension].
    #[arg(long)]
    pub set: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CronsCommand {
    /// List crons, newest first.
    List(CronsList),
    /// Show one cron.
    Get { cron_id: Uuid },
    /// Create a cron (a thread cron with --thread, otherwise stateless).
    Create(Box<CronsCreate>),
    /// Change the given fields of a cron (others stay).
    Update(Box<CronsUpdate>),
    /// Disable a cron: it stops firing until resumed.
    Pause { cron_id: Uuid },
    /// Enable a cron: its next instant is computed from now.
    Resume { cron_id: Uuid },
    /// Delete a cron.
    Delete { cron_id: Uuid },
    /// Fire a cron now, outside its schedule (the schedule does not move).
    Trigger { cron_id: Uuid },
    /// Show the next instants of a cron (enabled or not).
    Next(CronsNext),
    /// Show what became of a cron's instants and triggers, newest first.
    History(CronsHistory),
    /// Fire a cron's past instants in a range, each once (at most 10,000 per call).
    Backfill(CronsBackfill),
}

#[derive(Debug, Args)]
pub struct CronsList {
    /// Only crons of this assistant (id or graph name).
    #[arg(long)]
    pub assistant: Option<String>,
    /// Only crons of this thread.
    #[arg(long)]
    pub thread: Option<Uuid>,
    /// Only enabled crons.
    #[arg(long, conflicts_with = "disabled")]
    pub enabled: bool,
    /// Only disabled crons.
    #[arg(long)]
    pub disabled: bool,
    /// How many at most (1-1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// How many to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
}

/// The fields both create and update take.
#[derive(Debug, Args)]
pub struct CronFields {
    /// IANA time zone the schedule is read in [server default: UTC].
    #[arg(long)]
    pub timezone: Option<String>,
    /// Run input: a JSON object (or a list of objects).
    #[arg(long, value_name = "JSON", value_parser = json_input)]
    pub input: Option<Value>,
    /// Cron metadata: a JSON object.
    #[arg(long, value_name = "JSON", value_parser = json_object)]
    pub metadata: Option<Value>,
    /// The runs' `config` (e.g. '{"configurable": {...}}'): a JSON object.
    #[arg(long, value_name = "JSON", value_parser = json_object)]
    pub run_config: Option<Value>,
    /// The runs' `context`: a JSON object.
    #[arg(long, value_name = "JSON", value_parser = json_object)]
    pub context: Option<Value>,
    /// URL called when each run ends.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Stop firing after this ISO-8601 instant (e.g. 2026-12-31T23:59:00Z).
    #[arg(long, value_name = "INSTANT", value_parser = instant)]
    pub end_time: Option<String>,
    /// Stateless crons: keep or delete each run's thread afterwards.
    #[arg(long, value_name = "WHAT")]
    pub on_run_completed: Option<OnRunCompleted>,
    /// What a fire does when the thread is busy (thread crons).
    #[arg(long, value_name = "STRATEGY")]
    pub multitask_strategy: Option<MultitaskStrategy>,
    /// What happens to instants missed while the daemon was down.
    #[arg(long, value_name = "POLICY")]
    pub misfire_policy: Option<MisfirePolicy>,
    /// How far back fire_all catches up, in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub catchup_window_seconds: Option<u32>,
    /// Stateless crons: what an instant does while an earlier run of the cron is still active.
    #[arg(long, value_name = "POLICY")]
    pub overlap: Option<Overlap>,
    /// Start each instant a delay drawn from [0, SECONDS) after it (0-3600).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u16).range(0..=3600))]
    pub jitter_seconds: Option<u16>,
    /// Fire this many more times, then disable the cron.
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub remaining_runs: Option<u64>,
    /// Pause until this ISO-8601 instant; the first instant at or after it fires.
    #[arg(long, value_name = "INSTANT", value_parser = instant)]
    pub paused_until: Option<String>,
    /// A wall-clock time a fall-back change repeats fires once or twice.
    #[arg(long, value_name = "HOW_OFTEN")]
    pub dst_repeat: Option<DstRepeat>,
    /// A wall-clock time a spring-forward change skips fires right after the gap, or not.
    #[arg(long, value_name = "WHAT")]
    pub dst_gap: Option<DstGap>,
}

#[derive(Debug, Args)]
pub struct CronsCreate {
    /// Assistant id or graph name.
    #[arg(long, default_value = "agent")]
    pub assistant: String,
    /// Cron expression (five fields, optional sixth for seconds) or @daily, @hourly…
    #[arg(long)]
    pub schedule: String,
    /// Create a thread cron on this thread (otherwise stateless: a new thread per run).
    #[arg(long)]
    pub thread: Option<Uuid>,
    /// Create the cron disabled (resume it later).
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub fields: CronFields,
}

/// At least one field must be given (checked before anything is sent).
#[derive(Debug, Args)]
pub struct CronsUpdate {
    pub cron_id: Uuid,
    /// New cron expression (the next instant is computed from now).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Remove the end time.
    #[arg(long, conflicts_with = "end_time")]
    pub clear_end_time: bool,
    /// Remove the run limit.
    #[arg(long, conflicts_with = "remaining_runs")]
    pub clear_remaining_runs: bool,
    /// Enable the cron.
    #[arg(long, conflicts_with = "disabled")]
    pub enabled: bool,
    /// Disable the cron.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub fields: CronFields,
}

#[derive(Debug, Args)]
pub struct CronsNext {
    pub cron_id: Uuid,
    /// How many instants (1-1000).
    #[arg(short = 'n', long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
    /// Count from this ISO-8601 instant instead of now.
    #[arg(long, value_name = "INSTANT", value_parser = instant)]
    pub after: Option<String>,
}

#[derive(Debug, Args)]
pub struct CronsBackfill {
    pub cron_id: Uuid,
    /// The first instant of the range (ISO-8601, included).
    #[arg(long, value_name = "INSTANT", value_parser = instant)]
    pub from: String,
    /// The end of the range (ISO-8601, excluded; instants still to come are left alone).
    #[arg(long, value_name = "INSTANT", value_parser = instant)]
    pub to: String,
    /// Stateless crons: how the instants share the cron [server default: buffer_all].
    #[arg(long, value_name = "POLICY")]
    pub overlap: Option<Overlap>,
    /// Only show the instants it would fire.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CronsHistory {
    pub cron_id: Uuid,
    /// How many entries at most (1-1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// How many to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
    /// Only entries with this outcome.
    #[arg(long, value_name = "FIRE")]
    pub fire: Option<Fire>,
    /// Only entries whose run has this status.
    #[arg(long)]
    pub status: Option<RunStatus>,
}

#[derive(Debug, Subcommand)]
pub enum ThreadsCommand {
    /// Create a thread and print it (its `thread_id` is what `crons create --thread` takes).
    Create {
        /// Thread metadata: a JSON object.
        #[arg(long, value_name = "JSON", value_parser = json_object)]
        metadata: Option<Value>,
        /// Use this id instead of a generated one.
        #[arg(long)]
        thread_id: Option<Uuid>,
    },
    /// Show one thread.
    Get { thread_id: Uuid },
    /// List threads, newest first.
    List(ThreadsList),
}

#[derive(Debug, Args)]
pub struct ThreadsList {
    /// Only threads in this state.
    #[arg(long)]
    pub status: Option<ThreadStatus>,
    /// Only threads whose metadata contains these keys and values: a JSON object.
    #[arg(long, value_name = "JSON", value_parser = json_object)]
    pub metadata: Option<Value>,
    /// How many at most (1-1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// How many to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List a thread's runs, newest first.
    List(RunsList),
    /// Show one run (and, when it failed, its error).
    Get {
        /// The run's thread.
        #[arg(long)]
        thread: Uuid,
        run_id: Uuid,
    },
}

#[derive(Debug, Args)]
pub struct RunsList {
    /// The thread whose runs to list.
    #[arg(long)]
    pub thread: Uuid,
    /// Only runs with this status.
    #[arg(long)]
    pub status: Option<RunStatus>,
    /// How many at most (1-1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// How many to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List webhook deliveries, newest first.
    List(DeliveriesList),
    /// Show one delivery with its body and every attempt.
    Get { delivery_id: Uuid },
    /// Attempt a delivery once more now, whatever its state.
    Retry { delivery_id: Uuid },
}

#[derive(Debug, Args)]
pub struct DeliveriesList {
    /// Only deliveries of this run.
    #[arg(long)]
    pub run: Option<Uuid>,
    /// Only deliveries of this cron's runs.
    #[arg(long)]
    pub cron: Option<Uuid>,
    /// Only deliveries in this state.
    #[arg(long)]
    pub status: Option<DeliveryStatus>,
    /// Only run webhooks (`run`) or only alerts (`alert`).
    #[arg(long)]
    pub kind: Option<DeliveryKind>,
    /// How many at most (1-1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// How many to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum OnRunCompleted {
    Delete,
    Keep,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum MultitaskStrategy {
    Reject,
    Rollback,
    Interrupt,
    Enqueue,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum MisfirePolicy {
    FireOnce,
    Skip,
    FireAll,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Fire {
    Fired,
    Missed,
    Rejected,
    Triggered,
    Skipped,
    Backfilled,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Overlap {
    Allow,
    Skip,
    BufferOne,
    BufferAll,
    CancelOther,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DstRepeat {
    Once,
    Twice,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DstGap {
    Shift,
    Skip,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Success,
    Error,
    Timeout,
    Interrupted,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ThreadStatus {
    Idle,
    Busy,
    Interrupted,
    Error,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DeliveryKind {
    Run,
    Alert,
}

/// The name a value enum has on the command line, which is also the API's.
pub fn value_name<E: ValueEnum>(value: &E) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|err| format!("not valid JSON: {err}"))
}

fn json_object(text: &str) -> Result<Value, String> {
    match parse_json(text)? {
        value @ Value::Object(_) => Ok(value),
        _ => Err(r#"must be a JSON object, e.g. '{"key": "value"}'"#.into()),
    }
}

fn json_input(text: &str) -> Result<Value, String> {
    match parse_json(text)? {
        value @ (Value::Object(_) | Value::Array(_)) => Ok(value),
        _ => Err(r#"must be a JSON object or a list of objects, e.g. '{"messages": []}'"#.into()),
    }
}

fn instant(text: &str) -> Result<String, String> {
    crate::time::parse_instant(text)
        .map(|_| text.to_string())
        .ok_or_else(|| "not an ISO-8601 instant (e.g. 2026-12-31T23:59:00Z)".into())
}

impl GlobalArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            bind: self.bind,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            allow_unauthenticated: self.allow_unauthenticated,
        }
    }
}
