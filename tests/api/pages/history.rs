use serde_json::json;

use crate::support::fake_idp::FakeIdp;
use crate::support::web_client::{WebClient, spawn_with_github};
use crate::support::{CrateBuilder, TestApp};

/// Publishes `krate` through Trusted Publishing from `octo-org/widget`'s
/// `release.yml`, run 4242, in environment `release`.
pub async fn trusted_publish(
    app: &TestApp,
    github: &FakeIdp,
    krate: &CrateBuilder,
) -> anyhow::Result<()> {
    let claims = github.github_claims(
        &app.audience(),
        json!({ "environment": "release", "run_id": "4242" }),
    );
    let jwt = github.sign(&claims);
    let (status, body) = app.exchange(&jwt).await;
    anyhow::ensure!(status == 200, "exchange: {body}");
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    app.publish_ok(&token, krate).await;
    Ok(())
}

#[tokio::test]
async fn the_history_shows_publishes_by_users_and_by_ci_and_yanks() -> anyhow::Result<()> {
    let (app, github) = spawn_with_github().await?;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    app.add_github_config(&owner, "widget", None).await;
    trusted_publish(&app, &github, &CrateBuilder::new("widget", "1.1.0")).await?;
    let yank = app
        .client
        .delete(app.url("/api/v1/crates/widget/1.0.0/yank"))
        .header("Authorization", &owner)
        .send()
        .await?;
    assert_eq!(yank.status(), 200);

    // Anyone may read it: no login.
    let page = WebClient::new(&app).get("/crates/widget/history").await?;
    assert_eq!(page.status, 200);
    assert_eq!(page.count("#history thead th[scope=col]"), 5);
    assert_eq!(
        page.texts("#history tbody td.version"),
        vec!["1.0.0", "1.1.0", "1.0.0"]
    );
    assert_eq!(page.count("#history tr.history-yanked"), 1);
    assert_eq!(
        page.texts("#history tbody td.actor"),
        vec!["alice", "octocat via GitHub Actions", "alice"]
    );
    let ci = page.text("#history tr.history-published:nth-child(2) td.run");
    assert!(ci.contains("octo-org/widget"), "{ci}");
    assert!(ci.contains("release.yml"), "{ci}");
    assert!(ci.contains("release"), "{ci}");
    assert!(ci.contains("0123456789ab"), "{ci}");
    let run_link = page.attr("a.run-link", "href").unwrap_or_default();
    assert_eq!(
        run_link,
        format!(
            "{}/octo-org/widget/actions/runs/4242/attempts/1",
            github.base_url()
        )
    );
    assert_eq!(page.text("a.run-link"), "run 4242");

    // The crate page says who published each version too.
    let crate_page = WebClient::new(&app).get("/crates/widget").await?;
    assert!(
        crate_page
            .text("#versions")
            .contains("octocat via GitHub Actions")
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_crate_has_no_history() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let page = WebClient::new(&app).get("/crates/nope/history").await?;
    assert_eq!(page.status, 404);
    Ok(())
}
