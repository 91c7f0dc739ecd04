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

/// A token as the `trustpub_tokens` table held it before the link table.
#[derive(diesel::QueryableByName, Debug)]
struct LegacyToken {
    #[diesel(sql_type = diesel::sql_types::Text)]
    crate_ids: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    publisher: String,
}

/// On a connection of its own: reverts the token-crates migration (and any later one), checks what its `down.sql`
/// restored, writes a token the way the code of that time did, and migrates up again.
/// A macro, because the raw SQL runs on a concrete connection of either backend.
macro_rules! down_check_and_up {
    ($conn:expr, $migrations:expr, $crates:expr, $configs:expr, $legacy_hash:expr) => {{
        use diesel::RunQueryDsl;
        use diesel_migrations::MigrationHarness;
        let conn = $conn;
        let (widget, gadget): (i64, i64) = $crates;
        let (widget_config, removed_gadget_config): (i64, i64) = $configs;
        // Later migrations first (each `down.sql` reverses its `up.sql`), then this one.
        let reverted = loop {
            let reverted = conn
                .revert_last_migration($migrations)
                .map_err(|e| anyhow::anyhow!("down: {e}"))?
                .to_string();
            if reverted.as_str() <= "20261126000004" {
                break reverted;
            }
        };
        assert_eq!(reverted, "20261126000004");

        // The token exchanged on the new schema is back in the old shape; gadget, revoked
        // since, is left out (fail closed).
        let tokens: Vec<LegacyToken> =
            diesel::sql_query("SELECT crate_ids, publisher FROM trustpub_tokens ORDER BY id")
                .load(conn)?;
        assert_eq!(tokens.len(), 1, "{tokens:?}");
        assert_eq!(tokens[0].crate_ids, widget.to_string());
        let publisher: serde_json::Value = serde_json::from_str(&tokens[0].publisher)?;
        assert_eq!(
            publisher["config_ids"],
            serde_json::json!({ widget.to_string(): widget_config })
        );
        assert_eq!(publisher["actor"], crate::support::fake_idp::GITHUB_ACTOR);

        // A token minted by the code of that time, for widget (whose config exists) and
        // gadget (whose config was removed already).
        let mut legacy = publisher.clone();
        legacy["config_ids"] = serde_json::json!({
            widget.to_string(): widget_config,
            gadget.to_string(): removed_gadget_config,
        });
        let now = Utc::now();
        let time = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
        diesel::sql_query(format!(
            "INSERT INTO trustpub_tokens \
             (token_hash, crate_ids, actor, publisher, created_at, expires_at) \
             VALUES ('{}', '{widget},{gadget}', 'legacy-actor', '{}', '{}', '{}')",
            $legacy_hash,
            legacy,
            time(now),
            time(now + chrono::TimeDelta::minutes(10)),
        ))
        .execute(conn)?;

        conn.run_pending_migrations($migrations)
            .map_err(|e| anyhow::anyhow!("up: {e}"))?;
    }};
}

