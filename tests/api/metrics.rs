//! `/metrics` on the listener of `WHARF_METRICS_BIND`: Prometheus text whose counters move
//! with publishes, exchanges, refusals and 404s; nothing of it on the main listener.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::fake_idp::{FakeIdp, Provider};
use crate::support::{CrateBuilder, TestApp};

/// The samples of Prometheus text (version 0.0.4), by series (`name{labels}`). Every line must
/// be a comment or `series value`, every `# TYPE` a known type, every sample a `wharf_` name.
fn parse(text: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            match words.next() {
                Some("HELP") => {}
                Some("TYPE") => {
                    let kind = words.nth(1).unwrap_or_default();
                    anyhow::ensure!(
                        ["counter", "gauge", "histogram", "unknown"].contains(&kind),
                        "bad TYPE line: {line}"
                    );
                }
                _ => anyhow::bail!("bad comment line: {line}"),
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow::anyhow!("bad sample line: {line}"))?;
        anyhow::ensure!(series.starts_with("wharf_"), "not a wharf_ metric: {line}");
        let value: f64 = value.parse()?;
        anyhow::ensure!(
            samples.insert(series.to_owned(), value).is_none(),
            "series twice: {series}"
        );
    }
    Ok(samples)
}

async fn scrape(app: &TestApp) -> anyhow::Result<BTreeMap<String, f64>> {
    let port = app.metrics_port.expect("the metrics listener");
    let response = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&response.text().await?)
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_publishes_exchanges_and_refusals() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_idp(&idp)
        .set("metrics_bind", "127.0.0.1:0")
        .set("rate_limit_exchanges_per_publisher", "2/1m")
        .spawn()
        .await;
    let owner = app.token("alice");
    let before = scrape(&app).await?;
    // Series that exist from the start, at 0.
    assert_eq!(
        before.get(
            r#"wharf_exchanges_total{provider="unknown",outcome="refused",reason="invalid_token"}"#
        ),
        Some(&0.0)
    );
    assert_eq!(
        before.get(r#"wharf_publishes_total{method="trusted_publishing",outcome="ok"}"#),
        Some(&0.0)
    );
    assert!(before.contains_key(r#"wharf_rate_limited_total{action="exchange_per_publisher"}"#));

    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    app.add_github_config(&owner, "widget", None).await;
    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 200, "{body}");
    let tp_token = body["token"].as_str().unwrap().to_owned();
    app.publish_ok(&tp_token, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    assert_eq!(app.exchange(&jwt).await.0, 400, "a replay");
    assert_eq!(app.exchange("not-a-jwt").await.0, 400);
    let second = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    assert_eq!(app.exchange(&second).await.0, 200);
    let third = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    assert_eq!(app.exchange(&third).await.0, 429);
    assert_eq!(app.get_json("/api/v1/crates/no-such-crate").await.0, 404);
    let unrouted = app.client.get(app.url("/no/such/page")).send().await?;
    assert_eq!(unrouted.status(), 404);

    let after = scrape(&app).await?;

    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(
        moved(r#"wharf_http_requests_total{route="/api/v1/crates/new",method="PUT",status="200"}"#),
        2.0
    );
    assert_eq!(
        moved(
            r#"wharf_http_requests_total{route="/api/v1/crates/{name}",method="GET",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        moved(r#"wharf_http_requests_total{route="unmatched",method="GET",status="404"}"#),
        1.0
    );
    assert_eq!(
        moved(
            r#"wharf_http_requests_total{route="/api/v1/trusted_publishing/tokens",method="POST",status="429"}"#
        ),
        1.0
    );
    assert_eq!(
        moved(
            r#"wharf_http_request_duration_seconds_count{route="/api/v1/crates/new",method="PUT"}"#
        ),
        2.0
    );
    assert_eq!(
        moved(
            r#"wharf_http_request_duration_seconds_bucket{route="/api/v1/crates/new",method="PUT",le="+Inf"}"#
        ),
        2.0
    );
    assert_eq!(
        moved(r#"wharf_publishes_total{method="token",outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"wharf_publishes_total{method="trusted_publishing",outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"wharf_exchanges_total{provider="github",outcome="ok",reason="none"}"#),
        2.0
    );
    assert_eq!(
        moved(r#"wharf_exchanges_total{provider="github",outcome="refused",reason="replay"}"#),
        1.0
    );
    assert_eq!(
        moved(
            r#"wharf_exchanges_total{provider="github",outcome="refused",reason="rate_limited"}"#
        ),
        1.0
    );
    assert_eq!(
        moved(
            r#"wharf_exchanges_total{provider="unknown",outcome="refused",reason="invalid_token"}"#
        ),
        1.0
    );
    assert_eq!(
        moved(r#"wharf_rate_limited_total{action="exchange_per_publisher"}"#),
        1.0
    );
    assert_eq!(value(&after, "wharf_db_pool_max_connections"), 4.0);
    assert!(value(&after, "wharf_db_pool_connections") >= 1.0);
    assert!(after.contains_key("wharf_db_pool_idle_connections"));
    assert_eq!(
        value(
            &after,
            &format!(
                r#"wharf_build_info{{version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    // Routes are patterns, never raw paths.
    assert!(
        after
            .keys()
            .all(|series| !series.contains("no-such-crate") && !series.contains("/no/such")),
        "{after:?}"
    );
    Ok(())
}

#[tokio::test]
async fn metrics_are_not_served_on_the_main_listener() -> anyhow::Result<()> {
    let app = TestApp::builder()
        .set("metrics_bind", "127.0.0.1:0")
        .spawn()
        .await;
    let main = app.client.get(app.url("/metrics")).send().await?;
    assert_eq!(main.status(), 404);

    let port = app.metrics_port.expect("the metrics listener");
    let client = reqwest::Client::new();
    let head = client
        .head(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await?;
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await?.is_empty());
    let other = reqwest::get(format!("http://127.0.0.1:{port}/health")).await?;
    assert_eq!(other.status(), 404);
    Ok(())
}

#[tokio::test]
async fn without_metrics_bind_there_is_no_metrics_listener() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    assert_eq!(app.metrics_port, None);
    Ok(())
}
