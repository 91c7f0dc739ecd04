use std::time::Duration;

use serde_json::json;

use crate::support::crates::{dep_json, noise, publish_body};
use crate::support::fake_idp::{FakeIdp, Provider};
use crate::support::raw_http::answer_to_partial_put;
use crate::support::tmpfs::SmallTmpfs;
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

/// The head of a publish body: the metadata and the declared crate length, but no crate.
fn body_head(krate: &CrateBuilder, crate_len: u32) -> Vec<u8> {
    let mut head = publish_body(&krate.metadata(), b"");
    head.truncate(head.len() - 4);
    head.extend_from_slice(&crate_len.to_le_bytes());
    head
}

/// A publish of `krate` that declares an 11 MiB crate file (a gzip bomb, say) but sends
/// only the metadata: the answer must come before the crate file is sent.
async fn partial_publish(
    app: &TestApp,
    token: Option<&str>,
    krate: &CrateBuilder,
) -> anyhow::Result<(u16, String)> {
    let crate_len = 11 * 1024 * 1024;
    let head = body_head(krate, crate_len);
    let headers: Vec<(&str, &str)> = token.map(|t| ("Authorization", t)).into_iter().collect();
    let (status, body) = answer_to_partial_put(
        app.port,
        "/api/v1/crates/new",
        &headers,
        head.len() + crate_len as usize,
        &head,
        Duration::from_secs(5),
    )
    .await?;
    Ok((status, detail(&body).to_owned()))
}

#[tokio::test]
async fn a_bogus_token_is_refused_before_the_crate_file_is_sent() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;

    let (status, detail) = partial_publish(
        &app,
        Some("wharf_bogus"),
        &CrateBuilder::new("bomb", "1.0.0"),
    )
    .await?;

    assert_eq!(status, 403);
    assert_eq!(
        detail,
        "the API token is invalid, revoked or expired; create a new one"
    );
    // Whatever the body holds, a caller without a valid token learns nothing but its 403.
    for body in [
        b"garbage".to_vec(),
        publish_body(&json!({ "name": "x" }), b""),
    ] {
        let response = app.publish_body("wharf_bogus", body).await;
        assert_eq!(response.status(), 403);
    }
    Ok(())
}

#[tokio::test]
async fn an_anonymous_publish_is_refused_in_the_error_shape_before_the_crate_file_is_sent()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await;

    let (status, detail) = partial_publish(&app, None, &CrateBuilder::new("anon", "1.0.0")).await?;

    assert_eq!(status, 403);
    assert_eq!(
        detail,
        "this action requires authentication: send an API token in the Authorization header"
    );
    Ok(())
}

#[tokio::test]
async fn a_token_without_the_right_to_publish_the_name_is_refused_before_the_crate_file_is_sent()
-> anyhow::Result<()> {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_idp(&idp).spawn().await;
    let alice = app.token("alice");
    app.publish_ok(&alice, &CrateBuilder::new("owned", "1.0.0"))
        .await;
    app.publish_ok(&alice, &CrateBuilder::new("trusted", "1.0.0"))
        .await;
    app.add_github_config(&alice, "trusted", None).await;
    let patch = app
        .client
        .patch(app.url("/api/v1/crates/trusted"))
        .header("Authorization", &alice)
        .json(&json!({ "crate": { "trustpub_only": true } }))
        .send()
        .await?;
    assert_eq!(patch.status(), 200);
    let (status, body) = app
        .exchange(&idp.sign(&idp.github_claims(&app.audience(), json!({}))))
        .await;
    assert_eq!(status, 200, "{body}");
    let exchanged = body["token"].as_str().unwrap().to_owned();
    let update_only = app.token_with("alice", &["publish-update"], &[]);
    let other_crates = app.token_with("alice", &[], &["other-*"]);
    let bob = app.token("bob");

    for (token, krate, expected) in [
        (
            &update_only,
            "brand-new",
            "this token does not have the `publish-new` scope needed for this action; create a token that has it",
        ),
        (
            &other_crates,
            "owned",
            "this token's crate scopes do not include `owned`; create a token whose crate scopes match it",
        ),
        (&bob, "owned", "you are not an owner of crate `owned`"),
        (
            &alice,
            "trusted",
            "crate `trusted` requires Trusted Publishing: publish it from a CI workflow configured as a trusted publisher, or ask an owner to turn off \"require Trusted Publishing\"",
        ),
        (
            &exchanged,
            "owned",
            "this Trusted Publishing token is not valid for crate `owned`: no trusted publisher config of `owned` matched the workflow that requested it",
        ),
    ] {
        let (status, detail) =
            partial_publish(&app, Some(token), &CrateBuilder::new(krate, "2.0.0")).await?;
        assert_eq!((status, detail.as_str()), (403, expected), "{krate}");
    }
    Ok(())
}

