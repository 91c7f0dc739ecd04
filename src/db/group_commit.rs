//! Group commit on SQLite: short write transactions queued to one writer thread, which runs
//! as many of them as are waiting inside one transaction, each in a savepoint of its own, and
//! commits them together.
//!
//! SQLite lets one writer write at a time. Taking turns costs a thread wake-up per
//! transaction, and every commit appends the pages it changed to the write-ahead log; the
//! token exchanges of a busy moment change the same few pages (a counter row, the newest
//! pages of the token, `jti` and audit tables), so one commit for many of them writes each
//! page once, and the writer runs them back to back without handing the lock on.
//!
//! A caller sees what a transaction of its own gives it: when its closure returns `Ok` and
//! the caller gets that value, the closure's writes are committed; when the caller gets an
//! error, none of them are. A closure's error rolls back its own savepoint, never another
//! closure's writes. When the batch cannot commit — the commit fails, or a closure's failure
//! took the whole transaction with it (SQLite rolls back on a full disk or an I/O error) —
//! every closure of the batch that had succeeded is told the error.
//!
//! What a closure must not do: anything outside the database that assumes its writes are
//! committed, or that must be undone when they are not. Closures of one batch see each other's
//! writes (they are one transaction), as they would see them committed a moment later.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, TransactionManager};

use super::{DbConn, DbPool, OUTBOX_WRITTEN, OpenTransaction, outbox_written_by};
use crate::errors::{
    AppError, AppResult, POOL_RETRY_AFTER, busy, database_full, internal, is_database_full,
};

/// The most closures one commit takes; a batch stops earlier once nothing is waiting.
const MAX_BATCH: usize = 64;
/// How long one batch may hold SQLite's write lock, so that other writers (of this process
/// and of others sharing the file) are not kept waiting behind a long queue.
const MAX_BATCH_TIME: Duration = Duration::from_millis(20);

/// The queue to the writer thread. Dropping the last handle ends the thread once the
/// closures already queued are done.
#[derive(Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl GroupCommit {
    /// Starts the writer thread, which takes connections from `pool` and turns on `turn`
    /// with the other write transactions of this process.
    pub(super) fn start(
        pool: DbPool,
        turn: Arc<Mutex<()>>,
        wake: Arc<tokio::sync::Notify>,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("wharf-db-writer".to_owned())
            .spawn(move || writer(&queue, &pool, &turn, &wake))?;
        Ok(Self { jobs })
    }

    /// Queues `f` and waits for its outcome, committed or not.
    pub(super) async fn transaction<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let job = Box::new(Closure {
            f: Some(f),
            result: None,
            reply,
        });
        self.jobs
            .send(job)
            .map_err(|_| internal(anyhow::anyhow!("the database writer has stopped")))?;
        outcome
            .await
            .map_err(|_| internal(anyhow::anyhow!("the database writer dropped a transaction")))?
    }
}

/// What ran in a savepoint of the batch.
enum Step {
    /// The closure succeeded and its savepoint was released: committed with the batch.
    Wrote,
    /// The closure failed and its savepoint was rolled back; the batch goes on.
    Failed,
    /// The transaction itself is gone or unusable: the batch must not commit.
    Broken(String),
}

/// A queued closure with its answer, type-erased for the queue.
trait Job: Send {
    /// Runs the closure in a savepoint of the open batch transaction.
    fn run(&mut self, conn: &mut DbConn) -> Step;
    /// Answers the caller: `committed` says whether the batch committed (or why not).
    fn finish(self: Box<Self>, committed: Result<(), &Failure>);
}

struct Closure<T, F> {
    f: Option<F>,
    result: Option<AppResult<T>>,
    reply: tokio::sync::oneshot::Sender<AppResult<T>>,
}

impl<T, F> Job for Closure<T, F>
where
    F: FnOnce(&mut DbConn) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(&mut self, conn: &mut DbConn) -> Step {
        let Some(f) = self.f.take() else {
            return Step::Failed;
        };
        // Through diesel's transaction manager, which knows the batch transaction is open:
        // this is a savepoint, and so are transactions the closure opens itself.
        if let Err(error) = <DbConn as TransactionManager<DbConn>>::begin_transaction(conn) {
            let step = Step::Broken(error.to_string());
            self.result = Some(Err(error.into()));
            return step;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| f(conn)));
        match outcome {
            Ok(Ok(value)) => {
                match <DbConn as TransactionManager<DbConn>>::commit_transaction(conn) {
                    Ok(()) => {
                        self.result = Some(Ok(value));
                        Step::Wrote
                    }
                    // The savepoint is gone: so is the transaction it was in.
                    Err(error) => {
                        let step = Step::Broken(error.to_string());
                        self.result = Some(Err(error.into()));
                        step
                    }
                }
            }
            Ok(Err(error)) => {
                self.result = Some(Err(error));
                rolled_back(conn)
            }
            Err(_) => {
                tracing::error!("a database transaction panicked; its writes are rolled back");
                self.result = Some(Err(internal(anyhow::anyhow!(
                    "a database transaction panicked"
                ))));
                rolled_back(conn)
            }
        }
    }

    fn finish(self: Box<Self>, committed: Result<(), &Failure>) {
        let result = match (self.result, committed) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)) | None, Err(failure)) => Err(failure.to_error()),
            (None, Ok(())) => Err(internal(anyhow::anyhow!(
                "a queued transaction did not run"
            ))),
        };
        // The caller may have gone (its request was dropped); its writes stand as they are.
        let _ = self.reply.send(result);
    }
}

