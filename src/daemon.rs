//! Wires the roles together under one shutdown: open the store, sync assistants from the
//! config, serve the API until SIGTERM/SIGINT.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
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
    #[error("metrics: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    #[error("webhook delivery: cannot build its HTTP client: {}", crate::parts::with_causes(.0))]
    WebhookClient(reqwest::Error),
    #[error("housekeeping: {0}")]
    Housekeeping(#[from] tokio_cron_scheduler::JobSchedulerError),
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

/// Runs the daemon until SIGTERM or SIGINT, then shuts it down in order.
pub async fn serve(config: Config) -> Result<(), DaemonError> {
    let mut signals = StopSignals::listen().map_err(DaemonError::Serve)?;
    run(config, async move { signals.received().await }).await
}

/// Runs the daemon until `shutdown` completes, then shuts it down in order. A server that
/// stops on its own is an error (never a shutdown).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let mut daemon = Running::start(config).await?;
    tokio::select! {
        _ = shutdown => {}
        result = &mut daemon.server => {
            daemon.stops.draining.cancel();
            return Err(DaemonError::Serve(match result {
                Ok(()) => std::io::Error::other("the HTTP server stopped"),
                Err(err) => std::io::Error::other(err),
            }));
        }
    }
    daemon.shutdown().await;
    Ok(())
}

/// The shutdown's steps, in order: `draining` (the API refuses new work, the scheduler and
/// the workers stop claiming, running runs get the grace period), then webhook delivery
/// stops, then the HTTP server closes; watchdog pings go on until the very end.
struct Stops {
    draining: CancellationToken,
    delivery: CancellationToken,
    server: CancellationToken,
    keep_alive: CancellationToken,
}

/// A started daemon: its store, the tasks of its roles and how to stop each.
struct Running {
    store: Store,
    grace: std::time::Duration,
    stops: Stops,
    housekeeping: tokio_cron_scheduler::JobScheduler,
    scheduler: JoinHandle<()>,
    maintenance: JoinHandle<()>,
    workers: JoinHandle<()>,
    deliveries: JoinHandle<()>,
    server: JoinHandle<()>,
    keep_alive: JoinHandle<()>,
}

impl Running {
    /// Builds the parts, opens the store, starts every role and the HTTP server, and tells
    /// systemd the daemon is ready.
    async fn start(config: Config) -> Result<Running, DaemonError> {
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
        let metrics = crate::metrics::install()?;
        let store = open_store(&config).await?;
        store
            .sync_assistants(config.graphs.keys().map(String::as_str))
            .await?;
        // Alerts are webhooks: `[http] disable_webhooks` turns them off too.
        if !config.http.disable_webhooks {
            store.set_alert_routes(config.alerts.routes.clone());
        }

        let listener = TcpListener::bind(config.server.bind)
            .await
            .map_err(|source| DaemonError::Bind {
                addr: config.server.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(DaemonError::Serve)?;
        tracing::info!(%addr, docs = %format!("http://{addr}/docs"), "cronhook listening");

        let stops = Stops {
            draining: CancellationToken::new(),
            delivery: CancellationToken::new(),
            server: CancellationToken::new(),
            keep_alive: CancellationToken::new(),
        };
        let hub = EventHub::new();
        let control = Control::new();
        let webhook_policy = webhook_settings.policy.clone();
        let self_url = self_url(addr);
        let (dispatcher, outbox) =
            Dispatcher::new(store.clone(), webhook_settings, self_url.clone())
                .map_err(DaemonError::WebhookClient)?;
        let deliveries = tokio::spawn(dispatcher.run(stops.delivery.clone()));
        let graph_names = graphs.names();
        let runner = Runner::new(
            store.clone(),
            hub.clone(),
            control.clone(),
            graphs.into_map(),
            RunnerSettings::from(&config.runs),
            outbox.clone(),
        );
        let workers =
            tokio::spawn(runner.run(stops.draining.clone(), config.server.shutdown_grace));
        let scheduler_handle = SchedulerHandle::default();
        let scheduler = Scheduler::new(
            store.clone(),
            control.clone(),
            scheduler_handle.clone(),
            config.scheduler.clone(),
            graph_names,
        );
        let scheduler = tokio::spawn(scheduler.run(stops.draining.clone()));
        let maintenance = tokio::spawn(checkpoint_loop(store.clone(), stops.draining.clone()));
        let housekeeping = housekeeping::start(
            store.clone(),
            config.housekeeping.clone(),
            config.history.clone(),
        )
        .await?;

        let state = AppState {
            store: store.clone(),
            config: config.clone(),
            hub,
            control,
            scheduler: scheduler_handle,
            outbox,
            webhook_policy,
            self_url,
            api_keys: Arc::new(api_keys),
            draining: stops.draining.clone(),
            metrics,
        };
        // The console checks its own logins (session cookies), so it sits outside the key gate.
        let console = if config.console.enabled {
            crate::console::router(&state)
        } else {
            axum::Router::new()
        };
        let app = api::router(state, console);
        let server = tokio::spawn(crate::server::serve(
            listener,
            app,
            crate::server::Limits::from(&config.server),
            stops.server.clone(),
        ));
        notify::ready(&notify::status_line(&store, &addr.to_string()).await);
        let keep_alive = tokio::spawn(notify::keep_alive(
            store.clone(),
            addr.to_string(),
            stops.keep_alive.clone(),
        ));
        Ok(Running {
            store,
            grace: config.server.shutdown_grace,
            stops,
            housekeeping,
            scheduler,
            maintenance,
            workers,
            deliveries,
            server,
            keep_alive,
        })
    }

    /// Stops every role in the order of `Stops`.
    async fn shutdown(mut self) {
        tracing::info!(grace = ?self.grace, "shutting down: refusing new requests, finishing running runs");
        notify::stopping("shutting down: finishing running runs");
        self.stops.draining.cancel();
        let _ = self.housekeeping.shutdown().await;
        let _ = self.scheduler.await;
        let _ = self.maintenance.await;
        let _ = self.workers.await;
        // Every run has ended or gone back to the queue: its delivery row is written.
        self.stops.delivery.cancel();
        let _ = self.deliveries.await;
        self.stops.server.cancel();
        // Streams of runs handed back would never end: they get a short last word.
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.server)
            .await
            .is_err()
        {
            tracing::warn!("closing connections still open");
            self.server.abort();
        }
        self.stops.keep_alive.cancel();
        let _ = self.keep_alive.await;
        self.store.close().await;
        tracing::info!("stopped");
    }
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