#[tokio::test]
async fn the_token_crates_migration_carries_tokens_over_both_ways() -> anyhow::Result<()> {
    use diesel::Connection;
    use diesel_migrations::{EmbeddedMigrations, embed_migrations};
    use serde_json::json;

    use crate::support::CrateBuilder;
    use crate::support::fake_idp::{FakeIdp, Provider};

    const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
    const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

    // Arrange: a GitHub token exchanged for widget and gadget; gadget's publisher removed since.
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let owner = app.token("alice");
    for name in ["widget", "gadget"] {
        app.publish_ok(&owner, &CrateBuilder::new(name, "1.0.0"))
            .await;
    }
    let widget_config = app.add_github_config(&owner, "widget", None).await["github_config"]["id"]
        .as_i64()
        .unwrap();
    let gadget_config = app.add_github_config(&owner, "gadget", None).await["github_config"]["id"]
        .as_i64()
        .unwrap();
    let (_, body) = app
        .exchange(&idp.sign(&idp.github_claims(&app.audience(), json!({}))))
        .await;
    let token = body["token"].as_str().unwrap().to_owned();
    let removed = app
        .client
        .delete(app.url(&format!(
            "/api/v1/trusted_publishing/github_configs/{gadget_config}"
        )))
        .header("Authorization", &owner)
        .send()
        .await?;
    assert_eq!(removed.status(), 204);
    let crates = app.app.db.blocking(|conn| {
        let id = |conn: &mut DbConn, name: &str| -> AppResult<i64> {
            Ok(wharf::models::Crate::by_name(conn, name)?
                .map(|c| c.id)
                .unwrap_or_default())
        };
        Ok((id(conn, "widget")?, id(conn, "gadget")?))
    })?;
    let legacy_token = format!("{}legacy", wharf::tokens::TRUSTPUB_TOKEN_PREFIX);
    let legacy_hash = wharf::tokens::hash(&legacy_token);

    // Act: down to the schema before the link table and up again, beside the running server.
    let url = app.config().database.url.expose().to_owned();
    let configs = (widget_config, gadget_config);
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let mut conn = diesel::SqliteConnection::establish(path)?;
            down_check_and_up!(&mut conn, SQLITE, crates, configs, legacy_hash);
        }
        None => {
            let mut conn = diesel::PgConnection::establish(&url)?;
            down_check_and_up!(&mut conn, POSTGRES, crates, configs, legacy_hash);
        }
    }

    // Assert: both tokens publish widget, and neither gadget, whose publisher is gone.
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    app.publish_ok(&legacy_token, &CrateBuilder::new("widget", "1.2.0"))
        .await;
    for (token, version) in [(&token, "1.1.0"), (&legacy_token, "1.2.0")] {
        let refused = app
            .publish(token, &CrateBuilder::new("gadget", version))
            .await;
        assert_eq!(refused.status(), 403);
    }
    let (_, info) = app.get_json("/api/v1/crates/widget").await;
    assert_eq!(info["versions"][0]["trustpub"]["config_id"], widget_config);
    assert!(info["versions"][0]["trustpub"].get("config_ids").is_none());
    Ok(())
}

/// Trusted Publishing records as earlier versions of Wharf stored them on versions (keys
/// sorted; the GitHub one from before the link table, with its `config_ids`).
const STORED_GITLAB: &str = r#"{"actor":"gitlab-user","config_id":3,"environment":"production","issuer":"https://gitlab.com","job_id":"302","pipeline_id":"574","project":"acme/widget","provider":"gitlab","ref":"v1.0.0","repository":"acme/widget","run_id":"302","run_url":"https://gitlab.com/acme/widget/-/jobs/302","sha":"0123456789abcdef0123456789abcdef01234567","workflow":".gitlab-ci.yml"}"#;
const STORED_GITHUB: &str = r#"{"actor":"octocat","config_id":5,"config_ids":{"1":5},"environment":null,"issuer":"https://token.actions.githubusercontent.com","provider":"github","ref":"refs/tags/v1.1.0","repository":"octo-org/widget","run_id":"4242","run_url":"https://github.com/octo-org/widget/actions/runs/4242/attempts/1","sha":"89abcdef0123456789abcdef0123456789abcdef","workflow":"release.yml"}"#;

