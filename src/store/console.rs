//! The reads behind the web console's pages that the API has no endpoint for: the
//! overview's counts and last hour of fires, and the last outcomes of a page of crons. Each
//! is scoped like the API (another identity's crons and deliveries are not counted).

use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use entity::states::{DeliveryStatus, FireOutcome, RunStatus};
use entity::{cron, cron_fire, delivery};

use super::crons::{CronFilter, CronSort};
use super::{Result, Scope, SortOrder, Store};
use crate::time::Millis;

/// Counts for the overview.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub enabled: u64,
    pub paused: u64,
    pub failing: u64,
    pub deliveries_pending: u64,
    pub deliveries_failed: u64,
}

/// One history entry of the last hour, as the overview charts it.
#[derive(Debug, Clone)]
pub struct RecentFire {
    pub scheduled_for: Millis,
    pub fired_at: Millis,
    pub outcome: FireOutcome,
    pub run_status: Option<RunStatus>,
    pub started_at: Option<Millis>,
    /// When its run was due (the instant plus jitter); null: at the instant.
    pub due_at: Option<Millis>,
}

/// The most history entries the overview reads (the last hour of a busy daemon is
/// summarised from its newest entries).
pub const MAX_RECENT_FIRES: u64 = 20_000;

impl Store {
    /// The overview's counts: the crons' three in one pass over the table (the overview
    /// of 100,000 crons reads them once, not three times), the deliveries' by their status.
    pub async fn console_counts(&self, scope: &Scope) -> Result<Counts> {
        let failed: Vec<String> = RunStatus::FAILED
            .iter()
            .map(|status| format!("'{}'", status.as_str()))
            .collect();
        let crons = cron::Entity::find()
            .select_only()
            .column_as(
                Expr::cust("COALESCE(SUM(CASE WHEN enabled THEN 1 ELSE 0 END), 0)"),
                "enabled",
            )
            .column_as(
                Expr::cust("COALESCE(SUM(CASE WHEN enabled THEN 0 ELSE 1 END), 0)"),
                "paused",
            )
            .column_as(
                Expr::cust(format!(
                    "COALESCE(SUM(CASE WHEN enabled AND last_run_status IN ({}) THEN 1 ELSE 0 END), 0)",
                    failed.join(", ")
                )),
                "failing",
            )
            .filter(scope.condition(cron::Column::UserId))
            .into_tuple::<(i64, i64, i64)>()
            .one(&self.read);
        let (crons, deliveries_pending, deliveries_failed) = tokio::try_join!(
            async { Ok(crons.await?) },
            self.count_scoped_deliveries(DeliveryStatus::Pending, scope),
            self.count_scoped_deliveries(DeliveryStatus::Failed, scope),
        )?;
        let (enabled, paused, failing) = crons.unwrap_or_default();
        let count = |n: i64| u64::try_from(n).unwrap_or_default();
        Ok(Counts {
            enabled: count(enabled),
            paused: count(paused),
            failing: count(failing),
            deliveries_pending,
            deliveries_failed,
        })
    }

    async fn count_scoped_deliveries(&self, status: DeliveryStatus, scope: &Scope) -> Result<u64> {
        Ok(delivery::Entity::find()
            .filter(scope.condition(delivery::Column::UserId))
            .filter(delivery::Column::Status.eq(status))
            .count(&self.read)
            .await?)
    }

    /// History entries written since `since` (by the `fired_at` index), newest first; an
    /// owner's scope reads only its crons' entries.
    pub async fn fires_since(&self, since: Millis, scope: &Scope) -> Result<Vec<RecentFire>> {
        let mut query = cron_fire::Entity::find()
            .select_only()
            .columns([
                cron_fire::Column::ScheduledFor,
                cron_fire::Column::FiredAt,
                cron_fire::Column::Outcome,
                cron_fire::Column::RunStatus,
                cron_fire::Column::StartedAt,
                cron_fire::Column::DueAt,
            ])
            .filter(cron_fire::Column::FiredAt.gte(since));
        if let Scope::Owner(owner) = scope {
            query = query.filter(
                cron_fire::Column::CronId.in_subquery(
                    Query::select()
                        .column(cron::Column::CronId)
                        .from(cron::Entity)
                        .and_where(cron::Column::UserId.eq(owner.clone()))
                        .to_owned(),
                ),
            );
        }
        let rows = query
            .order_by_desc(cron_fire::Column::FiredAt)
            .limit(MAX_RECENT_FIRES)
            .into_tuple::<(
                Millis,
                Millis,
                FireOutcome,
                Option<RunStatus>,
                Option<Millis>,
                Option<Millis>,
            )>()
            .all(&self.read)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(scheduled_for, fired_at, outcome, run_status, started_at, due_at)| RecentFire {
                    scheduled_for,
                    fired_at,
                    outcome,
                    run_status,
                    started_at,
                    due_at,
                },
            )
            .collect())
    }

    /// The enabled crons whose last run failed, most recent failure first.
    pub async fn recently_failed(&self, scope: &Scope, limit: u64) -> Result<Vec<cron::Model>> {
        let filter = CronFilter {
            failing: true,
            scope: scope.clone(),
            ..CronFilter::default()
        };
        Ok(self
            .search_crons(&filter, (CronSort::LastRunAt, SortOrder::Desc), limit, 0)
            .await?
            .items)
    }

    /// The newest `count` outcomes of each cron (by the fire log's primary key: one
    /// indexed range read per cron), newest first.
    pub async fn recent_outcomes(
        &self,
        cron_ids: &[String],
        count: u64,
    ) -> Result<Vec<Vec<(FireOutcome, Option<RunStatus>)>>> {
        let reads = cron_ids.iter().map(|cron_id| {
            cron_fire::Entity::find()
                .select_only()
                .columns([cron_fire::Column::Outcome, cron_fire::Column::RunStatus])
                .filter(cron_fire::Column::CronId.eq(cron_id.clone()))
                .order_by_desc(cron_fire::Column::ScheduledFor)
                .limit(count)
                .into_tuple::<(FireOutcome, Option<RunStatus>)>()
                .all(&self.read)
        });
        Ok(futures_util::future::try_join_all(reads).await?)
    }
}
