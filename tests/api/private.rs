//! A private registry (`WHARF_AUTH_REQUIRED=true`): what stays open, what needs a credential,
//! which credentials read, and how fast a revoked token stops reading, on one instance and on
//! another sharing the database.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::api_reference::router_routes;
use crate::credential_provider::provider_binary;
use crate::e2e_cargo::{Cargo, write_package};
use crate::support::fake_idp::{FakeIdp, Provider};
use crate::support::web_client::{WebClient, log_in};
use crate::support::{CrateBuilder, TestApp, detail, index_path};

pub async fn spawn_private() -> TestApp {
    TestApp::builder()
        .set("auth_required", "true")
        .spawn()
        .await
}

/// `GET path` with an optional `Authorization`, redirects not followed.
async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let request = client.get(app.url(path));
    let request = match token {
        Some(token) => request.header("Authorization", token),
        None => request,
    };
    request.send().await.expect("send")
}

/// Asserts the 401 cargo understands: the error shape and the `Cargo` challenge.
async fn assert_challenged(app: &TestApp, response: reqwest::Response, what: &str) -> String {
    assert_eq!(response.status(), 401, "{what}");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        challenge.as_deref(),
        Some(format!("Cargo login_url=\"{}/settings/tokens\"", app.base_url).as_str()),
        "{what}"
    );
    let body: Value = response.json().await.expect("a JSON error");
    let detail = detail(&body).to_owned();
    assert!(detail.contains("private"), "{what}: {detail}");
    detail
}

#[tokio::test]
async fn anonymous_reads_get_cargos_challenge_and_any_token_reads() -> anyhow::Result<()> {
    let app = spawn_private().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("secret-sauce", "1.0.0"))
        .await;
    // A token of another user with one narrow scope still reads.
    let reader = app.token_with("bob", &["yank"], &["nothing-*"]);

    let (status, config) = app.get_json("/index/config.json").await;
    assert_eq!(status, 200);
    assert_eq!(config["auth-required"], true);

    // Cargo itself probing without a token is told how to log in (RFC 3139); with one it reads.
    let probe = |token: Option<&str>| {
        let request = app
            .client
            .get(app.url("/index/config.json"))
            .header("cargo-protocol", "version=1");
        match token {
            Some(token) => request.header("Authorization", token.to_owned()),
            None => request,
        }
    };
    assert_challenged(&app, probe(None).send().await?, "cargo's probe").await;
    assert_eq!(probe(Some(&owner)).send().await?.status(), 200);

    let index = format!("/index/{}", index_path("secret-sauce"));
    let download = "/api/v1/crates/secret-sauce/1.0.0/download";
    for path in [
        index.as_str(),
        "/index/no/ne/nonexistent",
        download,
        "/api/v1/crates?q=secret",
        "/api/v1/crates/secret-sauce",
        "/api/v1/crates/secret-sauce/owners",
        "/api/v1/no/such/call",
    ] {
        assert_challenged(&app, get(&app, path, None).await, path).await;
        let detail = assert_challenged(
            &app,
            get(&app, path, Some("wharf_not_a_real_token")).await,
            path,
        )
        .await;
        assert!(detail.contains("invalid, revoked or expired"), "{detail}");
    }
    for token in [&owner, &reader] {
        let response = get(&app, &index, Some(token)).await;
        assert_eq!(response.status(), 200);
        assert!(response.text().await?.contains("\"secret-sauce\""));
        assert_eq!(get(&app, download, Some(token)).await.status(), 200);
        assert_eq!(
            get(&app, "/api/v1/crates/secret-sauce", Some(token))
                .await
                .status(),
            200
        );
        assert_eq!(
            get(&app, "/index/no/ne/nonexistent", Some(token))
                .await
                .status(),
            404
        );
    }
    // `Bearer` works as everywhere else.
    assert_eq!(
        get(&app, &index, Some(&format!("Bearer {reader}")))
            .await
            .status(),
        200
    );

    // Open: probing, logging in, config.json, the exchange (its ID token is the credential).
    for path in ["/health", "/ready", "/login", "/static/wharf.css"] {
        assert_eq!(get(&app, path, None).await.status(), 200, "{path}");
    }
    let (status, body) = app.exchange("not.a.jwt").await;
    assert_eq!(status, 400, "the exchange judges the ID token: {body}");

    // Pages send anonymous visitors to log in, and back.
    for (path, next) in [
        ("/", "%2F"),
        ("/crates/secret-sauce", "%2Fcrates%2Fsecret-sauce"),
        ("/search?q=x", "%2Fsearch%3Fq%3Dx"),
        ("/me", "%2Fme"),
    ] {
        let response = get(&app, path, None).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(
            response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok()),
            Some(format!("/login?next={next}").as_str()),
            "{path}"
        );
    }
    // A token is not a login for pages.
    assert_eq!(get(&app, "/", Some(&owner)).await.status(), 303);
    Ok(())
}

