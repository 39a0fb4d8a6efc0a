//! systemd's notification protocol (`Type=notify`): `READY=1` once migrations ran and the
//! API listens, `STATUS=` lines with counts, `WATCHDOG=1` at half of `WatchdogSec`, and
//! `STOPPING=1` when a shutdown starts. Without `NOTIFY_SOCKET` every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// How often the `STATUS=` line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(10);

fn send(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(false, states) {
        tracing::warn!(error = %err, "cannot notify systemd");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// The watchdog interval systemd asked for, if any.
fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog (when enabled) and refreshes the status line until `stop`. The pings
/// come from the runtime that serves everything else, so a wedged runtime stops them.
pub async fn keep_alive(store: Store, listening: String, stop: CancellationToken) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let ping_every = watchdog_interval().map(|interval| interval / 2);
    let mut ping = ping_every.map(tokio::time::interval);
    let mut status = tokio::time::interval(STATUS_EVERY);
    loop {
        tokio::select! {
            _ = tick(ping.as_mut()) => send(&[NotifyState::Watchdog]),
            _ = status.tick() => {
                let line = status_line(&store, &listening).await;
                send(&[NotifyState::Status(&line)]);
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// The next tick of an optional interval (never, without one).
async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What `systemctl status` shows: where the API listens and how much work there is.
pub async fn status_line(store: &Store, listening: &str) -> String {
    match store.queue_depths().await {
        Ok(depths) => format!(
            "listening on {listening}; {} enabled crons, {} runs running, {} queued, \
             {} webhooks pending",
            depths.crons_enabled, depths.runs_running, depths.runs_queued, depths.webhooks_pending
        ),
        Err(err) => format!("listening on {listening}; database unavailable: {err}"),
    }
}
