//! Runs (the durable queue) and the webhook outbox they complete into.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Threads {
    Table,
    ThreadId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Runs {
    Table,
    RunId,
    ThreadId,
    AssistantId,
    Status,
    Metadata,
    Kwargs,
    MultitaskStrategy,
    UserId,
    CronId,
    ScheduledFor,
    OnCompletion,
    AvailableAt,
    Attempt,
    LeaseOwner,
    LeaseExpiresAt,
    CancelAction,
    Output,
    Error,
    StartedAt,
    EndedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookDeliveries {
    Table,
    DeliveryId,
    RunId,
    ThreadId,
    CronId,
    Url,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseOwner,
    LeaseExpiresAt,
    LastStatusCode,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Runs::Table)
                    .col(string(Runs::RunId).primary_key())
                    .col(string(Runs::ThreadId))
                    .col(string(Runs::AssistantId))
                    .col(string(Runs::Status))
                    .col(json_binary(Runs::Metadata))
                    .col(json_binary(Runs::Kwargs))
                    .col(string(Runs::MultitaskStrategy))
                    .col(string_null(Runs::UserId))
                    .col(string_null(Runs::CronId))
                    .col(big_integer_null(Runs::ScheduledFor))
                    .col(string_null(Runs::OnCompletion))
                    .col(big_integer(Runs::AvailableAt))
                    .col(integer(Runs::Attempt))
                    .col(string_null(Runs::LeaseOwner))
                    .col(big_integer_null(Runs::LeaseExpiresAt))
                    .col(string_null(Runs::CancelAction))
                    .col(json_binary_null(Runs::Output))
                    .col(json_binary_null(Runs::Error))
                    .col(big_integer_null(Runs::StartedAt))
                    .col(big_integer_null(Runs::EndedAt))
                    .col(big_integer(Runs::CreatedAt))
                    .col(big_integer(Runs::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_runs_thread")
                            .from(Runs::Table, Runs::ThreadId)
                            .to(Threads::Table, Threads::ThreadId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Workers claim by (status, available_at); a thread's runs are listed newest first;
        // lease expiry finds runs whose worker died.
        crate::create_indexes(
            manager,
            Runs::Table,
            vec![
                (
                    "idx_runs_claim",
                    vec![Runs::Status, Runs::AvailableAt, Runs::RunId],
                ),
                (
                    "idx_runs_thread",
                    vec![Runs::ThreadId, Runs::CreatedAt, Runs::RunId],
                ),
                ("idx_runs_lease", vec![Runs::LeaseExpiresAt]),
            ],
        )
        .await?;

        // One active run per thread, whatever the number of workers and replicas.
        manager
            .create_index(
                Index::create()
                    .name("ux_runs_one_running_per_thread")
                    .table(Runs::Table)
                    .col(Runs::ThreadId)
                    .unique()
                    .cond_where(Expr::col(Runs::Status).eq("running"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(string(WebhookDeliveries::DeliveryId).primary_key())
                    .col(string(WebhookDeliveries::RunId))
                    .col(string(WebhookDeliveries::ThreadId))
                    .col(string_null(WebhookDeliveries::CronId))
                    .col(text(WebhookDeliveries::Url))
                    .col(json_binary(WebhookDeliveries::Payload))
                    .col(string(WebhookDeliveries::Status))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(big_integer(WebhookDeliveries::NextAttemptAt))
                    .col(string_null(WebhookDeliveries::LeaseOwner))
                    .col(big_integer_null(WebhookDeliveries::LeaseExpiresAt))
                    .col(integer_null(WebhookDeliveries::LastStatusCode))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(big_integer(WebhookDeliveries::CreatedAt))
                    .col(big_integer(WebhookDeliveries::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        crate::create_indexes(
            manager,
            WebhookDeliveries::Table,
            vec![
                (
                    "idx_deliveries_due",
                    vec![
                        WebhookDeliveries::Status,
                        WebhookDeliveries::NextAttemptAt,
                        WebhookDeliveries::DeliveryId,
                    ],
                ),
                ("idx_deliveries_run", vec![WebhookDeliveries::RunId]),
            ],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Runs::Table).to_owned())
            .await
    }
}
