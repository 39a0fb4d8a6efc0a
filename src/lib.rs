//! cronhook: keeps recurring LangGraph runs on schedule and tells their callers when each
//! run is done.
//!
//! Data flows one way: `api` → `store` ← `scheduler` → `runs` → `webhooks`. Roles talk
//! through the store (plus in-process wake-ups), never by calling each other's internals.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod housekeeping;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod parts;
pub mod runs;
pub mod runtime;
pub mod schedule;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod time;
pub mod webhooks;
