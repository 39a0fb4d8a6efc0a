//! "Which crons are failing?" in index order: the last-run-status index also orders by
//! creation (the searches' default sort), so a page of failing crons reads only its rows
//! instead of every failing cron's, then sorting them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum Crons {
    Table,
    LastRunStatus,
    CreatedAt,
    CronId,
}

const INDEX: &str = "idx_crons_last_run_status";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(
            manager,
            vec![Crons::LastRunStatus, Crons::CreatedAt, Crons::CronId],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, vec![Crons::LastRunStatus, Crons::CronId]).await
    }
}

async fn replace(manager: &SchemaManager<'_>, columns: Vec<Crons>) -> Result<(), DbErr> {
    manager
        .drop_index(Index::drop().name(INDEX).table(Crons::Table).to_owned())
        .await?;
    crate::create_indexes(manager, Crons::Table, vec![(INDEX, columns)]).await
}
