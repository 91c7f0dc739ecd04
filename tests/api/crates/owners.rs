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

#[tokio::test]
async fn duplicate_logins_in_one_request_are_handled_once() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    app.user("bob");
    app.publish_ok(&alice, &CrateBuilder::new("owned", "1.0.0"))
        .await;
    let audit_rows = |action: &'static str| {
        app.app.db.blocking(move |conn| {
            let krate = wharf::models::Crate::by_name(conn, "owned")?.unwrap();
            Ok(wharf::models::audit::for_crate(conn, krate.id, 100)?
                .into_iter()
                .filter(|row| row.action == action)
                .count())
        })
    };

    // The same login twice, differing only in ASCII case: added once, reported once.
    let (status, body) = change(&app, &alice, "owned", true, &["bob", "BOB"]).await?;
    assert_eq!(status, 200, "{body}");
    insta::assert_snapshot!(body["msg"].as_str().unwrap_or_default().to_owned(), @"user bob has been added as an owner of crate owned");
    assert_eq!(audit_rows("owner_add")?, 1);
    let (_, owners) = app.get_json("/api/v1/crates/owned/owners").await;
    assert_eq!(owners["users"].as_array().map(Vec::len), Some(2));

    // Adding someone who already is an owner is a clear 400, not a 500.
    let (status, body) = change(&app, &alice, "owned", true, &["Bob"]).await?;
    assert_eq!(status, 400, "{body}");
    insta::assert_snapshot!(detail(&body).to_owned(), @"`bob` is already an owner of crate `owned`");

    // Removing the same login twice: removed once, one audit row.
    let (status, body) = change(&app, &alice, "owned", false, &["bob", "bob", "BoB"]).await?;
    assert_eq!(status, 200, "{body}");
    insta::assert_snapshot!(body["msg"].as_str().unwrap_or_default().to_owned(), @"user bob has been removed as an owner of crate owned");
    assert_eq!(audit_rows("owner_remove")?, 1);
    let (_, owners) = app.get_json("/api/v1/crates/owned/owners").await;
    assert_eq!(owners["users"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn a_login_with_a_unicode_look_alike_is_not_another_users_login() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    app.user("kate");
    app.publish_ok(&alice, &CrateBuilder::new("owned", "1.0.0"))
        .await;
    // U+212A KELVIN SIGN lower-cases to `k` under Unicode rules; logins fold ASCII only.
    let (status, body) = change(&app, &alice, "owned", true, &["\u{212A}ate"]).await?;
    assert_eq!(status, 400, "{body}");
    assert!(detail(&body).contains("could not find user"), "{body}");
    let (_, owners) = app.get_json("/api/v1/crates/owned/owners").await;
    assert_eq!(owners["users"].as_array().map(Vec::len), Some(1));
    Ok(())
}
