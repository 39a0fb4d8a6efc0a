//! Indexes on columns that most rows leave empty hold only the rows that fill them. Owners
//! (`user_id`) exist only with authentication on, and a run has a lease only while it runs;
//! a whole index would take an entry for every other row too, written when the row comes
//! and again when it goes, on the path every cron run takes. The queries that use these
//! indexes all compare the column to a value (`user_id = ?`, `lease_expires_at < ?`), which
//! implies `IS NOT NULL`, so SQLite and PostgreSQL both use the partial index for them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Threads {
    Table,
    UserId,
}

#[derive(DeriveIden)]
enum Crons {
    Table,
    UserId,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    UserId,
    CreatedAt,
    DeliveryId,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    LeaseExpiresAt,
}

/// One index of this migration: its name, table and columns; the first column is the one
/// most rows leave NULL.
struct Sparse {
    name: &'static str,
    table: DynIden,
    columns: Vec<DynIden>,
}

fn indexes() -> Vec<Sparse> {
    vec![
        Sparse {
            name: "idx_threads_user",
            table: Threads::Table.into_iden(),
            columns: vec![Threads::UserId.into_iden()],
        },
        Sparse {
            name: "idx_crons_user",
            table: Crons::Table.into_iden(),
            columns: vec![Crons::UserId.into_iden()],
        },
        Sparse {
            name: "idx_deliveries_user",
            table: WebhookDeliveries::Table.into_iden(),
            columns: vec![
                WebhookDeliveries::UserId.into_iden(),
                WebhookDeliveries::CreatedAt.into_iden(),
                WebhookDeliveries::DeliveryId.into_iden(),
            ],
        },
        Sparse {
            name: "idx_runs_lease",
            table: Runs::Table.into_iden(),
            columns: vec![Runs::LeaseExpiresAt.into_iden()],
        },
    ]
}

/// Replaces each index by its partial form (`partial`) or its whole form.
async fn rebuild(manager: &SchemaManager<'_>, partial: bool) -> Result<(), DbErr> {
    for index in indexes() {
        manager
            .drop_index(
                Index::drop()
                    .name(index.name)
                    .table(index.table.clone())
                    .to_owned(),
            )
            .await?;
        let mut create = Index::create();
        create.name(index.name).table(index.table);
        if partial {
            create.cond_where(Expr::col(index.columns[0].clone()).is_not_null());
        }
        for column in index.columns {
            create.col(column);
        }
        manager.create_index(create).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, false).await
    }
}
