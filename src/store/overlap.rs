//! A stateless cron's overlap policy, decided in the fire's transaction (the cron's row is
//! locked, so replicas decide one after the other), and the runs held behind a cron's
//! active run: queued with `available_at` = [`HELD`], released one at a time, oldest
//! instant first, in the transaction that ends the cron's last active run. The cron's
//! `held_runs` says whether a run's end needs to look; the recovery sweep
//! (`Store::release_held`) releases what an end missed (a run deleted with its thread).

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect};

use entity::cron::{self, Entity as Crons};
use entity::run::{self, Column, Entity as Runs};
use entity::states::{CancelAction, Overlap, RunStatus};

use super::crons::lock_crons;
use super::runs::cancel_active;
use super::{Result, Store};
use crate::time::Millis;

/// The `available_at` of a held run: never due until released.
pub const HELD: Millis = Millis::MAX;

/// What one instant of a stateless cron does, given the cron's active runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Queued as usual.
    Run,
    /// Queued held, behind the cron's active run.
    Hold,
    /// Not run: recorded as `skipped`.
    Skip,
}

impl Decision {
    /// The decision on an instant while the cron has `busy` active runs (running, or due)
    /// and `held` runs waiting behind them.
    pub fn of(overlap: Overlap, busy: usize, held: usize) -> Decision {
        let active = busy + held;
        match overlap {
            Overlap::Allow => Decision::Run,
            _ if active == 0 => Decision::Run,
            Overlap::Skip => Decision::Skip,
            Overlap::BufferOne if held == 0 => Decision::Hold,
            Overlap::BufferOne => Decision::Skip,
            Overlap::BufferAll => Decision::Hold,
            // The active runs were cancelled first (see `decide`): those still running
            // are stopping, and the new run waits for them.
            Overlap::CancelOther if busy == 0 => Decision::Run,
            Overlap::CancelOther => Decision::Hold,
        }
    }
}

/// Decides an instant of `cron` under `overlap`, inside the fire's transaction. Under
/// `cancel_other` the cron's active runs are cancelled first (pending ones end at once,
/// running ones are asked to stop: `stopping`), and the new run is held until they have
/// stopped.
pub(super) async fn decide(
    txn: &DatabaseTransaction,
    cron_id: &str,
    overlap: Overlap,
    now: Millis,
    stopping: &mut Vec<String>,
) -> Result<Decision> {
    match overlap {
        Overlap::Allow => Ok(Decision::Run),
        Overlap::CancelOther => {
            let flagged = cancel_cron_runs(txn, cron_id, now).await?;
            let decision = Decision::of(overlap, flagged.len(), 0);
            stopping.extend(flagged);
            Ok(decision)
        }
        _ => {
            let (busy, held) = active_runs(txn, cron_id).await?;
            Ok(Decision::of(overlap, busy, held))
        }
    }
}

/// How many of the cron's runs are active and not held (`busy`), and how many are held.
pub(super) async fn active_runs(
    txn: &DatabaseTransaction,
    cron_id: &str,
) -> Result<(usize, usize)> {
    let available: Vec<Millis> = Runs::find()
        .select_only()
        .column(Column::AvailableAt)
        .filter(Column::CronId.eq(cron_id))
        .filter(Column::Status.is_in(RunStatus::ACTIVE))
        .into_tuple()
        .all(txn)
        .await?;
    let held = available.iter().filter(|at| **at == HELD).count();
    Ok((available.len() - held, held))
}

/// Cancels the cron's active runs: pending ones (held or not) end `interrupted` at once,
/// running ones are flagged to stop. The ids of those flagged.
pub(super) async fn cancel_cron_runs(
    txn: &DatabaseTransaction,
    cron_id: &str,
    now: Millis,
) -> Result<Vec<String>> {
    let active = Runs::find()
        .filter(Column::CronId.eq(cron_id))
        .filter(Column::Status.is_in(RunStatus::ACTIVE))
        .all(txn)
        .await?;
    if active.is_empty() {
        return Ok(Vec::new());
    }
    cancel_active(txn, active, CancelAction::Interrupt, now).await
}

