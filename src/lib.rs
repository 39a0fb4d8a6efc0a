//! cronhook: keeps recurring LangGraph runs on schedule and tells their callers when each
//! run is done.
//!
//! Data flows one way: `api` → `store` ← `scheduler` → `runs` → `webhooks`. Roles talk
//! through the store (plus in-process wake-ups), never by calling each other's internals.

pub(crate) mod api;
pub(crate) mod auth;
pub mod cli;
pub mod config;
pub mod daemon;
pub(crate) mod housekeeping;
pub(crate) mod metrics;
pub(crate) mod notify;
pub mod ops;
pub mod parts;
pub(crate) mod runs;
pub mod runtime;
pub mod schedule;
pub(crate) mod scheduler;
pub(crate) mod server;
pub(crate) mod store;
pub(crate) mod time;
pub(crate) mod webhooks;

// What the fuzz targets drive: a search body's parsing and filter cap, and the store's
// filters behind it.
pub use api::check_filter;
pub use api::extract::parse_value;
pub use store::Store;
pub use store::assistants::AssistantFilter;
pub use store::crons::CronFilter;
pub use store::threads::ThreadFilter;
