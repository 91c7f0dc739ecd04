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

pub fn provider_binary() -> PathBuf {
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
async fn a_brand_new_crate_is_published_from_ci_through_a_pending_publisher() -> anyhow::Result<()>
{
    let provider = provider_binary();
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    // alice adds a pending publisher for a crate nobody has published yet.
    let alice = app.token_with("alice", &["publish-new"], &["cp-*"]);
    let (status, pending) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&alice),
            &json!({ "github_config": {
                "crate": "cp-brand-new",
                "repository_owner": fake_idp::GITHUB_OWNER,
                "repository_name": fake_idp::GITHUB_REPO,
                "workflow_filename": fake_idp::GITHUB_WORKFLOW,
            }}),
        )
        .await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(pending["github_config"]["pending"], true);

    // The release job of the repository: cargo and the credential provider, no token at all.
    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, None)?;
    let pkg = root.path().join("pkg");
    let stamp = write_stamped_package(&pkg, "cp-brand-new", "0.1.0")?;
    let runner_temp = root.path().join("runner-temp");
    std::fs::create_dir_all(&runner_temp)?;
    let mut publish = cargo.command(&pkg, &["publish", "--registry", "wharf"]);
    publish
        .env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", &provider)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", idp.id_token_request_url())
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            idp.id_token_request_token(),
        )
        .env("RUNNER_TEMP", &runner_temp)
        .env("WHARF_E2E_BUILD_STAMP", &stamp);
    let output = tokio::task::spawn_blocking(move || publish.output()).await??;
    assert!(
        output.status.success(),
        "cargo publish failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let (_, info) = app.get_json("/api/v1/crates/cp-brand-new").await;
    assert_eq!(info["versions"][0]["num"], "0.1.0");
    assert_eq!(
        info["versions"][0]["published_by"]["login"],
        fake_idp::GITHUB_ACTOR
    );
    let (_, owners) = app.get_json("/api/v1/crates/cp-brand-new/owners").await;
    assert_eq!(owners["users"][0]["login"], "alice");
    assert_eq!(owners["users"].as_array().map(Vec::len), Some(1));
    // The pending publisher is now the crate's ordinary trusted publisher.
    let manager = app.token("alice");
    let (_, configs) = app
        .get_json_with(
            "/api/v1/trusted_publishing/github_configs?crate=cp-brand-new",
            &manager,
        )
        .await;
    let id = configs["github_configs"][0]["id"].as_i64().unwrap_or(0);
    assert!(id > 0, "{configs}");
    assert_eq!(info["versions"][0]["trustpub"]["config_id"], id);
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

/// A stand-in for `buildkite-agent` in `dir`: `oidc request-token --audience … --claim …` asks
/// the agent API (`BUILDKITE_AGENT_ENDPOINT`) for the job's ID token, as the real agent does,
/// and prints it.
fn buildkite_agent_stand_in(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "these tests need python3: {output:?}"
    );
    let python = String::from_utf8(output.stdout)?.trim().to_owned();
    let script = format!(
        r#"#!{python}
import json, os, sys, urllib.request
args = sys.argv[1:]
assert args[:2] == ["oidc", "request-token"], args
body, rest = {{"claims": []}}, args[2:]
while rest:
    flag, value, rest = rest[0], rest[1], rest[2:]
    if flag == "--audience":
        body["audience"] = value
    elif flag == "--claim":
        body["claims"] += [c for c in value.split(",") if c]
    else:
        sys.exit("flag provided but not defined: " + flag)
request = urllib.request.Request(
    "%s/jobs/%s/oidc/tokens" % (os.environ["BUILDKITE_AGENT_ENDPOINT"], os.environ["BUILDKITE_JOB_ID"]),
    data=json.dumps(body).encode(), method="POST",
    headers={{"Authorization": "Token " + os.environ["BUILDKITE_AGENT_ACCESS_TOKEN"],
             "Content-Type": "application/json"}})
with urllib.request.urlopen(request, timeout=10) as response:
    print(json.load(response)["token"])
"#
    );
    let path = dir.join("buildkite-agent");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn buildkite_publish_gets_the_id_token_from_the_agent_and_pins_the_pipeline()
-> anyhow::Result<()> {
    let provider = provider_binary();
    let idp = FakeIdp::start(Provider::Buildkite);
    let app = TestApp::builder().buildkite_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("cp-buildkite", "0.1.0"))
        .await;
    app.add_buildkite_config(
        &owner,
        "cp-buildkite",
        fake_idp::BUILDKITE_ORGANIZATION,
        fake_idp::BUILDKITE_PIPELINE,
        Some(fake_idp::BUILDKITE_BRANCH),
        Some(fake_idp::BUILDKITE_STEP_KEY),
    )
    .await;

    let root = tempfile::tempdir()?;
    let bin = root.path().join("agent-bin");
    std::fs::create_dir_all(&bin)?;
    buildkite_agent_stand_in(&bin)?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cargo = Cargo::new(root.path(), &app, None)?;
    let pkg = root.path().join("pkg");
    let stamp = write_stamped_package(&pkg, "cp-buildkite", "0.2.0")?;
    let mut publish = cargo.command(&pkg, &["publish", "--registry", "wharf"]);
    publish
        .env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", &provider)
        .env("PATH", path)
        .env("BUILDKITE", "true")
        .env("BUILDKITE_AGENT_ENDPOINT", idp.buildkite_agent_endpoint())
        .env(
            "BUILDKITE_AGENT_ACCESS_TOKEN",
            idp.buildkite_agent_access_token(),
        )
        .env("BUILDKITE_JOB_ID", fake_idp::BUILDKITE_JOB_ID)
        .env("WHARF_E2E_BUILD_STAMP", &stamp);
    let output = tokio::task::spawn_blocking(move || publish.output()).await??;
    assert!(
        output.status.success(),
        "cargo publish failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let (_, info) = app.get_json("/api/v1/crates/cp-buildkite").await;
    let version = &info["versions"][0];
    assert_eq!(version["num"], "0.2.0");
    assert_eq!(
        version["published_by"]["login"],
        format!(
            "{}/{}",
            fake_idp::BUILDKITE_ORGANIZATION,
            fake_idp::BUILDKITE_PIPELINE
        )
    );
    assert_eq!(version["trustpub"]["provider"], "buildkite");
    // The provider asked the agent for the optional ID claims, so the exchange pinned them.
    let (status, configs) = app
        .get_json_with(
            "/api/v1/trusted_publishing/buildkite_configs?crate=cp-buildkite",
            &owner,
        )
        .await;
    assert_eq!(status, 200, "{configs}");
    let config = &configs["buildkite_configs"][0];
    assert_eq!(
        config["organization_id"],
        fake_idp::BUILDKITE_ORGANIZATION_ID
    );
    assert_eq!(config["pipeline_id"], fake_idp::BUILDKITE_PIPELINE_ID);
    Ok(())
}
