use crate::support::web_client::{WebClient, log_in, spawn_with_github};
use crate::support::{CrateBuilder, TestApp};

async fn crate_owned_by_alice(app: &TestApp, name: &str) -> String {
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new(name, "1.0.0"))
        .await;
    token
}

#[tokio::test]
async fn settings_need_a_login_and_are_refused_to_non_owners() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    crate_owned_by_alice(&app, "guarded").await;
    let anonymous = WebClient::new(&app).get("/crates/guarded/settings").await?;
    assert_eq!(anonymous.status, 303);
    assert_eq!(
        anonymous.location(),
        Some("/login?next=%2Fcrates%2Fguarded%2Fsettings")
    );

    let eve = log_in(&app, "eve").await?;
    let page = eve.get("/crates/guarded/settings").await?;
    assert_eq!(page.status, 403);
    assert_eq!(page.text("h1"), "Forbidden");
    assert!(page.text(".error-detail").contains("not an owner"));

    // Crafted POSTs with a valid session and CSRF token are refused the same way.
    let posts: [(&str, &[(&str, &str)]); 6] = [
        (
            "/crates/guarded/settings/github",
            &[
                ("repository_owner", "eve"),
                ("repository_name", "evil"),
                ("workflow_filename", "release.yml"),
            ],
        ),
        (
            "/crates/guarded/settings/gitlab",
            &[
                ("namespace", "eve"),
                ("project", "evil"),
                ("workflow_filepath", ".gitlab-ci.yml"),
            ],
        ),
        (
            "/crates/guarded/settings/trustpub-only",
            &[("trustpub_only", "true")],
        ),
        ("/crates/guarded/settings/owners", &[("login", "eve")]),
        (
            "/crates/guarded/settings/owners/remove",
            &[("login", "alice")],
        ),
        ("/crates/guarded/settings/github/1/remove", &[]),
    ];
    for (path, fields) in posts {
        let answer = eve.post(path, fields).await?;
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
    }
    let (_, info) = app.get_json("/api/v1/crates/guarded").await;
    assert_eq!(info["crate"]["trustpub_only"], false);
    let (_, owners) = app.get_json("/api/v1/crates/guarded/owners").await;
    assert_eq!(owners["users"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn settings_forms_without_the_csrf_token_are_refused() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    crate_owned_by_alice(&app, "csrf-guarded").await;
    let alice = log_in(&app, "alice").await?;
    for token in [None, Some("not-the-token")] {
        let mut fields = vec![("trustpub_only", "true")];
        if let Some(token) = token {
            fields.push(("csrf_token", token));
        }
        let answer = alice
            .post_raw("/crates/csrf-guarded/settings/trustpub-only", &fields)
            .await?;
        assert_eq!(answer.status, 403);
    }
    let (_, info) = app.get_json("/api/v1/crates/csrf-guarded").await;
    assert_eq!(info["crate"]["trustpub_only"], false);
    Ok(())
}

#[tokio::test]
async fn a_github_publisher_form_explains_each_error_next_to_its_field() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    crate_owned_by_alice(&app, "validated").await;
    let alice = log_in(&app, "alice").await?;
    let page = alice
        .post(
            "/crates/validated/settings/github",
            &[
                ("repository_owner", "-bad-"),
                ("repository_name", ""),
                ("workflow_filename", "ci/release.txt"),
                ("environment", ""),
            ],
        )
        .await?;
    assert_eq!(page.status, 422);
    assert!(
        page.text("#gh-owner-error")
            .contains("GitHub user or organization")
    );
    assert!(page.text("#gh-repo-error").contains("repository name"));
    assert!(page.text("#gh-workflow-error").contains(".yml"));
    assert_eq!(page.count("#gh-environment-error"), 0);
    assert_eq!(
        page.attr("#gh-owner", "aria-describedby").as_deref(),
        Some("gh-owner-error")
    );
    assert_eq!(
        page.attr("#gh-owner", "aria-invalid").as_deref(),
        Some("true")
    );
    assert_eq!(page.attr("#gh-owner", "value").as_deref(), Some("-bad-"));
    assert_eq!(page.count("label[for=gh-owner]"), 1);
    assert_eq!(page.count("#github-publishers"), 0, "nothing was added");

    let gitlab = alice
        .post(
            "/crates/validated/settings/gitlab",
            &[
                ("namespace", ""),
                ("project", "p"),
                ("workflow_filepath", "../x.yml"),
            ],
        )
        .await?;
    assert_eq!(gitlab.status, 422);
    assert!(!gitlab.text("#gl-namespace-error").is_empty());
    assert!(!gitlab.text("#gl-workflow-error").is_empty());
    assert_eq!(gitlab.count("#gl-project-error"), 0);
    Ok(())
}

