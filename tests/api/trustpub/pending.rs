//! Pending publishers: `POST /api/v1/trusted_publishing/{kind}_configs` for a crate that does
//! not exist yet, the exchange against such a config, and the first publish that creates the
//! crate.

use serde_json::{Value, json};

use crate::support::fake_idp::{self, FakeIdp, Provider};
use crate::support::{CrateBuilder, TestApp, assert_one_won, detail};

/// A registry trusting the fake's GitHub, GitLab and Buildkite issuers.
async fn setup() -> (FakeIdp, TestApp) {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_idp(&idp)
        .gitlab_idp(&idp)
        .buildkite_idp(&idp)
        .spawn()
        .await;
    (idp, app)
}

fn github_body(krate: &str, workflow: &str) -> Value {
    json!({ "github_config": {
        "crate": krate,
        "repository_owner": fake_idp::GITHUB_OWNER,
        "repository_name": fake_idp::GITHUB_REPO,
        "workflow_filename": workflow,
    }})
}

/// `POST …/github_configs` for the fake's repository and `workflow`.
async fn add_pending(app: &TestApp, token: &str, krate: &str, workflow: &str) -> (u16, Value) {
    app.post_json(
        "/api/v1/trusted_publishing/github_configs",
        Some(token),
        &github_body(krate, workflow),
    )
    .await
}

/// An ID token of the fake's repository, run by `workflow`.
fn github_jwt(idp: &FakeIdp, app: &TestApp, workflow: &str) -> String {
    let workflow_ref = format!(
        "{}/{}/.github/workflows/{workflow}@{}",
        fake_idp::GITHUB_OWNER,
        fake_idp::GITHUB_REPO,
        "refs/tags/v1.0.0"
    );
    idp.sign(&idp.github_claims(
        &app.audience(),
        json!({ "workflow_ref": workflow_ref, "job_workflow_ref": workflow_ref }),
    ))
}

async fn exchange_ok(app: &TestApp, jwt: &str) -> String {
    let (status, body) = app.exchange(jwt).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap_or_default().to_owned()
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    app.get_json_with(path, token).await
}

