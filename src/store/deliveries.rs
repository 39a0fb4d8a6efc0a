//! The webhook outbox: deliveries are written with their run's terminal status (see
//! `runs.rs`); here they are claimed under a lease, their attempts recorded, listed and
//! re-queued.
//!
//! A claim reads the due deliveries and leases them in one transaction; on PostgreSQL they
//! are read with `FOR UPDATE SKIP LOCKED`, so replicas never take the same delivery.

use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, Iterable, ModelTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use entity::attempt::{self, Entity as Attempts};
use entity::delivery::{self, Column, Entity as Deliveries};
use entity::states::{DeliveryKind, DeliveryStatus};

use super::history::record_webhooks;
use super::{Backend, Error, IN_KEYS, Page, Result, Scope, Store, chunked, keys_by_value};
use crate::time::{Millis, now_ms};

/// What comes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(Millis),
    Failed,
}

/// One attempt as it went, to be stored.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub attempt: i32,
    pub attempted_at: Millis,
    pub status_code: Option<i32>,
    pub latency_us: i64,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub next: NextStep,
}

/// A delivery to write, with its payload as JSON text: serialized where it is made, before
/// the transaction when the caller can (`OutboxRows`).
pub(super) struct NewDelivery {
    delivery: delivery::Model,
    payload: String,
}

impl NewDelivery {
    pub(super) fn new(delivery: delivery::Model) -> NewDelivery {
        let payload = delivery.payload.to_string();
        NewDelivery { delivery, payload }
    }
}

/// Outbox rows, written by multi-row INSERTs: every outbox row goes in this way. Payloads go
/// in as JSON text: given as a JSON tree, the statement would copy the tree into its values
/// and the driver serialize that copy, inside the transaction that holds the write
/// connection (docs/benchmarks.md, "Run ends built before their transaction, payloads
/// written as text").
pub(super) struct OutboxRows {
    postgres: bool,
    rows: Vec<Vec<Expr>>,
}

impl OutboxRows {
    pub(super) fn new(backend: DbBackend) -> OutboxRows {
        OutboxRows {
            postgres: backend == DbBackend::Postgres,
            rows: Vec::new(),
        }
    }

    /// Adds the delivery's row, and gives the delivery back.
    pub(super) fn push(&mut self, new: NewDelivery) -> delivery::Model {
        let NewDelivery { delivery, payload } = new;
        // PostgreSQL takes the text as `jsonb` only when told so.
        let payload = if self.postgres {
            Expr::val(payload).cast_as("jsonb")
        } else {
            Expr::val(payload)
        };
        let row = Self::all_but_payload()
            .map(|column| Expr::val(delivery.get(column)))
            .chain([payload])
            .collect();
        self.rows.push(row);
        delivery
    }

    /// The columns of a row, in order: the payload last.
    fn columns() -> impl Iterator<Item = Column> {
        Self::all_but_payload().chain([Column::Payload])
    }

    fn all_but_payload() -> impl Iterator<Item = Column> {
        Column::iter().filter(|column| !matches!(column, Column::Payload))
    }

    /// Writes `deliveries` (no statement when there are none).
    pub(super) async fn write<C: ConnectionTrait>(
        db: &C,
        deliveries: impl IntoIterator<Item = delivery::Model>,
    ) -> Result<()> {
        let mut rows = OutboxRows::new(db.get_database_backend());
        for delivery in deliveries {
            rows.push(NewDelivery::new(delivery));
        }
        rows.insert(db).await
    }

    pub(super) async fn insert<C: ConnectionTrait>(self, db: &C) -> Result<()> {
        for chunk in chunked(self.rows, 200) {
            let mut insert = Query::insert();
            insert.into_table(Deliveries).columns(Self::columns());
            for row in chunk {
                insert
                    .values(row)
                    .map_err(|err| Error::Db(DbErr::Custom(err.to_string())))?;
            }
            db.execute(&insert).await?;
        }
        Ok(())
    }
}

/// Filters of the delivery log.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub run_id: Option<String>,
    pub cron_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub kind: Option<DeliveryKind>,
    pub scope: Scope,
}

