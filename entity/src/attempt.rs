//! One attempt to deliver a webhook: when, how it went, and the start of the answer.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub attempt_id: String,
    pub delivery_id: String,
    /// 1 for the first attempt of the delivery.
    pub attempt: i32,
    pub attempted_at: i64,
    /// The receiver's HTTP status; None when no answer came (connection, timeout, policy).
    pub status_code: Option<i32>,
    /// From sending the request to the end of the (truncated) answer.
    pub latency_us: i64,
    pub error: Option<String>,
    /// The first KiB of the answer's body.
    pub response_body: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
