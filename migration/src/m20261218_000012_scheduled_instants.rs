//! Instants recorded ahead and not yet fired (history entries `scheduled`) are found by any
//! replica once due, so one whose scheduler died fires all the same. Few rows are ever in
//! that state, so the index holds only them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CronFires {
    Table,
    Outcome,
    ScheduledFor,
}

const INDEX: &str = "idx_cron_fires_scheduled";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(CronFires::Table)
                    .col(CronFires::ScheduledFor)
                    .cond_where(Expr::col(CronFires::Outcome).eq("scheduled"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(CronFires::Table).to_owned())
            .await
    }
}
