//! One entry of a cron's history, and the exactly-once key of its scheduled instants: a
//! fired, missed or refused instant (or a run of missed ones), or a manual trigger, with
//! what became of its run and its webhook.

use sea_orm::entity::prelude::*;

use crate::states::{DeliveryStatus, FireOutcome, RunStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cron_fires")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cron_id: String,
    /// The instant (the first of a missed entry); a manual trigger's is its own time,
    /// which is never a whole second, so it cannot take a scheduled instant's key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scheduled_for: i64,
    pub run_id: Option<String>,
    pub outcome: FireOutcome,
    pub fired_at: i64,
    /// A missed entry's last instant.
    pub last_scheduled_for: Option<i64>,
    /// How many instants the entry covers (more than 1 only when missed).
    pub instants: i64,
    /// The misfire policy that decided a missed entry.
    pub misfire_policy: Option<String>,
    /// Null when nothing ran.
    pub run_status: Option<RunStatus>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// `{"error", "message"}` of a failed run, cut to 1 KiB.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub error: Option<Json>,
    pub delivery_id: Option<String>,
    pub webhook_status: Option<DeliveryStatus>,
    pub webhook_attempts: Option<i32>,
    /// When its run was due to start: the instant plus the cron's jitter (null: at the
    /// instant).
    pub due_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
