use serde_json::json;

use crate::support::crates::{dep_json, publish_body};
use crate::support::{CrateBuilder, TestApp, detail};

const CRATES_IO: &str = "https://github.com/rust-lang/crates.io-index";

#[tokio::test]
async fn a_published_version_is_in_the_index_with_every_field_cargo_reads() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("base", "1.0.0"))
        .await;
    let krate = CrateBuilder::new("fancy", "0.2.0")
        .dep_json(dep_json("base", "^1.0", Some("renamed_base"), None))
        .dep_json(dep_json("serde", "^1", None, Some(CRATES_IO)))
        .dep_json(json!({
            "name": "base", "version_req": "^1", "features": ["x"], "optional": true,
            "default_features": false, "target": "cfg(unix)", "kind": "dev",
            "registry": null, "explicit_name_in_toml": null
        }))
        .features(json!({ "default": ["std"], "std": [], "extra": ["dep:serde", "serde?/std"] }));
    let mut krate = krate;
    krate.links = Some("fancy-sys".to_owned());
    krate.rust_version = Some("1.70".to_owned());

    let response = app.publish(&token, &krate).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["warnings"]["other"], json!([]));

    let lines = app.index_lines("fancy").await;
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["name"], "fancy");
    assert_eq!(line["vers"], "0.2.0");
    assert_eq!(line["cksum"].as_str().map(str::len), Some(64));
    assert_eq!(line["yanked"], false);
    assert_eq!(line["links"], "fancy-sys");
    assert_eq!(line["rust_version"], "1.70");
    assert_eq!(line["features"], json!({ "default": ["std"], "std": [] }));
    assert_eq!(
        line["features2"],
        json!({ "extra": ["dep:serde", "serde?/std"] })
    );
    assert_eq!(line["v"], 2);
    assert!(line["pubtime"].as_str().is_some_and(|t| t.ends_with('Z')));
    let deps = line["deps"].as_array().unwrap();
    let renamed = deps.iter().find(|d| d["name"] == "renamed_base").unwrap();
    assert_eq!(renamed["package"], "base");
    assert!(
        renamed.get("registry").is_none(),
        "same-registry deps carry no registry"
    );
    let serde = deps.iter().find(|d| d["name"] == "serde").unwrap();
    assert_eq!(serde["registry"], CRATES_IO);
    assert!(serde.get("package").is_none());
    let dev = deps.iter().find(|d| d["kind"] == "dev").unwrap();
    assert_eq!(dev["optional"], true);
    assert_eq!(dev["default_features"], false);
    assert_eq!(dev["target"], "cfg(unix)");
    assert_eq!(dev["features"], json!(["x"]));
    Ok(())
}

#[tokio::test]
async fn publishing_without_a_token_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .put(app.url("/api/v1/crates/new"))
        .body(CrateBuilder::new("anon", "1.0.0").publish_body())
        .send()
        .await?;
    assert_eq!(response.status(), 403);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    Ok(())
}

#[tokio::test]
async fn unknown_and_revoked_tokens_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let response = app
        .publish("wharf_0000", &CrateBuilder::new("x", "1.0.0"))
        .await;
    assert_eq!(response.status(), 403);
    let token = app.token("alice");
    let tokens = app
        .app
        .db
        .blocking(|conn| Ok(wharf::models::ApiToken::for_user(conn, 1)?))?;
    app.app.db.blocking(|conn| {
        Ok(wharf::models::ApiToken::revoke(
            conn,
            tokens[0].id,
            wharf::models::now(),
        )?)
    })?;
    let response = app.publish(&token, &CrateBuilder::new("x", "1.0.0")).await;
    assert_eq!(response.status(), 403);
    insta::assert_snapshot!(detail(&response.json().await?).to_owned(), @"the API token is invalid, revoked or expired; create a new one");
    Ok(())
}

#[tokio::test]
async fn the_bearer_prefix_is_accepted() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let response = app
        .publish(
            &format!("Bearer {token}"),
            &CrateBuilder::new("bearer", "1.0.0"),
        )
        .await;
    assert_eq!(response.status(), 200);
    Ok(())
}

