//! Scheduling controls: a stateless cron's overlap policy, jitter, a run limit, a pause until
//! an instant and its daylight-saving choices; runs held behind a cron's running one; the
//! start an entry was due at (its instant plus jitter).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum Crons {
    Table,
    Overlap,
    JitterSeconds,
    RemainingRuns,
    PausedUntil,
    DstRepeat,
    DstGap,
    HeldRuns,
}

#[derive(DeriveIden, Clone)]
enum CronFires {
    Table,
    DueAt,
}

#[derive(DeriveIden, Clone)]
enum Runs {
    Table,
    CronId,
    Status,
}

/// A cron's active runs, for its overlap policy and for releasing the runs held behind them.
const CRON_RUNS_INDEX: &str = "idx_runs_cron_status";
/// The crons with held runs, for the recovery sweep.
const HELD_INDEX: &str = "idx_crons_held_runs";

/// The columns this migration adds to crons (SQLite adds one per statement).
fn cron_columns() -> Vec<ColumnDef> {
    vec![
        string(Crons::Overlap).default("allow").to_owned(),
        integer(Crons::JitterSeconds).default(0).to_owned(),
        big_integer_null(Crons::RemainingRuns).to_owned(),
        big_integer_null(Crons::PausedUntil).to_owned(),
        string(Crons::DstRepeat).default("once").to_owned(),
        string(Crons::DstGap).default("shift").to_owned(),
        integer(Crons::HeldRuns).default(0).to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in cron_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Crons::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(CronFires::Table)
                    .add_column(big_integer_null(CronFires::DueAt))
                    .to_owned(),
            )
            .await?;
        crate::create_indexes(
            manager,
            Runs::Table,
            vec![(CRON_RUNS_INDEX, vec![Runs::CronId, Runs::Status])],
        )
        .await?;
        crate::create_indexes(
            manager,
            Crons::Table,
            vec![(HELD_INDEX, vec![Crons::HeldRuns])],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(HELD_INDEX)
                    .table(Crons::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(CRON_RUNS_INDEX)
                    .table(Runs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(CronFires::Table)
                    .drop_column(CronFires::DueAt)
                    .to_owned(),
            )
            .await?;
        for column in [
            Crons::Overlap,
            Crons::JitterSeconds,
            Crons::RemainingRuns,
            Crons::PausedUntil,
            Crons::DstRepeat,
            Crons::DstGap,
            Crons::HeldRuns,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Crons::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
