//! `POST /api/v1/trusted_publishing/tokens` over HTTP: matching, single use, errors.

use serde_json::{Value, json};

use crate::support::fake_idp::{self, FakeIdp, Provider};
use crate::support::{CrateBuilder, TestApp, assert_one_won, detail};

async fn github_setup() -> (FakeIdp, TestApp, String) {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    (idp, app, owner)
}

#[tokio::test]
async fn a_github_id_token_is_exchanged_and_publishes_a_version_recording_the_actor()
-> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    let config = app.add_github_config(&owner, "widget", None).await;
    assert_eq!(
        config["github_config"]["repository_owner_id"],
        fake_idp::GITHUB_OWNER_ID
    );

    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("wharf_tp_"));

    app.publish_ok(&token, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    let (_, info) = app.get_json("/api/v1/crates/widget").await;
    let version = &info["versions"][0];
    assert_eq!(version["num"], "1.1.0");
    assert_eq!(version["published_by"]["login"], fake_idp::GITHUB_ACTOR);
    assert_eq!(version["published_by"]["kind"], "trusted_publishing");
    let tp = &version["trustpub"];
    assert_eq!(tp["provider"], "github");
    assert_eq!(tp["repository"], "octo-org/widget");
    assert_eq!(tp["workflow"], "release.yml");
    assert_eq!(tp["run_id"], fake_idp::GITHUB_RUN_ID.to_string());
    assert_eq!(tp["sha"], fake_idp::SHA);
    assert_eq!(tp["config_id"], config["github_config"]["id"]);
    assert!(
        tp["run_url"]
            .as_str()
            .unwrap()
            .ends_with("/octo-org/widget/actions/runs/4242424242/attempts/1")
    );
    Ok(())
}

#[tokio::test]
async fn a_gitlab_id_token_from_a_subgroup_is_exchanged_and_the_namespace_id_captured()
-> anyhow::Result<()> {
    let idp = FakeIdp::start(Provider::GitLab);
    let app = TestApp::builder().gitlab_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    app.add_gitlab_config(&owner, "widget", "Acme/Tools", Some("production"))
        .await;
    let project_path = "acme/tools/widget";
    let claims = |namespace_id: &str| {
        idp.gitlab_claims(
            &app.audience(),
            json!({
                "project_path": project_path,
                "namespace_path": "acme/tools",
                "namespace_id": namespace_id,
                "environment": "Production",
                "ci_config_ref_uri": idp.gitlab_ci_config_ref_uri(project_path, ".gitlab-ci.yml"),
            }),
        )
    };
    let (status, body) = app.exchange(&idp.sign(&claims("72"))).await;
    assert_eq!(status, 200, "{body}");
    app.publish_ok(
        body["token"].as_str().unwrap(),
        &CrateBuilder::new("widget", "1.1.0"),
    )
    .await;
    let (_, info) = app.get_json("/api/v1/crates/widget").await;
    assert_eq!(
        info["versions"][0]["published_by"]["login"],
        fake_idp::GITLAB_USER
    );
    assert_eq!(info["versions"][0]["trustpub"]["provider"], "gitlab");
    assert_eq!(
        info["versions"][0]["trustpub"]["job_id"],
        fake_idp::GITLAB_JOB_ID.to_string()
    );

    // A group of the same name re-created later has a new ID: no longer trusted.
    let (status, body) = app.exchange(&idp.sign(&claims("999"))).await;
    assert_eq!(status, 400);
    insta::assert_snapshot!(detail(&body).to_owned());
    Ok(())
}

#[tokio::test]
async fn a_replayed_jti_is_refused() -> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    app.add_github_config(&owner, "widget", None).await;
    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    assert_eq!(app.exchange(&jwt).await.0, 200);
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 400);
    insta::assert_snapshot!(detail(&body).to_owned(), @"this ID token has already been exchanged; each ID token can be used once. Request a fresh ID token from your CI platform");
    Ok(())
}

#[tokio::test]
async fn concurrent_exchanges_of_one_id_token_mint_exactly_one_token() -> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    app.add_github_config(&owner, "widget", None).await;
    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = app.client.clone();
        let url = app.url("/api/v1/trusted_publishing/tokens");
        let jwt = jwt.clone();
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).json(&json!({ "jwt": jwt })).send().await?;
            anyhow::Ok(response.status().as_u16())
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await??);
    }
    assert_one_won(&statuses);
    Ok(())
}