#[tokio::test]
async fn the_same_version_cannot_be_published_twice() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("twice", "1.0.0"))
        .await;
    let response = app
        .publish(&token, &CrateBuilder::new("twice", "1.0.0"))
        .await;
    assert_eq!(response.status(), 409);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    let response = app
        .publish(&token, &CrateBuilder::new("twice", "1.0.0+build.5"))
        .await;
    assert_eq!(response.status(), 409);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    Ok(())
}

#[tokio::test]
async fn names_differing_by_case_or_separator_are_the_same_crate() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let alice = app.token("alice");
    let bob = app.token("bob");
    app.publish_ok(&alice, &CrateBuilder::new("foo-bar", "1.0.0"))
        .await;
    let response = app
        .publish(&bob, &CrateBuilder::new("Foo_Bar", "2.0.0"))
        .await;
    assert_eq!(response.status(), 400);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    let response = app
        .publish(&bob, &CrateBuilder::new("foo-bar", "2.0.0"))
        .await;
    assert_eq!(response.status(), 403, "bob does not own foo-bar");
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    Ok(())
}

#[tokio::test]
async fn invalid_crate_names_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    for name in ["1abc", "has space", "café", "std", &"a".repeat(65)] {
        let krate = CrateBuilder::new(name, "1.0.0");
        let response = app.publish(&token, &krate).await;
        assert_eq!(response.status(), 400, "name {name:?}");
    }
    let response = app
        .publish(&token, &CrateBuilder::new("1abc", "1.0.0"))
        .await;
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    Ok(())
}

#[tokio::test]
async fn oversized_uploads_are_refused_before_they_are_read_whole() -> anyhow::Result<()> {
    let app = TestApp::builder()
        .set("max_crate_size", "2KiB")
        .spawn()
        .await;
    let token = app.token("alice");
    let noise: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let krate = CrateBuilder::new("big", "1.0.0").file("noise.bin", &noise);
    let response = app.publish(&token, &krate).await;
    assert_eq!(response.status(), 413);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    let (status, _) = app.get_json("/api/v1/crates/big").await;
    assert_eq!(status, 404, "nothing was written");
    Ok(())
}

#[tokio::test]
async fn tarballs_with_paths_outside_the_package_folder_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let krate = CrateBuilder::new("escape", "1.0.0");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let manifest = krate.manifest();
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_cksum();
    builder.append_data(&mut header, "escape-1.0.0/Cargo.toml", manifest.as_bytes())?;
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_cksum();
    builder.append_data(&mut header, "elsewhere/evil.rs", &b"bad"[..])?;
    let tarball = builder.into_inner()?.finish()?;
    let response = app
        .publish_body(&token, publish_body(&krate.metadata(), &tarball))
        .await;
    assert_eq!(response.status(), 400);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    Ok(())
}

#[tokio::test]
async fn a_manifest_that_disagrees_with_the_metadata_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let mut krate = CrateBuilder::new("liar", "1.0.0");
    krate.manifest = Some("[package]\nname = \"liar\"\nversion = \"9.9.9\"\n".to_owned());
    let response = app.publish(&token, &krate).await;
    assert_eq!(response.status(), 400);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    Ok(())
}

#[tokio::test]
async fn garbage_and_truncated_bodies_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let response = app.publish_body(&token, b"garbage".to_vec()).await;
    assert_eq!(response.status(), 400);
    insta::assert_json_snapshot!("truncated", response.json::<serde_json::Value>().await?);
    let mut body = CrateBuilder::new("cut", "1.0.0").publish_body();
    body.truncate(body.len() - 10);
    let response = app.publish_body(&token, body).await;
    assert_eq!(response.status(), 400);
    let body = publish_body(&json!({ "name": "x" }), b"");
    let response = app.publish_body(&token, body).await;
    assert_eq!(response.status(), 400);
    insta::assert_json_snapshot!("bad_metadata", response.json::<serde_json::Value>().await?);
    Ok(())
}

