use anyhow::Context;
use reqwest::Method;

use crate::support::TestApp;
use crate::support::fake_idp::{FakeIdp, Provider};
use crate::support::web_client::{WebClient, authorize_at_github, log_in, spawn_with_github};

#[tokio::test]
async fn the_login_page_explains_how_to_turn_github_login_on() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let page = WebClient::new(&app).get("/login").await?;
    assert_eq!(page.status, 200);
    let help = page.text("#login-not-configured");
    assert!(help.contains("WHARF_GITHUB_CLIENT_ID"), "{help}");
    assert!(help.contains("/login/github/callback"), "{help}");
    assert!(help.contains("wharf dev"), "{help}");
    assert_eq!(page.count("#login-github"), 0);
    Ok(())
}

#[tokio::test]
async fn logging_in_through_github_creates_the_user_and_renews_the_session() -> anyhow::Result<()> {
    let (app, github) = spawn_with_github().await?;
    let web = WebClient::new(&app);
    let login_page = web.get("/login").await?;
    assert_eq!(
        login_page.attr("#login-github", "href").as_deref(),
        Some("/login/github?next=/me")
    );

    let callback = authorize_at_github(&web, "alice").await?;
    let before = web.cookie();
    assert!(before.is_some(), "the pending login is in the session");
    let back = web.get(&callback).await?;
    assert_eq!(back.status, 303, "{}", back.body);
    assert_eq!(back.location(), Some("/me"));
    assert_ne!(web.cookie(), before, "the session is renewed at login");

    let me = web.get("/me").await?;
    assert_eq!(me.status, 200);
    assert_eq!(me.text("h1"), "alice");
    assert_eq!(me.text(".flash"), "Logged in as alice.");
    assert_eq!(me.text("#nav-me"), "alice");

    let user = app
        .app
        .db
        .blocking(|conn| Ok(wharf::models::User::by_login(conn, "alice")?))?
        .unwrap();
    assert_eq!(user.github_id, github.account_id("alice"));
    assert!(user.github_id.is_some());
    assert_eq!(user.email.as_deref(), Some("alice@users.noreply.example"));
    assert!(
        !me.body.contains("alice@users.noreply.example"),
        "emails are never rendered"
    );
    Ok(())
}

#[tokio::test]
async fn a_user_created_by_an_operator_is_matched_by_login_then_by_github_id() -> anyhow::Result<()>
{
    let (app, github) = spawn_with_github().await?;
    let bob = app.user("bob");
    assert_eq!(bob.github_id, None);
    log_in(&app, "bob").await?;
    let found = app
        .app
        .db
        .blocking(|conn| Ok(wharf::models::User::by_login(conn, "bob")?))?
        .unwrap();
    assert_eq!(found.id, bob.id);
    let bob_id = github.account_id("bob").context("bob has signed up")?;
    assert_eq!(found.github_id, Some(bob_id));

    // A renamed GitHub account keeps its Wharf user, found by its id.
    github.set_account("bobby", bob_id);
    log_in(&app, "bobby").await?;
    let renamed = app
        .app
        .db
        .blocking(|conn| Ok(wharf::models::User::by_id(conn, bob.id)?))?;
    assert_eq!(renamed.login, "bobby");
    Ok(())
}

#[tokio::test]
async fn a_callback_whose_state_differs_is_refused() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let web = WebClient::new(&app);
    let callback = authorize_at_github(&web, "mallory").await?;
    let mut url = url::Url::parse(&callback)?;
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    url.query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", "forged");
    let page = web.get(url.as_str()).await?;
    assert_eq!(page.status, 400);
    assert!(page.text(".error-detail").contains("state does not match"));
    assert_eq!(web.get("/me").await?.status, 303, "not logged in");

    // Without the pending login in the session (another browser), the callback is refused too.
    let other = WebClient::new(&app);
    assert_eq!(other.get(&callback).await?.status, 400);
    Ok(())
}

#[tokio::test]
async fn logging_out_needs_the_csrf_token_and_ends_the_session() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let web = log_in(&app, "alice").await?;
    let refused = web.post_raw("/logout", &[]).await?;
    assert_eq!(refused.status, 403);
    assert!(refused.text(".error-detail").contains("CSRF"));
    assert_eq!(web.get("/me").await?.status, 200, "still logged in");

    let out = web.post("/logout", &[]).await?;
    assert_eq!(out.status, 303);
    let me = web.get("/me").await?;
    assert_eq!(me.status, 303);
    assert_eq!(
        me.location(),
        Some("/login?next=%2Fsettings%2Ftokens"),
        "an anonymous /me logs in towards token creation"
    );
    Ok(())
}

#[tokio::test]
async fn responses_carry_security_headers_and_session_cookies_are_protected() -> anyhow::Result<()>
{
    let (app, _github) = spawn_with_github().await?;
    let web = WebClient::new(&app);
    let home = web.get("/").await?;
    let csp = home.headers["content-security-policy"].to_str()?;
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        !csp.contains("script-src"),
        "no script source at all: {csp}"
    );
    assert_eq!(home.headers["x-content-type-options"], "nosniff");
    assert_eq!(home.headers["referrer-policy"], "same-origin");
    assert_eq!(home.count("script"), 0);

    let start = web.get("/login/github").await?;
    let cookie = start.headers["set-cookie"].to_str()?;
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http here: {cookie}");

    let https = TestApp::builder()
        .set("public_url", "https://crates.example.com")
        .set("github_client_id", "id")
        .set("github_client_secret", "secret")
        .spawn()
        .await;
    let start = WebClient::new(&https).get("/login/github").await?;
    let cookie = start.headers["set-cookie"].to_str()?;
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(!start.body.contains("secret"));
    Ok(())
}