/// Counts `count` runs held behind `cron_id`'s active run.
pub(super) async fn count_held(
    txn: &DatabaseTransaction,
    cron_id: &str,
    count: usize,
) -> Result<()> {
    if count == 0 {
        return Ok(());
    }
    Crons::update_many()
        .col_expr(
            cron::Column::HeldRuns,
            Expr::col(cron::Column::HeldRuns).add(i32::try_from(count).unwrap_or(i32::MAX)),
        )
        .filter(cron::Column::CronId.eq(cron_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Releases the oldest run held behind `cron_id`'s active runs when none is left, not
/// counting the runs `ending` in this transaction, and recounts the cron's held runs.
/// Whether a run was released.
pub(super) async fn release_next(
    txn: &DatabaseTransaction,
    cron_id: &str,
    ending: &[&str],
    now: Millis,
) -> Result<bool> {
    let active: Vec<(String, Millis, Option<Millis>)> = Runs::find()
        .select_only()
        .columns([Column::RunId, Column::AvailableAt, Column::ScheduledFor])
        .filter(Column::CronId.eq(cron_id))
        .filter(Column::Status.is_in(RunStatus::ACTIVE))
        .into_tuple()
        .all(txn)
        .await?;
    let active: Vec<_> = active
        .into_iter()
        .filter(|(run_id, _, _)| !ending.contains(&run_id.as_str()))
        .collect();
    let busy = active.iter().any(|(_, at, _)| *at != HELD);
    let mut held: Vec<(Option<Millis>, String)> = active
        .into_iter()
        .filter(|(_, at, _)| *at == HELD)
        .map(|(run_id, _, instant)| (instant, run_id))
        .collect();
    held.sort_unstable();
    let mut left = held.len();
    let released = !busy && !held.is_empty();
    if released {
        let (_, run_id) = &held[0];
        Runs::update_many()
            .col_expr(Column::AvailableAt, Expr::value(now))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::RunId.eq(run_id.as_str()))
            .exec(txn)
            .await?;
        left -= 1;
    }
    Crons::update_many()
        .col_expr(
            cron::Column::HeldRuns,
            Expr::value(i32::try_from(left).unwrap_or(i32::MAX)),
        )
        .filter(cron::Column::CronId.eq(cron_id))
        .exec(txn)
        .await?;
    Ok(released)
}

/// Deletes the runs held behind `cron_id`'s active run, with their threads (made for them
/// alone): a deleted cron's waiting instants are not run.
pub(super) async fn withdraw_held(txn: &DatabaseTransaction, cron_id: &str) -> Result<()> {
    let threads: Vec<String> = Runs::find()
        .select_only()
        .column(Column::ThreadId)
        .filter(Column::CronId.eq(cron_id))
        .filter(Column::Status.eq(RunStatus::Pending))
        .filter(Column::AvailableAt.eq(HELD))
        .filter(Column::OnCompletion.is_not_null())
        .into_tuple()
        .all(txn)
        .await?;
    if !threads.is_empty() {
        // The runs go with their threads (the foreign key cascades).
        entity::thread::Entity::delete_many()
            .filter(entity::thread::Column::ThreadId.is_in(threads))
            .exec(txn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Releases the held runs whose cron has no active run left (the recovery sweep). How
    /// many were released.
    pub async fn release_held(&self, now: Millis) -> Result<u64> {
        let crons: Vec<String> = Crons::find()
            .select_only()
            .column(cron::Column::CronId)
            .filter(cron::Column::HeldRuns.gt(0))
            .into_tuple()
            .all(&self.read)
            .await?;
        let mut released = 0;
        for cron_id in crons {
            let txn = sea_orm::TransactionTrait::begin(&self.write).await?;
            lock_crons(&txn, [cron_id.clone()]).await?;
            if release_next(&txn, &cron_id, &[], now).await? {
                released += 1;
            }
            txn.commit().await?;
        }
        Ok(released)
    }
}

/// Whether `run` is held behind its cron's active run.
pub fn is_held(run: &run::Model) -> bool {
    run.available_at == HELD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_cron_runs_its_instant_under_every_policy() {
        for overlap in [
            Overlap::Allow,
            Overlap::Skip,
            Overlap::BufferOne,
            Overlap::BufferAll,
            Overlap::CancelOther,
        ] {
            assert_eq!(Decision::of(overlap, 0, 0), Decision::Run, "{overlap:?}");
        }
    }

    #[test]
    fn a_busy_cron_follows_its_policy() {
        assert_eq!(Decision::of(Overlap::Allow, 1, 0), Decision::Run);
        assert_eq!(Decision::of(Overlap::Skip, 1, 0), Decision::Skip);
        assert_eq!(Decision::of(Overlap::BufferOne, 1, 0), Decision::Hold);
        assert_eq!(Decision::of(Overlap::BufferOne, 1, 1), Decision::Skip);
        assert_eq!(Decision::of(Overlap::BufferAll, 1, 5), Decision::Hold);
        assert_eq!(Decision::of(Overlap::CancelOther, 1, 0), Decision::Hold);
        assert_eq!(Decision::of(Overlap::CancelOther, 0, 0), Decision::Run);
    }
}
