//! Each cron's history: the fire log's entries (see `fires`), completed by the run's end in
//! the transaction that ends it (`record_ends`) and by its webhook when the delivery settles
//! (`record_webhooks`), read newest first (`cron_history`).

use std::collections::HashMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, IntoIden, Query, TableRef, ValueTuple};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use serde_json::{Value, json};

use entity::cron::{self, Entity as Crons};
use entity::cron_fire::{self, Column, Entity as CronFires};
use entity::states::{DeliveryStatus, FireOutcome, RunStatus};
use entity::{delivery, run};

use super::alerts;
use super::deliveries::OutboxRows;
use super::{IN_KEYS, Page, Result, Scope, Store, chunked, keys_by_value};
use crate::config::{AlertEvent, AlertRouteConfig};
use crate::time::Millis;

/// The most a history entry keeps of a run's error, as JSON text.
pub const MAX_ERROR_BYTES: usize = 1024;

/// Which entries of a cron's history to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub fire: Option<FireOutcome>,
    pub run_status: Option<RunStatus>,
    /// Entries covering an instant at or after this.
    pub since: Option<Millis>,
    /// Entries whose (first) instant is before this.
    pub until: Option<Millis>,
}

/// A run that ended, for its cron's history: the run as it ended (a rolled-back run as
/// `interrupted`) and its webhook's outbox row.
pub(super) struct End<'a> {
    pub run: &'a run::Model,
    pub delivery: Option<&'a delivery::Model>,
}

impl Store {
    /// A cron's history, newest first; another identity's cron, or none, is not found.
    pub async fn cron_history(
        &self,
        cron_id: &str,
        scope: &Scope,
        filter: &HistoryFilter,
        limit: u64,
        offset: u64,
    ) -> Result<Page<cron_fire::Model>> {
        self.get_cron(cron_id, scope).await?;
        let mut query = CronFires::find().filter(Column::CronId.eq(cron_id.to_string()));
        if let Some(fire) = filter.fire {
            query = query.filter(Column::Outcome.eq(fire));
        }
        if let Some(status) = filter.run_status {
            query = query.filter(Column::RunStatus.eq(status));
        }
        if let Some(since) = filter.since {
            query = query.filter(
                Condition::any()
                    .add(Column::ScheduledFor.gte(since))
                    .add(Column::LastScheduledFor.gte(since)),
            );
        }
        if let Some(until) = filter.until {
            query = query.filter(Column::ScheduledFor.lt(until));
        }
        let query = query.order_by_desc(Column::ScheduledFor);
        let mut page = self.page(query, limit, offset).await?;
        self.with_live_runs(&mut page.items).await?;
        Ok(page)
    }

    /// Entries whose run has not ended show it as it is now: a run fired ahead is claimed,
    /// and a queued run started, without a write to its entry.
    async fn with_live_runs(&self, entries: &mut [cron_fire::Model]) -> Result<()> {
        let active: Vec<String> = entries
            .iter()
            .filter(|entry| entry.run_status.is_some_and(RunStatus::is_active))
            .filter_map(|entry| entry.run_id.clone())
            .collect();
        if active.is_empty() {
            return Ok(());
        }
        let live: HashMap<String, (RunStatus, Option<Millis>)> = run::Entity::find()
            .select_only()
            .columns([
                run::Column::RunId,
                run::Column::Status,
                run::Column::StartedAt,
            ])
            .filter(run::Column::RunId.is_in(active))
            .into_tuple::<(String, RunStatus, Option<Millis>)>()
            .all(&self.read)
            .await?
            .into_iter()
            .map(|(run_id, status, started_at)| (run_id, (status, started_at)))
            .collect();
        for entry in entries {
            let now = entry.run_id.as_ref().and_then(|run_id| live.get(run_id));
            if let Some(&(status, started_at)) = now
                && status.is_active()
            {
                entry.run_status = Some(status);
                entry.started_at = started_at.or(entry.started_at);
            }
        }
        Ok(())
    }
}

