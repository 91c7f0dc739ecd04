use anyhow::Context;

use crate::support::fake_idp::{FakeIdp, Provider};
use crate::support::web_client::{WebClient, authorize_at_github, log_in, spawn_with_github};
use crate::support::{CrateBuilder, TestApp};

#[tokio::test]
async fn the_tokens_page_needs_a_login() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let page = WebClient::new(&app).get("/settings/tokens").await?;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/login?next=%2Fsettings%2Ftokens"));
    let post = WebClient::new(&app)
        .post_raw("/settings/tokens", &[("name", "x")])
        .await?;
    assert_eq!(post.status, 303, "the guard runs before anything else");
    Ok(())
}

#[tokio::test]
async fn a_new_token_is_shown_once_and_works() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let alice = log_in(&app, "alice").await?;
    let empty = alice.get("/settings/tokens").await?;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.count("#no-tokens"), 1);
    assert_eq!(
        empty.count("#create-token input[type=checkbox][name=scope]"),
        5
    );
    assert_eq!(empty.count("label[for=token-name]"), 1);

    let created = alice
        .post(
            "/settings/tokens",
            &[
                ("name", "laptop"),
                ("scope", "publish-new"),
                ("scope", "publish-update"),
                ("crates", "made-*"),
                ("expiry", "30"),
            ],
        )
        .await?;
    assert_eq!(created.status, 200);
    assert_eq!(created.headers["cache-control"], "no-store");
    let token = created.text("#new-token-value");
    assert!(token.starts_with("wharf_"), "{token}");
    assert_eq!(created.texts("#tokens .token-name"), vec!["laptop"]);
    assert_eq!(created.text("#tokens .token-status"), "active");

    app.publish_ok(&token, &CrateBuilder::new("made-here", "1.0.0"))
        .await;
    let refused = app
        .publish(&token, &CrateBuilder::new("elsewhere", "1.0.0"))
        .await;
    assert_eq!(refused.status(), 403, "crate scopes apply");

    let again = alice.get("/settings/tokens").await?;
    assert_eq!(again.count("#new-token"), 0);
    assert!(!again.body.contains(&token), "shown only once");
    Ok(())
}

#[tokio::test]
async fn a_new_token_comes_with_the_registry_entry_under_the_public_url() -> anyhow::Result<()> {
    // An instance that users reach under its public URL, not under the address it listens on
    // (a loopback name, as the fake GitHub sends browsers back to loopback only).
    let public = "http://localhost:8443";
    let github = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_login(&github)
        .github_idp(&github)
        .set("public_url", public)
        .spawn()
        .await;
    let alice = WebClient::new(&app);
    let callback = url::Url::parse(&authorize_at_github(&alice, "alice").await?)?;
    assert_eq!(callback.origin().ascii_serialization(), public);
    // GitHub sends the browser back to the public URL; the test reaches the server directly.
    let back = alice
        .get(&format!(
            "{}?{}",
            callback.path(),
            callback.query().context("the callback's code and state")?
        ))
        .await?;
    assert_eq!(back.status, 303, "{}", back.body);
    let before = alice.get("/settings/tokens").await?;
    assert_eq!(before.status, 200);
    assert_eq!(before.count(".registry-entry"), 0, "only with a new token");

    let created = alice
        .post(
            "/settings/tokens",
            &[
                ("name", "laptop"),
                ("scope", "publish-new"),
                ("expiry", "30"),
            ],
        )
        .await?;

    assert_eq!(created.status, 200);
    assert_eq!(
        created.text("#new-token .registry-entry"),
        format!("[registries.wharf] index = \"sparse+{public}/index/\"")
    );
    let steps = created.text("#new-token");
    assert!(steps.contains("$CARGO_HOME/config.toml"), "{steps}");
    assert!(steps.contains("cargo login --registry wharf"), "{steps}");
    assert!(steps.contains("cargo publish --registry wharf"), "{steps}");
    Ok(())
}

#[tokio::test]
async fn an_invalid_token_form_is_shown_again_with_its_errors() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let alice = log_in(&app, "alice").await?;
    let page = alice
        .post(
            "/settings/tokens",
            &[
                ("name", " "),
                ("crates", "bad name!"),
                ("expiry", "forever"),
            ],
        )
        .await?;
    assert_eq!(page.status, 422);
    assert!(page.text("#token-name-error").contains("name"));
    assert!(
        page.text("#token-scopes-error")
            .contains("at least one scope")
    );
    assert!(
        page.text("#token-crates-error")
            .contains("Invalid crate scope")
    );
    assert!(page.text("#token-expiry-error").contains("expiry"));
    assert_eq!(
        page.attr("#token-crates", "value").as_deref(),
        Some("bad name!")
    );
    assert_eq!(page.count("#new-token"), 0);
    assert_eq!(page.count("#tokens"), 0, "nothing was created");
    Ok(())
}

#[tokio::test]
async fn tokens_are_revoked_only_by_their_owner() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let alice = log_in(&app, "alice").await?;
    let created = alice
        .post(
            "/settings/tokens",
            &[
                ("name", "ci"),
                ("scope", "publish-new"),
                ("expiry", "never"),
            ],
        )
        .await?;
    let token = created.text("#new-token-value");
    let action = created.attr("#tokens form", "action").unwrap();

    let eve = log_in(&app, "eve").await?;
    assert_eq!(eve.post(&action, &[]).await?.status, 404);
    assert_eq!(alice.post_raw(&action, &[]).await?.status, 403, "CSRF");

    let revoked = alice.post(&action, &[]).await?;
    assert_eq!(revoked.status, 303);
    let page = alice.get("/settings/tokens").await?;
    assert_eq!(page.text("#tokens .token-status"), "revoked");
    assert!(page.text(".flash").contains("revoked"));
    let refused = app
        .publish(&token, &CrateBuilder::new("late", "1.0.0"))
        .await;
    assert_eq!(refused.status(), 403);
    Ok(())
}
