use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cronhook::cli::{Cli, Command, LogFormat};
use cronhook::config::Config;
use cronhook::daemon;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log_format);

    let config = match Config::load(cli.global.config.as_deref(), &cli.global.overrides()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("cronhook: {err}");
            return ExitCode::from(2);
        }
    };

    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => daemon::serve(config).await,
        Command::Migrate => daemon::open_store(&config).await.map(|store| {
            println!("migrations applied");
            drop(store);
        }),
        Command::CheckConfig => {
            println!("config ok: {} graph(s)", config.graphs.len());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("cronhook: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CRONHOOK_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
