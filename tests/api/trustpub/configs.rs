//! `/api/v1/trusted_publishing/{github,gitlab}_configs`: management by owners.

use serde_json::{Value, json};

use crate::support::fake_idp::{self, FakeIdp, Provider};
use crate::support::{CrateBuilder, TestApp, assert_one_won, detail};

async fn setup() -> (FakeIdp, TestApp, String) {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    (idp, app, owner)
}

fn github_body(owner: &str, repo: &str, workflow: &str) -> Value {
    json!({ "github_config": { "crate": "widget", "repository_owner": owner, "repository_name": repo, "workflow_filename": workflow } })
}

#[tokio::test]
async fn owners_create_list_and_delete_configs() -> anyhow::Result<()> {
    let (_idp, app, owner) = setup().await;
    let github = app
        .add_github_config(&owner, "widget", Some("release"))
        .await;
    let gitlab = app
        .add_gitlab_config(&owner, "widget", "acme/tools", None)
        .await;
    insta::assert_json_snapshot!(github, { ".github_config.created_at" => "[time]" });

    let list = app
        .client
        .get(app.url("/api/v1/trusted_publishing/github_configs?crate=widget"))
        .header("Authorization", &owner)
        .send()
        .await?;
    let list: Value = list.json().await?;
    assert_eq!(list["github_configs"].as_array().unwrap().len(), 1);
    let list = app
        .client
        .get(app.url("/api/v1/trusted_publishing/gitlab_configs?crate=widget"))
        .header("Authorization", &owner)
        .send()
        .await?;
    let list: Value = list.json().await?;
    assert_eq!(list["gitlab_configs"][0]["namespace"], "acme/tools");

    for (kind, body, key) in [
        ("github", &github, "github_config"),
        ("gitlab", &gitlab, "gitlab_config"),
    ] {
        let id = body[key]["id"].as_i64().unwrap();
        let url = app.url(&format!("/api/v1/trusted_publishing/{kind}_configs/{id}"));
        let deleted = app
            .client
            .delete(&url)
            .header("Authorization", &owner)
            .send()
            .await?;
        assert_eq!(deleted.status(), 204);
        let again = app
            .client
            .delete(&url)
            .header("Authorization", &owner)
            .send()
            .await?;
        assert_eq!(again.status(), 404);
    }
    let actions = app.app.db.blocking(|conn| {
        let krate = wharf::models::Crate::by_name(conn, "widget")?.unwrap();
        Ok(wharf::models::audit::for_crate(conn, krate.id, 10)?)
    })?;
    let actions: Vec<_> = actions.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        // The owner has no email address: each change's mail to them is skipped, on record.
        [
            "mail_skipped",
            "trustpub_gitlab_remove",
            "mail_skipped",
            "trustpub_github_remove",
            "mail_skipped",
            "trustpub_gitlab_add",
            "mail_skipped",
            "trustpub_github_add",
            "publish"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn every_field_is_validated_with_a_clear_message() -> anyhow::Result<()> {
    let (_idp, app, owner) = setup().await;
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&owner),
            &github_body("-bad-", "a/b", ".github/workflows/x.yml"),
        )
        .await;
    assert_eq!(status, 400);
    insta::assert_snapshot!("github_fields", detail(&body).to_owned());
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/gitlab_configs",
            Some(&owner),
            &json!({ "gitlab_config": { "crate": "widget", "namespace": "a//b", "project": "-x", "workflow_filepath": "/abs.yml" } }),
        )
        .await;
    assert_eq!(status, 400);
    insta::assert_snapshot!("gitlab_fields", detail(&body).to_owned());
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&owner),
            &json!({ "github_config": { "crate": "widget" } }),
        )
        .await;
    assert_eq!(status, 400, "missing fields: {body}");
    Ok(())
}

#[tokio::test]
async fn the_github_owner_id_is_looked_up_and_unknown_owners_refused() -> anyhow::Result<()> {
    let (idp, app, owner) = setup().await;
    idp.set_account("someone-else", 777);
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&owner),
            &github_body("Someone-Else", "repo", "release.yml"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["github_config"]["repository_owner_id"], 777);
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&owner),
            &github_body("ghost-owner", "repo", "release.yml"),
        )
        .await;
    assert_eq!(status, 400);
    insta::assert_snapshot!("unknown_owner", detail(&body).to_owned());
    idp.set_down(true);
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&owner),
            &github_body("octo-org", "other", "release.yml"),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    Ok(())
}