async fn owners(app: &TestApp, krate: &str) -> Vec<String> {
    let (status, body) = app
        .get_json(&format!("/api/v1/crates/{krate}/owners"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["users"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .filter_map(|u| u["login"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The crate's audit log, newest first, without the `mail_skipped` rows (the test users have no
/// email address; mail is tested in `mail.rs`).
fn audit_actions(app: &TestApp, krate: &str) -> anyhow::Result<Vec<(String, Value)>> {
    let krate = krate.to_owned();
    let entries = app.app.db.blocking(move |conn| {
        let krate = wharf::models::Crate::by_name(conn, &krate)?.unwrap();
        Ok(wharf::models::audit::for_crate(conn, krate.id, 20)?)
    })?;
    Ok(entries
        .into_iter()
        .filter(|e| e.action != "mail_skipped")
        .map(|e| {
            let detail = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
            (e.action, detail)
        })
        .collect())
}

#[tokio::test]
async fn a_pending_github_publisher_publishes_the_first_version_and_becomes_ordinary()
-> anyhow::Result<()> {
    let (idp, app) = setup().await;
    let alice = app.token("alice");

    let (status, created) = add_pending(&app, &alice, "fresh", fake_idp::GITHUB_WORKFLOW).await;
    assert_eq!(status, 200, "{created}");
    let config = &created["github_config"];
    assert_eq!(config["pending"], true);
    assert_eq!(config["void"], false);
    assert_eq!(config["crate"], "fresh");
    assert_eq!(config["repository_owner_id"], fake_idp::GITHUB_OWNER_ID);
    assert!(config["id"].as_i64().unwrap_or(0) < 0, "{config}");
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(config["expires_at"].clone())?;
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "{days}");

    let (status, list) = get(
        &app,
        "/api/v1/trusted_publishing/github_configs?crate=fresh",
        &alice,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["github_configs"][0]["id"], config["id"]);
    assert_eq!(list["github_configs"][0]["pending"], true);

    let token = exchange_ok(&app, &github_jwt(&idp, &app, fake_idp::GITHUB_WORKFLOW)).await;
    let response = app
        .publish(&token, &CrateBuilder::new("fresh", "1.0.0"))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await?);

    // The crate is alice's, and the pending config became an ordinary one.
    assert_eq!(owners(&app, "fresh").await, ["alice"]);
    let (status, list) = get(
        &app,
        "/api/v1/trusted_publishing/github_configs?crate=fresh",
        &alice,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let ordinary = &list["github_configs"][0];
    let ordinary_id = ordinary["id"].as_i64().unwrap_or(0);
    assert!(ordinary_id > 0, "{list}");
    assert_eq!(ordinary.get("pending"), None);
    assert_eq!(list["github_configs"].as_array().map(Vec::len), Some(1));
    let (_, krate) = app.get_json("/api/v1/crates/fresh").await;
    assert_eq!(
        krate["versions"][0]["published_by"]["login"],
        fake_idp::GITHUB_ACTOR
    );
    assert_eq!(krate["versions"][0]["trustpub"]["config_id"], ordinary_id);
    let actions = audit_actions(&app, "fresh")?;
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ["publish", "trustpub_github_add"]);
    assert_eq!(actions[1].1["pending_id"], config["id"]);

    // Only the first version, and only that crate.
    let again = app
        .publish(&token, &CrateBuilder::new("fresh", "1.0.1"))
        .await;
    assert_eq!(again.status(), 403);
    let other = app
        .publish(&token, &CrateBuilder::new("another", "1.0.0"))
        .await;
    assert_eq!(other.status(), 403);
    insta::assert_snapshot!("not_minted_for_it", detail(&other.json().await?).to_owned());

    // Later versions go through the ordinary config.
    let token = exchange_ok(&app, &github_jwt(&idp, &app, fake_idp::GITHUB_WORKFLOW)).await;
    app.publish_ok(&token, &CrateBuilder::new("fresh", "1.1.0"))
        .await;
    Ok(())
}

#[tokio::test]
async fn pending_gitlab_and_buildkite_publishers_capture_their_ids_at_the_first_publish()
-> anyhow::Result<()> {
    let (idp, app) = setup().await;
    let alice = app.token("alice");
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/gitlab_configs",
            Some(&alice),
            &json!({ "gitlab_config": {
                "crate": "from-gitlab",
                "namespace": fake_idp::GITLAB_NAMESPACE,
                "project": fake_idp::GITLAB_PROJECT,
                "workflow_filepath": fake_idp::GITLAB_CI_CONFIG,
            }}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["gitlab_config"]["pending"], true);
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/buildkite_configs",
            Some(&alice),
            &json!({ "buildkite_config": {
                "crate": "from_buildkite",
                "organization": fake_idp::BUILDKITE_ORGANIZATION,
                "pipeline": fake_idp::BUILDKITE_PIPELINE,
            }}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["buildkite_config"]["pending"], true);

    let gitlab = idp.issuer_of(Provider::GitLab);
    let jwt = gitlab.sign(&idp.gitlab_claims(&app.audience(), json!({})));
    let token = exchange_ok(&app, &jwt).await;
    app.publish_ok(&token, &CrateBuilder::new("from-gitlab", "0.1.0"))
        .await;
    let buildkite = idp.issuer_of(Provider::Buildkite);
    let jwt = buildkite.sign(&idp.buildkite_claims(
        &app.audience(),
        json!({
            "organization_id": fake_idp::BUILDKITE_ORGANIZATION_ID,
            "pipeline_id": fake_idp::BUILDKITE_PIPELINE_ID,
        }),
    ));
    let token = exchange_ok(&app, &jwt).await;
    app.publish_ok(&token, &CrateBuilder::new("from_buildkite", "0.1.0"))
        .await;

    for (kind, krate) in [("gitlab", "from-gitlab"), ("buildkite", "from_buildkite")] {
        assert_eq!(owners(&app, krate).await, ["alice"], "{kind}");
        let actions = audit_actions(&app, krate)?;
        assert_eq!(actions[1].0, format!("trustpub_{kind}_add"));
    }
    // What each provider captures on first use was captured from the exchange's claims: an
    // ID token of another namespace ID or organization ID is now refused.
    let jwt = gitlab.sign(&idp.gitlab_claims(&app.audience(), json!({ "namespace_id": "999" })));
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 400, "{body}");
    assert!(detail(&body).contains("999"), "{body}");
    let jwt = buildkite.sign(&idp.buildkite_claims(
        &app.audience(),
        json!({
            "organization_id": "00000000-0000-0000-0000-000000000000",
            "pipeline_id": fake_idp::BUILDKITE_PIPELINE_ID,
        }),
    ));
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

#[tokio::test]
async fn two_users_pending_publishers_for_one_name_the_first_publish_wins() -> anyhow::Result<()> {
    let (idp, app) = setup().await;
    let bob = app.token("bob");
    let carol = app.token("carol");
    let (status, body) = add_pending(&app, &bob, "contested", "bob.yml").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = add_pending(&app, &carol, "contested", "carol.yml").await;
    assert_eq!(status, 200, "{body}");
    let bob_token = exchange_ok(&app, &github_jwt(&idp, &app, "bob.yml")).await;
    let carol_token = exchange_ok(&app, &github_jwt(&idp, &app, "carol.yml")).await;

    let bob_crate = CrateBuilder::new("contested", "1.0.0");
    let carol_crate = CrateBuilder::new("contested", "1.0.0").readme("carol");
    let (first, second) = tokio::join!(
        app.publish(&bob_token, &bob_crate),
        app.publish(&carol_token, &carol_crate),
    );
    let statuses = [first.status().as_u16(), second.status().as_u16()];
    assert!(
        statuses.contains(&200) && statuses.iter().filter(|s| **s == 200).count() == 1,
        "exactly one publish wins: {statuses:?}"
    );
    let (winner, loser_jwt_workflow) = if statuses[0] == 200 {
        ("bob", "carol.yml")
    } else {
        ("carol", "bob.yml")
    };
    let loser = if statuses[0] == 200 { second } else { first };
    let refusal = loser.json::<Value>().await?;
    assert!(
        detail(&refusal).contains("void") || detail(&refusal).contains("exists now"),
        "{refusal}"
    );
    assert_eq!(owners(&app, "contested").await, [winner]);
    let (_, krate) = app.get_json("/api/v1/crates/contested").await;
    assert_eq!(krate["versions"].as_array().map(Vec::len), Some(1));

    // The loser's pending config is void, and an exchange against it says so.
    let (status, body) = app
        .exchange(&github_jwt(&idp, &app, loser_jwt_workflow))
        .await;
    assert_eq!(status, 400, "{body}");
    insta::assert_snapshot!("void_exchange", detail(&body).to_owned());
    Ok(())
}

#[tokio::test]
async fn a_crate_created_by_another_path_voids_pending_publishers() -> anyhow::Result<()> {
    let (idp, app) = setup().await;
    let bob = app.token("bob");
    let alice = app.token("alice");
    let (status, body) = add_pending(&app, &bob, "manual", fake_idp::GITHUB_WORKFLOW).await;
    assert_eq!(status, 200, "{body}");
    // Bob's CI exchanges while the crate does not exist yet …
    let token = exchange_ok(&app, &github_jwt(&idp, &app, fake_idp::GITHUB_WORKFLOW)).await;
    // … then alice publishes the name with her API token.
    app.publish_ok(&alice, &CrateBuilder::new("manual", "1.0.0"))
        .await;
    let response = app
        .publish(&token, &CrateBuilder::new("manual", "1.0.1"))
        .await;
    assert_eq!(response.status(), 403);
    insta::assert_snapshot!(
        "created_after_exchange",
        detail(&response.json().await?).to_owned()
    );
    assert_eq!(owners(&app, "manual").await, ["alice"]);
    let (_, krate) = app.get_json("/api/v1/crates/manual").await;
    assert_eq!(krate["versions"].as_array().map(Vec::len), Some(1));

    // A new exchange is refused as void; bob's list shows the config void.
    let (status, body) = app
        .exchange(&github_jwt(&idp, &app, fake_idp::GITHUB_WORKFLOW))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(detail(&body).contains("is void"), "{body}");
    // A new pending config for a crate that exists is not possible: it is alice's crate.
    let (status, body) = add_pending(&app, &bob, "manual", "other.yml").await;
    assert_eq!(status, 403, "{body}");
    Ok(())
}

#[tokio::test]
async fn pending_publishers_are_limited_per_user_and_need_the_right_to_create_crates()
-> anyhow::Result<()> {
    let (_idp, app) = setup().await;
    let alice = app.token("alice");
    for i in 0..10 {
        let (status, body) = add_pending(&app, &alice, &format!("new-{i}"), "release.yml").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = add_pending(&app, &alice, "new-10", "release.yml").await;
    assert_eq!(status, 400, "{body}");
    insta::assert_snapshot!("limit", detail(&body).to_owned());
    let (status, body) = add_pending(&app, &alice, "new-1", "release.yml").await;
    assert_eq!(status, 400, "a duplicate: {body}");

    // Removing one makes room; the id is the negative one the API gave.
    let (_, list) = get(
        &app,
        "/api/v1/trusted_publishing/github_configs?crate=new-3",
        &alice,
    )
    .await;
    let id = list["github_configs"][0]["id"].as_i64().unwrap_or(0);
    assert!(id < 0, "{list}");
    let url = app.url(&format!("/api/v1/trusted_publishing/github_configs/{id}"));
    let bob = app.token("bob");
    let response = app
        .client
        .delete(&url)
        .header("Authorization", &bob)
        .send()
        .await?;
    assert_eq!(response.status(), 404, "another user's pending config");
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/trusted_publishing/gitlab_configs/{id}")))
        .header("Authorization", &alice)
        .send()
        .await?;
    assert_eq!(response.status(), 404, "another provider's id");
    let response = app
        .client
        .delete(&url)
        .header("Authorization", &alice)
        .send()
        .await?;
    assert_eq!(response.status(), 204);
    let (_, list) = get(
        &app,
        "/api/v1/trusted_publishing/github_configs?crate=new-3",
        &alice,
    )
    .await;
    assert_eq!(list["github_configs"], json!([]));
    let (status, body) = add_pending(&app, &alice, "new-10", "release.yml").await;
    assert_eq!(status, 200, "{body}");

    // The caller must be able to create crates of that name.
    let tp_only = app.token_with("dave", &["trusted-publishing"], &[]);
    let (status, body) = add_pending(&app, &tp_only, "daves", "release.yml").await;
    assert_eq!(status, 403, "{body}");
    insta::assert_snapshot!("needs_publish_new", detail(&body).to_owned());
    let scoped = app.token_with("dave", &["publish-new"], &["dave-*"]);
    let (status, body) = add_pending(&app, &scoped, "daves", "release.yml").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = add_pending(&app, &scoped, "dave-tools", "release.yml").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = add_pending(&app, &alice, "Not A Name", "release.yml").await;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

#[tokio::test]
async fn expired_pending_publishers_match_nothing_and_are_cleaned_up() -> anyhow::Result<()> {
    let (idp, app) = setup().await;
    let alice = app.token("alice");
    let (status, body) = add_pending(&app, &alice, "late", fake_idp::GITHUB_WORKFLOW).await;
    assert_eq!(status, 200, "{body}");
    // Its time runs out.
    let past = wharf::models::now() - chrono::Duration::seconds(1);
    app.app.db.blocking(move |conn| {
        use diesel::prelude::*;
        use wharf::schema::trustpub_pending_configs as p;
        diesel::update(p::table)
            .set(p::expires_at.eq(past))
            .execute(conn)?;
        Ok(())
    })?;
    let (status, body) = app
        .exchange(&github_jwt(&idp, &app, fake_idp::GITHUB_WORKFLOW))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!detail(&body).contains("void"), "{body}");
    let (_, list) = get(
        &app,
        "/api/v1/trusted_publishing/github_configs?crate=late",
        &alice,
    )
    .await;
    assert_eq!(list["github_configs"], json!([]));
    // The clean-up (the server's own, every 5 minutes from its start, may get there first)
    // deletes the expired one and keeps the other.
    let (status, body) = add_pending(&app, &alice, "on-time", fake_idp::GITHUB_WORKFLOW).await;
    assert_eq!(status, 200, "{body}");
    let left = app.app.db.blocking(|conn| {
        use diesel::prelude::*;
        use wharf::schema::trustpub_pending_configs as p;
        wharf::models::pending_config::clean_up(conn, wharf::models::now())?;
        Ok(p::table.select(p::crate_name).load::<String>(conn)?)
    })?;
    assert_eq!(left, ["on-time"]);
    Ok(())
}

#[tokio::test]
async fn a_strangers_pending_publisher_for_your_repository_blocks_instead_of_taking_the_crate()
-> anyhow::Result<()> {
    let (idp, app) = setup().await;
    let eve = app.token("eve");
    let bob = app.token("bob");
    let (status, body) = add_pending(&app, &eve, "bobs-crate", fake_idp::GITHUB_WORKFLOW).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = add_pending(&app, &bob, "bobs-crate", fake_idp::GITHUB_WORKFLOW).await;
    assert_eq!(status, 200, "{body}");
    let jwt = github_jwt(&idp, &app, fake_idp::GITHUB_WORKFLOW);
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 400, "{body}");
    insta::assert_snapshot!("ambiguous", detail(&body).to_owned());

    // Once eve's is gone, bob's job publishes, and the crate is bob's. (The failed exchange
    // did not use up the ID token.)
    let id = body_id(&app, &eve, "bobs-crate").await;
    let removed = app
        .client
        .delete(app.url(&format!("/api/v1/trusted_publishing/github_configs/{id}")))
        .header("Authorization", &eve)
        .send()
        .await?;
    assert_eq!(removed.status(), 204);
    let token = exchange_ok(&app, &jwt).await;
    app.publish_ok(&token, &CrateBuilder::new("bobs-crate", "1.0.0"))
        .await;
    assert_eq!(owners(&app, "bobs-crate").await, ["bob"]);
    Ok(())
}

/// The id of `token`'s user's first pending GitHub config for `krate`.
async fn body_id(app: &TestApp, token: &str, krate: &str) -> i64 {
    let (_, list) = get(
        app,
        &format!("/api/v1/trusted_publishing/github_configs?crate={krate}"),
        token,
    )
    .await;
    list["github_configs"][0]["id"].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn removing_a_pending_publisher_takes_the_right_away_from_tokens_minted_through_it()
-> anyhow::Result<()> {
    let (idp, app) = setup().await;
    let alice = app.token("alice");
    let (status, body) = add_pending(&app, &alice, "withdrawn", fake_idp::GITHUB_WORKFLOW).await;
    assert_eq!(status, 200, "{body}");
    let token = exchange_ok(&app, &github_jwt(&idp, &app, fake_idp::GITHUB_WORKFLOW)).await;
    let id = body_id(&app, &alice, "withdrawn").await;
    let removed = app
        .client
        .delete(app.url(&format!("/api/v1/trusted_publishing/github_configs/{id}")))
        .header("Authorization", &alice)
        .send()
        .await?;
    assert_eq!(removed.status(), 204);
    let response = app
        .publish(&token, &CrateBuilder::new("withdrawn", "1.0.0"))
        .await;
    assert_eq!(response.status(), 403);
    let (status, _) = app.get_json("/api/v1/crates/withdrawn").await;
    assert_eq!(status, 404, "nothing was created");
    Ok(())
}

#[tokio::test]
async fn simultaneous_adds_neither_pass_the_limit_nor_duplicate_a_pending_publisher()
-> anyhow::Result<()> {
    let (_idp, app) = setup().await;
    let alice = app.token("alice");

    // The same pending publisher added eight times at once: one is added.
    let same = (0..8).map(|_| add_pending(&app, &alice, "new-0", "release.yml"));
    let statuses: Vec<u16> = futures_util::future::join_all(same)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_one_won(&statuses);

    // Room for one more, eight different ones at once: one is added.
    for i in 1..wharf::services::pending::MAX_PENDING_PER_USER - 1 {
        let (status, body) = add_pending(&app, &alice, &format!("new-{i}"), "release.yml").await;
        assert_eq!(status, 200, "{body}");
    }
    let names: Vec<String> = (0..8).map(|i| format!("last-{i}")).collect();
    let last = names
        .iter()
        .map(|name| add_pending(&app, &alice, name, "release.yml"));
    let statuses: Vec<u16> = futures_util::future::join_all(last)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_one_won(&statuses);
    Ok(())
}
