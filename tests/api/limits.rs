//! Rate limits on publishes and exchanges: 429 with `Retry-After` and a message naming the
//! limit, windows that end, nothing left behind by a refused request, and counters shared by
//! every instance on one database (SQLite file or PostgreSQL, as the suite runs).

use std::time::Duration;

use diesel::{QueryDsl, RunQueryDsl};
use serde_json::{Value, json};

use crate::support::fake_idp::{FakeIdp, Provider};
use crate::support::{CrateBuilder, TestApp, detail};

const ALL_LIMITS: [&str; 4] = [
    "rate_limit_publishes_per_crate",
    "rate_limit_publishes_per_publisher",
    "rate_limit_exchanges_per_address",
    "rate_limit_exchanges_per_publisher",
];

/// A server with every limit off except those given.
async fn app_with(limits: &[(&str, &str)]) -> TestApp {
    builder_with(limits).spawn().await
}

fn builder_with(limits: &[(&str, &str)]) -> crate::support::TestAppBuilder {
    let mut builder = TestApp::builder();
    for key in ALL_LIMITS {
        let value = limits
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("off", |(_, v)| *v);
        builder = builder.set(key, value);
    }
    builder
}

/// Status, `Retry-After` and body of a response.
async fn answer(response: reqwest::Response) -> anyhow::Result<(u16, Option<u64>, Value)> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().map(|s| s.parse::<u64>()))
        .transpose()?
        .transpose()?;
    Ok((
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    ))
}

async fn exchange_raw(
    app: &TestApp,
    jwt: &str,
    forwarded_for: Option<&str>,
) -> anyhow::Result<(u16, Option<u64>, Value)> {
    let mut request = app
        .client
        .post(app.url("/api/v1/trusted_publishing/tokens"))
        .json(&json!({ "jwt": jwt }));
    if let Some(forwarded) = forwarded_for {
        request = request.header("X-Forwarded-For", forwarded);
    }
    answer(request.send().await?).await
}

fn versions(app: &TestApp, name: &str) -> Vec<String> {
    let name = name.to_owned();
    app.app
        .db
        .blocking(move |conn| {
            use wharf::schema::{crates, versions};
            Ok(versions::table
                .inner_join(crates::table)
                .filter(diesel::ExpressionMethods::eq(crates::name, name))
                .select(versions::num)
                .load::<String>(conn)?)
        })
        .unwrap()
}

fn minted_tokens(app: &TestApp) -> i64 {
    app.app
        .db
        .blocking(|conn| {
            Ok(wharf::schema::trustpub_tokens::table
                .count()
                .get_result::<i64>(conn)?)
        })
        .unwrap()
}

#[tokio::test]
async fn publishes_over_the_per_crate_limit_get_429_and_leave_nothing() -> anyhow::Result<()> {
    let app = app_with(&[("rate_limit_publishes_per_crate", "2/1m")]).await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.0.1"))
        .await;

    let (status, retry_after, body) = answer(
        app.publish(&token, &CrateBuilder::new("widget", "1.0.2"))
            .await,
    )
    .await?;

    assert_eq!(status, 429, "{body}");
    let retry_after = retry_after.expect("a Retry-After header");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        detail(&body),
        format!(
            "too many publishes of crate `widget`: at most 2 per 1m are allowed (WHARF_RATE_LIMIT_PUBLISHES_PER_CRATE); try again in {retry_after} seconds"
        )
    );
    assert_eq!(versions(&app, "widget"), ["1.0.0", "1.0.1"]);
    assert_eq!(app.index_lines("widget").await.len(), 2);
    // Another crate has a counter of its own.
    app.publish_ok(&token, &CrateBuilder::new("gadget", "1.0.0"))
        .await;
    Ok(())
}

#[tokio::test]
async fn a_bogus_or_unauthorised_token_gets_403_not_429_over_the_limit() -> anyhow::Result<()> {
    let app = app_with(&[("rate_limit_publishes_per_crate", "1/1m")]).await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.0.0"))
        .await;

    let bogus = app
        .publish("wharf_bogus", &CrateBuilder::new("widget", "1.0.1"))
        .await;
    assert_eq!(bogus.status(), 403);
    let stranger = app.token("mallory");
    let not_an_owner = app
        .publish(&stranger, &CrateBuilder::new("widget", "1.0.1"))
        .await;
    assert_eq!(not_an_owner.status(), 403);
    let owner = app
        .publish(&token, &CrateBuilder::new("widget", "1.0.1"))
        .await;
    assert_eq!(owner.status(), 429);
    Ok(())
}

