//! The scheduler's fire log (one row per fired instant: the exactly-once key) and the
//! per-cron misfire policy.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Crons {
    Table,
    MisfirePolicy,
    CatchupWindowSeconds,
}

#[derive(DeriveIden)]
enum CronFires {
    Table,
    CronId,
    ScheduledFor,
    RunId,
    /// fired | rejected (a thread cron whose thread was busy under `reject`)
    Outcome,
    FiredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Crons::Table)
                    .add_column(string_null(Crons::MisfirePolicy))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Crons::Table)
                    .add_column(big_integer_null(Crons::CatchupWindowSeconds))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CronFires::Table)
                    .col(string(CronFires::CronId))
                    .col(big_integer(CronFires::ScheduledFor))
                    .col(string_null(CronFires::RunId))
                    .col(string(CronFires::Outcome))
                    .col(big_integer(CronFires::FiredAt))
                    // Exactly once per (cron, instant), whatever the replicas or restarts.
                    .primary_key(
                        Index::create()
                            .col(CronFires::CronId)
                            .col(CronFires::ScheduledFor),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_cron_fires_fired_at")
                    .table(CronFires::Table)
                    .col(CronFires::FiredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CronFires::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Crons::Table)
                    .drop_column(Crons::CatchupWindowSeconds)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Crons::Table)
                    .drop_column(Crons::MisfirePolicy)
                    .to_owned(),
            )
            .await
    }
}
