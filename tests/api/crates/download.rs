use crate::support::{CrateBuilder, TestApp};

#[tokio::test]
async fn downloads_return_the_published_bytes() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let krate = CrateBuilder::new("fetched", "1.2.3");
    app.publish_ok(&token, &krate).await;
    let response = app
        .client
        .get(app.url("/api/v1/crates/fetched/1.2.3/download"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(&response.bytes().await?[..], &krate.tarball()[..]);
    Ok(())
}

#[tokio::test]
async fn unknown_versions_and_crates_are_404() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("fetched", "1.2.3"))
        .await;
    let (status, body) = app.get_json("/api/v1/crates/fetched/9.9.9/download").await;
    assert_eq!(status, 404);
    insta::assert_json_snapshot!(body);
    let (status, _) = app.get_json("/api/v1/crates/nothing/1.0.0/download").await;
    assert_eq!(status, 404);
    Ok(())
}
