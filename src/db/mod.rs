//! The database: SQLite (embedded default) or PostgreSQL, chosen at run time by the URL.
//!
//! Handlers never block an actix worker on the database: they go through [`Database::run`] /
//! [`Database::transaction`], which run synchronous diesel on the blocking thread pool.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseConfig;
use crate::errors::{AppError, AppResult};

mod group_commit;

use self::group_commit::GroupCommit;

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// One connection to either backend; diesel derives the common query support.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type DbPool = Pool<ConnectionManager<DbConn>>;

diesel::define_sql_function! {
    /// SQL `lower(text)`, available on both backends.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// See [`Database::pool_state`].
#[derive(Clone, Copy, Debug)]
pub struct PoolState {
    pub connections: u32,
    pub idle_connections: u32,
    pub max_size: u32,
}

#[derive(Clone)]
pub struct Database {
    pool: DbPool,
    /// What the pool connects with: a PostgreSQL URL or an SQLite file path.
    url: String,
    /// On SQLite, write transactions of this process take turns here before `BEGIN IMMEDIATE`.
    sqlite_writer: Arc<Mutex<()>>,
    /// Woken after a transaction that wrote to the mail outbox commits (see
    /// [`note_outbox_write`]), so this process's mail sender starts at once.
    outbox_wake: Arc<tokio::sync::Notify>,
    /// On SQLite, the writer thread of [`Database::grouped_transaction`].
    group_commit: Option<GroupCommit>,
}

thread_local! {
    /// Set by [`note_outbox_write`] during a write transaction on this (blocking-pool) thread.
    static OUTBOX_WRITTEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Notes that the current transaction wrote mail to the outbox: once it commits,
/// [`Database::outbox_wake`] is notified (not before, so the sender never looks too early).
pub fn note_outbox_write() {
    OUTBOX_WRITTEN.with(|written| written.set(true));
}

/// Clears the note of [`note_outbox_write`] at a transaction's start; at its end, tells the
/// sender when the transaction committed and wrote mail.
fn outbox_written_by<T, E>(wake: &tokio::sync::Notify, result: &Result<T, E>) {
    if OUTBOX_WRITTEN.with(|written| written.replace(false)) && result.is_ok() {
        wake.notify_one();
    }
}

#[derive(Debug)]
struct SqliteSetup;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for SqliteSetup {
    fn on_acquire(&self, conn: &mut DbConn) -> Result<(), diesel::r2d2::Error> {
        if let DbConn::Sqlite(conn) = conn {
            conn.batch_execute(
                "PRAGMA busy_timeout = 15000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// The PostgreSQL advisory lock key that migrations run under (\"wharfmig\" in ASCII).
const MIGRATION_LOCK: i64 = 0x7768_6172_666d_6967;

impl Database {
    /// Opens the pool (creating the SQLite file and its folder when needed).
    pub fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let url = config.url.expose();
        let connection_url = if let Some(path) = url.strip_prefix("sqlite://") {
            let path = std::path::Path::new(path);
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| {
                    format!("cannot create the database folder {}", parent.display())
                })?;
            }
            // WAL lets readers go on while one writer writes; it is a property of the file.
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
            conn.batch_execute("PRAGMA busy_timeout = 15000;")?;
            // Another process may be switching the same new file at this moment; SQLite then
            // answers "locked" at once (the busy handler is skipped where waiting could
            // deadlock), so try again for a while.
            let mut attempts = 0;
            while let Err(e) = conn.batch_execute("PRAGMA journal_mode = WAL;") {
                attempts += 1;
                if attempts == 100 {
                    return Err(e).context("cannot switch the SQLite database to WAL mode");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            path.to_string_lossy().into_owned()
        } else {
            url.to_owned()
        };
        let manager = ConnectionManager::<DbConn>::new(connection_url.clone());
        let pool = Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(SqliteSetup))
            .build(manager)
            .context("cannot connect to the database")?;
        let sqlite_writer = Arc::new(Mutex::new(()));
        let outbox_wake = Arc::new(tokio::sync::Notify::new());
        let group_commit = if is_postgres_url(&connection_url) {
            None
        } else {
            Some(
                GroupCommit::start(pool.clone(), sqlite_writer.clone(), outbox_wake.clone())
                    .context("cannot start the database writer thread")?,
            )
        };
        Ok(Self {
            pool,
            url: connection_url,
            sqlite_writer,
            outbox_wake,
            group_commit,
        })
    }

    /// A connection of its own, outside the pool (for a long-lived listener).
    pub fn dedicated_connection(&self) -> ConnectionResult<DbConn> {
        if self.is_postgres() {
            diesel::PgConnection::establish(&self.url).map(DbConn::Pg)
        } else {
            let mut conn = diesel::SqliteConnection::establish(&self.url)?;
            conn.batch_execute("PRAGMA busy_timeout = 15000;")
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
            Ok(DbConn::Sqlite(conn))
        }
    }

    /// Notified each time a transaction that enqueued mail has committed.
    pub fn outbox_wake(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_wake.clone()
    }

    pub fn is_postgres(&self) -> bool {
        is_postgres_url(&self.url)
    }

    /// The pool's use now: connections open, of them idle, and the most it opens.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            connections: state.connections,
            idle_connections: state.idle_connections,
            max_size: self.pool.max_size(),
        }
    }

    /// Runs pending migrations; returns how many ran.
    pub fn migrate(&self) -> anyhow::Result<usize> {
        let mut conn = self
            .pool
            .get()
            .context("cannot get a database connection")?;
        let migrations = match &*conn {
            DbConn::Pg(_) => POSTGRES_MIGRATIONS,
            DbConn::Sqlite(_) => SQLITE_MIGRATIONS,
        };
        let applied = match &mut *conn {
            DbConn::Pg(c) => {
                // Instances starting together would otherwise run the same migration at once
                // and all but one fail on it: the first takes this lock, the others wait and
                // then find nothing pending. A session lock, released below and, should the
                // process die, by the server when the connection goes.
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                    .execute(c)
                    .context("cannot take the migration lock")?;
                let applied = c.run_pending_migrations(migrations).map(|v| v.len());
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                    .execute(c)
                    .context("cannot release the migration lock")?;
                applied
            }
            // The same for processes sharing one file: all the pending migrations in one
            // IMMEDIATE transaction (each migration a savepoint inside it), so the second
            // process waits for the first's write lock and then finds nothing pending.
            DbConn::Sqlite(c) => c
                .immediate_transaction(|c| {
                    c.run_pending_migrations(migrations)
                        .map(|v| v.len())
                        .map_err(|e| anyhow::anyhow!("{e}"))
                })
                .map_err(|e| e.into()),
        }
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        Ok(applied)
    }

    /// Runs `f` with a connection on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await?
    }

    /// Runs `f` inside a write transaction on the blocking pool. On SQLite the transaction
    /// takes the write lock up front (`BEGIN IMMEDIATE`), so concurrent writers wait for each
    /// other instead of failing half-way; within this process they first take turns on a
    /// mutex, which wakes the next writer the moment the last one commits, where SQLite's busy
    /// handler would poll the lock with sleeps of up to 100 ms.
    pub async fn transaction<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let writer = (!self.is_postgres()).then(|| self.sqlite_writer.clone());
        let wake = self.outbox_wake.clone();
        self.run(move |conn| {
            let _turn = writer
                .as_ref()
                .map(|writer| writer.lock().unwrap_or_else(PoisonError::into_inner));
            OUTBOX_WRITTEN.with(|written| written.set(false));
            let result = write_transaction(conn, f);
            outbox_written_by(&wake, &result);
            result
        })
        .await
    }

    /// [`Database::transaction`] for a short closure that touches nothing but the database
    /// (no files, no network, nothing that assumes its writes are committed before it
    /// returns). On SQLite it is queued to one writer thread that runs the closures waiting
    /// at the moment together in one transaction, each in a savepoint of its own, and commits
    /// them at once (see [`group_commit`]); the caller's outcome is the same as a transaction
    /// of its own. On PostgreSQL, where transactions run side by side, it is
    /// [`Database::transaction`].
    pub async fn grouped_transaction<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        match &self.group_commit {
            Some(group) => group.transaction(f).await,
            None => self.transaction(f).await,
        }
    }

    /// [`Database::transaction`] for a closure with an error type of its own, such as a page's
    /// enum of a service's typed error and [`AppError`]: the caller gets the error back as the
    /// closure returned it, to show a service's field errors next to their fields.
    pub async fn transaction_with<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<AppError> + From<diesel::result::Error> + Send + 'static,
    {
        let pool = self.pool.clone();
        let wake = self.outbox_wake.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().map_err(AppError::from)?;
            OUTBOX_WRITTEN.with(|written| written.set(false));
            let result = write_transaction_with(&mut conn, f);
            outbox_written_by(&wake, &result);
            result
        })
        .await
        .map_err(AppError::from)?
    }

    /// For the CLI: a connection outside any runtime.
    pub fn blocking<T>(&self, f: impl FnOnce(&mut DbConn) -> AppResult<T>) -> anyhow::Result<T> {
        let mut conn = self
            .pool
            .get()
            .context("cannot get a database connection")?;
        f(&mut conn).map_err(|e| match e {
            AppError::Internal(e) => e,
            client => anyhow::anyhow!("{}", client.detail()),
        })
    }
}

