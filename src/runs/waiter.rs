//! Waiting for a run to end (`wait`, `join`, `cancel?wait=true`): the local event hub when
//! the run executes here, the store when it executes on another replica.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{Receiver, error::RecvError, error::TryRecvError};

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
/// The subscription is kept for the whole wait, so its end cannot slip between two looks.
pub async fn wait_with(
    store: &Store,
    hub: &EventHub,
    run_id: &str,
    early: Option<Subscription>,
) -> Result<Option<RunEnd>, store::Error> {
    let mut live: Option<Receiver<Frame>> = None;
    if let Some(subscription) = early.or_else(|| hub.subscribe(run_id, None)) {
        if let Some(Frame::End(end)) = subscription.replay.last() {
            return Ok(Some(RunEnd::clone(end)));
        }
        live = subscription.live;
    }
    loop {
        match live.as_mut() {
            Some(receiver) => {
                if let Ok(found) = tokio::time::timeout(POLL, next_end(receiver)).await {
                    match found {
                        Some(end) => return Ok(Some(end)),
                        None => live = None,
                    }
                }
            }
            None => {
                tokio::time::sleep(POLL / 5).await;
                if let Some(subscription) = hub.subscribe(run_id, None) {
                    if let Some(Frame::End(end)) = subscription.replay.last() {
                        return Ok(Some(RunEnd::clone(end)));
                    }
                    live = subscription.live;
                }
            }
        }
        let run = store.find_run(run_id).await?;
        if run.as_ref().is_some_and(|r| r.status.is_active()) {
            continue;
        }
        // Ended (or gone): the hub's end, if it already arrived, carries what the store may
        // no longer have (a stateless run is deleted with its thread).
        if let Some(end) = live.as_mut().and_then(buffered_end) {
            return Ok(Some(end));
        }
        return Ok(run.map(|run| RunEnd {
            status: run.status,
            values: run.output,
            error: run.error,
        }));
    }
}

async fn next_end(receiver: &mut Receiver<Frame>) -> Option<RunEnd> {
    loop {
        match receiver.recv().await {
            Ok(Frame::End(end)) => return Some(Arc::unwrap_or_clone(end)),
            Ok(Frame::Event { .. }) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return None,
        }
    }
}

/// The end frame if it is already waiting in the receiver.
fn buffered_end(receiver: &mut Receiver<Frame>) -> Option<RunEnd> {
    loop {
        match receiver.try_recv() {
            Ok(Frame::End(end)) => return Some(Arc::unwrap_or_clone(end)),
            Ok(Frame::Event { .. }) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return None,
        }
    }
}
