//! `cargo-credential-wharf` with the real cargo: the provider exchanges the CI ID token right
//! before the upload (after the verification build), cargo publishes with it, and `cargo
//! logout` revokes it. The provider binary is built by `cargo test --workspace` (and by
//! `cargo build --workspace`); this test fails, loudly, if it is missing.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::e2e_cargo::{Cargo, write_package};
use crate::support::fake_idp::{self, FakeIdp, Provider};
use crate::support::{CrateBuilder, TestApp};

fn provider_binary() -> PathBuf {
    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile folder");
    let binary = profile_dir.join("cargo-credential-wharf");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p cargo-credential-wharf` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// A package whose build script records when it ran (the verification build runs it).
fn write_stamped_package(dir: &Path, name: &str, version: &str) -> anyhow::Result<PathBuf> {
    write_package(
        dir,
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"published by CI\"\nbuild = \"build.rs\"\n"
        ),
        "pub fn ci() {}\n",
    )?;
    std::fs::write(
        dir.join("build.rs"),
        "fn main() {\n    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();\n    std::fs::write(std::env::var(\"WHARF_E2E_BUILD_STAMP\").unwrap(), now.to_string()).unwrap();\n    println!(\"cargo:rerun-if-changed=build.rs\");\n}\n",
    )?;
    Ok(dir.join("build-stamp"))
}

fn read_stamp(path: &Path) -> anyhow::Result<SystemTime> {
    let nanos: u64 = std::fs::read_to_string(path)?.trim().parse()?;
    Ok(UNIX_EPOCH + Duration::from_nanos(nanos))
}

#[tokio::test(flavor = "multi_thread")]
async fn github_actions_publish_exchanges_the_token_after_the_verification_build()
-> anyhow::Result<()> {
    let provider = provider_binary();
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("cp-e2e", "0.1.0"))
        .await;
    app.add_github_config(&owner, "cp-e2e", None).await;

    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, None)?;
    let pkg = root.path().join("pkg");
    let stamp = write_stamped_package(&pkg, "cp-e2e", "0.2.0")?;
    let runner_temp = root.path().join("runner-temp");
    std::fs::create_dir_all(&runner_temp)?;
    let ci_env = |cmd: &mut std::process::Command| {
        cmd.env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", &provider)
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", idp.id_token_request_url())
            .env(
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                idp.id_token_request_token(),
            )
            .env("RUNNER_TEMP", &runner_temp)
            .env("WHARF_E2E_BUILD_STAMP", &stamp);
    };

    let mut publish = cargo.command(&pkg, &["publish", "--registry", "wharf"]);
    ci_env(&mut publish);
    let output = tokio::task::spawn_blocking(move || publish.output()).await??;
    assert!(
        output.status.success(),
        "cargo publish failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let built_at = read_stamp(&stamp)?;
    let requests = idp.id_token_requests();
    assert_eq!(requests.len(), 1, "one ID token for one upload");
    assert!(
        requests[0] > built_at,
        "the ID token was requested after the verification build"
    );
    let (_, info) = app.get_json("/api/v1/crates/cp-e2e").await;
    assert_eq!(info["versions"][0]["num"], "0.2.0");
    assert_eq!(
        info["versions"][0]["published_by"]["login"],
        fake_idp::GITHUB_ACTOR
    );

    let live_tokens = || {
        app.app.db.blocking(|conn| {
            use diesel::prelude::*;
            Ok(wharf::schema::trustpub_tokens::table
                .count()
                .get_result::<i64>(conn)?)
        })
    };
    assert_eq!(live_tokens()?, 1);
    let mut logout = cargo.command(&pkg, &["logout", "--registry", "wharf"]);
    ci_env(&mut logout);
    let output = tokio::task::spawn_blocking(move || logout.output()).await??;
    assert!(
        output.status.success(),
        "cargo logout failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(live_tokens()?, 0, "cargo logout revoked the token");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_ci_publish_exchanges_the_id_token_from_the_environment() -> anyhow::Result<()> {
    let provider = provider_binary();
    let idp = FakeIdp::start(Provider::GitLab);
    let app = TestApp::builder().gitlab_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("cp-gitlab", "0.1.0"))
        .await;
    app.add_gitlab_config(&owner, "cp-gitlab", fake_idp::GITLAB_NAMESPACE, None)
        .await;
    let jwt = idp.sign(&idp.gitlab_claims(&app.audience(), json!({})));

    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, None)?;
    let pkg = root.path().join("pkg");
    let stamp = write_stamped_package(&pkg, "cp-gitlab", "0.2.0")?;
    let mut publish = cargo.command(&pkg, &["publish", "--registry", "wharf"]);
    publish
        .env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", &provider)
        .env("GITLAB_CI", "true")
        .env("CI_JOB_ID", "302")
        .env("CI_BUILDS_DIR", root.path())
        .env("WHARF_ID_TOKEN", jwt)
        .env("WHARF_E2E_BUILD_STAMP", &stamp);
    let output = tokio::task::spawn_blocking(move || publish.output()).await??;
    assert!(
        output.status.success(),
        "cargo publish failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, info) = app.get_json("/api/v1/crates/cp-gitlab").await;
    assert_eq!(
        info["versions"][0]["published_by"]["login"],
        fake_idp::GITLAB_USER
    );
    assert_eq!(info["versions"][0]["trustpub"]["provider"], "gitlab");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_matching_publisher_cargo_shows_the_registry_message_and_fails()
-> anyhow::Result<()> {
    let provider = provider_binary();
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("cp-none", "0.1.0"))
        .await;

    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, None)?;
    let pkg = root.path().join("pkg");
    let stamp = write_stamped_package(&pkg, "cp-none", "0.2.0")?;
    let mut publish = cargo.command(&pkg, &["publish", "--registry", "wharf"]);
    publish
        .env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", &provider)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", idp.id_token_request_url())
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            idp.id_token_request_token(),
        )
        .env("RUNNER_TEMP", root.path())
        .env("WHARF_E2E_BUILD_STAMP", &stamp);
    let output = tokio::task::spawn_blocking(move || publish.output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("No Trusted Publishing config exists for repository `octo-org/widget`"),
        "{stderr}"
    );
    let (_, info) = app.get_json("/api/v1/crates/cp-none").await;
    assert_eq!(
        info["versions"].as_array().map(Vec::len),
        Some(1),
        "nothing was published"
    );
    Ok(())
}