/// Rolls back the savepoint of a closure that failed: its own writes only, unless the failure
/// took the whole transaction with it.
fn rolled_back(conn: &mut DbConn) -> Step {
    // Down to the batch transaction (depth 1): the closure may have left savepoints of its own.
    loop {
        let depth =
            match <DbConn as TransactionManager<DbConn>>::transaction_manager_status_mut(conn)
                .transaction_depth()
            {
                Ok(Some(depth)) => depth.get(),
                Ok(None) => return Step::Broken("the transaction has ended".to_owned()),
                Err(error) => return Step::Broken(error.to_string()),
            };
        if depth <= 1 {
            return Step::Failed;
        }
        if let Err(error) = <DbConn as TransactionManager<DbConn>>::rollback_transaction(conn) {
            return Step::Broken(error.to_string());
        }
    }
}

/// Why a batch did not commit, told to each of its closures that had succeeded.
enum Failure {
    /// No connection could be had: the service is overloaded.
    Pool,
    Database(String),
}

impl Failure {
    fn to_error(&self) -> AppError {
        match self {
            Failure::Pool => busy(
                "the service is overloaded (no database connection available); try again in a few seconds",
                POOL_RETRY_AFTER,
            ),
            Failure::Database(error) if is_database_full(error) => database_full(error),
            Failure::Database(error) => internal(anyhow::anyhow!(
                "the transaction was not committed: {error}"
            )),
        }
    }
}

/// The writer thread: one batch after another until every handle is gone.
fn writer(
    queue: &mpsc::Receiver<Box<dyn Job>>,
    pool: &DbPool,
    turn: &Mutex<()>,
    wake: &tokio::sync::Notify,
) {
    // Closures a broken batch had not run yet: they go first into the next one.
    let mut carried: Vec<Box<dyn Job>> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut carried);
        if batch.is_empty() {
            match queue.recv() {
                Ok(first) => batch.push(first),
                Err(_) => return,
            }
        }
        let mut ran = batch.len();
        let committed = match pool.get() {
            Ok(mut conn) => {
                let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
                run_batch(&mut conn, queue, &mut batch, &mut ran, wake)
            }
            Err(error) => {
                tracing::warn!(%error, "database pool exhausted");
                Err(Failure::Pool)
            }
        };
        if committed.is_err() {
            carried = batch.split_off(ran.min(batch.len()));
        }
        for job in batch {
            job.finish(committed.as_ref().map(|_| ()));
        }
    }
}