#[tokio::test]
async fn an_open_registry_says_so_and_reads_anonymously() {
    let app = TestApp::spawn().await;
    let (status, config) = app.get_json("/index/config.json").await;
    assert_eq!(status, 200);
    assert_eq!(config["auth-required"], false);
    assert_eq!(get(&app, "/", None).await.status(), 200);
}

#[tokio::test]
async fn a_logged_in_browser_reads_pages_and_downloads() -> anyhow::Result<()> {
    let github = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_login(&github)
        .github_idp(&github)
        .set("auth_required", "true")
        .spawn()
        .await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("inside", "0.1.0"))
        .await;
    let web = log_in(&app, "carol").await?;
    assert_eq!(web.get("/").await?.status, 200);
    assert_eq!(web.get("/crates/inside").await?.status, 200);
    let download = web
        .api(reqwest::Method::GET, "/api/v1/crates/inside/0.1.0/download")
        .send()
        .await?;
    assert_eq!(download.status(), 200);
    // After logging out, the copied cookie reads nothing.
    let copy = web.copy();
    let csrf = web.csrf_token().await?;
    web.post_raw("/logout", &[("csrf_token", csrf.as_str())])
        .await?;
    assert_eq!(copy.get("/crates/inside").await?.status, 303);
    let download = copy
        .api(reqwest::Method::GET, "/api/v1/crates/inside/0.1.0/download")
        .send()
        .await?;
    assert_eq!(download.status(), 401);
    Ok(())
}

/// One row per route of `src/router.rs`: its scope and pattern as written there, the method, a
/// concrete path, and what an anonymous request gets from a private registry.
struct Route {
    scope: &'static str,
    pattern: &'static str,
    method: reqwest::Method,
    path: &'static str,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Allow-listed: the handler answers (anything but the guard's refusals).
    Open,
    /// 401 with the `Cargo` challenge.
    Challenge,
    /// 303 to `/login`.
    Login,
}

