use crate::support::web_client::WebClient;
use crate::support::{CrateBuilder, TestApp};

#[tokio::test]
async fn a_users_page_lists_the_crates_they_own_and_the_api_links_to_it() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    app.publish_ok(&alice, &CrateBuilder::new("zeta", "0.2.0"))
        .await;
    app.publish_ok(&alice, &CrateBuilder::new("alpha", "1.0.0"))
        .await;
    app.publish_ok(&bob, &CrateBuilder::new("bobs", "1.0.0"))
        .await;

    let (status, info) = app.get_json("/api/v1/crates/zeta").await;
    assert_eq!(status, 200);
    let url = info["versions"][0]["published_by"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let base = app.config().base_url();
    assert_eq!(url, format!("{base}/users/alice"));

    let web = WebClient::new(&app);
    let page = web.get(url.trim_start_matches(base)).await?;
    assert_eq!(page.status, 200);
    assert_eq!(page.text("#login"), "alice");
    assert_eq!(
        page.texts("#crates li a"),
        vec!["alpha", "zeta"],
        "alice's crates only, by name"
    );
    assert!(page.text("#crates").contains("The zeta crate, for tests"));
    assert!(page.text("#crates").contains("0.2.0"));

    let other_spelling = web.get("/users/ALICE").await?;
    assert_eq!(other_spelling.status, 303);
    assert_eq!(other_spelling.location(), Some("/users/alice"));

    app.user("carol");
    let empty = web.get("/users/carol").await?;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.count("#no-crates"), 1);

    let missing = web.get("/users/nobody").await?;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("there is no user called nobody here"));
    Ok(())
}