#[tokio::test]
async fn publishes_over_the_per_publisher_limit_are_refused_for_any_crate() -> anyhow::Result<()> {
    let app = app_with(&[("rate_limit_publishes_per_publisher", "2/1m")]).await;
    let alice = app.token("alice");
    app.publish_ok(&alice, &CrateBuilder::new("one", "1.0.0"))
        .await;
    app.publish_ok(&alice, &CrateBuilder::new("two", "1.0.0"))
        .await;

    let (status, retry_after, body) = answer(
        app.publish(&alice, &CrateBuilder::new("three", "1.0.0"))
            .await,
    )
    .await?;

    assert_eq!(status, 429, "{body}");
    assert!(retry_after.is_some());
    assert!(
        detail(&body).starts_with(
            "too many publishes by user `alice`: at most 2 per 1m are allowed (WHARF_RATE_LIMIT_PUBLISHES_PER_PUBLISHER); try again in "
        ),
        "{body}"
    );
    assert!(versions(&app, "three").is_empty());
    let bob = app.token("bob");
    app.publish_ok(&bob, &CrateBuilder::new("three", "1.0.0"))
        .await;
    Ok(())
}

#[tokio::test]
async fn a_publish_limit_window_ends_after_retry_after() -> anyhow::Result<()> {
    let app = app_with(&[("rate_limit_publishes_per_crate", "1/2s")]).await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    let (status, retry_after, _) = answer(
        app.publish(&token, &CrateBuilder::new("widget", "1.0.1"))
            .await,
    )
    .await?;
    assert_eq!(status, 429);
    let retry_after = retry_after.expect("a Retry-After header");
    assert!((1..=2).contains(&retry_after), "{retry_after}");

    tokio::time::sleep(Duration::from_secs(retry_after)).await;

    app.publish_ok(&token, &CrateBuilder::new("widget", "1.0.1"))
        .await;
    Ok(())
}

#[tokio::test]
async fn exchanges_over_the_per_address_limit_are_refused_whatever_their_id_token()
-> anyhow::Result<()> {
    let app = app_with(&[("rate_limit_exchanges_per_address", "2/1m")]).await;
    for _ in 0..2 {
        let (status, _, body) = exchange_raw(&app, "not-a-jwt", None).await?;
        assert_eq!(status, 400, "{body}");
    }

    let (status, retry_after, body) = exchange_raw(&app, "not-a-jwt", None).await?;

    assert_eq!(status, 429, "{body}");
    let retry_after = retry_after.expect("a Retry-After header");
    assert_eq!(
        detail(&body),
        format!(
            "too many Trusted Publishing token exchanges from address 127.0.0.1: at most 2 per 1m are allowed (WHARF_RATE_LIMIT_EXCHANGES_PER_ADDRESS); try again in {retry_after} seconds"
        )
    );
    Ok(())
}

#[tokio::test]
async fn every_exchange_from_an_address_counts_minted_unmatched_or_replayed() -> anyhow::Result<()>
{
    let idp = FakeIdp::start(Provider::GitHub);
    let app = builder_with(&[("rate_limit_exchanges_per_address", "3/1m")])
        .github_idp(&idp)
        .spawn()
        .await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    let jwt = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let unmatched = idp.sign(&idp.github_claims(
        &app.audience(),
        json!({
            "workflow_ref": "octo-org/widget/.github/workflows/other.yml@refs/heads/main",
            "job_workflow_ref": "octo-org/widget/.github/workflows/other.yml@refs/heads/main",
        }),
    ));
    app.add_github_config(&owner, "widget", None).await;

    // A minted token, a replay of its ID token and an ID token no publisher accepts: each
    // one attempt, although the last two roll their exchange transaction back.
    assert_eq!(exchange_raw(&app, &jwt, None).await?.0, 200);
    assert_eq!(exchange_raw(&app, &jwt, None).await?.0, 400);
    assert_eq!(exchange_raw(&app, &unmatched, None).await?.0, 400);

    let fresh = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let (status, _, body) = exchange_raw(&app, &fresh, None).await?;
    assert_eq!(status, 429, "{body}");
    assert!(detail(&body).contains("at most 3 per 1m"), "{body}");
    Ok(())
}