#[tokio::test]
async fn publishes_wait_for_a_free_slot_and_get_503_when_none_frees_in_time() -> anyhow::Result<()>
{
    let app = TestApp::builder()
        .set("max_concurrent_publishes", "1")
        .set("publish_queue_timeout", "1s")
        .spawn()
        .await;
    let token = app.token("alice");
    let held = app.app.publish_slots.acquire().await.expect("a free slot");

    // Refusals that need no slot do not wait for one.
    let started = std::time::Instant::now();
    let response = app
        .publish("wharf_bogus", &CrateBuilder::new("queued", "1.0.0"))
        .await;
    assert_eq!(response.status(), 403);
    assert!(started.elapsed() < Duration::from_secs(1));

    let started = std::time::Instant::now();
    let response = app
        .publish(&token, &CrateBuilder::new("queued", "1.0.0"))
        .await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(response.headers()["retry-after"], "60");
    assert_eq!(
        detail(&response.json().await?),
        "the registry is busy with other publishes (at most 1 at once) and none finished within 1s; try again in a minute"
    );

    let client = app.client.clone();
    let url = app.url("/api/v1/crates/new");
    let body = CrateBuilder::new("queued", "1.0.0").publish_body();
    let waiting = tokio::spawn(async move {
        client
            .put(url)
            .header("Authorization", token)
            .body(body)
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);
    assert_eq!(waiting.await??.status(), 200, "it got the freed slot");
    Ok(())
}

#[tokio::test]
async fn an_upload_that_stalls_is_cut_off_and_frees_its_slot() -> anyhow::Result<()> {
    let app = TestApp::builder()
        .set("max_concurrent_publishes", "1")
        .set("publish_queue_timeout", "1s")
        .spawn()
        .await;
    let token = app.token("alice");
    let krate = CrateBuilder::new("slow", "1.0.0");
    let tarball = krate.tarball();
    let mut sent = body_head(&krate, tarball.len() as u32);
    let declared = sent.len() + tarball.len();
    sent.extend_from_slice(&tarball[..tarball.len() / 2]);

    let (status, body) = answer_to_partial_put(
        app.port,
        "/api/v1/crates/new",
        &[("Authorization", &token)],
        declared,
        &sent,
        Duration::from_secs(5),
    )
    .await?;

    assert_eq!(status, 408);
    assert_eq!(
        detail(&body),
        "the upload stalled: no data arrived for 1s; retry the publish"
    );
    app.publish_ok(&token, &krate).await;
    Ok(())
}

#[tokio::test]
async fn a_full_disk_is_a_507_that_leaves_nothing_behind() -> anyhow::Result<()> {
    let disk = SmallTmpfs::mount("128k")?;
    let app = TestApp::builder()
        .set("storage_dir", disk.path().to_string_lossy())
        .spawn()
        .await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("small", "1.0.0"))
        .await;

    let big = CrateBuilder::new("big", "1.0.0").file("noise.bin", &noise(256 * 1024, 7));
    let response = app.publish(&token, &big).await;

    assert_eq!(response.status(), 507);
    assert_eq!(
        detail(&response.json().await?),
        "the registry's storage is full; try again later, and tell the registry's operator"
    );
    let (status, _) = app.get_json("/api/v1/crates/big").await;
    assert_eq!(status, 404, "the transaction rolled back");
    let (status, _) = app.get_json("/index/3/b/big").await;
    assert_eq!(status, 404, "no index file");
    let mut leftovers = Vec::new();
    let mut dirs = vec![disk.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            } else if !entry.path().ends_with("crates/small/small-1.0.0.crate") {
                leftovers.push(entry.path());
            }
        }
    }
    assert!(
        leftovers.is_empty(),
        "nothing partial is left: {leftovers:?}"
    );
    app.publish_ok(&token, &CrateBuilder::new("small", "1.1.0"))
        .await;
    Ok(())
}