#[tokio::test]
async fn owners_add_a_publisher_and_remove_it_after_confirming() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    crate_owned_by_alice(&app, "published").await;
    let alice = log_in(&app, "alice").await?;

    let added = alice
        .post(
            "/crates/published/settings/github",
            &[
                ("repository_owner", "octo-org"),
                ("repository_name", "widget"),
                ("workflow_filename", "release.yml"),
                ("environment", "release"),
            ],
        )
        .await?;
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(added.location(), Some("/crates/published/settings"));
    let page = alice.get("/crates/published/settings").await?;
    assert!(page.text(".flash").contains("Added the trusted publisher"));
    assert_eq!(
        page.texts("#github-publishers tbody td:nth-child(-n+3)"),
        vec!["octo-org/widget", "release.yml", "release"]
    );
    let (_, configs) = app.get_json("/api/v1/crates/published").await;
    assert_eq!(configs["crate"]["name"], "published");

    let duplicate = alice
        .post(
            "/crates/published/settings/github",
            &[
                ("repository_owner", "octo-org"),
                ("repository_name", "widget"),
                ("workflow_filename", "release.yml"),
                ("environment", "release"),
            ],
        )
        .await?;
    assert_eq!(duplicate.status, 422);
    assert!(
        duplicate
            .text("#github-form-error")
            .contains("exists already")
    );

    let gitlab = alice
        .post(
            "/crates/published/settings/gitlab",
            &[
                ("namespace", "acme/tools"),
                ("project", "widget"),
                ("workflow_filepath", ".gitlab-ci.yml"),
            ],
        )
        .await?;
    assert_eq!(gitlab.status, 303, "{}", gitlab.body);
    let page = alice.get("/crates/published/settings").await?;
    assert_eq!(
        page.text("#gitlab-publishers tbody td:first-child"),
        "acme/tools/widget"
    );

    let remove_link = page
        .attr("#github-publishers a.remove-publisher", "href")
        .unwrap();
    let confirm = alice.get(&remove_link).await?;
    assert_eq!(confirm.status, 200);
    assert!(
        confirm
            .text("#publisher-description")
            .contains("octo-org/widget")
    );
    assert_eq!(
        confirm.attr("#confirm-remove", "action").as_deref(),
        Some(remove_link.as_str())
    );
    let removed = alice.post(&remove_link, &[]).await?;
    assert_eq!(removed.status, 303);
    let page = alice.get("/crates/published/settings").await?;
    assert!(
        page.text(".flash")
            .contains("Removed the trusted publisher")
    );
    assert_eq!(page.count("#github-publishers"), 0);
    assert_eq!(page.count("#gitlab-publishers"), 1);
    assert_eq!(alice.get(&remove_link).await?.status, 404, "gone");

    let log = page.texts("#audit-log tbody td:nth-child(3)");
    assert!(log.contains(&"trustpub github add".to_owned()), "{log:?}");
    assert!(
        log.contains(&"trustpub github remove".to_owned()),
        "{log:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_publisher_of_another_crate_cannot_be_removed_through_this_one() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    crate_owned_by_alice(&app, "mine").await;
    let bob_token = app.token("bob");
    app.publish_ok(&bob_token, &CrateBuilder::new("theirs", "1.0.0"))
        .await;
    let theirs = app.add_github_config(&bob_token, "theirs", None).await;
    let id = theirs["github_config"]["id"].as_i64().unwrap();
    let alice = log_in(&app, "alice").await?;
    let path = format!("/crates/mine/settings/github/{id}/remove");
    assert_eq!(alice.get(&path).await?.status, 404);
    assert_eq!(alice.post(&path, &[]).await?.status, 404);
    let (status, body) = app
        .get_json("/api/v1/trusted_publishing/github_configs?crate=theirs")
        .await;
    assert_eq!(status, 403, "needs auth: {body}");
    Ok(())
}

