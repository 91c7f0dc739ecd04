//! `wharf admin check`, run as an operator would, against a registry a server filled. The
//! storage is the test's default (a folder, or a bucket with `WHARF_TEST_STORAGE=s3`);
//! `s3.rs` runs the same checks on a bucket in any case.

use std::process::{Command, Output};

use actix_web::web::Bytes;
use diesel::prelude::*;
use wharf::registry::crate_name::CrateName;
use wharf::schema::{crates, index_chunks, index_files};
use wharf::storage::crate_key;

use crate::support::{CrateBuilder, TestApp, s3};

/// Runs `wharf admin check` on the database and storage of `app`.
pub fn admin_check(app: &TestApp) -> Output {
    let config = app.config();
    let data_dir = tempfile::tempdir().expect("temp dir");
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["admin", "check"])
        .env("WHARF_DATA_DIR", data_dir.path())
        .env("WHARF_DATABASE_URL", config.database.url.expose())
        .env("WHARF_LOG", "warn")
        .envs(s3::env_of(&config.storage))
        .output()
        .expect("run wharf admin check")
}

fn key(name: &str, version: &str) -> String {
    let canonical = CrateName::parse(name).expect("a crate name").canonical();
    crate_key(canonical.as_ref(), name, version)
}

/// Three versions of two crates, one yanked.
pub async fn fill(app: &TestApp) {
    let token = app.token("alice");
    for krate in [
        CrateBuilder::new("audited", "1.0.0"),
        CrateBuilder::new("audited", "1.1.0"),
        CrateBuilder::new("Other_crate", "0.1.0"),
    ] {
        app.publish_ok(&token, &krate).await;
    }
    let response = app
        .client
        .delete(app.url("/api/v1/crates/audited/1.0.0/yank"))
        .header("Authorization", &token)
        .send()
        .await
        .expect("yank");
    assert_eq!(response.status(), 200);
}

pub async fn a_clean_registry_passes(app: &TestApp) -> anyhow::Result<()> {
    fill(app).await;

    let out = admin_check(app);

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.ends_with("checked 3 version(s) and 2 crate index file(s): no problems\n"),
        "{stdout}"
    );
    Ok(())
}

pub async fn each_problem_is_reported(app: &TestApp) -> anyhow::Result<()> {
    fill(app).await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("tagged", "2.0.0"))
        .await;
    // A file gone, a file replaced by other bytes, an index file edited, an ETag edited.
    app.app.storage.delete(&key("audited", "1.0.0")).await?;
    let other = CrateBuilder::new("Other_crate", "0.1.0")
        .file("extra.rs", b"// not what was published\n")
        .tarball();
    let (other_cksum, other_len) = (wharf::registry::index::cksum(&other), other.len());
    app.app
        .storage
        .put(&key("Other_crate", "0.1.0"), Bytes::from(other))
        .await?;
    // The first chunk of the crate's file and its ETag.
    let tamper = |name: &'static str, edit: fn(String, String) -> (String, String)| {
        app.app
            .db
            .blocking(move |conn| {
                let id: i64 = crates::table
                    .filter(crates::name.eq(name))
                    .select(crates::id)
                    .first(conn)?;
                let etag: String = index_files::table
                    .find(id)
                    .select(index_files::etag)
                    .first(conn)?;
                let content: String = index_chunks::table
                    .find((id, 0))
                    .select(index_chunks::content)
                    .first(conn)?;
                let (content, etag) = edit(content, etag);
                diesel::update(index_files::table.find(id))
                    .set(index_files::etag.eq(etag))
                    .execute(conn)?;
                diesel::update(index_chunks::table.find((id, 0)))
                    .set(index_chunks::content.eq(content))
                    .execute(conn)?;
                // A chunk that claims other versions than the lines it holds.
                if name == "Other_crate" {
                    diesel::update(index_chunks::table.find((id, 0)))
                        .set(index_chunks::first_version_id.eq(0))
                        .execute(conn)?;
                }
                Ok(())
            })
            .expect("tamper with an index file")
    };
    tamper("audited", |content, etag| {
        (
            content.replacen("\"yanked\":true", "\"yanked\":false", 1),
            etag,
        )
    });
    tamper("Other_crate", |content, etag| (content, etag));
    tamper("tagged", |content, _| (content, "\"0123\"".to_owned()));

    let out = admin_check(app);

    assert!(!out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|line| !line.starts_with("checking ") && !line.starts_with("checked "))
        .collect();
    let published = CrateBuilder::new("Other_crate", "0.1.0").tarball();
    let (published_cksum, published_len) =
        (wharf::registry::index::cksum(&published), published.len());
    let other_key = key("Other_crate", "0.1.0");
    assert_eq!(
        problems,
        [
            format!(
                "audited 1.0.0: the .crate file is missing from storage ({}); restore it from a backup of the storage",
                key("audited", "1.0.0")
            ),
            format!(
                "Other_crate 0.1.0: the .crate file in storage ({other_key}) has SHA-256 {other_cksum} and {other_len} bytes, but the version was published with SHA-256 {published_cksum} and {published_len} bytes; restore the file from a backup of the storage"
            ),
            "audited: the index file differs from the crate's versions in the database (line 1 differs); publishing, yanking or unyanking any version of the crate renders it again".to_owned(),
            "Other_crate: the index file's chunks are out of step with its versions (chunk 0 does not hold the lines of versions 0 to 3), so a yank could render the wrong lines; publishing, yanking or unyanking any version of the crate renders it again".to_owned(),
            "tagged: the index file's ETag \"0123\" does not match its content, so caches may keep an old file; publishing, yanking or unyanking any version of the crate renders it again".to_owned(),
        ],
        "{stdout}"
    );
    assert!(
        stdout.ends_with("checked 4 version(s) and 3 crate index file(s): 5 problems\n"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: 5 problem(s) found; each is listed above with what to do"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn a_clean_registry_passes_the_check() -> anyhow::Result<()> {
    a_clean_registry_passes(&TestApp::spawn().await).await
}

#[tokio::test]
async fn missing_and_altered_files_and_tampered_index_files_are_each_reported() -> anyhow::Result<()>
{
    each_problem_is_reported(&TestApp::spawn().await).await
}

#[tokio::test]
async fn the_check_fails_when_the_storage_folder_cannot_be_opened() -> anyhow::Result<()> {
    let storage = tempfile::tempdir()?;
    let dir = storage.path().join("crates");
    let app = TestApp::builder()
        .set("storage_dir", dir.to_string_lossy())
        .spawn()
        .await;
    fill(&app).await;
    std::fs::remove_dir_all(&dir)?;
    std::fs::write(&dir, b"not a folder")?;

    let out = admin_check(&app);

    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: cannot create the storage folder"),
        "{stderr}"
    );
    Ok(())
}
