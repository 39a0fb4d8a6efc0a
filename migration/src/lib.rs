//! cronhook's schema history. Applied automatically at start-up and by `cronhook migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_foundation;
mod m20261124_000002_runs;
mod m20261125_000003_scheduler;
mod m20261125_000004_webhooks;
mod m20261202_000005_owners;
mod m20261210_000006_history;
mod m20261212_000007_alerts;
mod m20261213_000008_failing_crons;
mod m20261214_000009_controls;
mod m20261216_000010_thread_queue;
mod m20261217_000011_sparse_indexes;
mod m20261218_000012_scheduled_instants;

pub struct Migrator;

/// Creates the named indexes on `table`, each on its columns in order.
async fn create_indexes<T, C>(
    manager: &SchemaManager<'_>,
    table: T,
    indexes: Vec<(&str, Vec<C>)>,
) -> Result<(), DbErr>
where
    T: IntoIden + Clone + 'static,
    C: IntoIden + 'static,
{
    for (name, columns) in indexes {
        let mut index = Index::create();
        index.name(name).table(table.clone());
        for column in columns {
            index.col(column);
        }
        manager.create_index(index.to_owned()).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_foundation::Migration),
            Box::new(m20261124_000002_runs::Migration),
            Box::new(m20261125_000003_scheduler::Migration),
            Box::new(m20261125_000004_webhooks::Migration),
            Box::new(m20261202_000005_owners::Migration),
            Box::new(m20261210_000006_history::Migration),
            Box::new(m20261212_000007_alerts::Migration),
            Box::new(m20261213_000008_failing_crons::Migration),
            Box::new(m20261214_000009_controls::Migration),
            Box::new(m20261216_000010_thread_queue::Migration),
            Box::new(m20261217_000011_sparse_indexes::Migration),
            Box::new(m20261218_000012_scheduled_instants::Migration),
        ]
    }
}