#[tokio::test]
async fn trusted_publishing_records_stored_by_earlier_versions_still_read() -> anyhow::Result<()> {
    use diesel::prelude::*;
    use wharf::schema::versions;

    use crate::support::CrateBuilder;

    // Arrange: two versions whose rows hold records in the shapes stored before the typed
    // record, as a Trusted Publishing publish left them.
    let app = TestApp::spawn().await;
    let owner = app.token("alice");
    for version in ["1.0.0", "1.1.0"] {
        app.publish_ok(&owner, &CrateBuilder::new("widget", version))
            .await;
    }
    app.app.db.blocking(|conn| {
        for (num, actor, record) in [
            ("1.0.0", "gitlab-user", STORED_GITLAB),
            ("1.1.0", "octocat", STORED_GITHUB),
        ] {
            diesel::update(versions::table.filter(versions::num.eq(num)))
                .set((
                    versions::trustpub.eq(Some(record)),
                    versions::published_by.eq(actor),
                    versions::published_by_user_id.eq(None::<i64>),
                ))
                .execute(conn)?;
        }
        Ok(())
    })?;

    // Act
    let (status, info) = app.get_json("/api/v1/crates/widget").await;
    let history = reqwest::get(app.url("/crates/widget/history"))
        .await?
        .text()
        .await?;

    // Assert: the crate API sends them as they were stored (the legacy `config_ids` aside).
    assert_eq!(status, 200);
    let mut github: serde_json::Value = serde_json::from_str(STORED_GITHUB)?;
    if let Some(github) = github.as_object_mut() {
        github.remove("config_ids");
    }
    let gitlab: serde_json::Value = serde_json::from_str(STORED_GITLAB)?;
    let (newest, oldest) = (&info["versions"][0], &info["versions"][1]);
    assert_eq!(newest["trustpub"], github);
    assert_eq!(newest["trustpub_data"], github);
    assert_eq!(
        newest["published_by"],
        serde_json::json!({ "kind": "trusted_publishing", "login": "octocat", "provider": "github" })
    );
    assert_eq!(oldest["trustpub"], gitlab);
    assert_eq!(oldest["published_by"]["provider"], "gitlab");
    // The history page reads them by their provider.
    assert!(history.contains("via GitHub Actions"), "{history}");
    assert!(history.contains(">run 4242</a>"), "{history}");
    assert!(history.contains("via GitLab CI"), "{history}");
    assert!(history.contains(">job 302</a>"), "{history}");
    Ok(())
}

/// Instances that start together on a fresh database all migrate it: one runs the migrations,
/// the others find nothing left to do, and none fails.
#[tokio::test(flavor = "multi_thread")]
async fn instances_migrating_one_database_at_once_all_start() -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let url = crate::support::test_database_url(&data_dir)?;
    let results = tokio::task::spawn_blocking(move || {
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| -> anyhow::Result<usize> {
                        let db = wharf::db::Database::connect(&wharf::config::DatabaseConfig {
                            url: wharf::config::Secret::new(url.clone()),
                            pool_size: 2,
                        });
                        // Every thread reaches the barrier, whatever its connect gave.
                        barrier.wait();
                        db?.migrate()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("a migrating thread panicked"))?
                })
                .collect::<anyhow::Result<Vec<usize>>>()
        })
    })
    .await??;
    let ran: usize = results.iter().sum();
    assert!(ran > 0, "{results:?}");
    assert_eq!(
        results.iter().filter(|n| **n > 0).count(),
        1,
        "one instance ran every migration: {results:?}"
    );
    Ok(())
}

#[derive(diesel::QueryableByName, Debug)]
struct WholeIndexFile {
    #[diesel(sql_type = diesel::sql_types::Text)]
    content: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    etag: String,
}

/// On a connection of its own: reverts the index-chunks migration (and any later one), checks
/// that `down.sql` put each file back whole, stores the `ETag` the code of that time made (a
/// hash chained over the lines) and migrates up again. Returns the file.
macro_rules! unchunk_check_and_rechunk {
    ($conn:expr, $migrations:expr, $widget:expr, $served:expr) => {{
        use diesel::RunQueryDsl;
        use diesel_migrations::MigrationHarness;
        let conn = $conn;
        let (widget, served): (i64, &str) = ($widget, $served);
        loop {
            let reverted = conn
                .revert_last_migration($migrations)
                .map_err(|e| anyhow::anyhow!("down: {e}"))?
                .to_string();
            if reverted.as_str() <= "20261127001300" {
                assert_eq!(reverted, "20261127001300");
                break;
            }
        }
        let files: Vec<WholeIndexFile> = diesel::sql_query(format!(
            "SELECT content, etag FROM index_files WHERE crate_id = {widget}"
        ))
        .load(conn)?;
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].content, served, "the chunks joined in order");

        assert!(
            files[0].etag.starts_with("\"c-"),
            "the ETag stays: {}",
            files[0].etag
        );

        // The code of that time stored the ETag chained over the file's lines.
        let file = served.to_owned();
        diesel::sql_query(format!(
            "UPDATE index_files SET etag = '{}' WHERE crate_id = {widget}",
            wharf::models::index_file::etag_of(&file)
        ))
        .execute(conn)?;

        conn.run_pending_migrations($migrations)
            .map_err(|e| anyhow::anyhow!("up: {e}"))?;
        file
    }};
}

