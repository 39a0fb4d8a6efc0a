//! Wires the roles together under one shutdown: open the store, sync assistants from the
//! config, serve the API until SIGTERM/SIGINT.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::housekeeping;
use crate::notify;
use crate::parts::Parts;
use crate::runs::events::EventHub;
use crate::runs::{Control, Runner, RunnerSettings};
use crate::scheduler::{Scheduler, SchedulerHandle};
use crate::store::{self, Store};
use crate::webhooks::Dispatcher;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Store(#[from] store::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Parts(#[from] crate::parts::PartsError),
    /// A configured part (housekeeping, metrics, webhook delivery) could not start.
    #[error("{0}")]
    Startup(String),
}

/// Opens (and migrates) the configured database, creating the data directory first.
pub async fn open_store(config: &Config) -> Result<Store, DaemonError> {
    let dir = &config.server.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| DaemonError::DataDir {
        path: dir.clone(),
        source,
    })?;
    let url = config.database_url();
    let store = Store::open(&url, config.database.max_connections).await?;
    tracing::info!(database = %store::redact(&url), backend = store.backend().name(), "database ready");
    Ok(store)
}

pub async fn serve(config: Config) -> Result<(), DaemonError> {
    let mut signals = StopSignals::listen().map_err(DaemonError::Serve)?;
    let parts = Parts::build(&config, &|name| std::env::var(name).ok())?;
    for warning in parts.graphs.warnings() {
        tracing::warn!("{warning}");
    }
    let Parts {
        api_keys,
        webhooks: webhook_settings,
        graphs,
    } = parts;
    let config = Arc::new(config);
    let metrics = crate::metrics::install().map_err(DaemonError::Startup)?;
    let store = open_store(&config).await?;
    store
        .sync_assistants(config.graphs.keys().map(String::as_str))
        .await?;

    let listener = TcpListener::bind(config.server.bind)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: config.server.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    tracing::info!(%addr, "cronhook listening");

    let hub = EventHub::new();
    let control = Control::new();
    // A shutdown in three steps: `draining` (API refuses new work, scheduler and workers
    // stop claiming, running runs get the grace period), then webhook delivery stops, then
    // the HTTP server closes.
    let draining = CancellationToken::new();
    let delivery_stop = CancellationToken::new();
    let server_stop = CancellationToken::new();
    let webhook_policy = webhook_settings.policy.clone();
    let self_url = self_url(addr);
    let (dispatcher, outbox) = Dispatcher::new(store.clone(), webhook_settings, self_url.clone())
        .map_err(|err| DaemonError::Startup(format!("webhooks: {err}")))?;
    let deliveries = tokio::spawn(dispatcher.run(delivery_stop.clone()));
    let graph_names = graphs.names();
    let runner = Runner::new(
        store.clone(),
        hub.clone(),
        control.clone(),
        graphs.into_map(),
        RunnerSettings::from(&config.runs),
        outbox.clone(),
    );
    let workers = tokio::spawn(runner.run(draining.clone(), config.server.shutdown_grace));
    let scheduler_handle = SchedulerHandle::default();
    let scheduler = Scheduler::new(
        store.clone(),
        control.clone(),
        scheduler_handle.clone(),
        config.scheduler.clone(),
        graph_names,
    );
    let scheduler = tokio::spawn(scheduler.run(draining.clone()));
    let maintenance = tokio::spawn(checkpoint_loop(store.clone(), draining.clone()));
    let mut housekeeping = housekeeping::start(
        store.clone(),
        config.housekeeping.every,
        config.housekeeping.retention,
    )
    .await
    .map_err(|err| DaemonError::Startup(format!("housekeeping: {err:?}")))?;

    let app = api::router(AppState {
        store: store.clone(),
        config: config.clone(),
        hub,
        control,
        scheduler: scheduler_handle,
        outbox,
        webhook_policy,
        self_url,
        api_keys: Arc::new(api_keys),
        draining: draining.clone(),
        metrics,
    });
    let mut server = tokio::spawn(crate::server::serve(
        listener,
        app,
        crate::server::Limits::from(&config.server),
        server_stop.clone(),
    ));
    notify::ready(&notify::status_line(&store, &addr.to_string()).await);
    // Watchdog pings go on through the whole shutdown: the grace period may be long.
    let keep_alive_stop = CancellationToken::new();
    let keep_alive = tokio::spawn(notify::keep_alive(
        store.clone(),
        addr.to_string(),
        keep_alive_stop.clone(),
    ));

    tokio::select! {
        _ = signals.received() => {}
        result = &mut server => {
            // The server stopped on its own: a bug, never a shutdown.
            draining.cancel();
            return Err(DaemonError::Serve(match result {
                Ok(()) => std::io::Error::other("the HTTP server stopped"),
                Err(err) => std::io::Error::other(err),
            }));
        }
    }
    let grace = config.server.shutdown_grace;
    tracing::info!(grace = ?grace, "shutting down: refusing new requests, finishing running runs");
    notify::stopping("shutting down: finishing running runs");
    draining.cancel();
    let _ = housekeeping.shutdown().await;
    let _ = scheduler.await;
    let _ = maintenance.await;
    let _ = workers.await;
    // Every run has ended or gone back to the queue: its delivery row is written.
    delivery_stop.cancel();
    let _ = deliveries.await;
    server_stop.cancel();
    // Streams of runs handed back would never end: they get a short last word.
    if tokio::time::timeout(std::time::Duration::from_secs(5), &mut server)
        .await
        .is_err()
    {
        tracing::warn!("closing connections still open");
        server.abort();
    }
    keep_alive_stop.cancel();
    let _ = keep_alive.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The daemon's own base URL (loopback when it listens on every address).
fn self_url(addr: std::net::SocketAddr) -> url::Url {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let addr = std::net::SocketAddr::new(ip, addr.port());
    url::Url::parse(&format!("http://{addr}/")).expect("a socket address makes a valid URL")
}

/// Where in each second SQLite's log is checkpointed. Cron instants fall on whole seconds,
/// and the run path's writes cluster around them: claims just before, finishes just after,
/// fires ahead `prefire` before (half a second by default). A checkpoint between them
/// holds up none of them.
const CHECKPOINT_PHASE_MS: crate::time::Millis = 250;

/// Keeps SQLite's write-ahead log short, once a second (a no-op on PostgreSQL).
async fn checkpoint_loop(store: Store, shutdown: CancellationToken) {
    loop {
        let next = (crate::time::now_ms() / 1000 + 1) * 1000 + CHECKPOINT_PHASE_MS;
        tokio::select! {
            _ = tokio::time::sleep(crate::time::until(next)) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(err) = store.checkpoint().await {
            tracing::warn!(error = %err, "WAL checkpoint failed");
        }
    }
}

/// SIGTERM and SIGINT, listened to from creation on: a signal that arrives while the
/// daemon is still starting is not lost (nor does it kill the process).
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn received(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
