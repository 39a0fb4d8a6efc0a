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
Exit codes of the ops commands (crons, runs, deliveries):
  0  success
  2  usage error: bad command line or flag value (nothing was sent)
  3  not found (404)
  4  authentication or permission refused (401/403): check --api-key / CRONHOOK_API_KEY
  5  input rejected by the daemon (400/409/422, any other 4xx); its detail is printed
  6  cannot reach the daemon, or it failed (connection refused, timeout, 5xx)
serve and migrate exit 1 on failure; every command exits 2 on an invalid configuration.";

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
#[command(next_help_heading = "API client options (crons, runs, deliveries)")]
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
    /// List and read runs of a thread.
    #[command(subcommand, after_help = EXIT_CODES)]
    Runs(RunsCommand),
    /// List webhook deliveries and send one again.
    #[command(subcommand, after_help = EXIT_CODES)]
    Deliveries(DeliveriesCommand),
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
pub enum RunsCommand {
    /// List a thread's runs, newest first.
    List(RunsList),
    /// Show one run.
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