#[tokio::test]
async fn the_guard_covers_every_route_of_the_router() -> anyhow::Result<()> {
    use Expect::{Challenge, Login, Open};
    use reqwest::Method as M;
    let app = spawn_private().await;
    let api = "/api/v1";
    let r = |scope, pattern, method, path, expect| Route {
        scope,
        pattern,
        method,
        path,
        expect,
    };
    let routes = vec![
        r("", "/health", M::GET, "/health", Open),
        r("", "/ready", M::GET, "/ready", Open),
        r("/index", "/config.json", M::GET, "/index/config.json", Open),
        r("/index", "/{path:.+}", M::GET, "/index/3/a/abc", Challenge),
        r(api, "/crates", M::GET, "/api/v1/crates?q=a", Challenge),
        r(api, "/crates/new", M::PUT, "/api/v1/crates/new", Challenge),
        r(
            api,
            "/crates/{name}",
            M::GET,
            "/api/v1/crates/abc",
            Challenge,
        ),
        r(
            api,
            "/crates/{name}",
            M::PATCH,
            "/api/v1/crates/abc",
            Challenge,
        ),
        r(
            api,
            "/crates/{name}/owners",
            M::GET,
            "/api/v1/crates/abc/owners",
            Challenge,
        ),
        r(
            api,
            "/crates/{name}/owners",
            M::PUT,
            "/api/v1/crates/abc/owners",
            Challenge,
        ),
        r(
            api,
            "/crates/{name}/owners",
            M::DELETE,
            "/api/v1/crates/abc/owners",
            Challenge,
        ),
        r(
            api,
            "/crates/{name}/{version}/download",
            M::GET,
            "/api/v1/crates/abc/1.0.0/download",
            Challenge,
        ),
        r(
            api,
            "/crates/{name}/{version}/yank",
            M::DELETE,
            "/api/v1/crates/abc/1.0.0/yank",
            Challenge,
        ),
        r(
            api,
            "/crates/{name}/{version}/unyank",
            M::PUT,
            "/api/v1/crates/abc/1.0.0/unyank",
            Challenge,
        ),
        r(
            api,
            "/trusted_publishing/tokens",
            M::POST,
            "/api/v1/trusted_publishing/tokens",
            Open,
        ),
        r(
            api,
            "/trusted_publishing/tokens",
            M::PUT,
            "/api/v1/trusted_publishing/tokens",
            Open,
        ),
        r(
            api,
            "/trusted_publishing/tokens",
            M::DELETE,
            "/api/v1/trusted_publishing/tokens",
            Open,
        ),
        r(
            api,
            "/trusted_publishing/{kind}_configs",
            M::GET,
            "/api/v1/trusted_publishing/github_configs?crate=abc",
            Challenge,
        ),
        r(
            api,
            "/trusted_publishing/{kind}_configs",
            M::POST,
            "/api/v1/trusted_publishing/github_configs",
            Challenge,
        ),
        r(
            api,
            "/trusted_publishing/{kind}_configs/{id}",
            M::DELETE,
            "/api/v1/trusted_publishing/github_configs/1",
            Challenge,
        ),
        r("", "/", M::GET, "/", Login),
        r("", "/search", M::GET, "/search?q=a", Login),
        r("", "/static/wharf.css", M::GET, "/static/wharf.css", Open),
        r("", "/login", M::GET, "/login", Open),
        r("", "/login/github", M::GET, "/login/github", Open),
        r(
            "",
            "/login/github/callback",
            M::GET,
            "/login/github/callback",
            Open,
        ),
        r("", "/logout", M::POST, "/logout", Login),
        r("", "/me", M::GET, "/me", Login),
        r(
            "/me",
            "/logout-everywhere",
            M::POST,
            "/me/logout-everywhere",
            Login,
        ),
        r("/settings", "/tokens", M::GET, "/settings/tokens", Login),
        r("/settings", "/tokens", M::POST, "/settings/tokens", Login),
        r(
            "/settings",
            "/pending-publishers",
            M::GET,
            "/settings/pending-publishers",
            Login,
        ),
        r(
            "/settings",
            "/pending-publishers/{id}/remove",
            M::POST,
            "/settings/pending-publishers/1/remove",
            Login,
        ),
        r(
            "/settings",
            "/pending-publishers/{kind}",
            M::POST,
            "/settings/pending-publishers/github",
            Login,
        ),
        r(
            "/settings",
            "/tokens/{id}/revoke",
            M::POST,
            "/settings/tokens/1/revoke",
            Login,
        ),
        r("", "/crates/{name}", M::GET, "/crates/abc", Login),
        r(
            "",
            "/crates/{name}/history",
            M::GET,
            "/crates/abc/history",
            Login,
        ),
        r("", "/users/{login}", M::GET, "/users/alice", Login),
        r(
            "/crates/{name}/settings",
            "",
            M::GET,
            "/crates/abc/settings",
            Login,
        ),
        r(
            "/crates/{name}/settings",
            "/trustpub-only",
            M::POST,
            "/crates/abc/settings/trustpub-only",
            Login,
        ),
        r(
            "/crates/{name}/settings",
            "/{kind}/{id}/remove",
            M::GET,
            "/crates/abc/settings/github/1/remove",
            Login,
        ),
        r(
            "/crates/{name}/settings",
            "/{kind}/{id}/remove",
            M::POST,
            "/crates/abc/settings/github/1/remove",
            Login,
        ),
        r(
            "/crates/{name}/settings",
            "/tokens/{id}/revoke",
            M::POST,
            "/crates/abc/settings/tokens/1/revoke",
            Login,
        ),
        r(
            "/crates/{name}/settings",
            "/owners",
            M::POST,
            "/crates/abc/settings/owners",
            Login,
        ),
        r(
            "/crates/{name}/settings",
            "/owners/remove",
            M::POST,
            "/crates/abc/settings/owners/remove",
            Login,
        ),
        r(
            "/crates/{name}/settings",
            "/{kind}",
            M::POST,
            "/crates/abc/settings/github",
            Login,
        ),
    ];

    // The table is exactly the router's routes: a new route must be added here, and say
    // whether it is open.
    let router = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/router.rs"))?;
    let declared: BTreeSet<(String, String)> = router_routes(&router).into_iter().collect();
    let covered: BTreeSet<(String, String)> = routes
        .iter()
        .map(|r| {
            let path = format!("{}{}", r.scope, r.pattern).replace("{path:.+}", "{path}");
            (r.method.as_str().to_owned(), path)
        })
        .collect();
    assert_eq!(covered.len(), routes.len(), "a route is listed twice");
    let missing: Vec<_> = declared.difference(&covered).collect();
    let unknown: Vec<_> = covered.difference(&declared).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "the guard table and src/router.rs differ: add a row (Open only if it must be) for {missing:?}; remove {unknown:?}"
    );
    // The allow-list is exactly the open rows (and the unknown paths are private).
    let open: BTreeSet<_> = routes
        .iter()
        .filter(|r| r.expect == Open)
        .map(|r| {
            (
                r.method.as_str().to_owned(),
                r.path.split('?').next().unwrap_or_default(),
            )
        })
        .collect();
    for route in &routes {
        let method = actix_web::http::Method::from_bytes(route.method.as_str().as_bytes())?;
        let path = route.path.split('?').next().unwrap_or_default();
        assert_eq!(
            wharf::private::open_route(&method, path),
            open.contains(&(route.method.as_str().to_owned(), path)),
            "{} {path}",
            route.method
        );
    }

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut requests: Vec<(reqwest::Method, &str, Expect)> = routes
        .iter()
        .map(|r| (r.method.clone(), r.path, r.expect))
        .collect();
    requests.push((M::GET, "/api/v1/no/such/call", Challenge));
    requests.push((M::GET, "/no/such/page", Login));
    requests.push((M::HEAD, "/index/3/a/abc", Challenge));
    requests.push((M::HEAD, "/", Login));
    for (method, path, expect) in requests {
        let response = client
            .request(method.clone(), app.url(path))
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let challenged = response.headers().contains_key("www-authenticate");
        let label = format!("{method} {path}: {status} {location}");
        match expect {
            Challenge => {
                assert_eq!(status, 401, "{label}");
                assert!(challenged, "{label}");
            }
            Login => {
                assert_eq!(status, 303, "{label}");
                assert!(location.starts_with("/login?next="), "{label}");
            }
            Open => {
                assert_ne!(status, 401, "{label}");
                assert!(!challenged, "{label}");
                assert!(!location.starts_with("/login?"), "{label}");
            }
        }
    }
    Ok(())
}