#[tokio::test]
async fn the_index_chunks_migration_carries_files_over_both_ways() -> anyhow::Result<()> {
    use diesel::Connection;
    use diesel_migrations::{EmbeddedMigrations, embed_migrations};
    use wharf::models::index_file;

    use crate::index::wide;
    use crate::support::{CrateBuilder, index_path};

    const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
    const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

    // Arrange: a file of several chunks.
    let app = TestApp::spawn().await;
    let owner = app.token("alice");
    for patch in 0..5 {
        app.publish_ok(&owner, &wide("widget", &format!("1.0.{patch}")))
            .await;
    }
    let widget = app
        .app
        .db
        .blocking(|conn| Ok(wharf::models::Crate::by_name(conn, "widget")?.map_or(0, |c| c.id)))?;
    let chunks = app.app.db.blocking(move |conn| {
        Ok(index_file::stored(conn, widget)?.map_or(0, |s| s.chunks.len()))
    })?;
    assert!(chunks >= 2, "{chunks}");
    let url = app.url(&format!("/index/{}", index_path("widget")));
    let served = app.client.get(&url).send().await?.text().await?;

    // Act: down to whole files and up again, beside the running server.
    let url_db = app.config().database.url.expose().to_owned();
    let file = match url_db.strip_prefix("sqlite://") {
        Some(path) => {
            let mut conn = diesel::SqliteConnection::establish(path)?;
            unchunk_check_and_rechunk!(&mut conn, SQLITE, widget, &served)
        }
        None => {
            let mut conn = diesel::PgConnection::establish(&url_db)?;
            unchunk_check_and_rechunk!(&mut conn, POSTGRES, widget, &served)
        }
    };

    // Assert: the file from before chunks is served as it was, ETag included…
    app.app.index_cache.invalidate("widget");
    let carried = app.client.get(&url).send().await?;
    assert_eq!(
        carried.headers()["etag"].to_str()?,
        index_file::etag_of(&file)
    );
    assert_eq!(carried.text().await?, file);
    let stored = app
        .app
        .db
        .blocking(move |conn| Ok(index_file::stored(conn, widget)?))?
        .expect("a file");
    assert_eq!(stored.chunks.len(), 1, "carried over as one chunk");
    assert!(stored.etag_matches());
    // …and the next change renders it again from the versions, in chunks.
    let response = app
        .client
        .delete(app.url("/api/v1/crates/widget/1.0.1/yank"))
        .header("Authorization", &owner)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.6"))
        .await;
    let versions: Vec<String> = app
        .index_lines("widget")
        .await
        .iter()
        .map(|l| format!("{} {}", l["vers"].as_str().unwrap_or(""), l["yanked"]))
        .collect();
    assert_eq!(
        versions,
        [
            "1.0.0 false",
            "1.0.1 true",
            "1.0.2 false",
            "1.0.3 false",
            "1.0.4 false",
            "1.0.6 false"
        ]
    );
    let (stored, lines) = app.app.db.blocking(move |conn| {
        let lines = index_file::render_lines(conn, widget, "widget", None)?;
        Ok((index_file::stored(conn, widget)?.expect("a file"), lines))
    })?;
    assert!(stored.chunks.len() >= 2);
    assert!(stored.etag_matches());
    assert_eq!(stored.chunk_problem(&lines), None);
    Ok(())
}
