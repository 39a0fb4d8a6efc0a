//! The fire log becomes each cron's history: one entry per scheduled instant (a run of
//! missed instants is one entry), with the run's outcome and its webhook's; crons record
//! their last run; a webhook delivery records the instant of the fire-log entry it settles.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum CronFires {
    Table,
    Outcome,
    /// The last instant of a missed entry (null for the others).
    LastScheduledFor,
    /// How many instants the entry covers (1 but for missed entries).
    Instants,
    /// The misfire policy that decided a missed entry.
    MisfirePolicy,
    RunStatus,
    StartedAt,
    EndedAt,
    Error,
    DeliveryId,
    WebhookStatus,
    WebhookAttempts,
}

#[derive(DeriveIden, Clone)]
enum Crons {
    Table,
    CronId,
    LastRunStatus,
    LastRunAt,
    ConsecutiveFailures,
    PauseNote,
}

#[derive(DeriveIden, Clone)]
enum WebhookDeliveries {
    Table,
    ScheduledFor,
}

/// SQLite adds one column per ALTER TABLE.
async fn add(
    manager: &SchemaManager<'_>,
    table: impl IntoIden + Clone + 'static,
    columns: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    for mut column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

async fn drop(
    manager: &SchemaManager<'_>,
    table: impl IntoIden + Clone + 'static,
    columns: Vec<DynIden>,
) -> Result<(), DbErr> {
    for column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add(
            manager,
            CronFires::Table,
            vec![
                big_integer_null(CronFires::LastScheduledFor),
                big_integer(CronFires::Instants).default(1).to_owned(),
                string_null(CronFires::MisfirePolicy),
                string_null(CronFires::RunStatus),
                big_integer_null(CronFires::StartedAt),
                big_integer_null(CronFires::EndedAt),
                json_binary_null(CronFires::Error),
                string_null(CronFires::DeliveryId),
                string_null(CronFires::WebhookStatus),
                integer_null(CronFires::WebhookAttempts),
            ],
        )
        .await?;
        // A manual trigger's entry is `triggered` (its key is the trigger's instant).
        manager
            .exec_stmt(
                Query::update()
                    .table(CronFires::Table)
                    .value(CronFires::Outcome, "triggered")
                    .and_where(Expr::col(CronFires::Outcome).eq("manual"))
                    .to_owned(),
            )
            .await?;
        add(
            manager,
            Crons::Table,
            vec![
                string_null(Crons::LastRunStatus),
                big_integer_null(Crons::LastRunAt),
                integer(Crons::ConsecutiveFailures).default(0).to_owned(),
                string_null(Crons::PauseNote),
            ],
        )
        .await?;
        crate::create_indexes(
            manager,
            Crons::Table,
            vec![(
                "idx_crons_last_run_status",
                vec![Crons::LastRunStatus, Crons::CronId],
            )],
        )
        .await?;
        add(
            manager,
            WebhookDeliveries::Table,
            vec![big_integer_null(WebhookDeliveries::ScheduledFor)],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop(
            manager,
            WebhookDeliveries::Table,
            vec![WebhookDeliveries::ScheduledFor.into_iden()],
        )
        .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_crons_last_run_status")
                    .table(Crons::Table)
                    .to_owned(),
            )
            .await?;
        drop(
            manager,
            Crons::Table,
            vec![
                Crons::PauseNote.into_iden(),
                Crons::ConsecutiveFailures.into_iden(),
                Crons::LastRunAt.into_iden(),
                Crons::LastRunStatus.into_iden(),
            ],
        )
        .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(CronFires::Table)
                    .value(CronFires::Outcome, "manual")
                    .and_where(Expr::col(CronFires::Outcome).eq("triggered"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(CronFires::Table)
                    .and_where(Expr::col(CronFires::Outcome).eq("missed"))
                    .to_owned(),
            )
            .await?;
        drop(
            manager,
            CronFires::Table,
            vec![
                CronFires::WebhookAttempts.into_iden(),
                CronFires::WebhookStatus.into_iden(),
                CronFires::DeliveryId.into_iden(),
                CronFires::Error.into_iden(),
                CronFires::EndedAt.into_iden(),
                CronFires::StartedAt.into_iden(),
                CronFires::RunStatus.into_iden(),
                CronFires::MisfirePolicy.into_iden(),
                CronFires::Instants.into_iden(),
                CronFires::LastScheduledFor.into_iden(),
            ],
        )
        .await
    }
}