#[tokio::test]
async fn a_recreated_github_account_does_not_inherit_trust() -> anyhow::Result<()> {
    let (idp, app, owner) = setup().await;
    app.add_github_config(&owner, "widget", None).await;
    // The account is deleted and someone registers the same name: a new numeric id.
    idp.set_account(fake_idp::GITHUB_OWNER, 4040);
    let claims = idp.github_claims(&app.audience(), json!({ "repository_owner_id": "4040" }));
    let (status, body) = app.exchange(&idp.sign(&claims)).await;
    assert_eq!(status, 400);
    assert!(detail(&body).contains("4040"), "{body}");
    Ok(())
}

#[tokio::test]
async fn only_owners_with_the_trusted_publishing_scope_manage_configs() -> anyhow::Result<()> {
    let (_idp, app, owner) = setup().await;
    let stranger = app.token("mallory");
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&stranger),
            &github_body("octo-org", "widget", "release.yml"),
        )
        .await;
    assert_eq!(status, 403);
    insta::assert_snapshot!("not_owner", detail(&body).to_owned());
    let publish_only = app.token_with("alice", &["publish-update"], &[]);
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&publish_only),
            &github_body("octo-org", "widget", "release.yml"),
        )
        .await;
    assert_eq!(status, 403);
    insta::assert_snapshot!("scope", detail(&body).to_owned());
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            None,
            &github_body("octo-org", "widget", "release.yml"),
        )
        .await;
    assert_eq!(status, 403);
    insta::assert_snapshot!("anonymous", detail(&body).to_owned());

    let config = app.add_github_config(&owner, "widget", None).await;
    let id = config["github_config"]["id"].as_i64().unwrap();
    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/trusted_publishing/github_configs/{id}")))
        .header("Authorization", &stranger)
        .send()
        .await?;
    assert_eq!(
        deleted.status(),
        404,
        "non-owners cannot even see that the config exists"
    );
    Ok(())
}

#[tokio::test]
async fn configs_per_crate_are_limited_and_duplicates_refused() -> anyhow::Result<()> {
    let (_idp, app, owner) = setup().await;
    app.add_github_config(&owner, "widget", None).await;
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&owner),
            &github_body(
                fake_idp::GITHUB_OWNER,
                fake_idp::GITHUB_REPO,
                fake_idp::GITHUB_WORKFLOW,
            ),
        )
        .await;
    assert_eq!(status, 400);
    insta::assert_snapshot!("duplicate", detail(&body).to_owned());
    for i in 1..wharf::services::publishers::MAX_CONFIGS_PER_CRATE {
        app.add_gitlab_config(&owner, "widget", &format!("group{i}"), None)
            .await;
    }
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/gitlab_configs",
            Some(&owner),
            &json!({ "gitlab_config": { "crate": "widget", "namespace": "one-more", "project": "p", "workflow_filepath": ".gitlab-ci.yml" } }),
        )
        .await;
    assert_eq!(status, 400);
    insta::assert_snapshot!("limit", detail(&body).to_owned());
    Ok(())
}

