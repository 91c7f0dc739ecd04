//! Sessions are kept on the server: logging out (here or everywhere) and the end of a
//! session's lifetime make a copied session cookie worthless.

use reqwest::Method;

use crate::support::fake_idp::{FakeIdp, Provider};
use crate::support::web_client::{WebClient, log_in, spawn_with_github};
use crate::support::{CrateBuilder, TestApp};

fn api_tokens_of(app: &TestApp, login: &str) -> anyhow::Result<usize> {
    let login = login.to_owned();
    let user = app
        .app
        .db
        .blocking(move |conn| Ok(wharf::models::User::by_login(conn, &login)?))?
        .expect("the user exists");
    Ok(app
        .app
        .db
        .blocking(move |conn| Ok(wharf::models::ApiToken::for_user(conn, user.id)?))?
        .len())
}

/// Asserts that `web`'s session cookie (sent unchanged every time, as a copy would be) is
/// treated as anonymous everywhere a session is trusted: pages, forms and the JSON API with
/// the CSRF header.
async fn assert_session_is_dead(
    app: &TestApp,
    web: &WebClient,
    csrf: &str,
    login: &str,
) -> anyhow::Result<()> {
    let web = &web.copy();
    let tokens_before = api_tokens_of(app, login)?;
    let page = web.get("/settings/tokens").await?;
    assert_eq!(
        page.status, 303,
        "the tokens page is refused: {}",
        page.body
    );
    assert_eq!(page.location(), Some("/login?next=%2Fsettings%2Ftokens"));
    let me = web.get("/me").await?;
    assert_eq!(me.status, 303);

    let created = web
        .post_raw(
            "/settings/tokens",
            &[
                ("csrf_token", csrf),
                ("name", "stolen"),
                ("scope", "publish-update"),
                ("expiry", "30"),
            ],
        )
        .await?;
    assert!(
        created.status == 303 || created.status == 403,
        "creating a token is refused: {} {}",
        created.status,
        created.body
    );
    assert_eq!(
        api_tokens_of(app, login)?,
        tokens_before,
        "no token was minted"
    );

    let listed = web
        .api(
            Method::GET,
            "/api/v1/trusted_publishing/github_configs?crate=kept",
        )
        .header("X-CSRF-Token", csrf)
        .send()
        .await?;
    assert_eq!(listed.status(), 403, "the JSON API refuses the session");
    let patched = web
        .api(Method::PATCH, "/api/v1/crates/kept")
        .header("X-CSRF-Token", csrf)
        .json(&serde_json::json!({ "crate": { "trustpub_only": true } }))
        .send()
        .await?;
    assert_eq!(patched.status(), 403, "the JSON API refuses the session");
    let (_, info) = app.get_json("/api/v1/crates/kept").await;
    assert_eq!(info["crate"]["trustpub_only"], false);
    Ok(())
}

#[tokio::test]
async fn a_cookie_copied_before_logout_stops_working() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("kept", "1.0.0"))
        .await;
    let alice = log_in(&app, "alice").await?;
    let csrf = alice.csrf_token().await?;
    let thief = alice.copy();

    // Before the logout the copy works like the original: that is what a session cookie is.
    assert_eq!(thief.get("/settings/tokens").await?.status, 200);
    let listed = thief
        .api(
            Method::GET,
            "/api/v1/trusted_publishing/github_configs?crate=kept",
        )
        .header("X-CSRF-Token", &csrf)
        .send()
        .await?;
    assert_eq!(listed.status(), 200);

    let out = alice.post("/logout", &[]).await?;
    assert_eq!(out.status, 303);
    assert_eq!(alice.cookie(), None, "the browser's cookie is removed");

    assert_session_is_dead(&app, &thief, &csrf, "alice").await?;
    Ok(())
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_session_of_that_user_only() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("kept", "1.0.0"))
        .await;
    let laptop = log_in(&app, "alice").await?;
    let phone = log_in(&app, "alice").await?;
    let phone_csrf = phone.csrf_token().await?;

    let bob = log_in(&app, "bob").await?;

    let me = laptop.get("/me").await?;
    let action = me
        .attr("form#logout-everywhere", "action")
        .expect("/me has a form to log out everywhere");
    assert_eq!(me.count("form#logout-everywhere input[name=csrf_token]"), 1);
    assert!(
        me.text("#sessions").contains('2'),
        "/me counts the open sessions: {}",
        me.text("#sessions")
    );

    let refused = laptop.post_raw(&action, &[]).await?;
    assert_eq!(refused.status, 403, "the form needs the CSRF token");
    assert_eq!(phone.get("/me").await?.status, 200);

    let done = laptop.post(&action, &[]).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    let landed = laptop.get(done.location().unwrap_or("/")).await?;
    assert!(
        landed.text(".flash").contains("Logged out"),
        "{}",
        landed.text(".flash")
    );
    assert_eq!(landed.count("#nav-login"), 1, "this browser is logged out");
    assert_eq!(laptop.get("/me").await?.status, 303);
    assert_session_is_dead(&app, &phone, &phone_csrf, "alice").await?;

    let bobs = bob.get("/me").await?;
    assert_eq!(bobs.status, 200, "another user's session is untouched");
    assert_eq!(bobs.text("h1"), "bob");

    // A new login works as before.
    let again = log_in(&app, "alice").await?;
    assert_eq!(again.get("/settings/tokens").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn a_session_past_its_lifetime_is_refused_and_cleaned_up() -> anyhow::Result<()> {
    let github = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_login(&github)
        .set("session_ttl", "2s")
        .spawn()
        .await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("kept", "1.0.0"))
        .await;
    let alice = log_in(&app, "alice").await?;
    let csrf = alice.csrf_token().await?;
    assert_eq!(alice.get("/settings/tokens").await?.status, 200);

    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_session_is_dead(&app, &alice, &csrf, "alice").await?;

    let removed = app.app.db.blocking(|conn| {
        Ok(wharf::models::session::clean_up(
            conn,
            wharf::models::now(),
        )?)
    })?;
    assert_eq!(removed, 1, "the expired session is deleted by the clean-up");
    Ok(())
}

#[tokio::test]
async fn logging_out_on_one_instance_ends_the_session_on_every_instance() -> anyhow::Result<()> {
    let key = "ab".repeat(64);
    let github = FakeIdp::start(Provider::GitHub);
    let first = TestApp::builder()
        .github_login(&github)
        .set("session_key", key.clone())
        .spawn()
        .await;
    let second = TestApp::builder()
        .sharing_database_with(&first)
        .set("session_key", key)
        .spawn()
        .await;
    let alice = log_in(&first, "alice").await?;
    let on_second = alice.copy_to(&second.base_url);
    let me = on_second.get("/me").await?;
    assert_eq!(me.status, 200, "the other instance knows the session");
    assert_eq!(me.text("h1"), "alice");

    assert_eq!(alice.post("/logout", &[]).await?.status, 303);
    // (The second instance has no GitHub login, so its `/me` would explain how to get a token
    // instead of redirecting: ask a page behind the login guard.)
    let me = on_second.get("/settings/tokens").await?;
    assert_eq!(
        me.status, 303,
        "the other instance refuses it after the logout"
    );
    Ok(())
}
