//! The integration tests, one test binary: each file is a module of tests against the real
//! `cronhook` binary (or, for `schedule_vs_croniter`, the library against croniter), and
//! `common` is the harness they share. A filter picks the tests whose path contains it, e.g.
//! `cargo test --test it scheduler::` or `cargo test --test it webhooks::sqlite::`.

// First, so that its `on_both_backends!` is in scope in the modules below.
#[macro_use]
mod common;

mod alerts;
mod api;
mod auth;
mod cli;
mod console;
mod controls;
mod cron_create;
mod examples;
mod faults;
mod files;
mod history;
mod limits;
mod metrics;
mod openapi;
mod packaging;
mod run_slots;
mod runs;
mod schedule_vs_croniter;
mod scheduler;
mod security;
mod shutdown;
mod upstream;
mod webhooks;
