//! The daemon's configuration: one typed struct, loaded once (TOML file, then command-line
//! and `CRONHOOK_*` overrides), validated, and shared as `Arc<Config>`.
//!
//! Unknown keys are errors that name the key, so a typo never silently does nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Name of the graph the built-in defaults provide, so LangGraph's examples run as written.
pub const DEFAULT_GRAPH: &str = "agent";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    /// Graphs by name; each becomes an assistant.
    pub graphs: BTreeMap<String, GraphConfig>,
    pub runs: RunsConfig,
    pub scheduler: SchedulerConfig,
    pub housekeeping: HousekeepingConfig,
    pub history: HistoryConfig,
    pub alerts: AlertsConfig,
    pub http: HttpConfig,
    pub webhooks: WebhooksConfig,
    pub auth: AuthConfig,
    pub metrics: MetricsConfig,
    pub limits: LimitsConfig,
    pub console: ConsoleConfig,
    pub docs: DocsConfig,
}

/// `[console]`: the web console at `/ui`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console.
    pub enabled: bool,
    /// How long a console login lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// `[docs]`: Swagger UI (`/docs`) and the OpenAPI document (`/openapi.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocsConfig {
    /// Serve the page, its files and the document without an API key (they hold no data;
    /// the calls made from the page still need one).
    pub public: bool,
}

impl Default for DocsConfig {
    fn default() -> Self {
        DocsConfig { public: true }
    }
}

/// `[limits]`: bounds on what one request or one identity may ask for, so no caller can
/// exhaust the daemon for the others.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Keys in one `metadata` (or `values`) filter of a search or count.
    pub max_filter_keys: usize,
    /// Items in one request's list: runs in `POST /runs/batch`, ids in a thread search,
    /// `run_ids` in `POST /runs/cancel`.
    pub max_batch: usize,
    /// Crons one non-admin identity may own (a key's own `max_crons` wins); 0: no cap.
    /// Admin keys and a daemon without keys have no cap unless their key sets one.
    pub max_crons: u64,
    /// Requests per second one API key may make (a key's own setting wins); unset: no limit.
    pub requests_per_second: Option<u32>,
    /// Requests a key may make at once above its rate; default: `requests_per_second`.
    pub burst: Option<u32>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_filter_keys: 64,
            max_batch: 1000,
            max_crons: 10_000,
            requests_per_second: None,
            burst: None,
        }
    }
}

/// Filters are one SQL condition per key; SQLite refuses expressions deeper than 1,000.
pub const MAX_FILTER_KEYS_CEILING: usize = 500;

/// `[auth]`: API keys. With none, every caller is trusted (and the daemon refuses a
/// non-loopback address unless `allow_unauthenticated`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub api_keys: Vec<ApiKeyConfig>,
}

/// One `[[auth.api_keys]]` table. Other tooling depends on these names.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Recorded as `user_id` on what the key creates; a non-admin key sees only those.
    pub identity: String,
    pub key: Option<String>,
    pub key_file: Option<PathBuf>,
    pub key_env: Option<String>,
    #[serde(default)]
    pub admin: bool,
    /// Crons this identity may own (overrides `[limits] max_crons`); 0: no cap.
    pub max_crons: Option<u64>,
    /// Requests per second this key may make (overrides `[limits] requests_per_second`).
    pub requests_per_second: Option<u32>,
    /// Requests this key may make at once above its rate (overrides `[limits] burst`).
    pub burst: Option<u32>,
}

