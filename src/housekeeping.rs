//! Periodic housekeeping every `[housekeeping] every`: old fire-log rows and finished
//! webhook deliveries are deleted after the retention period.
//!
//! This is where `tokio-cron-scheduler` serves: a handful of jobs whose exact timing does not
//! matter. It is not the scheduler of user crons (docs/architecture.md: its 500 ms tick, unbounded
//! channel behaviour and Postgres store without row locking do not meet that job).

use std::time::Duration;

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::store::Store;
use crate::time::now_ms;

/// Starts the housekeeping job, first run `every` after start; the returned scheduler must
/// be kept (and shut down).
pub async fn start(
    store: Store,
    every: Duration,
    retention: Duration,
) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_repeated_async(every, move |_, _| {
        let store = store.clone();
        Box::pin(async move {
            let before = now_ms() - retention.as_millis() as i64;
            match store.sweep_history(before).await {
                Ok((fires, deliveries)) => {
                    tracing::info!(fires, deliveries, "housekeeping: old history deleted")
                }
                Err(err) => tracing::error!(error = %err, "housekeeping failed"),
            }
        })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}
