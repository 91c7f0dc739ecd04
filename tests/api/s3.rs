//! Crate files in S3-compatible object storage (`WHARF_STORAGE_URL=s3://…`), against the real
//! S3 API server named by `WHARF_TEST_S3_ENDPOINT` (moto's server, started by
//! `scripts/test.sh`). These tests need it and fail, saying how to start one, without it.

use std::time::Duration;

use crate::admin_check::{a_clean_registry_passes, admin_check, each_problem_is_reported, fill};
use crate::support::crates::noise;
use crate::support::s3::{self, CuttableProxy};
use crate::support::{CrateBuilder, TestApp, detail, index_path};

const STORAGE_UNAVAILABLE: &str = "the registry's storage is not available right now; try again in a few minutes, and tell the registry's operator if it goes on";

fn download_path(name: &str, version: &str) -> String {
    format!("/api/v1/crates/{name}/{version}/download")
}

#[tokio::test]
async fn published_files_go_to_the_bucket_and_downloads_stream_from_it() -> anyhow::Result<()> {
    let app = TestApp::builder().s3().spawn().await;
    let token = app.token("alice");
    // Over a MiB of incompressible bytes, so the file arrives in many chunks.
    let krate =
        CrateBuilder::new("Big_one", "1.0.0+build.7").file("blob.bin", &noise(1536 * 1024, 3));
    let tarball = krate.tarball();

    app.publish_ok(&token, &krate).await;

    let key = "crates/big_one/Big_one-1.0.0+build.7.crate";
    assert_eq!(
        app.stored(key).await?.as_deref(),
        Some(&tarball[..]),
        "in the bucket under its key"
    );
    let response = app
        .client
        .get(app.url(&download_path("Big_one", "1.0.0+build.7")))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        tarball.len().to_string().as_str()
    );
    assert_eq!(response.headers()["content-type"], "application/gzip");
    assert_eq!(&response.bytes().await?[..], &tarball[..]);

    let head = app
        .client
        .head(app.url(&download_path("Big_one", "1.0.0+build.7")))
        .send()
        .await?;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        tarball.len().to_string().as_str()
    );
    assert!(head.bytes().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_prefix_in_the_storage_url_keeps_the_files_under_it() -> anyhow::Result<()> {
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint).await?;
    let mut builder = TestApp::builder();
    for (key, value) in s3::settings(&endpoint, &bucket) {
        builder = builder.set(key, value);
    }
    let app = builder
        .set("storage_url", format!("s3://{bucket}/registry/prod"))
        .set("s3_presigned_downloads", "10m")
        .spawn()
        .await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("prefixed", "0.1.0"))
        .await;

    let response = app
        .client
        .get(app.url(&download_path("prefixed", "0.1.0")))
        .send()
        .await?;

    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str()?;
    assert!(
        location.starts_with(&format!(
            "{endpoint}/{bucket}/registry/prod/crates/prefixed/prefixed-0.1.0.crate?"
        )),
        "{location}"
    );
    Ok(())
}

#[tokio::test]
async fn downloads_redirect_to_a_presigned_url_when_configured() -> anyhow::Result<()> {
    let app = TestApp::builder()
        .s3()
        .set("s3_presigned_downloads", "15m")
        .spawn()
        .await;
    let token = app.token("alice");
    let krate = CrateBuilder::new("signed", "2.0.0");
    app.publish_ok(&token, &krate).await;

    let response = app
        .client
        .get(app.url(&download_path("signed", "2.0.0")))
        .send()
        .await?;

    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = url::Url::parse(response.headers()["location"].to_str()?)?;
    assert!(location.as_str().starts_with(&s3::endpoint()), "{location}");
    assert!(
        location
            .path()
            .ends_with("/crates/signed/signed-2.0.0.crate"),
        "{location}"
    );
    let query: std::collections::HashMap<_, _> = location.query_pairs().collect();
    assert_eq!(query["X-Amz-Expires"], "900");
    assert!(query.contains_key("X-Amz-Signature"));
    let fetched = reqwest::get(location.as_str()).await?;
    assert_eq!(fetched.status(), 200, "the store honours the signature");
    assert_eq!(fetched.headers()["content-type"], "application/gzip");
    assert_eq!(&fetched.bytes().await?[..], &krate.tarball()[..]);

    let (status, body) = app.get_json(&download_path("signed", "9.9.9")).await;
    assert_eq!(status, 404, "only published versions get a URL: {body}");
    Ok(())
}

