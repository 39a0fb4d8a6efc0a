//! A run: one execution of a graph on a thread, queued as a row and claimed by a worker.

use sea_orm::entity::prelude::*;

use crate::states::{CancelAction, MultitaskStrategy, OnCompletion, RunStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: String,
    pub thread_id: String,
    pub assistant_id: String,
    pub status: RunStatus,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    /// input, config, context, stream_mode, webhook, interrupt_before/after, …
    #[sea_orm(column_type = "JsonBinary")]
    pub kwargs: Json,
    pub multitask_strategy: MultitaskStrategy,
    pub user_id: Option<String>,
    /// Set on runs a cron fired, with the instant it was scheduled for.
    pub cron_id: Option<String>,
    pub scheduled_for: Option<i64>,
    /// Stateless runs: what happens to their thread afterwards.
    pub on_completion: Option<OnCompletion>,
    /// Not claimable before this instant (`after_seconds`).
    pub available_at: i64,
    /// Claims so far; a run whose worker died is re-queued once.
    pub attempt: i32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    /// Set when a cancel was asked for while it ran.
    pub cancel_action: Option<CancelAction>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub output: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub error: Option<Json>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
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
