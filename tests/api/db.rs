//! The database layer under every request: write transactions on both backends (the harness
//! runs this on SQLite, and on PostgreSQL with `WHARF_TEST_DATABASE_URL`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use chrono::Utc;
use wharf::db::{DbConn, write_transaction};
use wharf::errors::AppResult;
use wharf::models::User;
use wharf::models::user::NewUser;

use crate::support::TestApp;

fn insert_user(conn: &mut DbConn, login: &str) -> AppResult<()> {
    let now = Utc::now().naive_utc();
    NewUser {
        login,
        github_id: None,
        name: None,
        email: None,
        avatar_url: None,
        is_admin: false,
        created_at: now,
        updated_at: now,
    }
    .insert(conn)?;
    Ok(())
}

fn user_exists(app: &TestApp, login: &'static str) -> anyhow::Result<bool> {
    Ok(app
        .app
        .db
        .blocking(move |conn| Ok(User::by_login(conn, login)?))?
        .is_some())
}

#[tokio::test]
async fn a_panicking_transaction_leaves_the_registry_writable() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let panicked = app
        .app
        .db
        .transaction(|conn| -> AppResult<()> {
            insert_user(conn, "half-written")?;
            panic!("a bug in a handler, half-way through its transaction");
        })
        .await;
    assert!(panicked.is_err(), "the panic is an error for the caller");

    // Every connection of the pool can write again at once (SQLite would wait for its
    // 15-second busy timeout, then fail, if the write lock had been kept).
    for i in 0..8 {
        let login = format!("writer-{i}");
        tokio::time::timeout(
            Duration::from_secs(5),
            app.app
                .db
                .transaction(move |conn| insert_user(conn, &login)),
        )
        .await
        .map_err(|_| anyhow::anyhow!("write {i} still waits for a lock"))?
        .map_err(|e| anyhow::anyhow!("write {i} failed: {}", e.detail()))?;
    }
    assert!(!user_exists(&app, "half-written")?, "rolled back");
    assert!(user_exists(&app, "writer-7")?);
    Ok(())
}

#[tokio::test]
async fn a_transaction_whose_panic_is_caught_leaves_its_connection_clean() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    app.app.db.blocking(|conn| {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            write_transaction(conn, |conn| -> AppResult<()> {
                insert_user(conn, "half-written")?;
                panic!("a bug in a handler, half-way through its transaction");
            })
        }));
        assert!(caught.is_err(), "the closure panicked");
        // The same connection starts, and commits, a new write transaction.
        write_transaction(conn, |conn| insert_user(conn, "after-the-panic"))
    })?;
    // Seen from another connection: the first write was rolled back, the second committed.
    let half = user_exists(&app, "half-written")?;
    let after = user_exists(&app, "after-the-panic")?;
    assert!(!half, "the panicked transaction was rolled back");
    assert!(
        after,
        "the next transaction was committed, not nested in the dead one"
    );
    Ok(())
}