/// Revokes `token` (of `login`) through the token settings page.
async fn revoke_in_settings(app: &TestApp, web: &WebClient, login: &str) -> anyhow::Result<()> {
    let login = login.to_owned();
    let id = app.app.db.blocking(move |conn| {
        let user = wharf::models::User::by_login(conn, &login)?
            .ok_or_else(|| wharf::errors::not_found("the user"))?;
        let tokens = wharf::models::ApiToken::for_user(conn, user.id)?;
        Ok(tokens
            .first()
            .ok_or_else(|| wharf::errors::not_found("a token"))?
            .id)
    })?;
    let page = web
        .post(&format!("/settings/tokens/{id}/revoke"), &[])
        .await?;
    anyhow::ensure!(page.status == 303, "revoke: {} {}", page.status, page.body);
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_stops_reading_at_once_here_and_within_seconds_on_another_instance()
-> anyhow::Result<()> {
    let github = FakeIdp::start(Provider::GitHub);
    let first = TestApp::builder()
        .github_login(&github)
        .github_idp(&github)
        .set("auth_required", "true")
        .spawn()
        .await;
    let second = TestApp::builder()
        .sharing_database_with(&first)
        .set("auth_required", "true")
        .spawn()
        .await;
    let token = first.token("alice");
    first
        .publish_ok(&token, &CrateBuilder::new("two-sides", "1.0.0"))
        .await;
    let index = format!("/index/{}", index_path("two-sides"));
    // Both instances have the token in their caches now.
    for app in [&first, &second] {
        for _ in 0..3 {
            assert_eq!(get(app, &index, Some(&token)).await.status(), 200);
        }
    }
    assert!(!first.app.token_cache.is_empty());
    assert!(!second.app.token_cache.is_empty());

    let web = log_in(&first, "alice").await?;
    revoke_in_settings(&first, &web, "alice").await?;
    let revoked_at = Instant::now();
    assert_challenged(
        &first,
        get(&first, &index, Some(&token)).await,
        "revoking instance",
    )
    .await;
    loop {
        let status = get(&second, &index, Some(&token)).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_millis(5_500),
            "the other instance still reads with a token revoked {:?} ago",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn an_exchanged_token_reads_until_it_is_revoked() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_idp(&idp)
        .set("auth_required", "true")
        .spawn()
        .await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("tp-reader", "1.0.0"))
        .await;
    app.publish_ok(&owner, &CrateBuilder::new("tp-other", "1.0.0"))
        .await;
    app.add_github_config(&owner, "tp-reader", None).await;
    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 200, "{body}");
    let tp = body["token"].as_str().context("a token")?.to_owned();

    // It reads everything a reader may (the verification build resolves any dependency).
    for name in ["tp-reader", "tp-other"] {
        let index = format!("/index/{}", index_path(name));
        assert_eq!(get(&app, &index, Some(&tp)).await.status(), 200);
        let download = format!("/api/v1/crates/{name}/1.0.0/download");
        assert_eq!(get(&app, &download, Some(&tp)).await.status(), 200);
    }
    // Still only publishes: yanking is refused as before.
    let yank = app
        .client
        .delete(app.url("/api/v1/crates/tp-reader/1.0.0/yank"))
        .header("Authorization", &tp)
        .send()
        .await?;
    assert_eq!(yank.status(), 403);

    let revoke = app
        .client
        .delete(app.url("/api/v1/trusted_publishing/tokens"))
        .header("Authorization", &tp)
        .send()
        .await?;
    assert_eq!(revoke.status(), 204);
    let index = format!("/index/{}", index_path("tp-reader"));
    assert_challenged(&app, get(&app, &index, Some(&tp)).await, "revoked").await;
    Ok(())
}

