//! `/settings/pending-publishers`: add (a form per provider), list with expiry, remove.

use serde_json::json;

use crate::support::fake_idp::{self, FakeIdp};
use crate::support::web_client::{WebClient, log_in, spawn_with_github};
use crate::support::{CrateBuilder, TestApp, detail};

#[tokio::test]
async fn the_pending_publishers_page_needs_a_login() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let page = WebClient::new(&app)
        .get("/settings/pending-publishers")
        .await?;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location(),
        Some("/login?next=%2Fsettings%2Fpending-publishers")
    );
    Ok(())
}

#[tokio::test]
async fn pending_publishers_are_added_listed_used_and_removed_on_the_page() -> anyhow::Result<()> {
    let (app, github): (TestApp, FakeIdp) = spawn_with_github().await?;
    let alice = log_in(&app, "alice").await?;
    let empty = alice.get("/settings/pending-publishers").await?;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.count("#no-pending"), 1);
    // A form per provider, with the provider's fields and the crate name.
    for kind in ["github", "gitlab", "buildkite"] {
        assert_eq!(empty.count(&format!("#add-pending-{kind}")), 1, "{kind}");
        assert_eq!(
            empty.count(&format!("label[for=pending-{kind}-crate]")),
            1,
            "{kind}"
        );
    }
    assert_eq!(empty.count("#add-pending-github label[for=gh-owner]"), 1);
    let me = alice.get("/me").await?;
    assert_eq!(me.count("a#pending-publishers-link"), 1);

    // Bad input: errors next to the fields, 422.
    let bad = alice
        .post(
            "/settings/pending-publishers/github",
            &[
                ("crate", "not a name"),
                ("repository_owner", fake_idp::GITHUB_OWNER),
                ("repository_name", fake_idp::GITHUB_REPO),
                ("workflow_filename", "release"),
            ],
        )
        .await?;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.count("#pending-github-crate[aria-invalid=true]"), 1);
    assert_eq!(bad.count("#gh-workflow[aria-invalid=true]"), 1);
    assert_eq!(
        bad.attr("#pending-github-crate", "value").as_deref(),
        Some("not a name")
    );

    // Without the CSRF token: refused.
    let forged = alice
        .post_raw(
            "/settings/pending-publishers/github",
            &[("crate", "forged"), ("repository_owner", "x")],
        )
        .await?;
    assert_eq!(forged.status, 403);

    let added = alice
        .post(
            "/settings/pending-publishers/github",
            &[
                ("crate", "page-made"),
                ("repository_owner", fake_idp::GITHUB_OWNER),
                ("repository_name", fake_idp::GITHUB_REPO),
                ("workflow_filename", fake_idp::GITHUB_WORKFLOW),
                ("environment", ""),
            ],
        )
        .await?;
    assert_eq!(added.status, 303);
    let list = alice.get("/settings/pending-publishers").await?;
    assert_eq!(
        list.texts("#pending-publishers .pending-crate"),
        ["page-made"]
    );
    assert!(list.text("#pending-publishers .expires").ends_with("UTC"));
    assert!(list.text(".flash").contains("page-made"), "{}", list.body);
    let removed_later = alice
        .post(
            "/settings/pending-publishers/gitlab",
            &[
                ("crate", "page-made-too"),
                ("namespace", fake_idp::GITLAB_NAMESPACE),
                ("project", fake_idp::GITLAB_PROJECT),
                ("workflow_filepath", fake_idp::GITLAB_CI_CONFIG),
            ],
        )
        .await?;
    assert_eq!(removed_later.status, 303);

    // The GitHub one is used by CI: the crate is alice's, and the row leaves the list.
    let jwt = github.sign(&github.github_claims(&app.audience(), json!({})));
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    app.publish_ok(&token, &CrateBuilder::new("page-made", "0.1.0"))
        .await;
    let list = alice.get("/settings/pending-publishers").await?;
    assert_eq!(
        list.texts("#pending-publishers .pending-crate"),
        ["page-made-too"]
    );
    let settings = alice.get("/crates/page-made/settings").await?;
    assert_eq!(settings.count("#github-publishers tbody tr"), 1);

    // Remove the other one; bob cannot remove alice's.
    let id = list
        .attr("#pending-publishers tbody tr", "id")
        .unwrap_or_default()
        .trim_start_matches("pending-")
        .to_owned();
    let bob = log_in(&app, "bob").await?;
    let refused = bob
        .post(&format!("/settings/pending-publishers/{id}/remove"), &[])
        .await?;
    assert_eq!(refused.status, 404);
    let removed = alice
        .post(&format!("/settings/pending-publishers/{id}/remove"), &[])
        .await?;
    assert_eq!(removed.status, 303);
    let list = alice.get("/settings/pending-publishers").await?;
    assert_eq!(list.count("#no-pending"), 1);
    let (status, body) = app
        .get_json("/api/v1/trusted_publishing/gitlab_configs?crate=page-made-too")
        .await;
    assert_eq!(status, 403, "{}", detail(&body));
    Ok(())
}
