//! Learns of index changes committed through other instances (or `wharf admin`) and drops
//! the changed crates from this instance's cache within a second.
//!
//! PostgreSQL: a dedicated connection `LISTEN`s on [`CHANNEL`]; every change of an index file
//! sends the crate's canonical name there inside its transaction, so the notification arrives
//! exactly when the change is committed. SQLite: the `change_seq` column of `index_files` is
//! polled; every change sets it above all others (SQLite has one writer at a time, so the
//! numbers are in commit order). On losing its connection the watcher reconnects and clears
//! the whole cache, since changes may have passed unseen meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::IndexCache;
use crate::db::{Database, DbConn};
use crate::schema::{crates, index_files};

/// The PostgreSQL notification channel; the payload is a crate's canonical name.
pub const CHANNEL: &str = "wharf_index";
/// How often the watcher looks for changes.
const POLL: Duration = Duration::from_millis(200);
/// How often a PostgreSQL listener checks that its connection is alive.
const PING: Duration = Duration::from_secs(5);
/// How long to wait before connecting again after an error.
const RETRY: Duration = Duration::from_secs(1);

/// The running watcher; when dropped, its thread ends at its next look (without being
/// waited for: it may be in the middle of connecting).
pub struct Watcher {
    stop: Arc<AtomicBool>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Starts watching `db` for changes of index files on a thread of its own.
pub fn spawn(cache: Arc<IndexCache>, db: Database) -> std::io::Result<Watcher> {
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::Builder::new()
        .name("wharf-index-watcher".into())
        .spawn({
            let stop = stop.clone();
            move || watch(&cache, &db, &stop)
        })?;
    Ok(Watcher { stop })
}

fn watch(cache: &IndexCache, db: &Database, stop: &AtomicBool) {
    let mut failing = false;
    while !stop.load(Ordering::Acquire) {
        let result = db
            .dedicated_connection()
            .map_err(|e| anyhow::anyhow!(e))
            .and_then(|mut conn| follow(cache, &mut conn, stop, &mut failing));
        // Whatever happened while not connected is unknown.
        cache.clear();
        if let Err(error) = result {
            if !failing {
                tracing::warn!(error = %error, "the index cache lost track of changes; it was cleared and the watcher reconnects");
            }
            failing = true;
            sleep_unless_stopped(RETRY, stop);
        }
    }
}

/// Follows changes on `conn` until stopped (`Ok`) or the connection fails.
fn follow(
    cache: &IndexCache,
    conn: &mut DbConn,
    stop: &AtomicBool,
    failing: &mut bool,
) -> anyhow::Result<()> {
    match conn {
        DbConn::Pg(pg) => {
            pg.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            // Listening now: anything cached before may have missed a change.
            cache.clear();
            if std::mem::take(failing) {
                tracing::info!("the index cache follows changes again");
            }
            let mut pinged = Instant::now();
            while !stop.load(Ordering::Acquire) {
                for notification in pg.notifications_iter() {
                    cache.invalidate(&notification?.payload);
                }
                if pinged.elapsed() >= PING {
                    pg.batch_execute("SELECT 1")?;
                    pinged = Instant::now();
                }
                sleep_unless_stopped(POLL, stop);
            }
        }
        DbConn::Sqlite(_) => {
            let mut seen = latest_change(conn)?;
            cache.clear();
            if std::mem::take(failing) {
                tracing::info!("the index cache follows changes again");
            }
            while !stop.load(Ordering::Acquire) {
                sleep_unless_stopped(POLL, stop);
                let changed: Vec<(String, i64)> = index_files::table
                    .inner_join(crates::table)
                    .filter(index_files::change_seq.gt(seen))
                    .select((crates::canonical_name, index_files::change_seq))
                    .load(conn)?;
                for (canonical, seq) in changed {
                    cache.invalidate(&canonical);
                    seen = seen.max(seq);
                }
            }
        }
    }
    Ok(())
}

/// The highest `change_seq` now.
pub fn latest_change(conn: &mut DbConn) -> QueryResult<i64> {
    Ok(index_files::table
        .select(diesel::dsl::max(index_files::change_seq))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0))
}

fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::Acquire) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
