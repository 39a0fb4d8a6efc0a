//! The webhook delivery log: one row per attempt, removed with its delivery; deliveries
//! listed by cron.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum WebhookDeliveries {
    Table,
    DeliveryId,
    CronId,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
enum WebhookAttempts {
    Table,
    AttemptId,
    DeliveryId,
    Attempt,
    AttemptedAt,
    StatusCode,
    LatencyUs,
    Error,
    ResponseBody,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(string(WebhookAttempts::AttemptId).primary_key())
                    .col(string(WebhookAttempts::DeliveryId))
                    .col(integer(WebhookAttempts::Attempt))
                    .col(big_integer(WebhookAttempts::AttemptedAt))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(big_integer(WebhookAttempts::LatencyUs))
                    .col(text_null(WebhookAttempts::Error))
                    .col(text_null(WebhookAttempts::ResponseBody))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookAttempts::Table, WebhookAttempts::DeliveryId)
                            .to(WebhookDeliveries::Table, WebhookDeliveries::DeliveryId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        crate::create_indexes(
            manager,
            WebhookAttempts::Table,
            vec![(
                "idx_attempts_delivery",
                vec![
                    WebhookAttempts::DeliveryId,
                    WebhookAttempts::AttemptedAt,
                    WebhookAttempts::AttemptId,
                ],
            )],
        )
        .await?;
        crate::create_indexes(
            manager,
            WebhookDeliveries::Table,
            vec![
                (
                    "idx_deliveries_cron",
                    vec![
                        WebhookDeliveries::CronId,
                        WebhookDeliveries::CreatedAt,
                        WebhookDeliveries::DeliveryId,
                    ],
                ),
                (
                    "idx_deliveries_created",
                    vec![WebhookDeliveries::CreatedAt, WebhookDeliveries::DeliveryId],
                ),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["idx_deliveries_cron", "idx_deliveries_created"] {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(WebhookDeliveries::Table)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(WebhookAttempts::Table).to_owned())
            .await
    }
}