#[tokio::test]
async fn requiring_trusted_publishing_warns_when_there_is_no_publisher() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    crate_owned_by_alice(&app, "strict").await;
    let alice = log_in(&app, "alice").await?;
    let before = alice.get("/crates/strict/settings").await?;
    assert!(before.text("#trustpub-only-status").starts_with("Off"));
    assert_eq!(before.count("#no-publisher-warning"), 0);

    let on = alice
        .post(
            "/crates/strict/settings/trustpub-only",
            &[("trustpub_only", "true")],
        )
        .await?;
    assert_eq!(on.status, 303);
    let page = alice.get("/crates/strict/settings").await?;
    assert!(page.text("#trustpub-only-status").starts_with("On"));
    assert_eq!(page.count(".flash-warning"), 1);
    assert_eq!(page.count("#no-publisher-warning"), 1);
    let (_, info) = app.get_json("/api/v1/crates/strict").await;
    assert_eq!(info["crate"]["trustpub_only"], true);

    let off = alice
        .post(
            "/crates/strict/settings/trustpub-only",
            &[("trustpub_only", "false")],
        )
        .await?;
    assert_eq!(off.status, 303);
    let (_, info) = app.get_json("/api/v1/crates/strict").await;
    assert_eq!(info["crate"]["trustpub_only"], false);

    let bad = alice
        .post(
            "/crates/strict/settings/trustpub-only",
            &[("trustpub_only", "maybe")],
        )
        .await?;
    assert_eq!(bad.status, 400);
    Ok(())
}

#[tokio::test]
async fn owners_are_added_and_removed_but_the_last_one_stays() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    crate_owned_by_alice(&app, "shared").await;
    app.user("bob");
    let alice = log_in(&app, "alice").await?;

    let unknown = alice
        .post("/crates/shared/settings/owners", &[("login", "nobody")])
        .await?;
    assert_eq!(unknown.status, 422);
    assert!(
        unknown
            .text("#owner-login-error")
            .contains("log in to this registry once")
    );

    let added = alice
        .post("/crates/shared/settings/owners", &[("login", "bob")])
        .await?;
    assert_eq!(added.status, 303);
    let page = alice.get("/crates/shared/settings").await?;
    assert_eq!(
        page.texts("#owners tbody td:first-child"),
        vec!["alice (you)", "bob"]
    );
    let again = alice
        .post("/crates/shared/settings/owners", &[("login", "bob")])
        .await?;
    assert_eq!(again.status, 422);
    // The owners service's wording, the same as the API's.
    assert_eq!(
        again.text("#owner-login-error"),
        "`bob` is already an owner of crate `shared`"
    );

    let removed = alice
        .post("/crates/shared/settings/owners/remove", &[("login", "bob")])
        .await?;
    assert_eq!(removed.status, 303);
    let last = alice
        .post(
            "/crates/shared/settings/owners/remove",
            &[("login", "alice")],
        )
        .await?;
    assert_eq!(last.status, 400);
    assert!(
        last.text(".error-detail")
            .contains("cannot remove all owners of a crate")
    );

    let me = alice.get("/me").await?;
    assert_eq!(me.texts("#my-crates tbody td:first-child"), vec!["shared"]);
    Ok(())
}

