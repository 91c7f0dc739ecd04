//! Buildkite through the API against the fake identity provider: configs, the exchange (with
//! the organization and pipeline IDs pinned on first use), what a publish records, hostile
//! tokens, and the real `cargo publish` with an exchanged token.

use serde_json::{Value, json};

use crate::e2e_cargo::{Cargo, write_package};
use crate::support::fake_idp::{self, FakeIdp, Provider};
use crate::support::web_client::{log_in, spawn_with_github};
use crate::support::{CrateBuilder, TestApp, detail};

/// A registry trusting the fake's Buildkite (and GitHub) issuers, and `widget` owned by alice.
async fn setup() -> (FakeIdp, TestApp, String) {
    let idp = FakeIdp::start(Provider::Buildkite);
    let app = TestApp::builder()
        .buildkite_idp(&idp)
        .github_idp(&idp)
        .spawn()
        .await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    (idp, app, owner)
}

/// Claims of the fake's default job (step `publish` of build 42 of `acme/widget` on `main`)
/// carrying the organization's and pipeline's IDs, with `overrides`.
fn with_ids(idp: &FakeIdp, app: &TestApp, overrides: Value) -> Value {
    let mut claims = idp.buildkite_claims(
        &app.audience(),
        json!({
            "organization_id": fake_idp::BUILDKITE_ORGANIZATION_ID,
            "pipeline_id": fake_idp::BUILDKITE_PIPELINE_ID,
        }),
    );
    if let (Some(claims), Value::Object(overrides)) = (claims.as_object_mut(), overrides) {
        for (key, value) in overrides {
            if value.is_null() {
                claims.remove(&key);
            } else {
                claims.insert(key, value);
            }
        }
    }
    claims
}

#[tokio::test]
async fn a_buildkite_token_is_exchanged_its_ids_pinned_and_the_build_recorded() -> anyhow::Result<()>
{
    // Arrange
    let (idp, app, owner) = setup().await;
    let created = app
        .add_buildkite_config(
            &owner,
            "widget",
            "ACME",
            "widget",
            Some("main"),
            Some("publish"),
        )
        .await;
    let config = &created["buildkite_config"];
    assert_eq!(config["organization"], "ACME");
    assert_eq!(config["pipeline"], "widget");
    assert_eq!(config["branch"], "main");
    assert_eq!(config["step_key"], "publish");
    assert_eq!(config["organization_id"], Value::Null);
    let config_id = config["id"].as_i64().unwrap_or_default();

    // Act
    let (status, body) = app
        .exchange(&idp.sign(&with_ids(&idp, &app, json!({}))))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.1.0"))
        .await;

    // Assert: the IDs are pinned now.
    let (_, list) = app
        .get_json_with(
            "/api/v1/trusted_publishing/buildkite_configs?crate=widget",
            &owner,
        )
        .await;
    let pinned = &list["buildkite_configs"][0];
    assert_eq!(
        pinned["organization_id"],
        fake_idp::BUILDKITE_ORGANIZATION_ID
    );
    assert_eq!(pinned["pipeline_id"], fake_idp::BUILDKITE_PIPELINE_ID);
    // The version records the build, and `organization/pipeline` as who published.
    let (_, info) = app.get_json("/api/v1/crates/widget").await;
    let version = &info["versions"][0];
    assert_eq!(version["num"], "1.1.0");
    assert_eq!(
        version["published_by"],
        json!({ "kind": "trusted_publishing", "login": "acme/widget", "provider": "buildkite" })
    );
    let issuer = idp.issuer_of(Provider::Buildkite).url();
    assert_eq!(
        version["trustpub"],
        json!({
            "provider": "buildkite",
            "issuer": issuer,
            "organization": "acme",
            "pipeline": "widget",
            "branch": "main",
            "tag": null,
            "step_key": "publish",
            "build_number": fake_idp::BUILDKITE_BUILD_NUMBER,
            "job_id": fake_idp::BUILDKITE_JOB_ID,
            "run_url": format!("{issuer}/acme/widget/builds/42"),
            "sha": fake_idp::SHA,
            "config_id": config_id,
        })
    );
    assert_eq!(version["trustpub_data"], version["trustpub"]);
    // The public history says it, by the record's provider.
    let history = reqwest::get(app.url("/crates/widget/history"))
        .await?
        .text()
        .await?;
    assert!(history.contains("via Buildkite"), "{history}");
    assert!(
        history.contains(&format!(
            "<a class=\"run-link\" href=\"{issuer}/acme/widget/builds/42\" rel=\"noopener noreferrer\">build 42</a>"
        )),
        "{history}"
    );
    Ok(())
}

