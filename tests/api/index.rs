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

/// The versions an instance lists for a crate now.
async fn served_versions(app: &TestApp, name: &str) -> Vec<(String, bool)> {
    app.index_lines(name)
        .await
        .iter()
        .map(|line| {
            (
                line["vers"].as_str().unwrap_or_default().to_owned(),
                line["yanked"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

/// Asks `app` for the crate's index file until it lists `expected`; fails after `within`.
async fn wait_for_versions(
    app: &TestApp,
    name: &str,
    expected: &[(&str, bool)],
    within: std::time::Duration,
) -> anyhow::Result<std::time::Duration> {
    let started = std::time::Instant::now();
    loop {
        let served = served_versions(app, name).await;
        let wanted: Vec<(String, bool)> = expected
            .iter()
            .map(|(v, y)| ((*v).to_owned(), *y))
            .collect();
        if served == wanted {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            anyhow::bail!(
                "after {:?} the other instance still serves {served:?}, not {wanted:?}",
                started.elapsed()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_publish_or_yank_through_one_instance_reaches_the_others_cache_within_a_second()
-> anyhow::Result<()> {
    let first = TestApp::spawn().await;
    let second = TestApp::builder()
        .sharing_database_with(&first)
        .spawn()
        .await;
    let token = first.token("alice");
    first
        .publish_ok(&token, &CrateBuilder::new("spread", "1.0.0"))
        .await;
    // The second instance has the file in its cache now.
    assert_eq!(
        served_versions(&second, "spread").await,
        [("1.0.0".to_owned(), false)]
    );
    assert_eq!(served_versions(&second, "spread").await.len(), 1);

    first
        .publish_ok(&token, &CrateBuilder::new("spread", "1.0.1"))
        .await;
    // The publishing instance answers with the new line at once.
    assert_eq!(
        served_versions(&first, "spread").await,
        [("1.0.0".to_owned(), false), ("1.0.1".to_owned(), false)]
    );
    let second_sees = std::time::Duration::from_secs(1);
    wait_for_versions(
        &second,
        "spread",
        &[("1.0.0", false), ("1.0.1", false)],
        second_sees,
    )
    .await?;

    let response = first
        .client
        .delete(first.url("/api/v1/crates/spread/1.0.0/yank"))
        .header("Authorization", &token)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        served_versions(&first, "spread").await,
        [("1.0.0".to_owned(), true), ("1.0.1".to_owned(), false)]
    );
    wait_for_versions(
        &second,
        "spread",
        &[("1.0.0", true), ("1.0.1", false)],
        second_sees,
    )
    .await?;

    // And the other way round.
    let response = second
        .client
        .put(second.url("/api/v1/crates/spread/1.0.0/unyank"))
        .header("Authorization", &token)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    wait_for_versions(
        &first,
        "spread",
        &[("1.0.0", false), ("1.0.1", false)],
        second_sees,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_small_or_disabled_cache_serves_the_same_files() -> anyhow::Result<()> {
    for size in ["0", "1KiB"] {
        let app = TestApp::builder()
            .set("index_cache_size", size)
            .spawn()
            .await;
        let token = app.token("alice");
        for name in ["first", "second", "third"] {
            for version in ["1.0.0", "1.0.1"] {
                app.publish_ok(&token, &CrateBuilder::new(name, version))
                    .await;
                assert_eq!(
                    served_versions(&app, name).await.last(),
                    Some(&(version.to_owned(), false)),
                    "cache size {size}"
                );
            }
        }
        for name in ["first", "second", "third"] {
            assert_eq!(served_versions(&app, name).await.len(), 2, "{size}");
        }
        assert!(app.app.index_cache.used_bytes() <= 1024, "{size}");
    }
    Ok(())
}

#[tokio::test]
async fn the_etag_of_a_cached_file_answers_304_and_head_has_no_body() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("headed", "1.0.0"))
        .await;
    let url = app.url(&format!("/index/{}", index_path("headed")));
    let first = app.client.get(&url).send().await?;
    let etag = first.headers()["etag"].to_str()?.to_owned();
    let body = first.text().await?;
    // Served from the cache from now on.
    let head = app.client.head(&url).send().await?;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"].to_str()?, etag);
    assert_eq!(head.headers()["cache-control"], "no-cache");
    assert_eq!(head.text().await?, "");
    for header in [etag.clone(), format!("\"other\", {etag}"), "*".to_owned()] {
        let response = app
            .client
            .get(&url)
            .header("If-None-Match", header.as_str())
            .send()
            .await?;
        assert_eq!(response.status(), 304, "{header}");
        assert_eq!(response.text().await?, "");
    }
    let stale = app
        .client
        .get(&url)
        .header("If-None-Match", "\"other\"")
        .send()
        .await?;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.text().await?, body);
    Ok(())
}

/// A version whose index line is about 5 KB (many features), so a few versions fill a chunk.
pub fn wide(name: &str, version: &str) -> CrateBuilder {
    let features: serde_json::Map<String, serde_json::Value> = (0..40)
        .map(|i| {
            let name = format!("feature-{i:02}-{}", "x".repeat(100));
            (name, serde_json::json!([]))
        })
        .collect();
    CrateBuilder::new(name, version).features(serde_json::Value::Object(features))
}

/// The crate's file as stored, checked as `wharf admin check` checks it, and its chunk count.
fn stored_chunks(app: &TestApp, name: &'static str) -> anyhow::Result<(String, String, usize)> {
    use wharf::models::index_file;
    let stored = app.app.db.blocking(move |conn| {
        let krate = wharf::models::Crate::by_name(conn, name)?.expect("the crate exists");
        let lines = index_file::render_lines(conn, krate.id, &krate.name, None)?;
        let stored = index_file::stored(conn, krate.id)?.expect("an index file");
        Ok((lines, stored))
    })?;
    let (lines, stored) = stored;
    let expected: String = lines.iter().map(|(_, line)| line.as_str()).collect();
    assert_eq!(
        stored.content(),
        expected,
        "the chunks are the rendered file"
    );
    assert!(stored.etag_matches(), "{}", stored.etag);
    assert_eq!(stored.chunk_problem(&lines), None);
    Ok((stored.content(), stored.etag.clone(), stored.chunks.len()))
}

#[tokio::test]
async fn a_file_of_many_chunks_stays_whole_through_publishes_and_yanks() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    for patch in 0..10 {
        app.publish_ok(&token, &wide("chunky", &format!("1.0.{patch}")))
            .await;
    }
    let url = app.url(&format!("/index/{}", index_path("chunky")));
    let (content, etag, chunks) = stored_chunks(&app, "chunky")?;
    assert!(
        chunks >= 3,
        "10 lines of 5 KB make several chunks: {chunks}"
    );
    let served = app.client.get(&url).send().await?;
    assert_eq!(served.headers()["etag"].to_str()?, etag);
    assert_eq!(served.text().await?, content);

    // A yank in a middle chunk renders that chunk again; the file and its ETag follow.
    let yank = |version: &'static str, method: reqwest::Method| {
        let request = app
            .client
            .request(
                method.clone(),
                app.url(&format!(
                    "/api/v1/crates/chunky/{version}/{}",
                    if method == reqwest::Method::DELETE {
                        "yank"
                    } else {
                        "unyank"
                    }
                )),
            )
            .header("Authorization", &token);
        async move {
            let response = request.send().await.expect("send");
            assert_eq!(response.status(), 200);
        }
    };
    yank("1.0.4", reqwest::Method::DELETE).await;
    let (yanked, yanked_etag, same_chunks) = stored_chunks(&app, "chunky")?;
    assert_eq!(same_chunks, chunks, "a yank does not split the file again");
    assert_ne!(yanked_etag, etag);
    let lines = app.index_lines("chunky").await;
    let flags: Vec<bool> = lines.iter().map(|l| l["yanked"] == true).collect();
    let mut expected = vec![false; 10];
    expected[4] = true;
    assert_eq!(flags, expected);
    let stale = app
        .client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await?;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.text().await?, yanked);

    // Unyanking gives back the very file, ETag included; later publishes keep appending.
    yank("1.0.4", reqwest::Method::PUT).await;
    let (unyanked, unyanked_etag, _) = stored_chunks(&app, "chunky")?;
    assert_eq!((unyanked, unyanked_etag), (content, etag));
    yank("1.0.0", reqwest::Method::DELETE).await;
    yank("1.0.9", reqwest::Method::DELETE).await;
    for patch in 10..13 {
        app.publish_ok(&token, &wide("chunky", &format!("1.0.{patch}")))
            .await;
    }
    let (_, _, more) = stored_chunks(&app, "chunky")?;
    assert!(more > chunks, "{more} > {chunks}");
    let lines = app.index_lines("chunky").await;
    let yanked: Vec<&str> = lines
        .iter()
        .filter(|l| l["yanked"] == true)
        .filter_map(|l| l["vers"].as_str())
        .collect();
    assert_eq!(yanked, ["1.0.0", "1.0.9"]);
    assert_eq!(lines.len(), 13);
    Ok(())
}
