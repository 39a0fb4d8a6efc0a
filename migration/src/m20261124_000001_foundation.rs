//! Assistants, threads and crons.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Assistants {
    Table,
    AssistantId,
    GraphId,
    Name,
    Description,
    Config,
    Context,
    Metadata,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Threads {
    Table,
    ThreadId,
    Metadata,
    Status,
    Values,
    UserId,
    CreatedAt,
    UpdatedAt,
    StateUpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Crons {
    Table,
    CronId,
    AssistantId,
    ThreadId,
    UserId,
    Schedule,
    Timezone,
    EndTime,
    Payload,
    Metadata,
    Enabled,
    OnRunCompleted,
    NextRunAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Assistants::Table)
                    .col(string(Assistants::AssistantId).primary_key())
                    .col(string(Assistants::GraphId))
                    .col(string(Assistants::Name))
                    .col(text_null(Assistants::Description))
                    .col(json_binary(Assistants::Config))
                    .col(json_binary(Assistants::Context))
                    .col(json_binary(Assistants::Metadata))
                    .col(integer(Assistants::Version))
                    .col(big_integer(Assistants::CreatedAt))
                    .col(big_integer(Assistants::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Threads::Table)
                    .col(string(Threads::ThreadId).primary_key())
                    .col(json_binary(Threads::Metadata))
                    .col(string(Threads::Status))
                    .col(json_binary_null(Threads::Values))
                    .col(string_null(Threads::UserId))
                    .col(big_integer(Threads::CreatedAt))
                    .col(big_integer(Threads::UpdatedAt))
                    .col(big_integer(Threads::StateUpdatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_threads_created_at", Threads::CreatedAt),
            ("idx_threads_updated_at", Threads::UpdatedAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Threads::Table)
                        .col(col)
                        .col(Threads::ThreadId)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Crons::Table)
                    .col(string(Crons::CronId).primary_key())
                    .col(string(Crons::AssistantId))
                    .col(string_null(Crons::ThreadId))
                    .col(string_null(Crons::UserId))
                    .col(string(Crons::Schedule))
                    .col(string_null(Crons::Timezone))
                    .col(big_integer_null(Crons::EndTime))
                    .col(json_binary(Crons::Payload))
                    .col(json_binary(Crons::Metadata))
                    .col(boolean(Crons::Enabled))
                    .col(string_null(Crons::OnRunCompleted))
                    .col(big_integer_null(Crons::NextRunAt))
                    .col(big_integer(Crons::CreatedAt))
                    .col(big_integer(Crons::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_crons_thread")
                            .from(Crons::Table, Crons::ThreadId)
                            .to(Threads::Table, Threads::ThreadId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The scheduler scans by next instant; searches sort by these. Each index ends with
        // the primary key, the search tie-breaker, so a page is read in index order
        // instead of sorting every matching row.
        crate::create_indexes(
            manager,
            Crons::Table,
            vec![
                (
                    "idx_crons_next_run_at",
                    vec![Crons::NextRunAt, Crons::CronId],
                ),
                (
                    "idx_crons_created_at",
                    vec![Crons::CreatedAt, Crons::CronId],
                ),
                (
                    "idx_crons_updated_at",
                    vec![Crons::UpdatedAt, Crons::CronId],
                ),
                (
                    "idx_crons_thread_id",
                    vec![Crons::ThreadId, Crons::CreatedAt, Crons::CronId],
                ),
                (
                    "idx_crons_assistant_id",
                    vec![Crons::AssistantId, Crons::CreatedAt, Crons::CronId],
                ),
            ],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Crons::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Threads::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Assistants::Table).to_owned())
            .await
    }
}