#[tokio::test]
async fn a_failed_match_does_not_burn_the_jti() -> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 400);
    insta::assert_snapshot!("no_config", detail(&body).to_owned());
    app.add_github_config(&owner, "widget", None).await;
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(
        status, 200,
        "the same ID token works once the config exists: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn mismatches_name_the_field_and_what_the_configs_expect() -> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    app.add_github_config(&owner, "widget", Some("production"))
        .await;
    let cases: [(&str, Value); 4] = [
        (
            "workflow",
            json!({ "workflow_ref": "octo-org/widget/.github/workflows/ci.yml@refs/heads/main" }),
        ),
        ("environment_differs", json!({ "environment": "staging" })),
        ("environment_missing", json!({})),
        (
            "owner_id",
            json!({ "repository_owner_id": "9999", "environment": "production" }),
        ),
    ];
    for (name, overrides) in cases {
        let (status, body) = app
            .exchange(&idp.sign(&idp.github_claims(&app.audience(), overrides)))
            .await;
        assert_eq!(status, 400, "{name}");
        insta::assert_snapshot!(name, detail(&body).to_owned());
    }
    let (status, _) = app
        .exchange(&idp.sign(&idp.github_claims(
            &app.audience(),
            json!({ "environment": "PRODUCTION", "repository": "Octo-Org/Widget" }),
        )))
        .await;
    assert_eq!(status, 200, "case-insensitive repository and environment");
    Ok(())
}

#[tokio::test]
async fn a_reusable_workflow_elsewhere_does_not_change_what_is_matched() -> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    app.add_github_config(&owner, "widget", None).await;
    // The caller's workflow is ci.yml; it calls the configured release.yml as a reusable one.
    let overrides = json!({
        "workflow_ref": "octo-org/widget/.github/workflows/ci.yml@refs/heads/main",
        "job_workflow_ref": "octo-org/widget/.github/workflows/release.yml@refs/heads/main",
    });
    let (status, body) = app
        .exchange(&idp.sign(&idp.github_claims(&app.audience(), overrides)))
        .await;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

#[tokio::test]
async fn hostile_and_broken_tokens_are_refused_without_minting() -> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    app.add_github_config(&owner, "widget", None).await;
    let audience = app.audience();
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<(&str, String)> = vec![
        (
            "alg_none",
            fake_idp::unsigned(
                &json!({ "alg": "none", "typ": "JWT" }),
                &idp.github_claims(&audience, json!({})),
            ),
        ),
        (
            "wrong_audience",
            idp.sign(&idp.github_claims("elsewhere.example", json!({}))),
        ),
        (
            "audience_list",
            idp.sign(&idp.github_claims(&audience, json!({ "aud": [audience.clone()] }))),
        ),
        (
            "expired",
            idp.sign(&idp.github_claims(
                &audience,
                json!({ "exp": now - 600, "iat": now - 900, "nbf": now - 900 }),
            )),
        ),
        (
            "not_yet_valid",
            idp.sign(&idp.github_claims(&audience, json!({ "nbf": now + 600 }))),
        ),
        (
            "missing_jti",
            idp.sign(&idp.github_claims(&audience, json!({ "jti": null }))),
        ),
        (
            "pull_request_target",
            idp.sign(&idp.github_claims(&audience, json!({ "event_name": "pull_request_target" }))),
        ),
        (
            "workflow_run",
            idp.sign(&idp.github_claims(&audience, json!({ "event_name": "workflow_run" }))),
        ),
        ("garbage", "not.a.jwt".to_owned()),
        ("oversized", "a".repeat(20_000)),
    ];
    for (name, jwt) in cases {
        let (status, body) = app.exchange(&jwt).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.get("token").is_none());
        insta::with_settings!({ filters => vec![
            (r"127\.0\.0\.1:\d+", "[audience]"),
            (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[time]"),
        ]}, {
            insta::assert_snapshot!(format!("hostile_{name}"), detail(&body).to_owned());
        });
    }
    let other = FakeIdp::start(Provider::GitHub);
    let (status, body) = app
        .exchange(&other.sign(&other.github_claims(&audience, json!({}))))
        .await;
    assert_eq!(status, 400, "an issuer not on the allow-list: {body}");
    Ok(())
}

