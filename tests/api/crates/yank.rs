use crate::support::{CrateBuilder, TestApp, detail};

async fn yank(
    app: &TestApp,
    token: &str,
    name: &str,
    version: &str,
    undo: bool,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let path = format!(
        "/api/v1/crates/{name}/{version}/{}",
        if undo { "unyank" } else { "yank" }
    );
    let request = if undo {
        app.client.put(app.url(&path))
    } else {
        app.client.delete(app.url(&path))
    };
    let response = request.header("Authorization", token).send().await?;
    Ok((response.status().as_u16(), response.json().await?))
}

#[tokio::test]
async fn owners_can_yank_and_unyank_and_the_index_follows() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("yanky", "1.0.0"))
        .await;

    let (status, body) = yank(&app, &token, "yanky", "1.0.0", false).await?;
    assert_eq!((status, body), (200, serde_json::json!({ "ok": true })));
    assert_eq!(app.index_lines("yanky").await[0]["yanked"], true);

    let (status, _) = yank(&app, &token, "yanky", "1.0.0", true).await?;
    assert_eq!(status, 200);
    assert_eq!(app.index_lines("yanky").await[0]["yanked"], false);
    Ok(())
}

#[tokio::test]
async fn non_owners_cannot_yank() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let mallory = app.token("mallory");
    app.publish_ok(&alice, &CrateBuilder::new("yanky", "1.0.0"))
        .await;
    let (status, body) = yank(&app, &mallory, "yanky", "1.0.0", false).await?;
    assert_eq!(status, 403);
    insta::assert_snapshot!(detail(&body).to_owned(), @"you are not an owner of crate `yanky`");
    assert_eq!(app.index_lines("yanky").await[0]["yanked"], false);
    Ok(())
}

#[tokio::test]
async fn yanking_needs_the_yank_scope() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    app.publish_ok(&alice, &CrateBuilder::new("yanky", "1.0.0"))
        .await;
    let publish_only = app.token_with("alice", &["publish-update"], &[]);
    let (status, body) = yank(&app, &publish_only, "yanky", "1.0.0", false).await?;
    assert_eq!(status, 403);
    insta::assert_json_snapshot!(body);
    let (status, body) = yank(&app, &alice, "yanky", "3.0.0", false).await?;
    assert_eq!(status, 404);
    insta::assert_json_snapshot!("unknown_version", body);
    Ok(())
}
