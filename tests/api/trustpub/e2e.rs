//! The whole flow with the real cargo: fake GitHub issuer → exchange over HTTP → `cargo
//! publish` with the exchanged token → the version records the actor → revoke → refused.

use serde_json::json;

use crate::e2e_cargo::{Cargo, write_package};
use crate::support::fake_idp::{self, FakeIdp, Provider};
use crate::support::{CrateBuilder, TestApp};

#[tokio::test(flavor = "multi_thread")]
async fn cargo_publishes_with_an_exchanged_token_which_then_is_revoked() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("tp-e2e", "0.1.0"))
        .await;
    app.add_github_config(&owner, "tp-e2e", None).await;

    let (status, body) = app
        .exchange(&idp.sign(&idp.github_claims(&app.audience(), json!({}))))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();

    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, Some(token.clone()))?;
    let pkg = root.path().join("pkg");
    write_package(
        &pkg,
        "[package]\nname = \"tp-e2e\"\nversion = \"0.2.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"published by CI\"\n",
        "pub fn ci() {}\n",
    )?;
    cargo.ok(&pkg, &["publish", "--registry", "wharf"]).await?;

    let (_, info) = app.get_json("/api/v1/crates/tp-e2e").await;
    assert_eq!(info["versions"][0]["num"], "0.2.0");
    assert_eq!(
        info["versions"][0]["published_by"]["login"],
        fake_idp::GITHUB_ACTOR
    );
    assert_eq!(info["versions"][0]["trustpub"]["workflow"], "release.yml");

    let revoked = app
        .client
        .delete(app.url("/api/v1/trusted_publishing/tokens"))
        .header("Authorization", &token)
        .send()
        .await?;
    assert_eq!(revoked.status(), 204);
    std::fs::write(
        pkg.join("Cargo.toml"),
        "[package]\nname = \"tp-e2e\"\nversion = \"0.3.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"published by CI\"\n",
    )?;
    let (ok, _, stderr) = cargo
        .run(&pkg, &["publish", "--registry", "wharf", "--no-verify"])
        .await?;
    assert!(!ok, "a revoked token cannot publish");
    assert!(stderr.contains("invalid, revoked or expired"), "{stderr}");
    Ok(())
}