/// Keys stay out of logs and `{:?}` output.
impl std::fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("identity", &self.identity)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_file", &self.key_file)
            .field("key_env", &self.key_env)
            .field("admin", &self.admin)
            .field("max_crons", &self.max_crons)
            .field("requests_per_second", &self.requests_per_second)
            .field("burst", &self.burst)
            .finish()
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` without an API key (for a scraper on a trusted network).
    pub public: bool,
}

/// LangGraph's `http` block; only the switch cronhook honours.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Turns every webhook call off (each skipped call is logged).
    pub disable_webhooks: bool,
}

/// Webhook calls: LangGraph's `webhooks` block (`env_prefix`, `headers`, `allowed_fields`,
/// `url`) plus cronhook's delivery settings beside them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// `${{ env.NAME }}` in header values may only name variables with this prefix.
    pub env_prefix: String,
    /// Static headers sent with every call.
    pub headers: BTreeMap<String, String>,
    /// Payload keys to keep (all when absent).
    pub allowed_fields: Option<Vec<String>>,
    pub url: UrlPolicyConfig,
    pub signing: SigningConfig,
    pub retry: RetryConfig,
    /// Per-attempt timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Deliveries in flight at once in this process; 0 leaves delivering to other replicas.
    pub workers: usize,
    /// How often the outbox is read for retries due and deliveries written elsewhere.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            env_prefix: "LG_WEBHOOK_".into(),
            headers: BTreeMap::new(),
            allowed_fields: None,
            url: UrlPolicyConfig::default(),
            signing: SigningConfig::default(),
            retry: RetryConfig::default(),
            timeout: Duration::from_secs(10),
            workers: 64,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// `[webhooks.url]`: which URLs may be called (LangGraph's keys and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrlPolicyConfig {
    /// Exact host names or `*.domain` (subdomains only); empty allows any host.
    pub allowed_domains: Vec<String>,
    pub allowed_ports: Option<Vec<u16>>,
    pub require_https: bool,
    pub max_url_length: usize,
    /// Refuses localhost, 127/8, ::1 and relative URLs.
    pub disable_loopback: bool,
    /// Refuses 10/8, 172.16/12, 192.168/16, 100.64/10 and fc00::/7.
    pub disable_private_ips: bool,
}

impl Default for UrlPolicyConfig {
    fn default() -> Self {
        UrlPolicyConfig {
            allowed_domains: Vec::new(),
            allowed_ports: None,
            require_https: false,
            max_url_length: 4096,
            disable_loopback: true,
            disable_private_ips: false,
        }
    }
}

/// `[webhooks.signing]`: Standard Webhooks secrets (`whsec_` + base64). Every secret signs,
/// the first one first, so receivers holding any of them verify during a rotation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    pub secrets: Vec<String>,
}

/// `[webhooks.retry]`: the waits before the 2nd, 3rd, … attempt, each ± `jitter`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub delays: Vec<humantime_serde::Serde<Duration>>,
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let h = 3600;
        RetryConfig {
            delays: [5, 300, 1800, 2 * h, 5 * h, 10 * h, 10 * h]
                .map(|secs| Duration::from_secs(secs).into())
                .to_vec(),
            jitter: 0.2,
        }
    }
}

/// `[history]`: how much of each cron's history (one entry per scheduled instant) is kept.
/// Housekeeping trims it to whichever of the two keeps fewer entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Entries written longer ago than this are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Each cron keeps at most this many entries (its newest).
    pub keep_per_cron: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention: Duration::from_secs(30 * 24 * 3600),
            keep_per_cron: 1000,
        }
    }
}

/// `[alerts]`: where ops are told about crons that fail, miss, run late, recover or pause.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub routes: Vec<AlertRouteConfig>,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// A cron's run ended `error` or `timeout`.
    RunFailed,
    /// Instants of a cron were given up under its misfire policy.
    InstantMissed,
    /// A cron's run started more than `late_after` after its instant.
    RunLate,
    /// A cron's run succeeded after failures.
    CronRecovered,
    /// A cron was disabled after `pause_after_failures` failed runs in a row.
    CronPaused,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::RunFailed => "run_failed",
            AlertEvent::InstantMissed => "instant_missed",
            AlertEvent::RunLate => "run_late",
            AlertEvent::CronRecovered => "cron_recovered",
            AlertEvent::CronPaused => "cron_paused",
        }
    }
}

/// When a route is told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMode {
    /// `run_failed` for the first failure after a success (or since the cron was made),
    /// `cron_recovered` for the first success after failures; other events each time.
    #[default]
    Change,
    /// Every event.
    Every,
}

/// The body an alert route is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// The alert object.
    #[default]
    Json,
    /// `{"text": …}`: one readable line for a Slack or Mattermost incoming webhook.
    Slack,
}

/// One `[[alerts.routes]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRouteConfig {
    /// Called like a run's webhook (URL policy, signing, retries).
    pub url: String,
    /// The events sent to this route (at least one).
    pub events: Vec<AlertEvent>,
    /// A cron matches when its metadata holds these keys with these values; absent: all.
    #[serde(default)]
    pub match_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub mode: AlertMode,
    /// A run starting later than this after its instant is `run_late`.
    #[serde(default = "default_late_after", with = "humantime_serde")]
    pub late_after: Duration,
    #[serde(default)]
    pub format: AlertFormat,
}

fn default_late_after() -> Duration {
    Duration::from_secs(60)
}

/// Periodic clean-up: cron history (see `HistoryConfig`) and finished webhook deliveries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HousekeepingConfig {
    /// How often it runs (the first time this long after start).
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// Finished webhook deliveries (and their attempts) older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for HousekeepingConfig {
    fn default() -> Self {
        HousekeepingConfig {
            every: Duration::from_secs(3600),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The cron scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// What happens to instants missed while down or overloaded, unless a cron says otherwise.
    pub misfire_policy: entity::states::MisfirePolicy,
    /// How far back `fire_all` catches up, unless a cron says otherwise.
    #[serde(with = "humantime_serde")]
    pub catchup_window: Duration,
    /// An instant fired later than this counts as missed.
    #[serde(with = "humantime_serde")]
    pub misfire_grace: Duration,
    /// Crons due within this window are held in memory.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How often changes made through other replicas are read.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Fires committed in one transaction at most.
    pub batch_size: usize,
    /// Stateless crons are fired this long ahead of their instant: the run (and its thread)
    /// is written waiting for the instant, claimed just before it and launched at it, so a
    /// burst's writes are done before the instant instead of delaying its runs. `0s` fires
    /// at the instant.
    #[serde(with = "humantime_serde")]
    pub prefire: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            misfire_policy: entity::states::MisfirePolicy::FireOnce,
            catchup_window: Duration::from_secs(3600),
            misfire_grace: Duration::from_secs(1),
            window: Duration::from_secs(60),
            refresh_interval: Duration::from_secs(1),
            batch_size: 256,
            prefire: Duration::from_millis(500),
        }
    }
}