/// One value a run's end writes into its history entry.
type EndValue<'a> = dyn Fn(&End) -> sea_orm::Value + Sync + 'a;

/// Writes the end of cron runs into their history entries and their crons' last run, in the
/// transaction that ends them: per `IN_KEYS` runs, one UPDATE of the entries (each joined to
/// its run's end, a row of a `VALUES` list, by its key) and the crons' (see
/// `record_last_runs`). Runs of no cron are skipped. Whether a run held behind the ones
/// ending was released.
pub(super) async fn record_ends(
    txn: &DatabaseTransaction,
    routes: &[AlertRouteConfig],
    ends: &[End<'_>],
    now: Millis,
) -> Result<bool> {
    let ends: Vec<&End> = ends
        .iter()
        .filter(|end| end.run.cron_id.is_some() && end.run.scheduled_for.is_some())
        .collect();
    // What an end writes into its entry; each row of the list is the entry's key (cron,
    // instant, run) and then these, in order.
    let written: [(Column, &EndValue<'_>); 7] = [
        (Column::RunStatus, &|end| end.run.status.into()),
        (Column::StartedAt, &|end| end.run.started_at.into()),
        (Column::EndedAt, &|end| {
            end.run.ended_at.unwrap_or(now).into()
        }),
        (Column::Error, &|end| {
            cut_error(end.run.error.as_ref()).into()
        }),
        (Column::DeliveryId, &|end| {
            end.delivery.map(|d| d.delivery_id.clone()).into()
        }),
        (Column::WebhookStatus, &|end| {
            end.delivery.map(|d| d.status).into()
        }),
        (Column::WebhookAttempts, &|end| {
            end.delivery.map(|d| d.attempts).into()
        }),
    ];
    // The entry's key: the first columns of each row of the list.
    let key = [Column::CronId, Column::ScheduledFor, Column::RunId];
    // A `VALUES` list names its columns column1, column2, … (SQLite and PostgreSQL alike).
    let list = || Alias::new("ended");
    let ended = |position: usize| Expr::col((list(), Alias::new(format!("column{position}"))));
    let mut released = false;
    for chunk in ends.chunks(IN_KEYS) {
        let rows = chunk
            .iter()
            .map(|end| {
                let keyed_by = [
                    end.run.cron_id.clone().into(),
                    end.run.scheduled_for.into(),
                    end.run.run_id.clone().into(),
                ];
                let values = written.iter().map(|(_, value)| value(end));
                ValueTuple::Many(keyed_by.into_iter().chain(values).collect())
            })
            .collect();
        let mut update = Query::update()
            .table(CronFires)
            .values(
                written
                    .iter()
                    .enumerate()
                    .map(|(index, (column, _))| (*column, ended(key.len() + index + 1))),
            )
            .from(TableRef::ValuesList(rows, list().into_iden()))
            .to_owned();
        for (index, column) in key.into_iter().enumerate() {
            update.and_where(Expr::col((CronFires, column)).eq(ended(index + 1)));
        }
        txn.execute(&update).await?;
        released |= record_last_runs(txn, routes, chunk, now).await?;
    }
    Ok(released)
}

/// A cron's last run after a batch of its runs' ends, in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct LastRun {
    status: Option<RunStatus>,
    at: Millis,
    /// A success came: the failures count from 0.
    reset: bool,
    /// Failures after the last success (or all of them, without one).
    failures: i32,
}

impl LastRun {
    fn add(&mut self, status: RunStatus, at: Millis) {
        self.status = Some(status);
        self.at = at;
        match status {
            RunStatus::Success => {
                self.reset = true;
                self.failures = 0;
            }
            RunStatus::Error | RunStatus::Timeout => self.failures += 1,
            RunStatus::Interrupted | RunStatus::Pending | RunStatus::Running => {}
        }
    }
}

/// What `record_last_runs` reads back of each cron it updates: whether it now pauses, and
/// whether runs wait behind it.
#[derive(Debug, FromQueryResult)]
struct AfterEnd {
    cron_id: String,
    enabled: bool,
    pause_after_failures: Option<i32>,
    consecutive_failures: i32,
    held_runs: i32,
}

impl AfterEnd {
    const COLUMNS: [cron::Column; 5] = [
        cron::Column::CronId,
        cron::Column::Enabled,
        cron::Column::PauseAfterFailures,
        cron::Column::ConsecutiveFailures,
        cron::Column::HeldRuns,
    ];
}

/// The alert events of `runs` of `cron`, in order, after `failures_before` failures in a
/// row.
fn run_events<'a>(
    cron: &'a cron::Model,
    runs: &[&'a run::Model],
    failures_before: i32,
    events: &mut Vec<alerts::Event<'a>>,
) {
    let mut count = failures_before;
    for run in runs {
        let event = |event, consecutive_failures, change| alerts::Event {
            event,
            cron,
            run: Some(*run),
            scheduled_for: run.scheduled_for,
            consecutive_failures,
            change,
            lateness: None,
            missed: None,
        };
        match run.status {
            RunStatus::Error | RunStatus::Timeout => {
                events.push(event(AlertEvent::RunFailed, count + 1, count == 0));
                count += 1;
            }
            RunStatus::Success => {
                if count > 0 {
                    events.push(event(AlertEvent::CronRecovered, 0, true));
                }
                count = 0;
            }
            RunStatus::Interrupted | RunStatus::Pending | RunStatus::Running => {}
        }
        if let (Some(instant), Some(started)) = (run.scheduled_for, run.started_at) {
            // Late after its start: the instant plus the cron's jitter.
            let due = crate::schedule::jitter::start(cron, instant);
            events.push(alerts::Event {
                lateness: Some(started - due),
                ..event(AlertEvent::RunLate, count, false)
            });
        }
    }
}

/// `last_run_status`, `last_run_at` and `consecutive_failures` of the crons of `ends`, one
/// UPDATE per group of crons whose runs ended alike (`updated_at` stays: it is the version
/// the scheduler claims by); then the alerts those ends raise (outbox rows), the pause of
/// crons that reached their `pause_after_failures`, and the release of runs held behind the
/// ending ones (whether one was released).
async fn record_last_runs(
    txn: &DatabaseTransaction,
    routes: &[AlertRouteConfig],
    ends: &[&End<'_>],
    now: Millis,
) -> Result<bool> {
    let mut last: Vec<(String, LastRun)> = Vec::new();
    for end in ends {
        let Some(cron_id) = &end.run.cron_id else {
            continue;
        };
        let at = end.run.ended_at.unwrap_or(now);
        match last.iter_mut().find(|(id, _)| id == cron_id) {
            Some((_, run)) => run.add(end.run.status, at),
            None => {
                let mut run = LastRun::default();
                run.add(end.run.status, at);
                last.push((cron_id.clone(), run));
            }
        }
    }
    if last.is_empty() {
        return Ok(false);
    }
    // The failures in a row before these ends, for the alerts of a change of state (read
    // only when some route wants them).
    let before: HashMap<String, i32> = if alerts::wanted(routes, AlertEvent::RunFailed)
        || alerts::wanted(routes, AlertEvent::CronRecovered)
    {
        Crons::find()
            .select_only()
            .columns([cron::Column::CronId, cron::Column::ConsecutiveFailures])
            .filter(cron::Column::CronId.is_in(last.iter().map(|(id, _)| id.clone())))
            .lock_exclusive()
            .into_tuple::<(String, i32)>()
            .all(txn)
            .await?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    // Crons whose runs ended alike (a burst's successes, typically) are moved by one
    // statement: the same status, time and failure count.
    let mut crons = Vec::with_capacity(last.len());
    for (run, ids) in keys_by_value(last.iter().map(|(cron_id, run)| (cron_id.clone(), run))) {
        let failures = if run.reset {
            Expr::value(run.failures)
        } else {
            Expr::col(cron::Column::ConsecutiveFailures).add(run.failures)
        };
        for ids in chunked(ids, IN_KEYS) {
            let mut update = Crons::update_many()
                .col_expr(cron::Column::LastRunStatus, Expr::value(run.status))
                .col_expr(cron::Column::LastRunAt, Expr::value(run.at))
                .col_expr(cron::Column::ConsecutiveFailures, failures.clone())
                .filter(cron::Column::CronId.is_in(ids))
                .into_query();
            update.returning(Query::returning().columns(AfterEnd::COLUMNS));
            crons.extend(
                AfterEnd::find_by_statement(txn.get_database_backend().build(&update))
                    .all(txn)
                    .await?,
            );
        }
    }
    // Whole rows (payload and metadata decoded) only where alerts are routed: their texts
    // and the routes' metadata filters need them; a burst's ends need only the five columns.
    let models: HashMap<String, cron::Model> = if routes.is_empty() {
        HashMap::new()
    } else {
        Crons::find()
            .filter(cron::Column::CronId.is_in(crons.iter().map(|c| c.cron_id.clone())))
            .all(txn)
            .await?
            .into_iter()
            .map(|cron| (cron.cron_id.clone(), cron))
            .collect()
    };
    let mut events = Vec::new();
    let mut paused = Vec::new();
    for after in &crons {
        let runs: Vec<&run::Model> = ends
            .iter()
            .map(|end| end.run)
            .filter(|run| run.cron_id.as_deref() == Some(after.cron_id.as_str()))
            .collect();
        if let Some(cron) = models.get(&after.cron_id) {
            let failures_before = before.get(&cron.cron_id).copied().unwrap_or(0);
            run_events(cron, &runs, failures_before, &mut events);
        }
        if after.enabled
            && after
                .pause_after_failures
                .is_some_and(|limit| limit > 0 && after.consecutive_failures >= limit)
        {
            paused.push((after, runs.last().copied()));
        }
    }
    for (after, run) in &paused {
        let limit = after
            .pause_after_failures
            .unwrap_or(after.consecutive_failures);
        let note = format!("paused after {limit} consecutive failures");
        // Runs fired ahead of the pause give way, as when a cron is disabled by PATCH.
        super::fires::withdraw_prefired(txn, &after.cron_id, now).await?;
        Crons::update_many()
            .col_expr(cron::Column::Enabled, Expr::value(false))
            .col_expr(cron::Column::PauseNote, Expr::value(note))
            .col_expr(cron::Column::UpdatedAt, Expr::value(now))
            .filter(cron::Column::CronId.eq(after.cron_id.clone()))
            .exec(txn)
            .await?;
        if let Some(cron) = models.get(&after.cron_id) {
            events.push(alerts::Event {
                event: AlertEvent::CronPaused,
                cron,
                run: *run,
                scheduled_for: run.and_then(|run| run.scheduled_for),
                consecutive_failures: after.consecutive_failures,
                change: true,
                lateness: None,
                missed: None,
            });
        }
    }
    // Runs held behind the ones ending here (a cron's `overlap`, a backfill) go next.
    let ending: Vec<&str> = ends.iter().map(|end| end.run.run_id.as_str()).collect();
    let mut released = false;
    for after in crons.iter().filter(|after| after.held_runs > 0) {
        released |= super::overlap::release_next(txn, &after.cron_id, &ending, now).await?;
    }
    OutboxRows::write(txn, alerts::deliveries(routes, &events, now)).await?;
    Ok(released)
}

/// Writes settled webhooks (delivered or failed, after `attempts`) into the history entries
/// of their runs, found by the key each delivery records.
pub(super) async fn record_webhooks<C: ConnectionTrait>(
    txn: &C,
    settled: &[(String, DeliveryStatus, i32)],
) -> Result<()> {
    // Webhooks that settled alike (delivered at the first attempt, typically) are written
    // by one statement, which joins each delivery to its entry by the entry's key (cron,
    // instant): a lookup by primary key per delivery on both databases. (The entry's own
    // `delivery_id` has no index: matched by it alone, PostgreSQL scans the whole history.)
    let outcomes = settled
        .iter()
        .map(|(id, status, attempts)| (id.clone(), (*status, *attempts)));
    for ((status, attempts), ids) in keys_by_value(outcomes) {
        for ids in chunked(ids, IN_KEYS) {
            let update = Query::update()
                .table(CronFires)
                .value(Column::WebhookStatus, status)
                .value(Column::WebhookAttempts, attempts)
                .from(delivery::Entity)
                .and_where(Expr::col((delivery::Entity, delivery::Column::DeliveryId)).is_in(ids))
                .and_where(
                    Expr::col((CronFires, Column::CronId))
                        .equals((delivery::Entity, delivery::Column::CronId)),
                )
                .and_where(
                    Expr::col((CronFires, Column::ScheduledFor))
                        .equals((delivery::Entity, delivery::Column::ScheduledFor)),
                )
                .and_where(
                    Expr::col((CronFires, Column::DeliveryId))
                        .equals((delivery::Entity, delivery::Column::DeliveryId)),
                )
                .to_owned();
            txn.execute(&update).await?;
        }
    }
    Ok(())
}

/// A run's error as a history entry keeps it: `{"error", "message"}`, the message cut (at a
/// character boundary, marked with "…") so the whole is at most `MAX_ERROR_BYTES` of JSON.
pub fn cut_error(error: Option<&Value>) -> Option<Value> {
    let error = error?;
    let text = |key: &str| match error.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let kind: String = text("error").chars().take(128).collect();
    let mut message = text("message");
    let fits = |message: &str| {
        json!({"error": kind, "message": message}).to_string().len() <= MAX_ERROR_BYTES
    };
    if !fits(&message) {
        let mut end = message.len().min(MAX_ERROR_BYTES);
        loop {
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            let cut = format!("{}…", &message[..end]);
            if fits(&cut) || end == 0 {
                message = cut;
                break;
            }
            end = end.saturating_sub(Ord::max(16, (end / 8).min(64)));
        }
    }
    Some(json!({"error": kind, "message": message}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_to_a_kibibyte_at_a_character_boundary() {
        let long = "é\"\\".repeat(2000);
        let cut = cut_error(Some(&json!({"error": "ValueError", "message": long}))).unwrap();
        let text = cut.to_string();
        assert!(text.len() <= MAX_ERROR_BYTES, "{}", text.len());
        assert!(text.len() > MAX_ERROR_BYTES - 100, "{}", text.len());
        assert_eq!(cut["error"], "ValueError");
        assert!(cut["message"].as_str().unwrap().ends_with('…'));
        let short = json!({"error": "E", "message": "m"});
        assert_eq!(cut_error(Some(&short)), Some(short));
        assert_eq!(
            cut_error(Some(&json!({"error": "E"}))),
            Some(json!({"error": "E", "message": ""}))
        );
        assert_eq!(cut_error(None), None);
    }

    #[test]
    fn failures_count_from_the_last_success() {
        let mut last = LastRun::default();
        last.add(RunStatus::Error, 1);
        last.add(RunStatus::Timeout, 2);
        assert_eq!((last.reset, last.failures), (false, 2));
        last.add(RunStatus::Success, 3);
        last.add(RunStatus::Error, 4);
        last.add(RunStatus::Interrupted, 5);
        assert_eq!(
            last,
            LastRun {
                status: Some(RunStatus::Interrupted),
                at: 5,
                reset: true,
                failures: 1
            }
        );
    }
}