#[tokio::test]
async fn hostile_buildkite_tokens_are_refused_with_clear_messages() -> anyhow::Result<()> {
    // Arrange: a config whose IDs the first exchange pinned.
    let (idp, app, owner) = setup().await;
    app.add_buildkite_config(
        &owner,
        "widget",
        "acme",
        "widget",
        Some("main"),
        Some("publish"),
    )
    .await;
    let (status, body) = app
        .exchange(&idp.sign(&with_ids(&idp, &app, json!({}))))
        .await;
    assert_eq!(status, 200, "{body}");
    let buildkite = idp.issuer_of(Provider::Buildkite);
    let github = idp.issuer_of(Provider::GitHub);
    let other_id = "99999999-0000-4000-8000-000000000000";

    // (what, signed token, the start of the refusal)
    let cases: Vec<(&str, String, String)> =
        vec![
        (
            "another organization",
            idp.sign(&with_ids(&idp, &app, json!({ "organization_slug": "mallory" }))),
            "No Trusted Publishing config exists for Buildkite pipeline `mallory/widget`".into(),
        ),
        (
            "the pinned organization ID changed",
            idp.sign(&with_ids(&idp, &app, json!({ "organization_id": other_id }))),
            format!(
                "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the \
                 organization ID `{other_id}` differs from the one recorded when the config was \
                 first used (`{}`)",
                fake_idp::BUILDKITE_ORGANIZATION_ID
            ),
        ),
        (
            "the pinned pipeline ID changed",
            idp.sign(&with_ids(&idp, &app, json!({ "pipeline_id": other_id }))),
            format!(
                "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the \
                 pipeline ID `{other_id}` differs from the one recorded when the config was \
                 first used (`{}`)",
                fake_idp::BUILDKITE_PIPELINE_ID
            ),
        ),
        (
            "the pinned IDs left out",
            idp.sign(&idp.buildkite_claims(&app.audience(), json!({}))),
            "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the token \
             carries no `organization_id`"
                .into(),
        ),
        (
            "another branch",
            idp.sign(&with_ids(&idp, &app, json!({ "build_branch": "feature/x" }))),
            "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the token has \
             branch `feature/x`, but the config expects `main`."
                .into(),
        ),
        (
            "another step",
            idp.sign(&with_ids(&idp, &app, json!({ "step_key": "test" }))),
            "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the token has \
             step key `test`, but the config expects `publish`."
                .into(),
        ),
        (
            "GitHub-shaped claims from the Buildkite issuer",
            buildkite.sign(&idp.github_claims(&app.audience(), json!({ "iss": buildkite.url() }))),
            "The Buildkite ID token lacks a required claim or has one of an unexpected type: \
             missing field `organization_slug`"
                .into(),
        ),
        (
            "Buildkite-shaped claims from the GitHub issuer",
            github.sign(&with_ids(&idp, &app, json!({ "iss": github.url() }))),
            "The GitHub Actions ID token lacks a required claim or has one of an unexpected \
             type: missing field `repository`"
                .into(),
        ),
    ];

    for (what, jwt, refusal) in cases {
        // Act
        let (status, body) = app.exchange(&jwt).await;

        // Assert
        assert_eq!(status, 400, "{what}: {body}");
        assert!(
            detail(&body).starts_with(&refusal),
            "{what}: {}",
            detail(&body)
        );
    }
    Ok(())
}