/// In-process runs at once by default: a second's burst of 1,000 crons starts at once.
pub const DEFAULT_CONCURRENCY: usize = 1024;
/// Program runs at once by default: processes a 2-core machine runs side by side.
pub const DEFAULT_COMMAND_CONCURRENCY: usize = 16;
/// Above these the limits stop being limits (a task, a process each).
pub const MAX_CONCURRENCY: usize = 100_000;
pub const MAX_COMMAND_CONCURRENCY: usize = 4096;

/// The run worker pool: two limits, one per cost of a run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunsConfig {
    /// Runs of in-process graphs (`echo`, `http`, `langgraph`: a task each, mostly waiting
    /// on I/O) executing at once in this process.
    pub concurrency: usize,
    /// Runs of `command` graphs (a process each) executing at once in this process, apart
    /// from `concurrency`: neither kind takes the other's slots.
    pub command_concurrency: usize,
    /// A run whose worker stops renewing its lease for this long is re-queued once, then
    /// ended as `error` ("worker lost").
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often the queue is polled for runs queued by other replicas or delayed.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for RunsConfig {
    fn default() -> Self {
        RunsConfig {
            concurrency: DEFAULT_CONCURRENCY,
            command_concurrency: DEFAULT_COMMAND_CONCURRENCY,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// A request that takes longer is answered 408 (streams are exempt).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// On SIGTERM/SIGINT, how long running runs may go on before they are handed back to
    /// the queue.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Serve without API keys on a non-loopback address.
    pub allow_unauthenticated: bool,
    /// A client must send its request headers within this time, or is disconnected.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Pins each runtime worker thread to its own CPU (see `runtime`).
    pub pin_workers: bool,
    /// Also serve cleartext HTTP/2 (prior knowledge); HTTP/1.1 only when false.
    pub http2: bool,
    /// An HTTP/2 connection with no request in flight for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; empty means `cronhook.db` in the data directory.
    pub url: Option<String>,
    /// Connections for readers (PostgreSQL: the whole pool, a quarter of it writing runs).
    /// SQLite writes use one connection.
    pub max_connections: u32,
}

/// How a graph runs. Keys other tooling depends on: `kind` and the per-kind fields.
/// Serialized by `import-crontab`, which writes graphs for the operator to add.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum GraphConfig {
    /// Built in: deterministic, no network.
    Echo {},
    /// A local program: run JSON on stdin; its last line of output, a JSON object, is the
    /// output values.
    Command {
        command: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cwd: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// Pass the daemon's whole environment (API keys and webhook secrets included);
        /// by default the program gets `PATH`, `LANG`, `LC_*`, `TZ`, `HOME` and `env` only.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        inherit_env: bool,
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        timeout: Option<Duration>,
    },
    /// An HTTP endpoint that receives the run JSON and answers the output values.
    Http {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default, with = "humantime_serde")]
        timeout: Option<Duration>,
    },
    /// An upstream LangGraph / Agent Protocol server that executes the run.
    Langgraph {
        url: String,
        assistant_id: String,
        api_key: Option<String>,
        api_key_env: Option<String>,
        #[serde(default, with = "humantime_serde")]
        timeout: Option<Duration>,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            graphs: BTreeMap::from([(DEFAULT_GRAPH.to_string(), GraphConfig::Echo {})]),
            runs: RunsConfig::default(),
            scheduler: SchedulerConfig::default(),
            housekeeping: HousekeepingConfig::default(),
            history: HistoryConfig::default(),
            alerts: AlertsConfig::default(),
            http: HttpConfig::default(),
            webhooks: WebhooksConfig::default(),
            auth: AuthConfig::default(),
            metrics: MetricsConfig::default(),
            limits: LimitsConfig::default(),
            console: ConsoleConfig::default(),
            docs: DocsConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8123)),
            data_dir: PathBuf::from("./data"),
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            allow_unauthenticated: false,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            pin_workers: true,
            http2: false,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 8,
        }
    }
}