/// Runs `batch` and whatever else is waiting, up to the limits, in one transaction, and
/// commits it. `ran` is set to how many closures of `batch` ran (or were refused with the
/// batch); the others did not, and may run in another batch.
fn run_batch(
    conn: &mut DbConn,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    batch: &mut Vec<Box<dyn Job>>,
    ran: &mut usize,
    wake: &tokio::sync::Notify,
) -> Result<(), Failure> {
    *ran = batch.len();
    let DbConn::Sqlite(inner) = conn else {
        return Err(Failure::Database(
            "group commit is for SQLite only".to_owned(),
        ));
    };
    AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")
        .map_err(|e| Failure::Database(e.to_string()))?;
    let open = OpenTransaction { conn };
    OUTBOX_WRITTEN.with(|written| written.set(false));
    let started = Instant::now();
    let mut next = 0;
    loop {
        if let Some(job) = batch.get_mut(next) {
            next += 1;
            if let Step::Broken(error) = job.run(open.conn) {
                *ran = next;
                // `open` rolls back whatever is left of the transaction when dropped.
                return Err(Failure::Database(error));
            }
            continue;
        }
        if batch.len() >= MAX_BATCH || started.elapsed() >= MAX_BATCH_TIME {
            break;
        }
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    *ran = batch.len();
    let committed = <DbConn as TransactionManager<DbConn>>::commit_transaction(open.conn)
        .map_err(|e| Failure::Database(e.to_string()));
    outbox_written_by(wake, &committed);
    committed
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    use super::*;
    use crate::config::{DatabaseConfig, Secret};
    use crate::db::Database;
    use crate::errors::bad_request;

    type Call<'a> = Pin<Box<dyn Future<Output = AppResult<()>> + 'a>>;

    fn database(dir: &tempfile::TempDir) -> Database {
        let db = Database::connect(&DatabaseConfig {
            url: Secret::new(format!(
                "sqlite://{}",
                dir.path().join("group.db").display()
            )),
            pool_size: 2,
        })
        .unwrap();
        db.blocking(|conn| {
            conn.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")?;
            Ok(())
        })
        .unwrap();
        db
    }

    fn insert(conn: &mut DbConn, id: i64) -> AppResult<()> {
        diesel::sql_query(format!("INSERT INTO t (id) VALUES ({id})")).execute(conn)?;
        Ok(())
    }

    fn rows(db: &Database) -> Vec<i64> {
        db.blocking(|conn| {
            #[derive(QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                id: i64,
            }
            let rows: Vec<Row> = diesel::sql_query("SELECT id FROM t ORDER BY id").load(conn)?;
            Ok(rows.into_iter().map(|row| row.id).collect())
        })
        .unwrap()
    }

    /// Queues every call while this process's write turn is held, so that the writer takes
    /// them all into one batch once it is let go; returns their outcomes in order.
    fn in_one_batch(db: &Database, calls: Vec<Call<'_>>) -> Vec<AppResult<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut calls = calls;
        let turn = db.sqlite_writer.lock().unwrap();
        runtime.block_on(async {
            for call in &mut calls {
                // The first poll queues the closure; the answer waits for the batch.
                assert!(futures_util::poll!(call.as_mut()).is_pending());
            }
        });
        drop(turn);
        runtime.block_on(futures_util::future::join_all(calls))
    }

    #[test]
    fn each_closure_of_a_batch_commits_or_rolls_back_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir);
        let calls: Vec<Call> = vec![
            Box::pin(db.grouped_transaction(|conn| insert(conn, 1))),
            Box::pin(db.grouped_transaction(|conn| {
                insert(conn, 2)?;
                Err(bad_request("refused after writing"))
            })),
            Box::pin(db.grouped_transaction(|conn| {
                insert(conn, 3)?;
                panic!("a bug after writing");
            })),
            // A duplicate key fails its own statement only.
            Box::pin(db.grouped_transaction(|conn| insert(conn, 1))),
            // A nested transaction that fails rolls back to its own savepoint.
            Box::pin(db.grouped_transaction(|conn| {
                insert(conn, 5)?;
                let inner = conn.transaction(|conn| {
                    insert(conn, 6)?;
                    Err::<(), _>(bad_request("inner"))
                });
                assert_eq!(inner.unwrap_err().detail(), "inner");
                Ok(())
            })),
            Box::pin(db.grouped_transaction(|conn| insert(conn, 7))),
        ];
        let outcomes = in_one_batch(&db, calls);
        let ok: Vec<bool> = outcomes.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, false, false, true, true]);
        assert_eq!(
            outcomes[1].as_ref().unwrap_err().detail(),
            "refused after writing"
        );
        assert!(matches!(outcomes[2], Err(AppError::Internal(_))));
        assert_eq!(rows(&db), [1, 5, 7]);
    }

    #[test]
    fn a_batch_that_cannot_commit_tells_every_closure_and_runs_the_rest_later() {
        // The closure that ends the transaction may succeed or fail afterwards.
        for breaker_fails in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let db = database(&dir);
            let calls: Vec<Call> = vec![
                Box::pin(db.grouped_transaction(|conn| insert(conn, 1))),
                // Ends the batch's transaction behind diesel's back, as SQLite does on an I/O
                // error: the first closure's write is gone with it.
                Box::pin(db.grouped_transaction(move |conn| {
                    insert(conn, 2)?;
                    conn.batch_execute("ROLLBACK")?;
                    if breaker_fails {
                        return Err(bad_request("failed after the rollback"));
                    }
                    Ok(())
                })),
                // Not run in the broken batch: carried to the next one.
                Box::pin(db.grouped_transaction(|conn| insert(conn, 3))),
            ];
            let outcomes = in_one_batch(&db, calls);
            let ok: Vec<bool> = outcomes.iter().map(Result::is_ok).collect();
            assert_eq!(ok, [false, false, true], "{outcomes:?}");
            assert!(matches!(outcomes[0], Err(AppError::Internal(_))));
            // Told the truth: committed exactly when told so.
            assert_eq!(rows(&db), [3], "breaker fails: {breaker_fails}");
            // The writer goes on.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime
                .block_on(db.grouped_transaction(|conn| insert(conn, 4)))
                .unwrap();
            assert_eq!(rows(&db), [3, 4]);
        }
    }

    #[test]
    fn many_callers_at_once_all_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let outcomes = runtime.block_on(async {
            let calls = (0..500).map(|id| {
                let db = db.clone();
                tokio::spawn(
                    async move { db.grouped_transaction(move |conn| insert(conn, id)).await },
                )
            });
            futures_util::future::join_all(calls).await
        });
        assert!(outcomes.into_iter().all(|o| o.unwrap().is_ok()));
        assert_eq!(rows(&db), (0..500).collect::<Vec<_>>());
    }
}