#[tokio::test]
async fn x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() -> anyhow::Result<()> {
    let limit = ("rate_limit_exchanges_per_address", "1/1m");
    let behind_proxy = builder_with(&[limit])
        .set("trusted_proxies", "127.0.0.0/8")
        .spawn()
        .await;
    let (first, _, _) = exchange_raw(&behind_proxy, "x", Some("198.51.100.1")).await?;
    assert_eq!(first, 400);
    // A client that makes up entries left of the one its proxy appended is still itself.
    let (other, _, _) = exchange_raw(&behind_proxy, "x", Some("203.0.113.5, 198.51.100.2")).await?;
    assert_eq!(other, 400);
    let (again, _, body) =
        exchange_raw(&behind_proxy, "x", Some("203.0.113.6, 198.51.100.1")).await?;
    assert_eq!(again, 429);
    assert!(
        detail(&body).contains("from address 198.51.100.1:"),
        "{body}"
    );

    let direct = app_with(&[limit]).await;
    let (first, _, _) = exchange_raw(&direct, "x", Some("198.51.100.1")).await?;
    assert_eq!(first, 400);
    let (second, _, body) = exchange_raw(&direct, "x", Some("198.51.100.2")).await?;
    assert_eq!(
        second, 429,
        "X-Forwarded-For from an untrusted peer must be ignored"
    );
    assert!(detail(&body).contains("from address 127.0.0.1:"), "{body}");
    Ok(())
}

#[tokio::test]
async fn an_exchange_over_the_per_publisher_limit_leaves_its_id_token_unused() -> anyhow::Result<()>
{
    let idp = FakeIdp::start(Provider::GitHub);
    let app = builder_with(&[("rate_limit_exchanges_per_publisher", "1/2s")])
        .github_idp(&idp)
        .spawn()
        .await;
    let owner = app.token("alice");
    app.publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    let config = app.add_github_config(&owner, "widget", None).await;
    let config_id = config["github_config"]["id"].as_i64().unwrap();
    let first = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let second = idp.sign(&idp.github_claims(&app.audience(), json!({})));
    let (status, _, body) = exchange_raw(&app, &first, None).await?;
    assert_eq!(status, 200, "{body}");

    let (status, retry_after, body) = exchange_raw(&app, &second, None).await?;

    assert_eq!(status, 429, "{body}");
    let retry_after = retry_after.expect("a Retry-After header");
    assert_eq!(
        detail(&body),
        format!(
            "too many Trusted Publishing token exchanges through trusted publisher config {config_id} (github): at most 1 per 2s are allowed (WHARF_RATE_LIMIT_EXCHANGES_PER_PUBLISHER); try again in {retry_after} seconds"
        )
    );
    assert_eq!(minted_tokens(&app), 1, "a refused exchange mints nothing");

    // The refused ID token was not used up: the job can retry it once the window is over.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, _, body) = exchange_raw(&app, &second, None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(minted_tokens(&app), 2);
    Ok(())
}

#[tokio::test]
async fn limits_hold_across_two_instances_on_one_database() -> anyhow::Result<()> {
    let limits = [
        ("rate_limit_publishes_per_crate", "2/1m"),
        ("rate_limit_exchanges_per_address", "2/1m"),
    ];
    let one = app_with(&limits).await;
    let mut two = builder_with(&limits);
    two = two.sharing_database_with(&one);
    let two = two.spawn().await;
    let token = one.token("alice");

    one.publish_ok(&token, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    two.publish_ok(&token, &CrateBuilder::new("widget", "1.0.1"))
        .await;
    let refused = one
        .publish(&token, &CrateBuilder::new("widget", "1.0.2"))
        .await;
    assert_eq!(refused.status(), 429);
    let refused = two
        .publish(&token, &CrateBuilder::new("widget", "1.0.2"))
        .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(versions(&two, "widget"), ["1.0.0", "1.0.1"]);

    assert_eq!(exchange_raw(&two, "x", None).await?.0, 400);
    assert_eq!(exchange_raw(&one, "x", None).await?.0, 400);
    assert_eq!(exchange_raw(&two, "x", None).await?.0, 429);
    Ok(())
}

#[tokio::test]
async fn concurrent_publishes_through_two_instances_never_pass_the_limit() -> anyhow::Result<()> {
    let limits = [("rate_limit_publishes_per_crate", "4/1m")];
    let one = app_with(&limits).await;
    let two = builder_with(&limits)
        .sharing_database_with(&one)
        .spawn()
        .await;
    let token = one.token("alice");
    // The crate exists first, so that the racing publishes only race for the limit.
    one.publish_ok(&token, &CrateBuilder::new("widget", "0.1.0"))
        .await;

    let publishes = (0..8).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        let token = token.clone();
        async move {
            app.publish(&token, &CrateBuilder::new("widget", &format!("1.0.{i}")))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(publishes).await;

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(versions(&one, "widget").len(), 4);
    Ok(())
}