#[tokio::test]
async fn owners_see_the_crates_exchanged_tokens_and_revoke_them() -> anyhow::Result<()> {
    // Arrange: a trusted publisher, and two runs of it that exchanged ID tokens.
    let (app, github) = spawn_with_github().await?;
    let api_token = crate_owned_by_alice(&app, "incident").await;
    app.add_github_config(&api_token, "incident", None).await;
    let exchange = |actor: &str, run_id: i64| {
        let jwt = github.sign(&github.github_claims(
            &app.audience(),
            serde_json::json!({ "actor": actor, "run_id": run_id.to_string() }),
        ));
        let app = &app;
        async move {
            let (status, body) = app.exchange(&jwt).await;
            anyhow::ensure!(status == 200, "exchange: {body}");
            Ok(body["token"].as_str().unwrap_or_default().to_owned())
        }
    };
    let compromised = exchange("mallory", 111).await?;
    let other = exchange("octocat", 222).await?;
    let alice = log_in(&app, "alice").await?;

    // The settings page lists both: actor, run (a link to it), expiry.
    let page = alice.get("/crates/incident/settings").await?;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.texts("#exchanged-tokens tbody td:first-child"),
        vec!["mallory", "octocat"]
    );
    assert!(
        page.attr("#exchanged-tokens tbody tr:first-child a.run", "href")
            .is_some_and(|href| href.ends_with("/octo-org/widget/actions/runs/111/attempts/1")),
        "{}",
        page.body
    );
    assert!(
        page.text("#exchanged-tokens tbody tr:first-child td.expires")
            .contains("UTC")
    );

    // Act: revoke the compromised run's token from the page.
    let action = page
        .attr("#exchanged-tokens tbody tr:first-child form", "action")
        .unwrap();
    let revoked = alice.post(&action, &[]).await?;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(revoked.location(), Some("/crates/incident/settings"));

    // Assert: a flash message, the token is gone from the list and cannot publish; the other
    // run's token still can; the audit log shows who revoked which run's token.
    let page = alice.get("/crates/incident/settings").await?;
    assert!(
        page.text(".flash")
            .contains("Revoked the publish token of mallory"),
        "{}",
        page.text(".flash")
    );
    assert_eq!(
        page.texts("#exchanged-tokens tbody td:first-child"),
        vec!["octocat"]
    );
    let refused = app
        .publish(&compromised, &CrateBuilder::new("incident", "1.1.0"))
        .await;
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await?;
    assert!(
        crate::support::detail(&body).contains("revoked by alice"),
        "{body}"
    );
    app.publish_ok(&other, &CrateBuilder::new("incident", "1.1.0"))
        .await;
    let latest = page.texts("#audit-log tbody tr:first-child td");
    assert_eq!(
        latest[1..3],
        ["alice", "trustpub token revoke"],
        "{latest:?}"
    );
    assert!(
        latest[3].contains("actor: mallory") && latest[3].contains("/runs/111/"),
        "{latest:?}"
    );

    // Revoking again, or from outside, finds nothing to revoke.
    assert_eq!(alice.post(&action, &[]).await?.status, 404);
    let eve = log_in(&app, "eve").await?;
    let other_action = page
        .attr("#exchanged-tokens tbody tr:first-child form", "action")
        .unwrap();
    assert_eq!(eve.post(&other_action, &[]).await?.status, 403);

    // Removing the publisher revokes the remaining token at once, as the confirmation says.
    let remove_link = page
        .attr("#github-publishers a.remove-publisher", "href")
        .unwrap();
    let confirm = alice.get(&remove_link).await?;
    assert!(
        confirm
            .text("#revocation-notice")
            .contains("1 unexpired publish token"),
        "{}",
        confirm.body
    );
    assert_eq!(alice.post(&remove_link, &[]).await?.status, 303);
    let refused = app
        .publish(&other, &CrateBuilder::new("incident", "1.2.0"))
        .await;
    assert_eq!(refused.status(), 403);
    let page = alice.get("/crates/incident/settings").await?;
    assert_eq!(page.count("#exchanged-tokens"), 0);
    assert_eq!(page.count("#no-exchanged-tokens"), 1);
    Ok(())
}
