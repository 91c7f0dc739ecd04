use crate::support::{CrateBuilder, TestApp, index_path};

#[tokio::test]
async fn config_json_points_cargo_at_this_registry() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/index/config.json").await;
    assert_eq!(status, 200);
    assert_eq!(body["dl"], format!("{}/api/v1/crates", app.base_url));
    assert_eq!(body["api"], app.base_url);
    Ok(())
}

#[tokio::test]
async fn unknown_crates_are_404() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/index/no/ne/nonexistent"))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    let response = app.client.get(app.url("/index/xx/yy/serde")).send().await?;
    assert_eq!(response.status(), 404, "a wrong prefix is not found");
    Ok(())
}

#[tokio::test]
async fn index_files_carry_an_etag_and_answer_304_when_unchanged() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("etagged", "1.0.0"))
        .await;
    let url = app.url(&format!("/index/{}", index_path("etagged")));

    let first = app.client.get(&url).send().await?;
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str()?.to_owned();

    let again = app
        .client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await?;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str()?, etag);

    app.publish_ok(&token, &CrateBuilder::new("etagged", "1.0.1"))
        .await;
    let changed = app
        .client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await?;
    assert_eq!(changed.status(), 200, "a publish changes the ETag");
    assert_ne!(changed.headers()["etag"].to_str()?, etag);
    Ok(())
}

#[tokio::test]
async fn index_paths_use_the_lowercased_exact_name() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("My_Crate", "0.1.0"))
        .await;
    let lines = app.index_lines("my_crate").await;
    assert_eq!(lines[0]["name"], "My_Crate");
    let other_spelling = app
        .client
        .get(app.url(&format!("/index/{}", index_path("my-crate"))))
        .send()
        .await?;
    assert_eq!(other_spelling.status(), 404);
    for name in ["a", "ab", "abc"] {
        app.publish_ok(&token, &CrateBuilder::new(name, "1.0.0"))
            .await;
        assert_eq!(app.index_lines(name).await.len(), 1, "short name {name}");
    }
    Ok(())
}