#[tokio::test]
async fn a_token_exchanged_through_a_pending_publisher_reads_and_creates_its_crate()
-> anyhow::Result<()> {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_idp(&idp)
        .set("auth_required", "true")
        .spawn()
        .await;
    let bob = app.token("bob");
    app.publish_ok(&bob, &CrateBuilder::new("private-dep", "1.0.0"))
        .await;
    let alice = app.token("alice");
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&alice),
            &json!({ "github_config": {
                "crate": "brand-new",
                "repository_owner": crate::support::fake_idp::GITHUB_OWNER,
                "repository_name": crate::support::fake_idp::GITHUB_REPO,
                "workflow_filename": crate::support::fake_idp::GITHUB_WORKFLOW,
            }}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["github_config"]["pending"], true);

    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 200, "{body}");
    let tp = body["token"].as_str().context("a token")?.to_owned();

    // The verification build of the first publish resolves the crate's private dependencies.
    let index = format!("/index/{}", index_path("private-dep"));
    assert_eq!(get(&app, &index, Some(&tp)).await.status(), 200);
    let download = "/api/v1/crates/private-dep/1.0.0/download";
    assert_eq!(get(&app, download, Some(&tp)).await.status(), 200);
    // …and the crate does not exist yet, for anyone.
    let missing = format!("/index/{}", index_path("brand-new"));
    assert_eq!(get(&app, &missing, Some(&tp)).await.status(), 404);
    assert_challenged(&app, get(&app, &missing, None).await, "anonymous").await;

    app.publish_ok(&tp, &CrateBuilder::new("brand-new", "0.1.0"))
        .await;
    assert_eq!(get(&app, &missing, Some(&tp)).await.status(), 200);
    assert_challenged(&app, get(&app, &missing, None).await, "still private").await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The real cargo

