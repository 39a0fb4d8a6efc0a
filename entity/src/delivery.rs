//! The outbox: one row per webhook to call, written in the same transaction that gives a run
//! its terminal status, so no completion is ever lost between the two.

use sea_orm::entity::prelude::*;

use crate::states::{DeliveryKind, DeliveryStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub delivery_id: String,
    pub run_id: String,
    pub thread_id: String,
    pub cron_id: Option<String>,
    /// A cron run's history key (the run's `scheduled_for`): the entry its outcome settles.
    pub scheduled_for: Option<i64>,
    pub url: String,
    /// The run as it ended: the webhook body (minus `webhook_sent_at`, set per attempt).
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// The identity owning the run (its API key's), for per-identity listings.
    pub user_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// `run` (a run's webhook) or `alert` (an `[[alerts.routes]]` call, whose payload is the
    /// body as sent; `run_id` and `thread_id` are empty when no run raised it).
    pub kind: DeliveryKind,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
