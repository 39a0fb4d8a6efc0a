//! When things fire: an in-memory timer of upcoming instants fed from the store, claims
//! and fires in batches through the store (which queues the runs), under the misfire policy.

mod engine;
mod policy;
mod timer;

pub use engine::{Scheduler, SchedulerHandle};
pub use policy::MisfirePolicy;