impl Store {
    /// Leases up to `limit` deliveries that are due and not leased by a live owner.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        limit: u64,
        lease_ms: i64,
    ) -> Result<Vec<delivery::Model>> {
        let now = now_ms();
        let mut due = Deliveries::find()
            .select_only()
            .column(Column::DeliveryId)
            .filter(Column::Status.eq(DeliveryStatus::Pending))
            .filter(Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(Column::LeaseExpiresAt.is_null())
                    .add(Column::LeaseExpiresAt.lt(now)),
            )
            .order_by_asc(Column::NextAttemptAt)
            .limit(limit);
        if self.backend == Backend::Postgres {
            due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        // A SELECT, then an UPDATE of what it locked: see `claim_due` in runs.rs.
        let txn = self.write.begin().await?;
        let due: Vec<String> = due.into_tuple().all(&txn).await?;
        if due.is_empty() {
            txn.commit().await?;
            return Ok(Vec::new());
        }
        let claimed = Deliveries::update_many()
            .col_expr(Column::LeaseOwner, Expr::value(owner))
            .col_expr(Column::LeaseExpiresAt, Expr::value(now + lease_ms))
            .filter(Column::DeliveryId.is_in(due))
            .exec_with_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(claimed)
    }

    /// Stores attempts and moves their deliveries on, in one transaction. A delivery whose
    /// lease was taken over meanwhile keeps its new owner's state; its attempt is still
    /// logged (the request was sent).
    pub async fn record_attempts(&self, owner: &str, records: &[AttemptRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let txn = self.write.begin().await?;
        // Attempts that came out alike (a batch of 2xx answers, typically) move their
        // deliveries with one statement.
        let outcomes = records.iter().map(|record| {
            let (status, next_attempt_at) = match record.next {
                NextStep::Delivered => (DeliveryStatus::Delivered, None),
                NextStep::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
                NextStep::Failed => (DeliveryStatus::Failed, None),
            };
            let outcome = (
                status,
                next_attempt_at,
                record.attempt,
                record.status_code,
                record.error.as_deref(),
            );
            (record.delivery_id.clone(), outcome)
        });
        for ((status, next_attempt_at, attempts, status_code, error), ids) in
            keys_by_value(outcomes)
        {
            for ids in chunked(ids, IN_KEYS) {
                let mut update = Deliveries::update_many()
                    .col_expr(Column::Status, Expr::value(status))
                    .col_expr(Column::Attempts, Expr::value(attempts))
                    .col_expr(Column::LastStatusCode, Expr::value(status_code))
                    .col_expr(Column::LastError, Expr::value(error.map(str::to_string)))
                    .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
                    .col_expr(Column::LeaseExpiresAt, Expr::value(Option::<i64>::None))
                    .col_expr(Column::UpdatedAt, Expr::value(now));
                if let Some(at) = next_attempt_at {
                    update = update.col_expr(Column::NextAttemptAt, Expr::value(at));
                }
                update
                    .filter(Column::DeliveryId.is_in(ids))
                    .filter(Column::LeaseOwner.eq(owner))
                    .exec(&txn)
                    .await?;
            }
        }
        let settled: Vec<(String, DeliveryStatus, i32)> = records
            .iter()
            .filter_map(|record| {
                let status = match record.next {
                    NextStep::Delivered => DeliveryStatus::Delivered,
                    NextStep::Failed => DeliveryStatus::Failed,
                    NextStep::RetryAt(_) => return None,
                };
                Some((record.delivery_id.clone(), status, record.attempt))
            })
            .collect();
        record_webhooks(&txn, &settled).await?;
        Attempts::insert_many(records.iter().map(|record| attempt::ActiveModel {
            attempt_id: Set(uuid::Uuid::now_v7().to_string()),
            delivery_id: Set(record.delivery_id.clone()),
            attempt: Set(record.attempt),
            attempted_at: Set(record.attempted_at),
            status_code: Set(record.status_code),
            latency_us: Set(record.latency_us),
            error: Set(record.error.clone()),
            response_body: Set(record.response_body.clone()),
        }))
        .exec(&txn)
        .await?;
        txn.commit().await?;
        self.changes.touch();
        Ok(())
    }

    /// Gives back `owner`'s leases on deliveries it will not attempt (at shutdown), so
    /// another process can take them at once instead of after the lease.
    pub async fn release_deliveries(&self, owner: &str, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(Deliveries::update_many()
            .col_expr(Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(Column::LeaseExpiresAt, Expr::value(Option::<i64>::None))
            .filter(Column::LeaseOwner.eq(owner))
            .filter(Column::DeliveryId.is_in(ids.iter().cloned()))
            .exec(&self.write)
            .await?
            .rows_affected)
    }

    /// The delivery log, newest first.
    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        limit: u64,
        offset: u64,
    ) -> Result<Page<delivery::Model>> {
        let mut query = Deliveries::find().filter(filter.scope.condition(Column::UserId));
        if let Some(run_id) = &filter.run_id {
            query = query.filter(Column::RunId.eq(run_id.clone()));
        }
        if let Some(cron_id) = &filter.cron_id {
            query = query.filter(Column::CronId.eq(cron_id.clone()));
        }
        if let Some(status) = filter.status {
            query = query.filter(Column::Status.eq(status));
        }
        if let Some(kind) = filter.kind {
            query = query.filter(Column::Kind.eq(kind));
        }
        let query = query
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::DeliveryId);
        self.page(query, limit, offset).await
    }

    /// How many deliveries have `status`.
    pub async fn count_deliveries(&self, status: DeliveryStatus) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(Deliveries::find()
            .filter(Column::Status.eq(status))
            .count(&self.read)
            .await?)
    }

    /// A delivery and its attempts, oldest attempt first.
    pub async fn get_delivery(
        &self,
        delivery_id: &str,
        scope: &Scope,
    ) -> Result<(delivery::Model, Vec<attempt::Model>)> {
        let delivery = Deliveries::find_by_id(delivery_id.to_string())
            .filter(scope.condition(Column::UserId))
            .one(&self.read)
            .await?
            .ok_or_else(|| not_found(delivery_id))?;
        let attempts = Attempts::find()
            .filter(attempt::Column::DeliveryId.eq(delivery_id.to_string()))
            .order_by_asc(attempt::Column::AttemptedAt)
            .order_by_asc(attempt::Column::AttemptId)
            .all(&self.read)
            .await?;
        Ok((delivery, attempts))
    }

    /// Queues a delivery for one more attempt now, whatever its state (redelivery of a
    /// delivered one included). Its attempt count and retry schedule go on from where
    /// they were.
    pub async fn retry_delivery(
        &self,
        delivery_id: &str,
        scope: &Scope,
    ) -> Result<delivery::Model> {
        let now = now_ms();
        let updated = Deliveries::update_many()
            .col_expr(Column::Status, Expr::value(DeliveryStatus::Pending))
            .col_expr(Column::NextAttemptAt, Expr::value(now))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::DeliveryId.eq(delivery_id.to_string()))
            .filter(scope.condition(Column::UserId))
            .exec_with_returning(&self.write)
            .await?;
        updated
            .into_iter()
            .next()
            .ok_or_else(|| not_found(delivery_id))
    }
}

fn not_found(delivery_id: &str) -> Error {
    Error::NotFound(format!("Delivery {delivery_id} not found"))
}
