use crate::support::{CrateBuilder, TestApp};

#[tokio::test]
async fn crate_info_lists_versions_newest_first_with_publishers() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    for v in ["1.0.0", "1.10.0", "1.2.0"] {
        app.publish_ok(&token, &CrateBuilder::new("infoed", v))
            .await;
    }
    let (status, body) = app.get_json("/api/v1/crates/INFOED").await;
    assert_eq!(status, 200);
    assert_eq!(body["crate"]["name"], "infoed");
    assert_eq!(body["crate"]["max_version"], "1.10.0");
    let nums: Vec<_> = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["num"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(nums, ["1.10.0", "1.2.0", "1.0.0"]);
    assert_eq!(body["versions"][0]["published_by"]["login"], "alice");
    assert_eq!(
        body["versions"][0]["dl_path"],
        "/api/v1/crates/infoed/1.10.0/download"
    );
    let (status, body) = app.get_json("/api/v1/crates/nope").await;
    assert_eq!(status, 404);
    insta::assert_json_snapshot!(body);
    Ok(())
}
