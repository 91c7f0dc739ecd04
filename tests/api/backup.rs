//! The backup and restore procedure of the operator's guide, run for real with the engine's own
//! tools: `sqlite3 .backup` (SQLite) or `pg_dump` and `pg_restore` into a new database
//! (PostgreSQL), a copy of the storage folder, then `wharf admin check` on the restored copy.
//! The database is dumped first and the storage copied after it: a version published in
//! between leaves only a harmless extra file. The other order loses that version's file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};

use crate::admin_check::fill;
use crate::support::{CrateBuilder, TestApp};

/// A server with its crate files in a folder of the test's (even when the suite runs on S3).
async fn registry(storage: &Path) -> TestApp {
    TestApp::builder()
        .set("storage_dir", storage.to_string_lossy())
        .spawn()
        .await
}

fn run(command: &mut Command) -> anyhow::Result<Output> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Step 1: a consistent dump of the live database, as the guide shows it.
fn dump_database(app: &TestApp, backup: &Path) -> anyhow::Result<PathBuf> {
    let url = app.config().database.url.expose().to_owned();
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let dump = backup.join("wharf.db");
            run(Command::new("sqlite3")
                .arg(path)
                .arg(format!(".backup '{}'", dump.display())))?;
            Ok(dump)
        }
        None => {
            let dump = backup.join("wharf.pgdump");
            run(Command::new("pg_dump")
                .args(["--format=custom", "--file"])
                .arg(&dump)
                .arg(&url))?;
            Ok(dump)
        }
    }
}

/// Restores a dump into a new database; returns its URL.
fn restore_database(app: &TestApp, dump: &Path, into: &Path) -> anyhow::Result<String> {
    let url = app.config().database.url.expose().to_owned();
    if url.starts_with("sqlite://") {
        let restored = into.join("wharf.db");
        std::fs::copy(dump, &restored)?;
        return Ok(format!("sqlite://{}", restored.display()));
    }
    let mut restored = url::Url::parse(&url)?;
    let name = format!("{}_restored", restored.path().trim_start_matches('/'));
    run(Command::new("psql")
        .arg(&url)
        .args(["--quiet", "--command"])
        .arg(format!("CREATE DATABASE {name}")))?;
    restored.set_path(&format!("/{name}"));
    run(Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(restored.as_str())
        .arg(dump))?;
    Ok(restored.to_string())
}

/// Step 2: a copy of the storage folder.
fn copy_folder(from: &Path, to: &Path) -> anyhow::Result<()> {
    run(Command::new("cp").arg("-a").arg(from).arg(to))?;
    Ok(())
}

/// `wharf admin check` on a restored database and storage folder.
fn check(database_url: &str, storage: &Path) -> Output {
    let data_dir = tempfile::tempdir().expect("temp dir");
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["admin", "check"])
        .env("WHARF_DATA_DIR", data_dir.path())
        .env("WHARF_DATABASE_URL", database_url)
        .env("WHARF_STORAGE_DIR", storage)
        .env_remove("WHARF_STORAGE_URL")
        .env("WHARF_LOG", "warn")
        .output()
        .expect("run wharf admin check")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dump_then_a_copy_of_the_storage_restores_a_registry_that_passes_the_check()
-> anyhow::Result<()> {
    let live = tempfile::tempdir()?;
    let app = registry(&live.path().join("crates")).await;
    fill(&app).await;
    let backup = tempfile::tempdir()?;

    let dump = dump_database(&app, backup.path())?;
    // A publish between the two steps: its file is in the copy, its version not in the dump.
    app.publish_ok(&app.token("alice"), &CrateBuilder::new("late", "1.0.0"))
        .await;
    copy_folder(&live.path().join("crates"), &backup.path().join("crates"))?;
    let restored = tempfile::tempdir()?;
    let database_url = restore_database(&app, &dump, restored.path())?;
    copy_folder(
        &backup.path().join("crates"),
        &restored.path().join("crates"),
    )?;
    let out = check(&database_url, &restored.path().join("crates"));

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("checked 3 version(s) and 2 crate index file(s): no problems"),
        "{stdout}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_copy_taken_before_the_dump_misses_a_version_and_the_check_says_so()
-> anyhow::Result<()> {
    let live = tempfile::tempdir()?;
    let app = registry(&live.path().join("crates")).await;
    fill(&app).await;
    let backup = tempfile::tempdir()?;

    copy_folder(&live.path().join("crates"), &backup.path().join("crates"))?;
    app.publish_ok(&app.token("alice"), &CrateBuilder::new("late", "1.0.0"))
        .await;
    let dump = dump_database(&app, backup.path())?;
    let restored = tempfile::tempdir()?;
    let database_url = restore_database(&app, &dump, restored.path())?;
    copy_folder(
        &backup.path().join("crates"),
        &restored.path().join("crates"),
    )?;
    let out = check(&database_url, &restored.path().join("crates"));

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stdout.contains(
            "late 1.0.0: the .crate file is missing from storage (crates/late/late-1.0.0.crate)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("checked 4 version(s) and 3 crate index file(s): 1 problem"),
        "{stdout}"
    );
    Ok(())
}
