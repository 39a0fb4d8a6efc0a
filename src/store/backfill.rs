//! Backfill: past instants of a cron fired on request, each recorded in the cron's history
//! as `backfilled` under the fire log's key, so an instant already fired (by the schedule or
//! an earlier backfill) is not fired again. A request is one transaction: once answered, all
//! of its instants are queued (runs held one behind the other where its overlap policy says
//! so), and a crash loses none of them.

use std::collections::HashSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};

use entity::cron::{self, Entity as Crons};
use entity::cron_fire::{self, Entity as CronFires};
use entity::states::{FireOutcome, Overlap};

use super::crons::lock_crons;
use super::fires::{MakeRun, fire_log_row, record_all};
use super::overlap::{self, Decision};
use super::runs::queue_runs_batched;
use super::{Error, Result, Store};
use crate::time::Millis;

/// What a backfill did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backfilled {
    /// Instants queued (or held) as runs.
    pub queued: u64,
    /// Instants recorded `skipped` under the request's overlap policy.
    pub skipped: u64,
    /// Instants left alone: already in the cron's history.
    pub already_fired: u64,
    /// Running runs asked to stop (`cancel_other`): their workers stop them.
    pub stopping: Vec<String>,
}

impl Store {
    /// Fires `instants` (past, in order) of `cron` under `overlap`: each one not in the fire
    /// log yet is recorded `backfilled` and queued, or held behind the cron's active run, or
    /// recorded `skipped`. A thread cron's runs join its thread's queue in order.
    pub async fn backfill(
        &self,
        cron: &cron::Model,
        instants: &[Millis],
        overlap: Overlap,
        make_run: &MakeRun<'_>,
        now: Millis,
    ) -> Result<Backfilled> {
        let txn = self.write.begin().await?;
        lock_crons(&txn, [cron.cron_id.clone()]).await?;
        if Crons::find_by_id(cron.cron_id.clone())
            .one(&txn)
            .await?
            .is_none()
        {
            return Err(Error::NotFound(format!(
                "Cron '{}' not found",
                cron.cron_id
            )));
        }
        let new = new_instants(&txn, &cron.cron_id, instants).await?;
        let mut done = Backfilled {
            already_fired: (instants.len() - new.len()) as u64,
            ..Backfilled::default()
        };
        let (mut busy, mut held) = match cron.thread_id {
            Some(_) => (0, 0),
            None => overlap::active_runs(&txn, &cron.cron_id).await?,
        };
        let mut entries = Vec::with_capacity(new.len());
        let mut runs = Vec::with_capacity(new.len());
        let last = new.len().saturating_sub(1);
        for (index, &instant) in new.iter().enumerate() {
            let decision = match (cron.thread_id.is_some(), overlap) {
                // A thread's queue runs them one after the other.
                (true, _) => Decision::Run,
                // Each would interrupt the one before it: only the last one runs.
                (false, Overlap::CancelOther) if index < last => Decision::Skip,
                (false, Overlap::CancelOther) => {
                    done.stopping = overlap::cancel_cron_runs(&txn, &cron.cron_id, now).await?;
                    Decision::of(overlap, done.stopping.len(), 0)
                }
                (false, _) => Decision::of(overlap, busy, held),
            };
            let mut run = make_run(cron, instant);
            match decision {
                Decision::Skip => {
                    entries.push(fire_log_row(cron, instant, None, FireOutcome::Skipped, now));
                    done.skipped += 1;
                    continue;
                }
                Decision::Hold => {
                    run.available_at = overlap::HELD;
                    held += 1;
                }
                Decision::Run => busy += 1,
            }
            entries.push(fire_log_row(
                cron,
                instant,
                Some(&run),
                FireOutcome::Backfilled,
                now,
            ));
            let metadata = self.assistant_metadata(&run.assistant_id);
            runs.push((run, metadata));
            done.queued += 1;
        }
        // The instants were read under the cron's lock: none can be taken meanwhile.
        if !record_all(&txn, entries).await? {
            txn.rollback().await?;
            return Err(Error::Conflict(
                "Some instants of the range were fired meanwhile; send the backfill again".into(),
            ));
        }
        let holding = runs.iter().filter(|(run, _)| overlap::is_held(run)).count();
        queue_runs_batched(&txn, runs, None, 0, now).await?;
        overlap::count_held(&txn, &cron.cron_id, holding).await?;
        txn.commit().await?;
        self.changes.touch();
        Ok(done)
    }
}

/// Which of `instants` are not in the cron's fire log yet.
async fn new_instants(
    txn: &sea_orm::DatabaseTransaction,
    cron_id: &str,
    instants: &[Millis],
) -> Result<Vec<Millis>> {
    let (Some(&first), Some(&last)) = (instants.first(), instants.last()) else {
        return Ok(Vec::new());
    };
    let known: HashSet<Millis> = CronFires::find()
        .select_only()
        .column(cron_fire::Column::ScheduledFor)
        .filter(cron_fire::Column::CronId.eq(cron_id))
        .filter(cron_fire::Column::ScheduledFor.between(first, last))
        .into_tuple()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    Ok(instants
        .iter()
        .copied()
        .filter(|instant| !known.contains(instant))
        .collect())
}
