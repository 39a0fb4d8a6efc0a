//! A thread's active runs (pending or running), apart from the runs it has finished. The
//! claim checks for each pending run that no earlier run of its thread is active; without
//! this index that check reads every run the thread ever had. A per-second thread cron keeps
//! thousands, and with a backlog of pending runs (behind a crashed replica's leases) each
//! claim would read millions of rows, so claims fall further behind than the crons fire.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    ThreadId,
    CreatedAt,
    RunId,
    Status,
}

const INDEX: &str = "idx_runs_thread_active";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Runs::Table)
                    .col(Runs::ThreadId)
                    .col(Runs::CreatedAt)
                    .col(Runs::RunId)
                    .cond_where(Expr::col(Runs::Status).is_in(["pending", "running"]))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Runs::Table).to_owned())
            .await
    }
}