#[tokio::test]
async fn a_crate_without_description_or_license_publishes_under_the_default_settings()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let mut krate = CrateBuilder::new("bare", "0.1.0");
    krate.description = None;
    krate.license = None;

    let response = app.publish(&token, &krate).await;

    assert_eq!(response.status(), 200, "{}", response.text().await?);
    assert_eq!(app.index_lines("bare").await[0]["vers"], "0.1.0");
    Ok(())
}

#[tokio::test]
async fn required_metadata_is_refused_naming_the_cargo_toml_keys_to_add() -> anyhow::Result<()> {
    let app = TestApp::builder()
        .set("required_metadata", "description, license,repository")
        .spawn()
        .await;
    let token = app.token("alice");
    let mut krate = CrateBuilder::new("bare", "0.1.0");
    krate.description = None;
    krate.license = None;

    let response = app.publish(&token, &krate).await;

    assert_eq!(response.status(), 400);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    let (status, _) = app.get_json("/api/v1/crates/bare").await;
    assert_eq!(status, 404, "nothing was recorded");
    Ok(())
}

#[tokio::test]
async fn dependencies_on_unknown_crates_of_this_registry_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let response = app
        .publish(
            &token,
            &CrateBuilder::new("needy", "1.0.0").dep("missing", "^1"),
        )
        .await;
    assert_eq!(response.status(), 400);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    Ok(())
}

#[tokio::test]
async fn token_scopes_limit_what_a_token_may_publish() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let full = app.token("alice");
    app.publish_ok(&full, &CrateBuilder::new("scoped", "1.0.0"))
        .await;

    let update_only = app.token_with("alice", &["publish-update"], &[]);
    let response = app
        .publish(&update_only, &CrateBuilder::new("brand-new", "1.0.0"))
        .await;
    assert_eq!(response.status(), 403);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    app.publish_ok(&update_only, &CrateBuilder::new("scoped", "1.1.0"))
        .await;

    let other_crates = app.token_with("alice", &[], &["other-*"]);
    let response = app
        .publish(&other_crates, &CrateBuilder::new("scoped", "1.2.0"))
        .await;
    assert_eq!(response.status(), 403);
    insta::assert_json_snapshot!(response.json::<serde_json::Value>().await?);
    app.publish_ok(&other_crates, &CrateBuilder::new("other-thing", "1.0.0"))
        .await;
    Ok(())
}

#[tokio::test]
async fn concurrent_publishes_of_one_version_have_exactly_one_winner() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("racy", "0.1.0"))
        .await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        // Different contents, same version: only one may be stored.
        let krate =
            CrateBuilder::new("racy", "1.0.0").file("variant.txt", format!("{i}").as_bytes());
        let client = app.client.clone();
        let url = app.url("/api/v1/crates/new");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let response = client
                .put(url)
                .header("Authorization", token)
                .body(krate.publish_body())
                .send()
                .await?;
            anyhow::Ok((response.status().as_u16(), krate.tarball()))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (status, tarball) = task.await??;
        assert!(status == 200 || status == 409, "status {status}");
        if status == 200 {
            winners.push(tarball);
        }
    }
    assert_eq!(winners.len(), 1);
    let lines = app.index_lines("racy").await;
    assert_eq!(lines.len(), 2);
    let downloaded = app
        .client
        .get(app.url("/api/v1/crates/racy/1.0.0/download"))
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(
        &downloaded[..],
        &winners[0][..],
        "the stored file is the winner's"
    );
    let cksum = lines.iter().find(|l| l["vers"] == "1.0.0").unwrap()["cksum"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cksum,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&winners[0]))
    );
    Ok(())
}

#[tokio::test]
async fn every_version_records_who_published_it() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("recorded", "1.0.0"))
        .await;
    let (_, body) = app.get_json("/api/v1/crates/recorded").await;
    assert_eq!(body["versions"][0]["published_by"]["login"], "alice");
    assert_eq!(body["versions"][0]["published_by"]["kind"], "user");
    Ok(())
}
