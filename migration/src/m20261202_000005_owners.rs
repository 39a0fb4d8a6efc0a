//! Owners: a webhook delivery records the identity that owns its run (runs can be deleted
//! before their delivery is), and per-identity listings get indexes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone)]
enum WebhookDeliveries {
    Table,
    UserId,
    CreatedAt,
    DeliveryId,
}

#[derive(DeriveIden, Clone)]
enum Crons {
    Table,
    UserId,
}

#[derive(DeriveIden, Clone)]
enum Threads {
    Table,
    UserId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookDeliveries::Table)
                    .add_column(string_null(WebhookDeliveries::UserId))
                    .to_owned(),
            )
            .await?;
        crate::create_indexes(
            manager,
            WebhookDeliveries::Table,
            vec![(
                "idx_deliveries_user",
                vec![
                    WebhookDeliveries::UserId,
                    WebhookDeliveries::CreatedAt,
                    WebhookDeliveries::DeliveryId,
                ],
            )],
        )
        .await?;
        crate::create_indexes(
            manager,
            Crons::Table,
            vec![("idx_crons_user", vec![Crons::UserId])],
        )
        .await?;
        crate::create_indexes(
            manager,
            Threads::Table,
            vec![("idx_threads_user", vec![Threads::UserId])],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let drop = |name: &str, table: DynIden| Index::drop().name(name).table(table).to_owned();
        manager
            .drop_index(drop("idx_threads_user", Threads::Table.into_iden()))
            .await?;
        manager
            .drop_index(drop("idx_crons_user", Crons::Table.into_iden()))
            .await?;
        manager
            .drop_index(drop(
                "idx_deliveries_user",
                WebhookDeliveries::Table.into_iden(),
            ))
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookDeliveries::Table)
                    .drop_column(WebhookDeliveries::UserId)
                    .to_owned(),
            )
            .await
    }
}
