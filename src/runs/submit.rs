//! Submitting a run built from a request: its event channel opened first so a stream sees
//! every event, queued in the store, and started at once in a free local slot when its turn
//! has come.

use entity::run;
use entity::states::RunStatus;

use super::events::{EventHub, RunEnd, Subscription};
use super::{Control, Slot};
use crate::store::runs::IfThreadMissing;
use crate::store::{Result, Store};

/// A queued run, and its events from the very first.
pub struct Submitted {
    pub run: run::Model,
    pub events: Option<Subscription>,
}

/// Queues `run` on its thread under its multitask strategy (`if_missing` says what to do
/// when the thread does not exist), cancels the running runs the strategy flagged, and
/// starts the run at once in a free local slot when nothing is ahead of it, or wakes a
/// worker. The run comes back `pending`, as LangGraph answers, even if it started already.
pub async fn submit(
    store: &Store,
    control: &Control,
    hub: &EventHub,
    run: run::Model,
    if_missing: IfThreadMissing,
) -> Result<Submitted> {
    let run_id = run.run_id.clone();
    hub.open(&run_id);
    let events = hub.subscribe(&run_id, None);
    // A free local slot lets the run start the moment it is queued, if its turn has come
    // (a run held back by `after_seconds` is left to the workers).
    let slot = if run.available_at <= run.updated_at {
        control.reserve(&run.assistant_id)
    } else {
        None
    };
    let claim = slot.as_ref().map(Slot::claim);
    let strategy = run.multitask_strategy;
    let created = match store.create_run(run, strategy, if_missing, claim).await {
        Ok(created) => created,
        Err(err) => {
            hub.end(
                &run_id,
                RunEnd {
                    status: RunStatus::Error,
                    values: None,
                    error: None,
                },
                false,
            );
            return Err(err);
        }
    };
    for cancelled in &created.flagged {
        control.cancel(cancelled);
    }
    let mut run = created.run;
    match slot {
        Some(slot) if created.claimed => slot.start(run.clone()),
        _ => control.wake(),
    }
    run.status = RunStatus::Pending;
    Ok(Submitted { run, events })
}
