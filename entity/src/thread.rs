//! A thread: the conversation a run (or a thread cron) works on.

use sea_orm::entity::prelude::*;

use crate::states::ThreadStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "threads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub thread_id: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub metadata: Json,
    pub status: ThreadStatus,
    /// Values of the last successful run; null before any.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub values: Option<Json>,
    pub user_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When `values` last changed.
    pub state_updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::cron::Entity")]
    Cron,
}

impl Related<super::cron::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Cron.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