#[tokio::test]
async fn an_identity_provider_that_is_down_is_a_503_and_never_an_accept() -> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    app.add_github_config(&owner, "widget", None).await;
    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    idp.set_down(true);
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 503, "{body}");
    idp.set_down(false);
    idp.set_broken_jwks(true);
    let (status, _) = app.exchange(&jwt).await;
    assert_eq!(status, 503);
    idp.set_broken_jwks(false);
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(
        status, 200,
        "the ID token was not burned by the outage: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn every_exchange_is_in_the_audit_log() -> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    app.add_github_config(&owner, "widget", None).await;
    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    assert_eq!(app.exchange(&jwt).await.0, 200);
    let actions = app.app.db.blocking(|conn| {
        let krate = wharf::models::Crate::by_name(conn, "widget")?.unwrap();
        Ok(wharf::models::audit::for_crate(conn, krate.id, 10)?)
    })?;
    let names: Vec<_> = actions
        .iter()
        .map(|a| (a.action.as_str(), a.actor.as_str()))
        .collect();
    assert_eq!(
        names,
        // (alice has no email address: the mail about the new publisher skipped her, on record)
        [
            ("trustpub_exchange", "octocat"),
            ("mail_skipped", "alice"),
            ("trustpub_github_add", "alice"),
            ("publish", "alice")
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_jti_used_on_one_instance_is_refused_on_another_sharing_the_database()
-> anyhow::Result<()> {
    let (idp, first, owner) = github_setup().await;
    first.add_github_config(&owner, "widget", None).await;
    let second = TestApp::builder()
        .github_idp(&idp)
        .sharing_database_with(&first)
        .spawn()
        .await;
    let jwt = idp.sign(&idp.github_claims(&first.audience(), json!({})));
    // Both instances must expect the same audience; in production it is the public URL's host.
    let jwt_for_second =
        idp.sign(&idp.github_claims(&second.audience(), json!({ "jti": "shared-jti" })));
    let jwt_for_first =
        idp.sign(&idp.github_claims(&first.audience(), json!({ "jti": "shared-jti" })));
    assert_eq!(first.exchange(&jwt).await.0, 200);
    assert_eq!(first.exchange(&jwt_for_first).await.0, 200);
    let (status, body) = second.exchange(&jwt_for_second).await;
    assert_eq!(status, 400, "{body}");
    assert!(detail(&body).contains("already been exchanged"), "{body}");
    // And a token minted on one instance publishes through the other.
    let (_, minted) = second
        .exchange(&idp.sign(&idp.github_claims(&second.audience(), json!({}))))
        .await;
    first
        .publish_ok(
            minted["token"].as_str().unwrap(),
            &CrateBuilder::new("widget", "2.0.0"),
        )
        .await;
    Ok(())
}

#[tokio::test]
async fn a_gitlab_token_whose_ci_config_comes_from_another_project_is_refused() -> anyhow::Result<()>
{
    let idp = FakeIdp::start(Provider::GitLab);
    let app = TestApp::builder().gitlab_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    app.add_gitlab_config(&owner, "widget", fake_idp::GITLAB_NAMESPACE, None)
        .await;
    let host = idp.issuer().trim_start_matches("http://").to_owned();
    let cases = [
        (
            "another_project",
            idp.gitlab_ci_config_ref_uri("mallory/ci-templates", fake_idp::GITLAB_CI_CONFIG),
        ),
        (
            "another_ref",
            format!("{host}/acme/widget//.gitlab-ci.yml@refs/heads/unprotected"),
        ),
    ];
    for (name, uri) in cases {
        let claims = idp.gitlab_claims(&app.audience(), json!({ "ci_config_ref_uri": uri }));
        let (status, body) = app.exchange(&idp.sign(&claims)).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.get("token").is_none());
        insta::with_settings!({ filters => vec![(r"127\.0\.0\.1:\d+", "[host]")] }, {
            insta::assert_snapshot!(format!("ci_config_{name}"), detail(&body).to_owned());
        });
    }
    // The project's own CI config, at the commit being built, is still accepted.
    let own = idp.gitlab_claims(
        &app.audience(),
        json!({ "ci_config_ref_uri": format!("{host}/acme/widget//.gitlab-ci.yml@{}", fake_idp::SHA) }),
    );
    let (status, body) = app.exchange(&idp.sign(&own)).await;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test]
async fn unicode_look_alikes_of_configured_names_are_not_matched() -> anyhow::Result<()> {
    let (idp, app, owner) = github_setup().await;
    app.add_github_config(&owner, "widget", Some("k8s")).await;
    // U+212A KELVIN SIGN lower-cases to `k`, U+017F LONG S upper-cases to `S`: neither is the
    // ASCII letter the owner configured.
    let cases = [
        ("environment", json!({ "environment": "\u{212A}8s" })),
        (
            "repository",
            json!({ "environment": "k8s", "repository": "octo-org/widget\u{17F}" }),
        ),
        (
            "owner",
            json!({ "environment": "k8s", "repository": "octo-org\u{212A}/widget" }),
        ),
    ];
    for (name, overrides) in cases {
        let (status, body) = app
            .exchange(&idp.sign(&idp.github_claims(&app.audience(), overrides)))
            .await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.get("token").is_none(), "{name}");
    }
    let (status, body) = app
        .exchange(&idp.sign(&idp.github_claims(&app.audience(), json!({ "environment": "K8S" }))))
        .await;
    assert_eq!(status, 200, "ASCII case still folds: {body}");
    Ok(())
}

/// Whether the used `jti` `hash` is still remembered.
fn jti_remembered(app: &TestApp, hash: &'static str) -> anyhow::Result<bool> {
    use diesel::prelude::*;
    use wharf::schema::trustpub_used_jtis;
    app.app.db.blocking(move |conn| {
        Ok(trustpub_used_jtis::table
            .filter(trustpub_used_jtis::jti_hash.eq(hash))
            .count()
            .get_result::<i64>(conn)?
            > 0)
    })
}

#[tokio::test]
async fn a_used_jti_is_remembered_for_as_long_as_its_id_token_verifies() -> anyhow::Result<()> {
    use chrono::{DateTime, TimeDelta};
    use wharf::models::trustpub_token;

    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let claims = idp.github_claims(&app.audience(), json!({}));
    let jwt = idp.sign(&claims);
    let exp = DateTime::from_timestamp(claims["exp"].as_i64().unwrap(), 0).unwrap();
    // What the exchange does: verify, then remember the jti until the identity's window ends.
    let identity = app.app.verifier.verify_at(&jwt, exp).await?;
    let until = identity.replay_window_ends_at().naive_utc();
    app.app
        .db
        .blocking(move |conn| Ok(trustpub_token::claim_jti(conn, "probe", until)?))?;

    // The clean-up runs at each instant (with sub-second precision, as in production), and
    // the token is presented again at that instant: it must never both be forgotten and verify.
    let mut last_accepted = None;
    let mut forgotten_at = None;
    for millis in [
        0, 59_999, 60_000, 60_001, 60_500, 60_999, 61_000, 61_001, 61_500, 62_000, 90_000, 120_999,
        121_000, 121_001, 122_000,
    ] {
        let now = exp + TimeDelta::milliseconds(millis);
        app.app
            .db
            .blocking(move |conn| Ok(trustpub_token::clean_up(conn, now.naive_utc())?))?;
        let remembered = jti_remembered(&app, "probe")?;
        let accepted = app.app.verifier.verify_at(&jwt, now).await.is_ok();
        assert!(
            remembered || !accepted,
            "at exp + {millis} ms the jti was forgotten while the ID token still verifies"
        );
        if accepted {
            last_accepted = Some(millis);
        }
        if !remembered && forgotten_at.is_none() {
            forgotten_at = Some(millis);
        }
    }
    // The acceptance boundary is exp + 60 s leeway (to the second); the jti is forgotten
    // eventually, not kept for ever.
    assert_eq!(last_accepted, Some(60_999));
    assert!(forgotten_at.is_some(), "the clean-up never forgot the jti");
    Ok(())
}
