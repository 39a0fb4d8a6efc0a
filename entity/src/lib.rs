//! sea-orm entities: one module per table. Timestamps are integer epoch milliseconds
//! (`*_at` columns) so that SQLite and PostgreSQL index and compare them the same way;
//! the API layer renders them as ISO-8601.

pub mod assistant;
pub mod attempt;
pub mod cron;
pub mod cron_fire;
pub mod delivery;
pub mod run;
pub mod states;
pub mod thread;