#[tokio::test]
async fn an_upload_to_a_store_that_is_down_leaves_nothing_and_the_retry_succeeds()
-> anyhow::Result<()> {
    let proxy = CuttableProxy::start(&s3::endpoint()).await?;
    let app = TestApp::builder().s3_through(&proxy).spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("sturdy", "1.0.0"))
        .await;
    let next = CrateBuilder::new("sturdy", "1.1.0");

    proxy.cut();
    let response = app.publish(&token, &next).await;

    assert_eq!(response.status(), 503);
    assert_eq!(detail(&response.json().await?), STORAGE_UNAVAILABLE);
    let (_, info) = app.get_json("/api/v1/crates/sturdy").await;
    let versions: Vec<&str> = info["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["num"].as_str())
        .collect();
    assert_eq!(versions, ["1.0.0"], "no version without its file");
    let lines = app.index_lines("sturdy").await;
    assert_eq!(lines.len(), 1, "no index line without its file");
    let (status, body) = app.get_json(&download_path("sturdy", "1.0.0")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(detail(&body), STORAGE_UNAVAILABLE);
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503);
    assert_eq!(
        detail(&body),
        "not ready: the crate storage cannot be reached; the cause is in this instance's log"
    );

    proxy.restore();
    assert_eq!(
        app.stored("crates/sturdy/sturdy-1.1.0.crate").await?,
        None,
        "nothing was stored"
    );
    let (status, _) = app.get_json("/ready").await;
    assert_eq!(status, 200);
    app.publish_ok(&token, &next).await;
    assert_eq!(app.index_lines("sturdy").await.len(), 2);
    let downloaded = app
        .client
        .get(app.url(&download_path("sturdy", "1.1.0")))
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(&downloaded[..], &next.tarball()[..]);
    Ok(())
}

#[tokio::test]
async fn ready_needs_the_bucket_to_exist() -> anyhow::Result<()> {
    let endpoint = s3::endpoint();
    let mut builder = TestApp::builder();
    for (key, value) in s3::settings(&endpoint, "wharf-test-no-such-bucket") {
        builder = builder.set(key, value);
    }
    let app = builder.spawn().await;

    let (status, body) = app.get_json("/ready").await;

    assert_eq!(status, 503);
    assert_eq!(
        detail(&body),
        "not ready: the crate storage cannot be reached; the cause is in this instance's log"
    );
    let ready = TestApp::builder().s3().spawn().await;
    let (status, body) = ready.get_json("/ready").await;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test]
async fn two_instances_share_one_bucket() -> anyhow::Result<()> {
    let first = TestApp::builder().s3().spawn().await;
    let second = TestApp::builder()
        .sharing_database_with(&first)
        .spawn()
        .await;
    let token = first.token("alice");
    let krate = CrateBuilder::new("shared", "1.0.0");

    first.publish_ok(&token, &krate).await;

    let downloaded = second
        .client
        .get(second.url(&download_path("shared", "1.0.0")))
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(&downloaded[..], &krate.tarball()[..]);
    let (status, _) = second
        .get_json(&format!("/index/{}", index_path("shared")))
        .await;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn the_check_passes_a_clean_bucket() -> anyhow::Result<()> {
    a_clean_registry_passes(&TestApp::builder().s3().spawn().await).await
}

#[tokio::test]
async fn the_check_reports_each_problem_in_a_bucket() -> anyhow::Result<()> {
    each_problem_is_reported(&TestApp::builder().s3().spawn().await).await
}

// Two workers: the proxy keeps answering (by closing connections) while the test waits for
// the `wharf` process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_stops_when_the_store_cannot_be_reached() -> anyhow::Result<()> {
    let proxy = CuttableProxy::start(&s3::endpoint()).await?;
    let app = TestApp::builder().s3_through(&proxy).spawn().await;
    fill(&app).await;
    proxy.cut();

    let started = std::time::Instant::now();
    let out = admin_check(&app);

    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: the crate storage cannot be reached, so nothing was checked: "),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it gives up in bounded time"
    );
    Ok(())
}
