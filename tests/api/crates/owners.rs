use serde_json::json;

use crate::support::{CrateBuilder, TestApp, detail};

async fn change(
    app: &TestApp,
    token: &str,
    name: &str,
    add: bool,
    logins: &[&str],
) -> anyhow::Result<(u16, serde_json::Value)> {
    let url = app.url(&format!("/api/v1/crates/{name}/owners"));
    let request = if add {
        app.client.put(url)
    } else {
        app.client.delete(url)
    };
    let response = request
        .header("Authorization", token)
        .json(&json!({ "users": logins }))
        .send()
        .await?;
    Ok((response.status().as_u16(), response.json().await?))
}

#[tokio::test]
async fn owners_are_listed_added_and_removed() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    app.user("bob");
    app.publish_ok(&alice, &CrateBuilder::new("owned", "1.0.0"))
        .await;

    let (status, body) = app.get_json("/api/v1/crates/owned/owners").await;
    assert_eq!(status, 200);
    assert_eq!(body["users"][0]["login"], "alice");

    let (status, body) = change(&app, &alice, "owned", true, &["bob"]).await?;
    assert_eq!(status, 200);
    insta::assert_json_snapshot!(body);
    let (_, body) = app.get_json("/api/v1/crates/owned/owners").await;
    let logins: Vec<_> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].clone())
        .collect();
    assert_eq!(logins, vec![json!("alice"), json!("bob")]);

    let (status, body) = change(&app, &alice, "owned", false, &["bob"]).await?;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    let (_, body) = app.get_json("/api/v1/crates/owned/owners").await;
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    Ok(())
}

#[tokio::test]
async fn the_last_owner_cannot_be_removed() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    app.publish_ok(&alice, &CrateBuilder::new("owned", "1.0.0"))
        .await;
    let (status, body) = change(&app, &alice, "owned", false, &["alice"]).await?;
    assert_eq!(status, 400);
    insta::assert_snapshot!(detail(&body).to_owned(), @"cannot remove all owners of a crate; add another owner first");
    Ok(())
}

#[tokio::test]
async fn unknown_users_and_non_owners_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let mallory = app.token("mallory");
    app.publish_ok(&alice, &CrateBuilder::new("owned", "1.0.0"))
        .await;
    let (status, body) = change(&app, &alice, "owned", true, &["ghost"]).await?;
    assert_eq!(status, 400);
    insta::assert_json_snapshot!("unknown_user", body);
    let (status, body) = change(&app, &mallory, "owned", true, &["mallory"]).await?;
    assert_eq!(status, 403);
    insta::assert_json_snapshot!("not_owner", body);
    let scoped = app.token_with("alice", &["publish-update"], &[]);
    let (status, _) = change(&app, &scoped, "owned", true, &["mallory"]).await?;
    assert_eq!(status, 403, "needs change-owners");
    Ok(())
}