#[tokio::test]
async fn the_api_accepts_a_session_only_with_the_csrf_header() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let web = log_in(&app, "alice").await?;
    let token = app.token("alice");
    app.publish_ok(
        &token,
        &crate::support::CrateBuilder::new("sessioned", "1.0.0"),
    )
    .await;
    let path = "/api/v1/trusted_publishing/github_configs?crate=sessioned";

    let cookie_only = web.api(Method::GET, path).send().await?;
    assert_eq!(cookie_only.status(), 403, "a cookie alone is not enough");

    let wrong = web
        .api(Method::GET, path)
        .header("X-CSRF-Token", "wrong")
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);

    let csrf = web.csrf_token().await?;
    let ok = web
        .api(Method::GET, path)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await?;
    assert_eq!(ok.status(), 200);

    let patched = web
        .api(Method::PATCH, "/api/v1/crates/sessioned")
        .header("X-CSRF-Token", &csrf)
        .json(&serde_json::json!({ "crate": { "trustpub_only": true } }))
        .send()
        .await?;
    assert_eq!(patched.status(), 200);

    // Another user's session cannot manage the crate.
    let eve = log_in(&app, "eve").await?;
    let csrf = eve.csrf_token().await?;
    let refused = eve
        .api(Method::GET, path)
        .header("X-CSRF-Token", &csrf)
        .send()
        .await?;
    assert_eq!(refused.status(), 403);
    Ok(())
}

/// A registry whose logins are limited to the GitHub organisations `acme` and `acme-labs`.
async fn spawn_with_allowed_orgs() -> anyhow::Result<(TestApp, FakeIdp)> {
    let github = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_login(&github)
        .github_idp(&github)
        .set("github_allowed_orgs", "acme,acme-labs")
        .spawn()
        .await;
    Ok((app, github))
}

fn users(app: &TestApp) -> anyhow::Result<Vec<String>> {
    app.app.db.blocking(|conn| {
        use diesel::prelude::*;
        Ok(wharf::schema::users::table
            .select(wharf::schema::users::login)
            .order(wharf::schema::users::login)
            .load::<String>(conn)?)
    })
}

#[tokio::test]
async fn only_active_members_of_the_allowed_orgs_log_in_and_a_refusal_creates_no_user()
-> anyhow::Result<()> {
    let (app, github) = spawn_with_allowed_orgs().await?;
    github.set_org_membership("acme-labs", "member", Some("active"));
    github.set_org_membership("acme", "invited", Some("pending"));
    github.set_org_membership("other-org", "outsider", Some("active"));

    // The OAuth request asks for `read:org`, which the membership look-up needs.
    let web = WebClient::new(&app);
    let start = web.get("/login/github?next=/me").await?;
    let authorize = url::Url::parse(start.location().context("a redirect to GitHub")?)?;
    let scope = authorize
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert!(scope.split(' ').any(|s| s == "read:org"), "{scope}");

    let member = log_in(&app, "member").await?;
    assert_eq!(member.get("/me").await?.status, 200);

    for (login, expected) in [
        ("outsider", "Ask an owner of the organisation to add you"),
        ("invited", "Your invitation to acme is still pending"),
    ] {
        let web = WebClient::new(&app);
        let callback = authorize_at_github(&web, login).await?;
        let refused = web.get(&callback).await?;
        assert_eq!(refused.status, 403, "{login}: {}", refused.body);
        let text = refused.text("main");
        assert!(
            text.contains("active members of the GitHub organisations acme, acme-labs"),
            "{text}"
        );
        assert!(text.contains("the account you signed in with"), "{text}");
        assert!(text.contains(expected), "{text}");
        assert_eq!(
            web.get("/me").await?.status,
            303,
            "{login} is not logged in"
        );
    }
    assert_eq!(users(&app)?, ["member"], "a refused login creates no user");

    // Checked at every login: a member who left is refused the next time.
    github.set_org_membership("acme-labs", "member", None);
    let web = WebClient::new(&app);
    let callback = authorize_at_github(&web, "member").await?;
    assert_eq!(web.get(&callback).await?.status, 403);
    Ok(())
}

#[tokio::test]
async fn without_allowed_orgs_the_login_asks_no_org_scope() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let web = WebClient::new(&app);
    let start = web.get("/login/github?next=/me").await?;
    let authorize = url::Url::parse(start.location().context("a redirect to GitHub")?)?;
    let scope = authorize
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert!(!scope.contains("org"), "{scope}");
    assert!(scope.contains("read:user"), "{scope}");
    Ok(())
}

#[tokio::test]
async fn a_github_that_does_not_answer_the_checks_refuses_the_login() -> anyhow::Result<()> {
    let (app, github) = spawn_with_allowed_orgs().await?;
    github.set_org_membership("acme", "member", Some("active"));
    let web = WebClient::new(&app);
    let callback = authorize_at_github(&web, "member").await?;
    github.set_down(true);
    let refused = web.get(&callback).await?;
    github.set_down(false);
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(users(&app)?.is_empty());
    Ok(())
}