/// A package whose only dependency, `priv-base`, lives in the registry `wharf`.
fn write_dependent(dir: &std::path::Path, name: &str, version: &str) -> anyhow::Result<()> {
    write_package(
        dir,
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"depends on a private crate\"\n\n[dependencies]\npriv-base = {{ version = \"1\", registry = \"wharf\" }}\n"
        ),
        "pub fn answer() -> u32 {\n    priv_base::hello();\n    42\n}\n",
    )
}

/// Publishes `priv-base` 1.0.0 through the API.
async fn publish_base(app: &TestApp, token: &str) {
    // Its `src/lib.rs` has `pub fn hello() {}`.
    let base = CrateBuilder::new("priv-base", "1.0.0");
    app.publish_ok(token, &base).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cargo_with_a_token_builds_private_dependencies_and_without_one_is_told_to_log_in()
-> anyhow::Result<()> {
    let app = spawn_private().await;
    let token = app.token("alice");
    publish_base(&app, &token).await;
    let root = tempfile::tempdir()?;

    // Anonymous: cargo's own message, naming the registry and how to log in.
    let anonymous = Cargo::new(root.path(), &app, None)?;
    let user = root.path().join("user");
    write_package(
        &user,
        "[package]\nname = \"priv-user\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\npriv-base = { version = \"1\", registry = \"wharf\" }\n",
        "fn main() {\n    priv_base::hello();\n    println!(\"answer=42\");\n}\n",
    )?;
    let mut command = anonymous.command(&user, &["run", "--quiet"]);
    command.env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", "cargo:token");
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("no token found for `wharf`, please run `cargo login --registry wharf`"),
        "{stderr}"
    );
    assert!(stderr.contains("CARGO_REGISTRIES_WHARF_TOKEN"), "{stderr}");

    // `cargo login` names the page where the token is made.
    let mut command = anonymous.command(&user, &["login", "--registry", "wharf"]);
    command
        .env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", "cargo:token")
        .stdin(std::process::Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains(&format!(
            "please paste the token found on {}/settings/tokens below",
            app.base_url
        )),
        "{said}"
    );

    // A revoked-looking token: cargo says the registry rejected it.
    let mut command = anonymous.command(&user, &["run", "--quiet"]);
    command
        .env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", "cargo:token")
        .env("CARGO_REGISTRIES_WHARF_TOKEN", "wharf_revoked_or_made_up");
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("token rejected for `wharf`"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    // With an API token through `cargo:token`: resolves, downloads, builds, and publishes a
    // crate with a private dependency (whose verification build resolves it too).
    let reader = Cargo::new(&root.path().join("reader"), &app, Some(token))?;
    let mut command = reader.command(&user, &["run", "--quiet"]);
    command.env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", "cargo:token");
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    assert!(
        output.status.success(),
        "cargo run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "answer=42");

    let mid = root.path().join("mid");
    write_dependent(&mid, "priv-mid", "1.0.0")?;
    let mut command = reader.command(&mid, &["publish", "--registry", "wharf"]);
    command.env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", "cargo:token");
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    assert!(
        output.status.success(),
        "cargo publish failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (status, _) = app
        .get_json_with(
            "/api/v1/crates/priv-mid",
            reader.token.as_deref().unwrap_or_default(),
        )
        .await;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ci_job_publishes_a_crate_with_private_dependencies_through_the_credential_provider()
-> anyhow::Result<()> {
    let provider = provider_binary();
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_idp(&idp)
        .set("auth_required", "true")
        .spawn()
        .await;
    let owner = app.token("alice");
    publish_base(&app, &owner).await;
    let app_crate = CrateBuilder::new("priv-app", "0.1.0");
    app.publish_ok(&owner, &app_crate).await;
    app.add_github_config(&owner, "priv-app", None).await;

    let root = tempfile::tempdir()?;
    // No API token anywhere: only the provider.
    let cargo = Cargo::new(root.path(), &app, None)?;
    let pkg = root.path().join("pkg");
    write_dependent(&pkg, "priv-app", "0.2.0")?;
    let runner_temp = root.path().join("runner-temp");
    std::fs::create_dir_all(&runner_temp)?;
    let ci = |args: &[&str]| {
        let mut command = cargo.command(&pkg, args);
        command
            .env("CARGO_REGISTRIES_WHARF_CREDENTIAL_PROVIDER", &provider)
            .env("GITHUB_ACTIONS", "true")
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", idp.id_token_request_url())
            .env(
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                idp.id_token_request_token(),
            )
            .env("RUNNER_TEMP", &runner_temp);
        command
    };
    let live_tokens = || {
        app.app.db.blocking(|conn| {
            use diesel::prelude::*;
            Ok(wharf::schema::trustpub_tokens::table
                .count()
                .get_result::<i64>(conn)?)
        })
    };

    let mut publish = ci(&["publish", "--registry", "wharf"]);
    let output = tokio::task::spawn_blocking(move || publish.output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "cargo publish failed: {stderr}");
    assert_eq!(
        idp.id_token_requests().len(),
        1,
        "one exchange for the whole command (read, verification build, upload): {stderr}"
    );
    assert_eq!(live_tokens()?, 1);
    let (_, info) = app.get_json_with("/api/v1/crates/priv-app", &owner).await;
    assert_eq!(info["versions"][0]["num"], "0.2.0");
    assert_eq!(info["versions"][0]["trustpub"]["provider"], "github");

    // The next cargo command in the job revokes it, and reads with a token of its own.
    let mut fetch = ci(&["fetch"]);
    let output = tokio::task::spawn_blocking(move || fetch.output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "cargo fetch failed: {stderr}");
    assert!(
        stderr.contains("revoked 1 Trusted Publishing token"),
        "{stderr}"
    );
    assert_eq!(idp.id_token_requests().len(), 2);
    assert_eq!(live_tokens()?, 1);

    // `cargo logout` revokes the last one.
    let mut logout = ci(&["logout", "--registry", "wharf"]);
    let output = tokio::task::spawn_blocking(move || logout.output()).await??;
    assert!(output.status.success());
    assert_eq!(live_tokens()?, 0);
    Ok(())
}
