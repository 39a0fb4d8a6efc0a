//! A cron: a schedule plus the run payload it fires with.

use sea_orm::entity::prelude::*;

use crate::states::{DstGap, DstRepeat, OnCompletion, Overlap, RunStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "crons")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cron_id: String,
    pub assistant_id: String,
    /// Null for stateless crons (a new thread per fire).
    pub thread_id: Option<String>,
    pub user_id: Option<String>,
    pub schedule: String,
    /// IANA zone name; null means UTC.
    pub timezone: Option<String>,
    pub end_time: Option<i64>,
    /// The run-create payload each fire uses (input, config, context, webhook, …).
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    pub enabled: bool,
    /// Stateless crons only.
    pub on_run_completed: Option<OnCompletion>,
    /// Next scheduled instant; null when disabled-past-end or never firing again.
    pub next_run_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// fire_once | skip | fire_all; null means the configured default.
    pub misfire_policy: Option<String>,
    /// How far back `fire_all` catches up; null means the configured default.
    pub catchup_window_seconds: Option<i64>,
    /// How its last ended run ended (null before the first).
    pub last_run_status: Option<RunStatus>,
    /// When its last ended run ended.
    pub last_run_at: Option<i64>,
    /// Runs ended `error` or `timeout` since the last success.
    pub consecutive_failures: i32,
    /// Why it was disabled, when it was given a reason; cleared when enabled.
    pub pause_note: Option<String>,
    /// Disabled after this many failed runs in a row (null: never).
    pub pause_after_failures: Option<i32>,
    /// Stateless crons: what an instant does while an earlier run of the cron is still active.
    pub overlap: Overlap,
    /// Each instant starts a delay in [0, jitter) after it, fixed per (cron, instant).
    pub jitter_seconds: i32,
    /// Instants left to fire before the cron disables itself (null: no limit).
    pub remaining_runs: Option<i64>,
    /// Paused until this instant: `next_run_at` is the first instant at or after it.
    pub paused_until: Option<i64>,
    pub dst_repeat: DstRepeat,
    pub dst_gap: DstGap,
    /// Runs waiting behind this cron's active run (see `store::overlap`).
    pub held_runs: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::thread::Entity",
        from = "Column::ThreadId",
        to = "super::thread::Column::ThreadId",
        on_delete = "Cascade"
    )]
    Thread,
}

impl Related<super::thread::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Thread.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
