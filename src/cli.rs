//! Command-line contract. Other tooling depends on these names exactly:
//! `cronhook [serve|migrate|check-config]`, `--bind`, `--data-dir`, `--database-url`,
//! `--config` and their `CRONHOOK_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "cronhook",
    version,
    about = "LangGraph-compatible cron and webhook daemon"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// TOML config file (schema in README). Without one, built-in defaults apply.
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
}

impl GlobalArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            bind: self.bind,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
        }
    }
}
