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

#[tokio::test]
async fn the_crate_description_follows_its_highest_unyanked_version() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let publish = |version: &str| {
        let mut krate = CrateBuilder::new("follows", version);
        krate.description = Some(format!("as of {version}"));
        krate
    };
    let description = |app: &TestApp| {
        let app = app.base_url.clone();
        async move {
            let body: serde_json::Value = reqwest::get(format!("{app}/api/v1/crates/follows"))
                .await?
                .json()
                .await?;
            anyhow::Ok((
                body["crate"]["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                body["crate"]["max_version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ))
        }
    };
    app.publish_ok(&token, &publish("2.0.0")).await;
    app.publish_ok(&token, &publish("1.0.0")).await;
    assert_eq!(
        description(&app).await?,
        ("as of 2.0.0".into(), "2.0.0".into())
    );

    let response = app
        .client
        .delete(app.url("/api/v1/crates/follows/2.0.0/yank"))
        .header("Authorization", &token)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    // Below the yanked 2.0.0, yet the highest version not yanked: it describes the crate.
    app.publish_ok(&token, &publish("1.5.0")).await;
    assert_eq!(
        description(&app).await?,
        ("as of 1.5.0".into(), "1.5.0".into())
    );
    app.publish_ok(&token, &publish("1.2.0")).await;
    assert_eq!(
        description(&app).await?,
        ("as of 1.5.0".into(), "1.5.0".into())
    );
    app.publish_ok(&token, &publish("3.0.0-beta.1+build.7"))
        .await;
    assert_eq!(
        description(&app).await?,
        (
            "as of 3.0.0-beta.1+build.7".into(),
            "3.0.0-beta.1+build.7".into()
        )
    );
    app.publish_ok(&token, &publish("2.5.0")).await;
    assert_eq!(
        description(&app).await?,
        (
            "as of 3.0.0-beta.1+build.7".into(),
            "3.0.0-beta.1+build.7".into()
        )
    );
    Ok(())
}