#[tokio::test]
async fn buildkite_configs_are_validated_listed_and_removed_with_their_tokens() -> anyhow::Result<()>
{
    let (idp, app, owner) = setup().await;
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/buildkite_configs",
            Some(&owner),
            &json!({ "buildkite_config": { "crate": "widget", "organization": "ac me", "pipeline": "a/b", "branch": "x y" } }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        detail(&body),
        "organization: a Buildkite organization slug: letters, digits and `-`, at most 100 \
         characters; pipeline: a Buildkite pipeline slug: letters, digits and `-`, at most 100 \
         characters; branch: a branch name of at most 255 characters, without spaces or control \
         characters (leave it empty to allow any branch)"
    );
    let created = app
        .add_buildkite_config(&owner, "widget", "acme", "widget", None, None)
        .await;
    let id = created["buildkite_config"]["id"]
        .as_i64()
        .unwrap_or_default();
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/buildkite_configs",
            Some(&owner),
            &json!({ "buildkite_config": { "crate": "widget", "organization": "ACME", "pipeline": "Widget", "branch": null, "step_key": null } }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        detail(&body),
        "this Buildkite trusted publisher config exists already for this crate"
    );
    let (_, list) = app
        .get_json_with(
            "/api/v1/trusted_publishing/buildkite_configs?crate=widget",
            &owner,
        )
        .await;
    assert_eq!(list["buildkite_configs"].as_array().map(Vec::len), Some(1));
    // No branch and no step key: any build of the pipeline, with or without IDs.
    let (status, body) = app
        .exchange(&idp.sign(&idp.buildkite_claims(
            &app.audience(),
            json!({ "build_branch": "release", "step_key": null }),
        )))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap_or_default().to_owned();

    let removed = app
        .client
        .delete(app.url(&format!(
            "/api/v1/trusted_publishing/buildkite_configs/{id}"
        )))
        .header("Authorization", &owner)
        .send()
        .await?;
    assert_eq!(removed.status(), 204);
    let refused = app
        .publish(&token, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await?;
    assert!(
        detail(&body).contains("the trusted publisher it was minted through was removed"),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cargo_publishes_with_a_token_exchanged_for_a_buildkite_job() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Provider::Buildkite);
    let app = TestApp::builder().buildkite_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("bk-e2e", "0.1.0"))
        .await;
    app.add_buildkite_config(
        &owner,
        "bk-e2e",
        "acme",
        "widget",
        Some("main"),
        Some("publish"),
    )
    .await;
    let (status, body) = app
        .exchange(&idp.sign(&idp.buildkite_claims(&app.audience(), json!({}))))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap_or_default().to_owned();

    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, Some(token))?;
    let pkg = root.path().join("pkg");
    write_package(
        &pkg,
        "[package]\nname = \"bk-e2e\"\nversion = \"0.2.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"published by Buildkite\"\n",
        "pub fn ci() {}\n",
    )?;
    cargo
        .ok(&pkg, &["publish", "--registry", "wharf", "--no-verify"])
        .await?;

    let (_, info) = app.get_json("/api/v1/crates/bk-e2e").await;
    assert_eq!(info["versions"][0]["num"], "0.2.0");
    assert_eq!(info["versions"][0]["published_by"]["login"], "acme/widget");
    assert_eq!(info["versions"][0]["trustpub"]["build_number"], 42);
    Ok(())
}

#[tokio::test]
async fn owners_add_a_buildkite_publisher_in_the_settings_form() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("formed", "1.0.0"))
        .await;
    let alice = log_in(&app, "alice").await?;

    // The form is there, labelled, with its hints.
    let page = alice.get("/crates/formed/settings").await?;
    assert_eq!(page.count("#add-buildkite"), 1);
    for id in ["bk-organization", "bk-pipeline", "bk-branch", "bk-step-key"] {
        assert_eq!(page.count(&format!("label[for={id}]")), 1, "{id}");
    }

    // Bad input: the errors next to the fields, nothing added.
    let refused = alice
        .post(
            "/crates/formed/settings/buildkite",
            &[
                ("organization", "ac me"),
                ("pipeline", ""),
                ("step_key", "a b"),
            ],
        )
        .await?;
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .text("#bk-organization-error")
            .contains("organization slug")
    );
    assert!(refused.text("#bk-pipeline-error").contains("pipeline slug"));
    assert!(refused.text("#bk-step-key-error").contains("step key"));
    assert_eq!(refused.count("#bk-branch-error"), 0);
    assert_eq!(
        refused.attr("#bk-organization", "value").as_deref(),
        Some("ac me")
    );
    assert_eq!(refused.count("#buildkite-publishers"), 0);

    // Good input: listed, and removable like the others.
    let added = alice
        .post(
            "/crates/formed/settings/buildkite",
            &[
                ("organization", "acme"),
                ("pipeline", "widget"),
                ("branch", "main"),
                ("step_key", ""),
            ],
        )
        .await?;
    assert_eq!(added.status, 303, "{}", added.body);
    let page = alice.get("/crates/formed/settings").await?;
    assert!(
        page.text(".flash")
            .contains("Added the trusted publisher acme/widget, branch main")
    );
    assert_eq!(
        page.texts("#buildkite-publishers tbody td:nth-child(-n+3)"),
        vec!["acme/widget", "main", "any"]
    );
    let remove = page
        .attr("#buildkite-publishers a.remove-publisher", "href")
        .unwrap_or_default();
    assert!(
        remove.starts_with("/crates/formed/settings/buildkite/"),
        "{remove}"
    );
    let confirm = alice.get(&remove).await?;
    assert_eq!(
        confirm.text("#publisher-description"),
        "Buildkite: acme/widget, branch main"
    );
    Ok(())
}
