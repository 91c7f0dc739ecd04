//! The reusable-workflow constraint of GitHub publishers: `reusable_workflow` on the config
//! API and the settings form, the exchange, the mismatch message and the history page.

use serde_json::{Value, json};

use crate::support::fake_idp::{self, FakeIdp, Provider};
use crate::support::web_client::{WebClient, log_in, spawn_with_github};
use crate::support::{CrateBuilder, TestApp, detail};

const SHARED: &str = "octo-org/shared/.github/workflows/publish.yml";

fn body(reusable: Value) -> Value {
    json!({ "github_config": {
        "crate": "widget",
        "repository_owner": fake_idp::GITHUB_OWNER,
        "repository_name": fake_idp::GITHUB_REPO,
        "workflow_filename": fake_idp::GITHUB_WORKFLOW,
        "reusable_workflow": reusable,
    }})
}

fn jwt(idp: &FakeIdp, app: &TestApp, job_workflow_ref: &str) -> String {
    idp.sign(&idp.github_claims(
        &app.audience(),
        json!({ "job_workflow_ref": job_workflow_ref }),
    ))
}

#[tokio::test]
async fn a_github_publisher_may_require_a_reusable_workflow() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;

    // Validated, and null means none.
    let (status, refused) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&owner),
            &body(json!("octo-org/shared/publish.yml")),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        detail(&refused).starts_with("reusable_workflow: a reusable workflow as"),
        "{refused}"
    );
    let (status, created) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&owner),
            &body(json!(format!("{SHARED}@refs/heads/main"))),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created["github_config"]["reusable_workflow"],
        format!("{SHARED}@refs/heads/main")
    );

    // The job must run it, at that ref.
    let own = format!(
        "{}/{}/.github/workflows/{}@refs/tags/v1.0.0",
        fake_idp::GITHUB_OWNER,
        fake_idp::GITHUB_REPO,
        fake_idp::GITHUB_WORKFLOW
    );
    let (status, body) = app.exchange(&jwt(&idp, &app, &own)).await;
    assert_eq!(status, 400, "{body}");
    insta::assert_snapshot!("not_the_reusable_workflow", detail(&body).to_owned());
    let (status, body) = app
        .exchange(&jwt(&idp, &app, &format!("{SHARED}@refs/heads/dev")))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .exchange(&jwt(&idp, &app, &format!("{SHARED}@refs/heads/main")))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.1.0"))
        .await;

    // Recorded, and shown on the history page.
    let (_, krate) = app.get_json("/api/v1/crates/widget").await;
    let version = krate["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["num"] == "1.1.0"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        version["trustpub"]["reusable_workflow"],
        format!("{SHARED}@refs/heads/main")
    );
    let history = WebClient::new(&app).get("/crates/widget/history").await?;
    assert_eq!(
        history.text("dd.reusable-workflow"),
        format!("{SHARED}@refs/heads/main")
    );
    Ok(())
}

#[tokio::test]
async fn the_settings_form_takes_a_reusable_workflow() -> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let alice = log_in(&app, "alice").await?;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    let page = alice.get("/crates/widget/settings").await?;
    assert_eq!(page.count("label[for=gh-reusable-workflow]"), 1);
    let fields = [
        ("repository_owner", fake_idp::GITHUB_OWNER),
        ("repository_name", fake_idp::GITHUB_REPO),
        ("workflow_filename", fake_idp::GITHUB_WORKFLOW),
        ("environment", ""),
    ];
    let mut bad = fields.to_vec();
    bad.push(("reusable_workflow", "shared/publish.yml"));
    let refused = alice.post("/crates/widget/settings/github", &bad).await?;
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .text("#gh-reusable-workflow-error")
            .contains("owner/repo/.github/workflows/file.yml"),
        "{}",
        refused.body
    );
    let mut good = fields.to_vec();
    good.push(("reusable_workflow", SHARED));
    let added = alice.post("/crates/widget/settings/github", &good).await?;
    assert_eq!(added.status, 303);
    let page = alice.get("/crates/widget/settings").await?;
    assert!(
        page.text("#github-publishers tbody").contains(SHARED),
        "{}",
        page.body
    );
    Ok(())
}
