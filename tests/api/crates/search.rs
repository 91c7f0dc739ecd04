use crate::support::{CrateBuilder, TestApp};

#[tokio::test]
async fn search_finds_crates_by_name_and_description_with_a_total() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    for name in ["serde-lite", "serde_lite_derive", "tokio-lite", "other"] {
        app.publish_ok(&token, &CrateBuilder::new(name, "1.0.0"))
            .await;
    }
    let (status, body) = app.get_json("/api/v1/crates?q=serde-lite&per_page=1").await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["total"], 2);
    assert_eq!(body["crates"].as_array().unwrap().len(), 1);
    assert_eq!(body["crates"][0]["name"], "serde-lite", "exact match first");
    assert_eq!(body["crates"][0]["max_version"], "1.0.0");
    let (_, body) = app.get_json("/api/v1/crates?q=lite").await;
    assert_eq!(body["meta"]["total"], 3);
    let (_, body) = app.get_json("/api/v1/crates?q=100%25_").await;
    assert_eq!(body["meta"]["total"], 0, "LIKE wildcards are literal");
    Ok(())
}

#[tokio::test]
async fn bad_paging_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/api/v1/crates?q=x&per_page=1000").await;
    assert_eq!(status, 400);
    insta::assert_json_snapshot!(body);
    let (status, _) = app.get_json("/api/v1/crates?q=x&per_page=abc").await;
    assert_eq!(status, 400);
    Ok(())
}
