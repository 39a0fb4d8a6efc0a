//! cronhook's schema history. Applied automatically at start-up and by `cronhook migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_foundation;
mod m20261124_000002_runs;
mod m20261125_000003_scheduler;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_foundation::Migration),
            Box::new(m20261124_000002_runs::Migration),
            Box::new(m20261125_000003_scheduler::Migration),
        ]
    }
}
