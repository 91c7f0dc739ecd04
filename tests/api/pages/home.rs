use crate::support::web_client::WebClient;
use crate::support::{CrateBuilder, TestApp};

#[tokio::test]
async fn the_home_page_has_a_search_box_and_recent_publishes() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let web = WebClient::new(&app);
    let empty = web.get("/").await?;
    assert_eq!(empty.status, 200);
    assert_eq!(
        empty.attr("main form[role=search]", "action").as_deref(),
        Some("/search")
    );
    assert_eq!(empty.attr("label[for=q]", "for").as_deref(), Some("q"));
    assert_eq!(empty.count("#recent"), 0);

    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("first-crate", "0.1.0"))
        .await;
    app.publish_ok(&token, &CrateBuilder::new("second-crate", "0.2.0"))
        .await;
    let page = web.get("/").await?;
    assert_eq!(
        page.texts("#recent tbody td:first-child"),
        vec!["second-crate", "first-crate"]
    );
    assert_eq!(
        page.attr("#recent tbody a", "href").as_deref(),
        Some("/crates/second-crate")
    );
    assert_eq!(page.count("#recent thead th[scope=col]"), 4);
    assert!(page.text("#recent").contains("alice"));
    assert_eq!(page.text("#nav-login"), "Log in");
    Ok(())
}

#[tokio::test]
async fn search_finds_crates_by_name_and_description() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    for name in ["serde-lite", "serde-heavy", "tokio-lite"] {
        app.publish_ok(&token, &CrateBuilder::new(name, "1.0.0"))
            .await;
    }
    let web = WebClient::new(&app);
    let page = web.get("/search?q=serde").await?;
    assert_eq!(page.status, 200);
    assert_eq!(page.text("#result-count"), "2 crates match “serde”.");
    assert_eq!(page.count("#results li"), 2);
    assert_eq!(page.attr("#q", "value").as_deref(), Some("serde"));

    let none = web.get("/search?q=%3Cscript%3E").await?;
    assert_eq!(none.text("#result-count"), "0 crates match “<script>”.");
    assert!(!none.body.contains("<script>"), "the query is escaped");

    let blank = web.get("/search").await?;
    assert_eq!(blank.status, 200);
    assert_eq!(blank.count("#results"), 0);
    Ok(())
}

#[tokio::test]
async fn unknown_pages_are_html_404s_while_the_api_stays_json() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let web = WebClient::new(&app);
    let page = web.get("/no/such/page").await?;
    assert_eq!(page.status, 404);
    assert!(
        page.headers["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    assert_eq!(page.text("h1"), "Not found");

    let api = web.get("/api/v1/nothing-here").await?;
    assert_eq!(api.status, 404);
    assert!(api.body.starts_with("{\"errors\""), "{}", api.body);

    let stylesheet = web.get("/static/wharf.css").await?;
    assert_eq!(stylesheet.status, 200);
    assert!(
        stylesheet.headers["content-type"]
            .to_str()?
            .starts_with("text/css")
    );
    Ok(())
}

#[tokio::test]
async fn a_logged_in_user_sees_whether_the_registry_is_private() -> anyhow::Result<()> {
    use crate::support::fake_idp::{FakeIdp, Provider};
    use crate::support::web_client::log_in;

    let github = FakeIdp::start(Provider::GitHub);
    let private = TestApp::builder()
        .github_login(&github)
        .github_idp(&github)
        .set("auth_required", "true")
        .set("github_allowed_orgs", "acme")
        .spawn()
        .await;
    github.set_org_membership("acme", "alice", Some("active"));
    let alice = log_in(&private, "alice").await?;
    let page = alice.get("/").await?;
    assert_eq!(page.status, 200);
    let mode = page.text("#registry-mode");
    assert!(mode.contains("A private registry"), "{mode}");
    assert!(
        mode.contains(&format!("index = \"sparse+{}/index/\"", private.base_url)),
        "{mode}"
    );
    assert!(
        mode.contains("credential-provider = [\"cargo:token\"]"),
        "{mode}"
    );
    assert!(
        page.text("#allowed-orgs")
            .contains("active members of the GitHub organisations acme"),
        "{mode}"
    );

    let public = TestApp::builder()
        .github_login(&github)
        .github_idp(&github)
        .spawn()
        .await;
    let anonymous = WebClient::new(&public).get("/").await?;
    assert_eq!(
        anonymous.count("#registry-mode"),
        0,
        "shown to logged-in users only"
    );
    let bob = log_in(&public, "bob").await?;
    let page = bob.get("/").await?;
    assert!(page.text("#registry-mode").contains("A public registry"));
    assert_eq!(page.count("#allowed-orgs"), 0);
    Ok(())
}
