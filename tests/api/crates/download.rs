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

#[tokio::test]
async fn a_repeated_download_comes_from_memory_with_the_same_bytes_and_headers()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let krate = CrateBuilder::new("Hot_one", "1.0.0");
    app.publish_ok(&token, &krate).await;
    let url = app.url("/api/v1/crates/Hot_one/1.0.0/download");
    let first = app.client.get(&url).send().await?;
    assert_eq!(first.status(), 200);
    let headers = first.headers().clone();
    assert_eq!(&first.bytes().await?[..], &krate.tarball()[..]);
    assert!(
        app.app.download_cache.used_bytes() > 0,
        "a small file is kept"
    );

    // Gone from storage: only the cache can answer now.
    let key = wharf::storage::crate_key("hot_one", "Hot_one", "1.0.0");
    app.app.storage.delete(&key).await?;
    let again = app.client.get(&url).send().await?;
    assert_eq!(again.status(), 200);
    for name in [
        "content-type",
        "content-disposition",
        "cache-control",
        "content-length",
    ] {
        assert_eq!(again.headers().get(name), headers.get(name), "{name}");
    }
    assert_eq!(&again.bytes().await?[..], &krate.tarball()[..]);
    let head = app.client.head(&url).send().await?;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers().get("content-length"),
        headers.get("content-length")
    );
    Ok(())
}