/// A write transaction on either backend (see [`Database::transaction`]): committed when `f`
/// returns `Ok`, rolled back when it returns `Err` — and rolled back as well when `f` panics,
/// so that neither the connection nor SQLite's write lock outlives the transaction.
///
/// Both backends go through diesel's transaction manager (SQLite with `BEGIN IMMEDIATE`), so
/// diesel knows the connection is inside a transaction: nested `transaction` calls in `f`
/// become savepoints, and a connection whose rollback failed counts as broken, which makes
/// the pool discard it instead of lending it out again.
pub fn write_transaction<T>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> AppResult<T>,
) -> AppResult<T> {
    write_transaction_with(conn, f)
}

/// [`write_transaction`] for a closure with an error type of its own.
pub fn write_transaction_with<T, E: From<diesel::result::Error>>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E> {
    match conn {
        DbConn::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
        }
        DbConn::Pg(_) => <DbConn as TransactionManager<DbConn>>::begin_transaction(conn)?,
    }
    let open = OpenTransaction { conn };
    let value = f(open.conn)?;
    <DbConn as TransactionManager<DbConn>>::commit_transaction(open.conn)?;
    Ok(value)
}

/// The transaction begun by [`write_transaction`]. Dropping it while the transaction is still
/// open — `f` returned an error, `f` panicked, or the commit failed without diesel's own
/// rollback — rolls it back.
struct OpenTransaction<'a> {
    conn: &'a mut DbConn,
}

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        // Down to the top level: `f` may have left a savepoint of its own open as well.
        while let Ok(Some(_)) =
            <DbConn as TransactionManager<DbConn>>::transaction_manager_status_mut(self.conn)
                .transaction_depth()
        {
            if let Err(error) =
                <DbConn as TransactionManager<DbConn>>::rollback_transaction(self.conn)
            {
                // diesel now counts the connection as broken, so the pool discards it.
                tracing::error!(%error, "rollback failed");
                break;
            }
        }
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// True when `error` is a unique-constraint violation.
pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}
