//! Waiting for a run to end (`wait`, `join`, `cancel?wait=true`): the local event hub when
//! the run executes here, the store when it executes on another replica.

use std::time::Duration;

use super::events::{EventHub, Frame, RunEnd, Subscription};
use crate::store::{self, Store};

/// How often the store is asked while the run is not ending here.
const POLL: Duration = Duration::from_millis(500);

/// The run's end, or None when it disappeared (rolled back, or its thread deleted).
pub async fn wait_for_end(
    store: &Store,
    hub: &EventHub,
    run_id: &str,
) -> Result<Option<RunEnd>, store::Error> {
    wait_with(store, hub, run_id, None).await
}

/// Like `wait_for_end`, starting from a subscription taken before the run was queued (a
/// run may end, and its events be dropped, before a later subscription would be taken).
pub async fn wait_with(
    store: &Store,
    hub: &EventHub,
    run_id: &str,
    mut early: Option<Subscription>,
) -> Result<Option<RunEnd>, store::Error> {
    loop {
        if let Some(subscription) = early.take().or_else(|| hub.subscribe(run_id, None)) {
            if let Some(Frame::End(end)) = subscription.replay.last() {
                return Ok(Some(end.clone()));
            }
            if let Some(mut live) = subscription.live {
                let ended = async {
                    loop {
                        match live.recv().await {
                            Ok(Frame::End(end)) => return Some(end),
                            Ok(Frame::Event { .. }) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                };
                tokio::select! {
                    Some(end) = ended => return Ok(Some(end)),
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        } else {
            tokio::time::sleep(POLL / 5).await;
        }
        match store.find_run(run_id).await? {
            None => return Ok(None),
            Some(run) if !matches!(run.status.as_str(), "pending" | "running") => {
                // Ended elsewhere (another replica), or before this process started.
                return Ok(Some(RunEnd {
                    status: run.status,
                    values: run.output,
                    error: run.error,
                }));
            }
            Some(_) => {}
        }
    }
}
