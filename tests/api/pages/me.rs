//! `/me`, where `cargo login` sends people for a token: the dashboard when logged in; for
//! anonymous visitors, the way to a token on this instance.

use crate::support::TestApp;
use crate::support::web_client::{WebClient, authorize_at_github_from, log_in, spawn_with_github};

#[tokio::test]
async fn without_github_login_me_tells_a_visitor_how_to_get_a_token() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;

    let page = WebClient::new(&app).get("/me").await?;

    assert_eq!(page.status, 200, "a page, not a redirect to a dead end");
    assert_eq!(page.text("h1"), "API tokens for cargo");
    let help = page.text("#token-help");
    for expected in [
        "no web login",
        "wharf admin user add LOGIN",
        "wharf admin token create --user LOGIN --name laptop",
        "printed alone on the last line",
        &format!("index = \"sparse+{}/index/\"", app.base_url),
        "cargo login --registry wharf",
    ] {
        assert!(help.contains(expected), "{expected}: {help}");
    }
    assert_eq!(page.count("#required-metadata"), 0, "nothing is required");
    assert_eq!(
        page.attr("main a[href='/login']", "href").as_deref(),
        Some("/login")
    );
    Ok(())
}

#[tokio::test]
async fn the_token_help_names_the_cargo_toml_keys_this_registry_requires() -> anyhow::Result<()> {
    let app = TestApp::builder()
        .set("required_metadata", "license,description")
        .spawn()
        .await;

    let page = WebClient::new(&app).get("/me").await?;

    assert_eq!(
        page.text("#token-help #required-metadata"),
        "This registry requires description, license under [package] in each crate's Cargo.toml."
    );
    Ok(())
}

#[tokio::test]
async fn without_github_login_the_login_page_says_how_to_get_a_token() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;

    let page = WebClient::new(&app).get("/login").await?;

    assert_eq!(page.status, 200);
    assert_eq!(page.count("#login-not-configured"), 1);
    let help = page.text("#token-help");
    assert!(
        help.contains("wharf admin token create --user LOGIN --name laptop"),
        "{help}"
    );
    assert!(help.contains("cargo login --registry wharf"), "{help}");
    Ok(())
}

#[tokio::test]
async fn with_github_login_an_anonymous_visitor_logs_in_and_lands_on_token_creation()
-> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let web = WebClient::new(&app);

    let me = web.get("/me").await?;
    assert_eq!(me.status, 303);
    assert_eq!(me.location(), Some("/login?next=%2Fsettings%2Ftokens"));

    let login = web.get("/login?next=%2Fsettings%2Ftokens").await?;
    assert_eq!(login.count("#token-help"), 0, "a login exists here");
    assert!(
        login.text("#login-then-tokens").contains("API tokens page"),
        "{}",
        login.body
    );
    let start = login.attr("#login-github", "href").unwrap();
    assert_eq!(start, "/login/github?next=/settings/tokens");
    let callback = authorize_at_github_from(&web, &start, "alice").await?;
    let back = web.get(&callback).await?;
    assert_eq!(back.status, 303);
    assert_eq!(back.location(), Some("/settings/tokens"));

    let tokens = web.get("/settings/tokens").await?;
    assert_eq!(tokens.status, 200);
    assert_eq!(tokens.count("form#create-token"), 1);
    Ok(())
}

#[tokio::test]
async fn a_logged_in_user_finds_token_creation_first_on_me() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let web = log_in(&app, "alice").await?;

    let me = web.get("/me").await?;

    assert_eq!(me.status, 200);
    assert_eq!(me.text("h1"), "alice");
    assert_eq!(
        me.texts("main h2").first().map(String::as_str),
        Some("A token for cargo"),
        "the first section"
    );
    assert_eq!(
        me.attr("#cargo-token a.button", "href").as_deref(),
        Some("/settings/tokens#create-heading")
    );
    assert_eq!(me.text("#cargo-token a.button"), "Create an API token");
    assert_eq!(me.count("#token-help"), 0);
    Ok(())
}
