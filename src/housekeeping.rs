//! Periodic housekeeping every `[housekeeping] every`: each cron's history is trimmed to
//! `[history]` (its age and its count per cron, whichever keeps fewer), and finished webhook
//! deliveries are deleted after `[housekeeping] retention`.
//!
//! This is where `tokio-cron-scheduler` serves: a handful of jobs whose exact timing does not
//! matter. It is not the scheduler of user crons (docs/architecture.md: its 500 ms tick, unbounded
//! channel behaviour and Postgres store without row locking do not meet that job).

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::config::{HistoryConfig, HousekeepingConfig};
use crate::store::Store;
use crate::time::now_ms;

/// Starts the housekeeping job, first run `every` after start; the returned scheduler must
/// be kept (and shut down).
pub async fn start(
    store: Store,
    housekeeping: HousekeepingConfig,
    history: HistoryConfig,
) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_repeated_async(housekeeping.every, move |_, _| {
        let store = store.clone();
        let history = history.clone();
        let deliveries_retention = housekeeping.retention;
        Box::pin(async move {
            let now = now_ms();
            let history_before = now - history.retention.as_millis() as i64;
            let deliveries_before = now - deliveries_retention.as_millis() as i64;
            match store
                .sweep_history(history_before, history.keep_per_cron, deliveries_before)
                .await
            {
                Ok((entries, deliveries)) => {
                    tracing::info!(entries, deliveries, "housekeeping: old history deleted")
                }
                Err(err) => tracing::error!(error = %err, "housekeeping failed"),
            }
        })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}