/// Values given on the command line or in `CRONHOOK_*` variables; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub allow_unauthenticated: bool,
}

impl Config {
    /// Loads the file (or the built-in defaults), applies overrides, validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        if let Some(bind) = overrides.bind {
            config.server.bind = bind;
        }
        if let Some(dir) = &overrides.data_dir {
            config.server.data_dir = dir.clone();
        }
        if let Some(url) = &overrides.database_url {
            config.database.url = Some(url.clone());
        }
        if overrides.allow_unauthenticated {
            config.server.allow_unauthenticated = true;
        }
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text; the error names the offending key and line.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.graphs.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one [graphs.NAME] table is required".into(),
            ));
        }
        for (name, graph) in &self.graphs {
            let invalid = |what: &str| ConfigError::Invalid(format!("graphs.{name}: {what}"));
            if name.trim().is_empty() {
                return Err(ConfigError::Invalid("a graph name is empty".into()));
            }
            match graph {
                GraphConfig::Echo {} => {}
                GraphConfig::Command { command, .. } => {
                    if command.first().is_none_or(|prog| prog.is_empty()) {
                        return Err(invalid("`command` must name a program"));
                    }
                }
                GraphConfig::Http { url, .. } | GraphConfig::Langgraph { url, .. } => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(invalid("`url` must be an http:// or https:// URL"));
                    }
                }
            }
            if let GraphConfig::Langgraph {
                api_key: Some(_),
                api_key_env: Some(_),
                ..
            } = graph
            {
                return Err(invalid("give `api_key` or `api_key_env`, not both"));
            }
        }
        for (index, route) in self.alerts.routes.iter().enumerate() {
            if route.events.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "alerts.routes[{index}]: `events` must name at least one event"
                )));
            }
            if route.url.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "alerts.routes[{index}]: `url` is empty"
                )));
            }
        }
        if self.history.keep_per_cron == 0 {
            return Err(ConfigError::Invalid(
                "history.keep_per_cron must be at least 1".into(),
            ));
        }
        if self.history.retention < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "history.retention must be at least 1s".into(),
            ));
        }
        if self.housekeeping.every < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "housekeeping.every must be at least 1s".into(),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.runs.concurrency) {
            return Err(ConfigError::Invalid(format!(
                "runs.concurrency must be between 1 and {MAX_CONCURRENCY} (in-process runs: echo, http and langgraph graphs), not {}",
                self.runs.concurrency
            )));
        }
        if !(1..=MAX_COMMAND_CONCURRENCY).contains(&self.runs.command_concurrency) {
            return Err(ConfigError::Invalid(format!(
                "runs.command_concurrency must be between 1 and {MAX_COMMAND_CONCURRENCY} (command graphs: a process each), not {}",
                self.runs.command_concurrency
            )));
        }
        if self.runs.lease < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "runs.lease must be at least 1s".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "server.max_connections must be at least 1".into(),
            ));
        }
        if self.server.max_header_bytes < 8192 {
            return Err(ConfigError::Invalid(
                "server.max_header_bytes must be at least 8192".into(),
            ));
        }
        if self.server.idle_timeout < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "server.idle_timeout must be at least 1s".into(),
            ));
        }
        let limits = &self.limits;
        if !(1..=MAX_FILTER_KEYS_CEILING).contains(&limits.max_filter_keys) {
            return Err(ConfigError::Invalid(format!(
                "limits.max_filter_keys must be between 1 and {MAX_FILTER_KEYS_CEILING}"
            )));
        }
        if limits.max_batch == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_batch must be at least 1".into(),
            ));
        }
        if limits.requests_per_second == Some(0) || limits.burst == Some(0) {
            return Err(ConfigError::Invalid(
                "limits.requests_per_second and limits.burst must be at least 1".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "database.max_connections must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Refuses to serve an address other machines can reach when no API key is configured,
    /// unless that is asked for explicitly.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        let ip = self.server.bind.ip();
        if self.auth.api_keys.is_empty() && !ip.is_loopback() && !self.server.allow_unauthenticated
        {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {} without API keys: configure [[auth.api_keys]] or pass --allow-unauthenticated",
                self.server.bind
            )));
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.server.data_dir.join("cronhook.db").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_include_the_agent_echo_graph() {
        let config = Config::load(None, &Overrides::default()).expect("defaults are valid");
        assert_eq!(config.graphs.get("agent"), Some(&GraphConfig::Echo {}));
        assert_eq!(config.server.bind.to_string(), "127.0.0.1:8123");
        assert!(config.database_url().ends_with("data/cronhook.db?mode=rwc"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[server]\nbindd = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.contains("bindd"), "{err}");
        let err = Config::from_toml("[graphs.x]\nkind = \"echo\"\nfoo = 1\n").unwrap_err();
        assert!(err.contains("foo"), "{err}");
        let err = Config::from_toml("[graphs.x]\nkind = \"shell\"\n").unwrap_err();
        assert!(err.contains("shell"), "{err}");
    }

    #[test]
    fn graph_kinds_parse() {
        let config = Config::from_toml(
            r#"
            [graphs.sh]
            kind = "command"
            command = ["python3", "graph.py"]
            env = { A = "b" }
            timeout = "30s"
            [graphs.remote]
            kind = "langgraph"
            url = "http://127.0.0.1:2024"
            assistant_id = "agent"
            api_key_env = "UPSTREAM_KEY"
            "#,
        )
        .expect("valid config");
        match config.graphs.get("sh") {
            Some(GraphConfig::Command { timeout, env, .. }) => {
                assert_eq!(*timeout, Some(Duration::from_secs(30)));
                assert_eq!(env.get("A").map(String::as_str), Some("b"));
            }
            other => panic!("unexpected {other:?}"),
        }
        config.validate().expect("valid");
    }

    #[test]
    fn run_limits_default_and_are_checked() {
        let config = Config::load(None, &Overrides::default()).expect("defaults are valid");
        assert_eq!(config.runs.concurrency, 1024);
        assert_eq!(config.runs.command_concurrency, 16);
        let config = Config::from_toml("[runs]\ncommand_concurrency = 3\n").expect("parses");
        assert_eq!(
            (config.runs.concurrency, config.runs.command_concurrency),
            (1024, 3)
        );
        for (text, named) in [
            (
                "[runs]\nconcurrency = 0\n",
                "runs.concurrency must be between 1 and",
            ),
            (
                "[runs]\ncommand_concurrency = 0\n",
                "runs.command_concurrency must be between 1 and",
            ),
            ("[runs]\ncommand_concurrency = 5000\n", "not 5000"),
            ("[runs]\nconcurrency = 1000000\n", "not 1000000"),
        ] {
            let config = Config::from_toml(text).expect("parses");
            let err = config.validate().expect_err(text).to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
        let err = Config::from_toml("[runs]\ncommand_concurency = 2\n").unwrap_err();
        assert!(err.contains("command_concurency"), "{err}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let config =
            Config::from_toml("[graphs.sh]\nkind = \"command\"\ncommand = []\n").expect("parses");
        assert!(config.validate().is_err());
        let config =
            Config::from_toml("[graphs.h]\nkind = \"http\"\nurl = \"ftp://x\"\n").expect("parses");
        assert!(config.validate().is_err());
    }
}
