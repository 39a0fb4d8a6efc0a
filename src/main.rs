use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cronhook::cli::{Cli, Command, GenerateCommand, LogFormat};
use cronhook::config::Config;
use cronhook::parts::Parts;
use cronhook::{daemon, ops};

// mimalloc: perf showed a third of a cron burst's CPU in glibc's malloc and free, mostly
// under JSON clones (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What C code allocates (SQLite, above all) goes to glibc's malloc, which gives each
/// thread that allocates an arena of its own; SQLite's connection threads each kept about
/// 25 MB of freed memory in theirs. One arena for them all: 20,000 cron creates left the
/// daemon at 106–114 MB resident instead of 208 MB, at the same creates/s and CPU
/// (docs/benchmarks.md). Called before any thread starts.
fn one_c_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn main() -> ExitCode {
    one_c_heap();
    let cli = Cli::parse();
    // The ops commands only talk to a daemon's API: no config, no logging set-up.
    let command = match cli.command {
        Some(Command::Ops(command)) => {
            return match cronhook::runtime::build(false) {
                Ok(runtime) => runtime.block_on(ops::run(&cli.client, command)),
                Err(err) => fail(&err.to_string()),
            };
        }
        Some(Command::Generate(command)) => return generate(&command),
        // Converts files only: no config, no network.
        Some(Command::ImportCrontab(args)) => {
            return ExitCode::from(cronhook::crontab::run(&args));
        }
        other => other.unwrap_or(Command::Serve),
    };
    init_logging(cli.global.log_format);

    let config = match Config::load(cli.global.config.as_deref(), &cli.global.overrides()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("cronhook: {err}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig = command {
        return check_config(&config);
    }
    // Built from the config: whether its workers are pinned is a setting.
    let runtime = match cronhook::runtime::build(config.server.pin_workers) {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("starting the runtime: {err}")),
    };

    let result = runtime.block_on(async {
        match command {
            Command::Serve => daemon::serve(config).await,
            Command::Migrate => daemon::open_store(&config).await.map(|store| {
                println!("migrations applied");
                drop(store);
            }),
            Command::CheckConfig
            | Command::Generate(_)
            | Command::Ops(_)
            | Command::ImportCrontab(_) => {
                unreachable!("handled above")
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err.to_string()),
    }
}

/// Builds every runtime part `serve` builds, then stops: exit 2 when one cannot be built.
fn check_config(config: &Config) -> ExitCode {
    match Parts::build(config, &|name| std::env::var(name).ok()) {
        Ok(parts) => {
            for warning in parts.graphs.warnings() {
                println!("warning: {warning}");
            }
            println!("config ok: {} graph(s)", config.graphs.len());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cronhook: invalid config: {err}");
            ExitCode::from(2)
        }
    }
}

/// Writes man pages or completions and names each file written.
fn generate(command: &GenerateCommand) -> ExitCode {
    match cronhook::generate::run(command) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cronhook: generate: {err}");
            ExitCode::FAILURE
        }
    }
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("cronhook: {message}");
    ExitCode::FAILURE
}

/// Dependencies whose `info` lines say nothing an operator needs (connection chatter, the
/// housekeeping scheduler's start-up): warnings only, unless `CRONHOOK_LOG` names them.
const QUIET_DEPENDENCIES: [&str; 3] = ["sqlx", "sea_orm", "tokio_cron_scheduler"];

fn init_logging(format: LogFormat) {
    let spec = std::env::var("CRONHOOK_LOG").unwrap_or_else(|_| "info".into());
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    for dependency in QUIET_DEPENDENCIES {
        if !spec.contains(dependency)
            && let Ok(directive) = format!("{dependency}=warn").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
