//! One fired (or refused) scheduled instant of a cron: the exactly-once key.

use sea_orm::entity::prelude::*;

use crate::states::FireOutcome;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cron_fires")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub cron_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub scheduled_for: i64,
    pub run_id: Option<String>,
    pub outcome: FireOutcome,
    pub fired_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
