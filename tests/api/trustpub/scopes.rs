//! What an exchanged token may and may not do.

use serde_json::json;

use crate::support::fake_idp::{FakeIdp, Provider};
use crate::support::{CrateBuilder, TestApp, detail};

async fn setup() -> (FakeIdp, TestApp, String, String) {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    app.publish_ok(&owner, &CrateBuilder::new("other", "1.0.0"))
        .await;
    app.add_github_config(&owner, "widget", None).await;
    let (status, body) = app
        .exchange(&idp.sign(&idp.github_claims(&app.audience(), json!({}))))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    (idp, app, owner, token)
}

#[tokio::test]
async fn an_exchanged_token_publishes_only_the_crates_that_trust_the_workflow() -> anyhow::Result<()>
{
    let (_idp, app, _, token) = setup().await;
    let response = app
        .publish(&token, &CrateBuilder::new("other", "1.1.0"))
        .await;
    assert_eq!(response.status(), 403);
    insta::assert_snapshot!("other_crate", detail(&response.json().await?).to_owned());
    let response = app
        .publish(&token, &CrateBuilder::new("brand-new", "1.0.0"))
        .await;
    assert_eq!(response.status(), 403);
    insta::assert_snapshot!("new_crate", detail(&response.json().await?).to_owned());
    Ok(())
}

#[tokio::test]
async fn an_exchanged_token_cannot_yank_change_owners_or_manage_trusted_publishing()
-> anyhow::Result<()> {
    let (_idp, app, _, token) = setup().await;
    let yank = app
        .client
        .delete(app.url("/api/v1/crates/widget/1.0.0/yank"))
        .header("Authorization", &token)
        .send()
        .await?;
    assert_eq!(yank.status(), 403);
    insta::assert_snapshot!("refused", detail(&yank.json().await?).to_owned());
    let owners = app
        .client
        .put(app.url("/api/v1/crates/widget/owners"))
        .header("Authorization", &token)
        .json(&json!({ "users": ["alice"] }))
        .send()
        .await?;
    assert_eq!(owners.status(), 403);
    let configs = app
        .client
        .get(app.url("/api/v1/trusted_publishing/github_configs?crate=widget"))
        .header("Authorization", &token)
        .send()
        .await?;
    assert_eq!(configs.status(), 403);
    let patch = app
        .client
        .patch(app.url("/api/v1/crates/widget"))
        .header("Authorization", &token)
        .json(&json!({ "crate": { "trustpub_only": false } }))
        .send()
        .await?;
    assert_eq!(patch.status(), 403);
    let (status, _) = app
        .post_json("/api/v1/trusted_publishing/github_configs", Some(&token), &json!({ "github_config": {
            "crate": "widget", "repository_owner": "octo-org", "repository_name": "evil", "workflow_filename": "x.yml" } }))
        .await;
    assert_eq!(status, 403);
    Ok(())
}

#[tokio::test]
async fn an_exchanged_token_stops_working_after_revocation() -> anyhow::Result<()> {
    let (_idp, app, _, token) = setup().await;
    let revoke = app
        .client
        .delete(app.url("/api/v1/trusted_publishing/tokens"))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await?;
    assert_eq!(revoke.status(), 204);
    let response = app
        .publish(&token, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    assert_eq!(response.status(), 403);
    insta::assert_snapshot!(detail(&response.json().await?).to_owned(), @"the Trusted Publishing token is invalid, revoked or expired; exchange a new ID token for a fresh one");
    let again = app
        .client
        .delete(app.url("/api/v1/trusted_publishing/tokens"))
        .header("Authorization", &token)
        .send()
        .await?;
    assert_eq!(
        again.status(),
        403,
        "a revoked token cannot be revoked again"
    );
    Ok(())
}

#[tokio::test]
async fn an_exchanged_token_stops_working_after_it_expires_and_is_cleaned_up() -> anyhow::Result<()>
{
    let (_idp, app, _, token) = setup().await;
    // Move the token's expiry into the past rather than wait for it.
    app.app.db.blocking(|conn| {
        use diesel::prelude::*;
        use wharf::schema::trustpub_tokens;
        let past = wharf::models::now() - chrono::Duration::seconds(1);
        diesel::update(trustpub_tokens::table)
            .set(trustpub_tokens::expires_at.eq(past))
            .execute(conn)?;
        Ok(())
    })?;
    let response = app
        .publish(&token, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    assert_eq!(response.status(), 403);
    let deleted = app.app.db.blocking(|conn| {
        Ok(wharf::models::trustpub_token::clean_up(
            conn,
            wharf::models::now(),
        )?)
    })?;
    assert_eq!(
        deleted, 1,
        "the expired token is deleted; the jti is still remembered until exp + leeway"
    );
    Ok(())
}

#[tokio::test]
async fn tokens_minted_per_the_configured_ttl() -> anyhow::Result<()> {
    let (_idp, app, _, _) = setup().await;
    let (created, expires) = app.app.db.blocking(|conn| {
        use diesel::prelude::*;
        use wharf::schema::trustpub_tokens;
        Ok(trustpub_tokens::table
            .select((trustpub_tokens::created_at, trustpub_tokens::expires_at))
            .first::<(chrono::NaiveDateTime, chrono::NaiveDateTime)>(conn)?)
    })?;
    assert_eq!((expires - created).num_minutes(), 30);
    Ok(())
}

#[tokio::test]
async fn trustpub_only_refuses_api_token_publishes_with_an_explanation() -> anyhow::Result<()> {
    let (_idp, app, owner, token) = setup().await;
    let patch = app
        .client
        .patch(app.url("/api/v1/crates/widget"))
        .header("Authorization", &owner)
        .json(&json!({ "crate": { "trustpub_only": true } }))
        .send()
        .await?;
    assert_eq!(patch.status(), 200);
    let response = app
        .publish(&owner, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    assert_eq!(response.status(), 403);
    insta::assert_snapshot!(detail(&response.json().await?).to_owned());
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    let (_, info) = app.get_json("/api/v1/crates/widget").await;
    assert_eq!(info["crate"]["trustpub_only"], true);
    Ok(())
}

#[tokio::test]
async fn an_exchanged_token_cannot_create_api_tokens() -> anyhow::Result<()> {
    let (_idp, app, _, token) = setup().await;
    let count = || {
        app.app.db.blocking(|conn| {
            use diesel::prelude::*;
            Ok(wharf::schema::api_tokens::table
                .count()
                .get_result::<i64>(conn)?)
        })
    };
    let before = count()?;
    // Tokens are created only by a logged-in user (with CSRF) or the admin CLI; a publish token
    // in `Authorization` is no session.
    let response = app
        .client
        .post(app.url("/settings/tokens"))
        .header("Authorization", &token)
        .form(&[("name", "sneaky"), ("scopes", "publish-update")])
        .send()
        .await?;
    assert_ne!(response.status(), 200);
    assert!(response.status().is_client_error() || response.status().is_redirection());
    assert_eq!(count()?, before, "no token was created");
    Ok(())
}