/// Deletes a config through the API.
async fn delete_config(app: &TestApp, token: &str, kind: &str, id: &Value) -> anyhow::Result<u16> {
    let id = id.as_i64().unwrap();
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/trusted_publishing/{kind}_configs/{id}")))
        .header("Authorization", token)
        .send()
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn removing_a_publisher_revokes_exactly_the_tokens_minted_through_it() -> anyhow::Result<()> {
    // Arrange: `widget` trusts a GitHub workflow and a GitLab project; `gadget` trusts the same
    // GitHub workflow, so one GitHub ID token is exchanged for a token good for both crates.
    let github = FakeIdp::start(Provider::GitHub);
    let gitlab = FakeIdp::start(Provider::GitLab);
    let app = TestApp::builder()
        .github_idp(&github)
        .gitlab_idp(&gitlab)
        .spawn()
        .await;
    let owner = app.token("alice");
    for name in ["widget", "gadget"] {
        app.publish_ok(&owner, &CrateBuilder::new(name, "1.0.0"))
            .await;
    }
    let widget_github = app.add_github_config(&owner, "widget", None).await;
    let gadget_github = app.add_github_config(&owner, "gadget", None).await;
    let widget_gitlab = app
        .add_gitlab_config(&owner, "widget", fake_idp::GITLAB_NAMESPACE, None)
        .await;
    let (status, body) = app
        .exchange(&github.sign(&github.github_claims(&app.audience(), json!({}))))
        .await;
    assert_eq!(status, 200, "{body}");
    let from_github = body["token"].as_str().unwrap().to_owned();
    let (status, body) = app
        .exchange(&gitlab.sign(&gitlab.gitlab_claims(&app.audience(), json!({}))))
        .await;
    assert_eq!(status, 200, "{body}");
    let from_gitlab = body["token"].as_str().unwrap().to_owned();

    // Act: the owner removes widget's GitHub publisher.
    let status = delete_config(
        &app,
        &owner,
        "github",
        &widget_github["github_config"]["id"],
    )
    .await?;
    assert_eq!(status, 204);

    // Assert: the GitHub token can no longer publish widget, at once, and says why…
    let refused = app
        .publish(&from_github, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await?;
    insta::with_settings!({ filters => vec![(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[time]")] }, {
        insta::assert_snapshot!("revoked_by_removal", detail(&body).to_owned());
    });
    // …but still publishes gadget, whose publisher stays; the GitLab token, minted through
    // another config of widget, is untouched.
    app.publish_ok(&from_github, &CrateBuilder::new("gadget", "1.1.0"))
        .await;
    app.publish_ok(&from_gitlab, &CrateBuilder::new("widget", "1.1.0"))
        .await;

    // Removing gadget's publisher too leaves the GitHub token no crate: refused for everything.
    let status = delete_config(
        &app,
        &owner,
        "github",
        &gadget_github["github_config"]["id"],
    )
    .await?;
    assert_eq!(status, 204);
    let refused = app
        .publish(&from_github, &CrateBuilder::new("gadget", "1.2.0"))
        .await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await?;
    insta::with_settings!({ filters => vec![(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[time]")] }, {
        insta::assert_snapshot!("revoked_everywhere", detail(&body).to_owned());
    });

    // And the GitLab publisher's removal revokes the GitLab token.
    let status = delete_config(
        &app,
        &owner,
        "gitlab",
        &widget_gitlab["gitlab_config"]["id"],
    )
    .await?;
    assert_eq!(status, 204);
    let refused = app
        .publish(&from_gitlab, &CrateBuilder::new("widget", "1.2.0"))
        .await;
    assert_eq!(refused.status(), 403);

    // The audit log says how many tokens each removal revoked.
    let entries = app.app.db.blocking(|conn| {
        let krate = wharf::models::Crate::by_name(conn, "widget")?.unwrap();
        Ok(wharf::models::audit::for_crate(conn, krate.id, 20)?)
    })?;
    let removals: Vec<(String, Value)> = entries
        .iter()
        .filter(|e| e.action.ends_with("_remove"))
        .map(|e| {
            let detail: Value = serde_json::from_str(&e.detail).unwrap();
            (e.action.clone(), detail["revoked_tokens"].clone())
        })
        .collect();
    assert_eq!(
        removals,
        [
            ("trustpub_gitlab_remove".to_owned(), json!(1)),
            ("trustpub_github_remove".to_owned(), json!(1)),
        ]
    );
    Ok(())
}

/// Adds a GitLab config for `namespace`; the status.
async fn post_gitlab(app: &TestApp, token: &str, namespace: &str) -> u16 {
    app.post_json(
        "/api/v1/trusted_publishing/gitlab_configs",
        Some(token),
        &json!({ "gitlab_config": { "crate": "widget", "namespace": namespace, "project": "p", "workflow_filepath": ".gitlab-ci.yml" } }),
    )
    .await
    .0
}

#[tokio::test]
async fn simultaneous_adds_neither_pass_the_limit_nor_duplicate_a_config() -> anyhow::Result<()> {
    let (_idp, app, owner) = setup().await;

    // The same config added eight times at once: one is added.
    let same = (0..8).map(|_| post_gitlab(&app, &owner, "same-group"));
    let statuses = futures_util::future::join_all(same).await;
    assert_one_won(&statuses);

    // Room for one more, eight different ones at once: one is added.
    for i in 2..wharf::services::publishers::MAX_CONFIGS_PER_CRATE {
        assert_eq!(post_gitlab(&app, &owner, &format!("group{i}")).await, 200);
    }
    let last = (0..8).map(|i| {
        let namespace = format!("last{i}");
        let (app, owner) = (&app, &owner);
        async move { post_gitlab(app, owner, &namespace).await }
    });
    let statuses = futures_util::future::join_all(last).await;
    assert_one_won(&statuses);
    let (status, body) = app
        .get_json_with(
            "/api/v1/trusted_publishing/gitlab_configs?crate=widget",
            &owner,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["gitlab_configs"].as_array().map(Vec::len),
        Some(wharf::services::publishers::MAX_CONFIGS_PER_CRATE)
    );
    Ok(())
}
