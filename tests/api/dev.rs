//! `wharf dev`: the fake identity provider and the registry, on loopback only, from the same
//! binary as `wharf serve` (so one build, debug or release, serves every purpose).

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde_json::{Value, json};
use wharf::dev::fake_idp::{FakeIdp, FakeIdpOptions, Provider};

use crate::support::process::{Spawned, value_after};
use crate::support::web_client::WebClient;
use crate::support::{CrateBuilder, TestApp};

#[test]
fn dev_mode_refuses_to_listen_beyond_loopback() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("dev")
        .env("WHARF_BIND", "0.0.0.0:0")
        .env("WHARF_DATA_DIR", dir.path())
        .env_remove("WHARF_DATABASE_URL")
        .env("WHARF_LOG", "warn")
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only listens on loopback"), "{stderr}");
    Ok(())
}

/// What `wharf dev` sets up, on a test server: the fake with accounts on demand, GitHub login
/// and issuer, and its GitLab issuer.
async fn dev_like() -> anyhow::Result<(TestApp, FakeIdp)> {
    let idp = FakeIdp::start_with(FakeIdpOptions::for_dev(0))?;
    let app = TestApp::builder()
        .github_login(&idp)
        .github_idp(&idp)
        .set(
            "trustpub_gitlab_issuers",
            idp.issuer_of(Provider::GitLab).url(),
        )
        .spawn()
        .await;
    Ok((app, idp))
}

/// `POST /_dev/id-token.json`, as a developer would mint a token by hand.
async fn mint(idp: &FakeIdp, body: Value) -> anyhow::Result<String> {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/_dev/id-token.json", idp.base_url()))
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["value"]
        .as_str()
        .map(str::to_owned)
        .context("no token in the answer")
}

/// Publishes `version` with the Trusted Publishing token `jwt` is exchanged for; answers the
/// run link of the history page.
async fn publish_through(
    app: &TestApp,
    jwt: &str,
    version: &str,
    provider: &str,
) -> anyhow::Result<String> {
    let (status, body) = app.exchange(jwt).await;
    anyhow::ensure!(status == 200, "exchange: {body}");
    app.publish_ok(
        body["token"].as_str().unwrap_or_default(),
        &CrateBuilder::new("widget", version),
    )
    .await;
    let (_, info) = app.get_json("/api/v1/crates/widget").await;
    assert_eq!(info["versions"][0]["trustpub"]["provider"], provider);
    let page = WebClient::new(app).get("/crates/widget/history").await?;
    page.attr("a.run-link", "href")
        .context("a run link on the history page")
}

#[tokio::test]
async fn in_dev_mode_any_repository_owner_can_publish_by_hand_minted_tokens() -> anyhow::Result<()>
{
    let (app, idp) = dev_like().await?;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    // An owner nobody told the fake about: accounts are made on demand.
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&owner),
            &json!({ "github_config": {
                "crate": "widget",
                "repository_owner": "brand-new-org",
                "repository_name": "widget",
                "workflow_filename": "publish.yml",
            }}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["github_config"]["repository_owner_id"],
        json!(idp.account_id("brand-new-org"))
    );

    let jwt = mint(
        &idp,
        json!({
            "audience": app.audience(),
            "repository": "brand-new-org/widget",
            "workflow": "publish.yml",
            "run_id": 77,
        }),
    )
    .await?;
    let run_link = publish_through(&app, &jwt, "1.1.0", "github").await?;

    assert_eq!(
        run_link,
        format!(
            "{}/brand-new-org/widget/actions/runs/77/attempts/1",
            idp.base_url()
        )
    );
    let run_page = reqwest::get(&run_link).await?;
    assert_eq!(run_page.status(), 200, "the run link leads to the fake");
    Ok(())
}

#[tokio::test]
async fn in_dev_mode_a_gitlab_job_publishes_and_links_back_to_the_fake() -> anyhow::Result<()> {
    let (app, idp) = dev_like().await?;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    app.add_gitlab_config(&owner, "widget", "acme", None).await;

    let jwt = mint(
        &idp,
        json!({ "provider": "gitlab", "audience": app.audience(), "job_id": "9001" }),
    )
    .await?;
    let job_link = publish_through(&app, &jwt, "1.1.0", "gitlab").await?;

    assert_eq!(
        job_link,
        format!(
            "{}/acme/widget/-/jobs/9001",
            idp.issuer_of(Provider::GitLab).url()
        )
    );
    let job_page = reqwest::get(&job_link).await?;
    assert_eq!(job_page.status(), 200, "the job link leads to the fake");
    Ok(())
}

#[tokio::test]
async fn the_built_binary_runs_dev_mode_with_logs_free_of_colour_codes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    command
        .arg("dev")
        .env("WHARF_BIND", "127.0.0.1:0")
        .env("WHARF_DATA_DIR", dir.path())
        .env_remove("WHARF_DATABASE_URL")
        .env_remove("NO_COLOR")
        .env("WHARF_LOG", "info");
    let mut dev = Spawned::start(command)?;
    dev.wait_for("Press Ctrl-C to stop.").await?;
    let banner = dev.stdout();
    let registry = value_after(&banner, "registry:").expect("the registry's URL");
    let github = value_after(&banner, "fake IdP:").expect("the fake IdP's URL");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    let login = client.get(format!("{registry}login")).send().await?;
    assert_eq!(login.status(), 200);
    assert!(
        login.text().await?.contains("id=\"login-github\""),
        "GitHub login is on, against the fake"
    );
    let start = client.get(format!("{registry}login/github")).send().await?;
    assert_eq!(start.status(), 303);
    let location = start.headers()["location"].to_str()?;
    assert!(
        location.starts_with(&format!("{github}login/oauth/authorize?")),
        "{location}"
    );
    let id_tokens = client.get(format!("{github}_dev/id-token")).send().await?;
    assert_eq!(id_tokens.status(), 200);

    let (stdout, stderr) = dev.stop()?;
    assert!(
        stderr.contains("/login/github"),
        "the requests were logged: {stderr}"
    );
    for (name, output) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !output.contains('\u{1b}'),
            "{name} is a pipe, so it carries no escape codes: {output:?}"
        );
    }
    Ok(())
}

/// `dev` is part of every build: nothing in `src/` depends on the build profile
/// (`debug_assertions`) or on a cargo feature, so `cargo build --release` compiles the very code
/// the test above runs, and `target/release/wharf dev` works.
#[test]
fn no_code_depends_on_the_build_profile_or_a_feature() -> anyhow::Result<()> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    )?;
    assert!(files.len() > 20, "found the sources: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for gate in ["debug_assertions", "feature ="] {
            assert!(
                !text.contains(gate),
                "{} depends on `{gate}`: then a release build may lack what the tests ran",
                file.display()
            );
        }
    }
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))?;
    assert!(
        !manifest.contains("[features]"),
        "wharf has no features of its own: `dev` must be in the default build"
    );
    Ok(())
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    Ok(())
}
