//! Alerts: a delivery is of a `kind` (`run`: a run's webhook; `alert`: an `[[alerts.routes]]`
//! call), and a cron may pause itself after `pause_after_failures` failed runs in a row.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum Crons {
    Table,
    PauseAfterFailures,
}

#[derive(DeriveIden, Clone)]
enum WebhookDeliveries {
    Table,
    Kind,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookDeliveries::Table)
                    .add_column(string(WebhookDeliveries::Kind).default("run"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Crons::Table)
                    .add_column(integer_null(Crons::PauseAfterFailures))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Crons::Table)
                    .drop_column(Crons::PauseAfterFailures)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookDeliveries::Table)
                    .drop_column(WebhookDeliveries::Kind)
                    .to_owned(),
            )
            .await
    }
}
