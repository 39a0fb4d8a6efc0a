//! All database access. Handlers and workers call the named operations here; nothing else
//! builds a query. Backend differences (SQLite's single writer, PostgreSQL's jsonb) stay here.

pub mod alerts;
pub mod assistants;
pub mod backfill;
pub mod changes;
pub mod console;
pub mod crons;
pub mod deliveries;
pub mod fires;
mod group_commit;
pub mod history;
mod one_process;
pub mod overlap;
pub mod runs;
pub mod threads;

use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use serde_json::{Map, Value};

use entity::states::{DeliveryStatus, RunStatus};
use migration::{Migrator, MigratorTrait};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The message says what was not found, in LangGraph's words.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A configured limit (`[limits]`, a key's `max_crons`) refuses the write.
    #[error("{0}")]
    LimitReached(String),
    /// The change does not fit the row as stored (says which field and why).
    #[error("{0}")]
    Invalid(String),
    /// The database server cannot be reached or refuses us; says where and why.
    #[error("{0}")]
    Unreachable(String),
    /// The SQLite file is another process's (see `one_process`); says which.
    #[error("{0}")]
    InUse(String),
    #[error("database error: {0}")]
    Db(DbErr),
}

/// The pauses of a writer that writes again after a passing refusal (`Error::is_passing`):
/// 100 ms, doubling, at most 2 s.
#[derive(Debug)]
pub struct PassingRetry {
    pause: Duration,
}

impl Default for PassingRetry {
    fn default() -> Self {
        PassingRetry {
            pause: Duration::from_millis(100),
        }
    }
}

impl PassingRetry {
    /// The pause before the next attempt.
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.pause;
        self.pause = (pause * 2).min(Duration::from_secs(2));
        pause
    }
}

impl Error {
    /// The database cannot be reached (down, restarting, out of connections), as opposed
    /// to a statement that failed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Db(DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
        )
    }

    /// The same write may succeed later: the database is away or its disk is full (what the
    /// writers that retry a refused write wait out).
    pub fn is_passing(&self) -> bool {
        self.is_unavailable() || self.is_disk_full()
    }

    /// The database's disk is full (SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full`): no
    /// write can succeed until space is freed; reads still can.
    pub fn is_disk_full(&self) -> bool {
        let Error::Db(DbErr::Exec(err) | DbErr::Query(err) | DbErr::Conn(err)) = self else {
            return false;
        };
        let sea_orm::RuntimeErr::SqlxError(err) = err else {
            return false;
        };
        let code = err.as_database_error().and_then(|err| err.code());
        matches!(code.as_deref(), Some(SQLITE_FULL | PG_DISK_FULL))
    }
}

/// `SQLITE_FULL`: "database or disk is full".
const SQLITE_FULL: &str = "13";
/// PostgreSQL's SQLSTATE `disk_full`.
const PG_DISK_FULL: &str = "53100";

/// Every database failure passes here, so the metric counts them all.
impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        metrics::counter!(crate::metrics::DB_ERRORS).increment(1);
        Error::Db(err)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A page of results: rows plus whether more exist (for `X-Pagination-Next`).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub offset: u64,
    pub has_more: bool,
}

impl Store {
    /// Runs an ordered query for one page, reading one row more to know if another follows.
    async fn page<E: sea_orm::EntityTrait>(
        &self,
        query: sea_orm::Select<E>,
        limit: u64,
        offset: u64,
    ) -> Result<Page<E::Model>> {
        use sea_orm::QuerySelect;
        let mut items = query
            .limit(limit + 1)
            .offset(offset)
            .all(&self.read)
            .await?;
        let has_more = items.len() as u64 > limit;
        items.truncate(limit as usize);
        Ok(Page {
            items,
            offset,
            has_more,
        })
    }
}

/// Whose records an operation may see and change: everyone's (an admin key, or no keys
/// configured) or one identity's. Another identity's record reads as not found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    All,
    Owner(String),
}

impl Scope {
    /// The condition on a table's `user_id` column (none for `All`).
    pub fn condition(&self, user_id: impl sea_orm::ColumnTrait) -> sea_orm::Condition {
        match self {
            Scope::All => sea_orm::Condition::all(),
            Scope::Owner(owner) => sea_orm::Condition::all().add(user_id.eq(owner.clone())),
        }
    }

    /// Whether a record owned by `user_id` is visible.
    pub fn allows(&self, user_id: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Owner(owner) => user_id == Some(owner.as_str()),
        }
    }
}

pub use crate::metrics::QueueDepths;

impl Store {
    pub async fn queue_depths(&self) -> Result<QueueDepths> {
        let enabled = crons::CronFilter {
            enabled: Some(true),
            ..crons::CronFilter::default()
        };
        let (crons_enabled, crons_failing, runs_queued, runs_running, webhooks_pending) = tokio::try_join!(
            self.count_crons(&enabled),
            self.count_failing_crons(),
            self.count_runs(RunStatus::Pending),
            self.count_runs(RunStatus::Running),
            self.count_deliveries(DeliveryStatus::Pending),
        )?;
        Ok(QueueDepths {
            crons_enabled,
            crons_failing,
            runs_queued,
            runs_running,
            webhooks_pending,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl From<SortOrder> for sea_orm::Order {
    fn from(order: SortOrder) -> Self {
        match order {
            SortOrder::Asc => sea_orm::Order::Asc,
            SortOrder::Desc => sea_orm::Order::Desc,
        }
    }
}

/// The database. On SQLite, writes go through a one-connection pool so writers queue in
/// order instead of spinning on `SQLITE_BUSY`; readers use their own pool (WAL lets them
/// run beside the writer). On PostgreSQL both are the same pool.
#[derive(Clone)]
pub struct Store {
    read: DatabaseConnection,
    write: DatabaseConnection,
    backend: Backend,
    /// Assistants' metadata by id. Assistants change only at start-up (`sync_assistants`),
    /// so every run's metadata merge reads it from here instead of the database.
    assistant_metadata:
        std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, Map<String, Value>>>>,
    /// Queues and finishes runs in shared transactions (see `group_commit`).
    writer: group_commit::Writer,
    /// `[[alerts.routes]]`, shared with the writer.
    alert_routes: alerts::AlertRoutes,
    /// A SQLite file's lock, held while any clone of the store lives.
    _one_process: Option<std::sync::Arc<one_process::OneProcess>>,
    /// Told after fires, run writes and delivery attempts commit (for the console's live pages).
    changes: changes::Changes,
}

impl Store {
    /// The signal of committed changes the console's live pages wait on.
    pub fn changes(&self) -> &changes::Changes {
        &self.changes
    }

    /// Connects and applies pending migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store> {
        let store = Self::connect(url, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        if url.starts_with("sqlite:") {
            let one_process = one_process::OneProcess::take(url)?.map(std::sync::Arc::new);
            let write = Database::connect(sqlite_options(url, 1, true)).await?;
            let read = Database::connect(sqlite_options(url, max_connections, false)).await?;
            let alert_routes = alerts::AlertRoutes::default();
            let changes = changes::Changes::default();
            Ok(Store {
                read,
                writer: group_commit::Writer::spawn(
                    write.clone(),
                    alert_routes.clone(),
                    changes.clone(),
                    1,
                ),
                alert_routes,
                changes,
                write,
                backend: Backend::Sqlite,
                assistant_metadata: Default::default(),
                _one_process: one_process,
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            probe_postgres(url).await?;
            let mut options = ConnectOptions::new(url);
            options
                .max_connections(max_connections)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .sqlx_logging(false);
            let pool = Database::connect(options).await?;
            let alert_routes = alerts::AlertRoutes::default();
            let changes = changes::Changes::default();
            Ok(Store {
                read: pool.clone(),
                writer: group_commit::Writer::spawn(
                    pool.clone(),
                    alert_routes.clone(),
                    changes.clone(),
                    postgres_run_writers(max_connections),
                ),
                alert_routes,
                changes,
                write: pool,
                backend: Backend::Postgres,
                assistant_metadata: Default::default(),
                _one_process: None,
            })
        } else {
            Err(Error::Db(DbErr::Custom(format!(
                "unsupported database URL (expected sqlite:// or postgres://): {}",
                redact(url)
            ))))
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.write, None).await?;
        Ok(())
    }

    /// The `[[alerts.routes]]` this store raises alerts for (set once, before the first run
    /// ends; a second call changes nothing and says so).
    pub fn set_alert_routes(&self, routes: Vec<crate::config::AlertRouteConfig>) -> bool {
        self.alert_routes.set(routes)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// SQLite: folds the write-ahead log back into the database and makes the next write
    /// start it over (waiting for readers of older snapshots to finish). The writer makes no
    /// checkpoints of its own (see `sqlite_options`): this is the only one. Under constant
    /// reads, SQLite's automatic checkpoints never got to restart the log, which then grew
    /// without bound (measured: a 1.5 GB WAL beside a 38 MB database after 60k creates).
    pub async fn checkpoint(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            self.write
                .execute_unprepared("PRAGMA wal_checkpoint(RESTART)")
                .await?;
        }
        Ok(())
    }

    /// Cheap liveness probe of the database.
    pub async fn ping(&self) -> Result<()> {
        self.read.ping().await?;
        Ok(())
    }

    pub async fn close(self) {
        let _ = self.read.close().await;
        if self.backend == Backend::Sqlite {
            let _ = self.write.close().await;
        }
    }

    /// Every top-level key of `filter` equals the same key of the JSON column `column`:
    /// one containment test on PostgreSQL, one flat `AND` of equalities on SQLite (its
    /// depth is the key count, which the API caps well below SQLite's limit of 1,000).
    fn json_contains(&self, column: &str, filter: &Map<String, Value>) -> sea_orm::Condition {
        match self.backend {
            Backend::Postgres => sea_orm::Condition::all().add(Expr::cust_with_values(
                format!("\"{column}\" @> $1::jsonb"),
                [Value::Object(filter.clone()).to_string()],
            )),
            Backend::Sqlite => {
                filter
                    .iter()
                    .fold(sea_orm::Condition::all(), |all, (key, value)| {
                        all.add(Expr::cust_with_values(
                            format!("(\"{column}\" -> ?) = json(?)"),
                            [json_path(key), value.to_string()],
                        ))
                    })
            }
        }
    }
}

/// How long the first connection to PostgreSQL may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to PostgreSQL before the pool is built: the pool retries until its
/// timeout and then reports only that, while a single attempt tells why it failed
/// (refused, no answer, authentication, unknown database).
async fn probe_postgres(url: &str) -> Result<()> {
    use sea_orm::sqlx::Connection;
    let server = url::Url::parse(url)
        .ok()
        .map(|parsed| {
            let host = parsed.host_str().unwrap_or("localhost").to_string();
            format!("{host}:{}", parsed.port().unwrap_or(5432))
        })
        .unwrap_or_else(|| redact(url));
    let unreachable = |why: String| {
        Error::Unreachable(format!("cannot connect to PostgreSQL at {server}: {why}"))
    };
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        sea_orm::sqlx::postgres::PgConnection::connect(url),
    )
    .await
    {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(unreachable(err.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Run writers on PostgreSQL (`group_commit`): a quarter of the pool, 1 to 4, so the
/// scheduler, the webhook workers and the API keep the rest of it.
fn postgres_run_writers(max_connections: u32) -> usize {
    (max_connections / 4).clamp(1, 4) as usize
}

/// Pool options for SQLite; `writer` for the one connection that writes.
fn sqlite_options(url: &str, max_connections: u32, writer: bool) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        // SQLite runs in this process: there is no link to lose between statements, and a
        // ping on every acquire is one more hand-off to the connection's thread and back per
        // statement or transaction.
        .test_before_acquire(false)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |opts| {
            let opts = opts
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .create_if_missing(true);
            if writer {
                // No automatic checkpoints: one ran inside whichever commit crossed 1,000
                // pages, often the claim just before a burst's instant or a finish during
                // it, where it held up the runs' start. `Store::checkpoint` is called
                // between instants instead. A log grown by a large burst is cut back to
                // this size when it restarts.
                //
                // A page cache of 16 MiB instead of SQLite's 2 MiB: a burst's drain reads the
                // pages of runs, fires and crons again and again, and with 2 MiB they are read
                // from the kernel (`pread`, 7 % of the writer thread's time in a profile;
                // docs/benchmarks.md, "The top-of-the-minute herd").
                //
                // Statement journals in memory: a multi-row statement inside a batch keeps one
                // (to undo itself alone if it fails), and past 64 KiB SQLite spills it to a
                // temporary file, written and thrown away for every large statement.
                opts.pragma("wal_autocheckpoint", "0")
                    .pragma("journal_size_limit", (64 << 20).to_string())
                    .pragma("cache_size", (-16 * 1024).to_string())
                    .pragma("temp_store", "memory")
            } else {
                opts
            }
        })
        // A COMMIT that fails for want of disk space is rolled back by SQLite itself, so the
        // driver's ROLLBACK then fails and it goes on counting a transaction that is not
        // there: its next transaction becomes a savepoint, and a rollback to that savepoint
        // leaves SQLite inside a transaction that never commits again (every later write
        // lost at exit). A connection released while the driver counts a transaction is
        // closed instead of reused; the pool opens a fresh one.
        .map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_release(|conn, _| {
                Box::pin(async move { Ok(!sea_orm::sqlx::Connection::is_in_transaction(conn)) })
            })
        });
    options
}

/// Rows per UPDATE built with `value_by_key`: each row tries the CASE arms in turn, so the
/// cost grows with the square of the rows; past this size two statements are cheaper.
const CASE_ROWS: usize = 64;

/// `CASE WHEN key = k1 THEN v1 WHEN key = k2 THEN v2 … ELSE otherwise END`: one UPDATE that
/// gives each row of a batch its own value (standard SQL, the same on SQLite and PostgreSQL).
fn value_by_key<V: Into<sea_orm::Value>>(
    key: impl sea_orm::ColumnTrait,
    values: impl IntoIterator<Item = (String, V)>,
    otherwise: impl Into<Expr>,
) -> Expr {
    expr_by_key(
        key,
        values.into_iter().map(|(k, v)| (k, Expr::value(v))),
        otherwise,
    )
}

/// `value_by_key` with an expression per key (a value, or a condition on the row).
fn expr_by_key(
    key: impl sea_orm::ColumnTrait,
    exprs: impl IntoIterator<Item = (String, Expr)>,
    otherwise: impl Into<Expr>,
) -> Expr {
    exprs
        .into_iter()
        .fold(sea_orm::sea_query::CaseStatement::new(), |case, (k, v)| {
            case.case(key.eq(k), v)
        })
        .finally(otherwise)
        .into()
}

/// Keys gathered by equal value, in the order each value first appears: rows that take the
/// same values are moved by one `UPDATE … WHERE key IN (…)`, which costs a look-up per row
/// where a `value_by_key` CASE costs a comparison per arm. A batch of runs or webhooks that
/// ended alike (the common case) is one group.
fn keys_by_value<K, V: PartialEq>(rows: impl IntoIterator<Item = (K, V)>) -> Vec<(V, Vec<K>)> {
    let mut groups: Vec<(V, Vec<K>)> = Vec::new();
    for (key, value) in rows {
        match groups.iter_mut().find(|(seen, _)| *seen == value) {
            Some((_, keys)) => keys.push(key),
            None => groups.push((value, vec![key])),
        }
    }
    groups
}

/// Keys per `WHERE key IN (…)` of an UPDATE by `keys_by_value`.
const IN_KEYS: usize = 500;

/// Splits rows into groups small enough for one multi-row statement.
pub(super) fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(size).collect());
    }
    out
}

/// SQLite JSON path for one object key, quoted so any key text is literal.
fn json_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_password() {
        assert_eq!(
            redact("postgres://u:secret@127.0.0.1:5432/db"),
            "postgres://u:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn keys_by_value_groups_equal_values_in_first_seen_order() {
        let rows = [("a", 1), ("b", 2), ("c", 1), ("d", 3), ("e", 2)];
        assert_eq!(
            keys_by_value(rows),
            vec![(1, vec!["a", "c"]), (2, vec!["b", "e"]), (3, vec!["d"])]
        );
        assert!(keys_by_value(Vec::<(&str, i32)>::new()).is_empty());
    }

    #[test]
    fn json_path_quotes_keys() {
        assert_eq!(json_path("team"), "$.\"team\"");
        assert_eq!(json_path("a\"b"), "$.\"a\\\"b\"");
    }
}
