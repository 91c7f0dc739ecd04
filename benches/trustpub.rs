//! Trusted Publishing throughput and latency, printed as figures (`cargo bench --bench
//! trustpub`): the whole token exchange over HTTP (verification, then one transaction with the
//! publisher match, `jti` insert, token insert and audit rows) against the verification alone
//! with the issuer's keys cached, so the report separates the two costs.
//!
//! The identity provider is the fake of development mode and the tests (real RS256 keys on
//! loopback). Every
//! exchange uses its own ID token, signed before the clock starts. SQLite in a temporary folder,
//! and PostgreSQL too when `WHARF_BENCH_DATABASE_URL` is a `postgres://` URL.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use wharf::config::RawSettings;
use wharf::dev::fake_idp::{FakeIdp, Provider};

use crate::support::{Backend, CrateBuilder, Server, closed_loop};

/// Concurrent clients, for the exchange and for the verifier (after a run with one client).
const CLIENTS: usize = 16;
/// Exchanges made by the single client; the other ID tokens go to the concurrent run.
const SEQUENTIAL_EXCHANGES: usize = 300;
/// ID tokens signed ahead of time, one per exchange (at most this many exchanges), and the
/// time allowed for signing them.
const ID_TOKENS: usize = 5000;
const SIGNING_BUDGET: Duration = Duration::from_secs(15);
/// How long each exchange and verification run lasts at most.
const DURATION: Duration = Duration::from_secs(5);
/// Verifications at most (tokens are reused: the verifier leaves `jti` single use to the caller).
const MAX_VERIFICATIONS: usize = 200_000;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        support::print_machine("trustpub");
        let idp = FakeIdp::start(Provider::GitHub);
        for backend in Backend::from_env()? {
            let started = Instant::now();
            println!("\n=== {} ===", backend.name());
            let mut settings = RawSettings::default();
            settings
                .set("trustpub_github_issuer", idp.issuer())
                .set("github_api_url", idp.api_url())
                // Fixed, so that the ID tokens signed for one server are good for the next.
                .set("trustpub_audience", "wharf-bench");
            let server = Server::start(&backend, settings.clone()).await?;
            let jwts = run(&server, &idp).await?;
            server.stop().await?;
            // The same exchanges (a fresh database has used none of their `jti`s) with the
            // exchange rate limits off: what counting them costs.
            settings
                .set("rate_limit_exchanges_per_address", "off")
                .set("rate_limit_exchanges_per_publisher", "off");
            let server = Server::start(&backend, settings).await?;
            add_publisher(&server).await?;
            let audience = server.app.config.trustpub.audience.clone();
            let warm_up = idp.sign(&idp.github_claims(&audience, json!({})));
            if !exchange(&server.client, &server.url(EXCHANGE), &warm_up).await {
                bail!("the warm-up exchange failed");
            }
            let unlimited = exchanges(&server, jwts, CLIENTS).await;
            unlimited.report(
                "token exchange over HTTP, exchange rate limits off",
                CLIENTS,
            );
            server.stop().await?;
            println!(
                "({} run took {:.1} s)",
                backend.name(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })
}

/// Measures the exchanges and the verifier on `server`; returns the ID tokens the concurrent
/// exchanges used.
async fn run(server: &Server, idp: &FakeIdp) -> anyhow::Result<Vec<String>> {
    add_publisher(server).await?;
    let audience = server.app.config.trustpub.audience.clone();
    let signing = Instant::now();
    let mut jwts = Vec::with_capacity(ID_TOKENS);
    while jwts.len() < ID_TOKENS && signing.elapsed() < SIGNING_BUDGET {
        jwts.push(idp.sign(&idp.github_claims(&audience, json!({}))));
    }
    println!(
        "\nsigned {} ID tokens (RS256, 2048-bit) in {:.2} s before the clock starts",
        jwts.len(),
        signing.elapsed().as_secs_f64()
    );

    // Warm-up: the first exchange fetches the issuer's key set; later ones use the cache.
    let warm_up = idp.sign(&idp.github_claims(&audience, json!({})));
    if !exchange(&server.client, &server.url(EXCHANGE), &warm_up).await {
        bail!("the warm-up exchange failed");
    }

    // One client first: the cost of one exchange and one verification without queueing.
    let concurrent = jwts.split_off(SEQUENTIAL_EXCHANGES.min(jwts.len() / 2));
    let one = exchanges(server, jwts, 1).await;
    one.report("token exchange over HTTP, fresh ID token each", 1);
    let many = exchanges(server, concurrent.clone(), CLIENTS).await;
    many.report("token exchange over HTTP, fresh ID token each", CLIENTS);

    let jwts = Arc::new(jwts_for_verify(idp, &audience));
    let one_verify = verifications(server, Arc::clone(&jwts), 1).await;
    one_verify.report("Verifier::verify alone, keys cached", 1);
    let many_verify = verifications(server, jwts, CLIENTS).await;
    many_verify.report("Verifier::verify alone, keys cached", CLIENTS);

    let verify = one_verify.latencies.percentile(50.0);
    let whole = one.latencies.percentile(50.0);
    println!(
        "\none client, p50: verification {} of the exchange's {} ({:.0}%); the rest \
         (HTTP, transaction with match, jti, token and audit rows) {}",
        support::ms(verify),
        support::ms(whole),
        100.0 * verify.as_secs_f64() / whole.as_secs_f64().max(f64::MIN_POSITIVE),
        support::ms(whole.saturating_sub(verify)),
    );
    println!(
        "{CLIENTS} clients, throughput: {:.0} exchanges/s vs {:.0} verifications/s",
        many.per_second(),
        many_verify.per_second()
    );
    Ok(concurrent)
}

/// Adds the ID tokens' workflow as the trusted publisher of crate `widget`, published first.
async fn add_publisher(server: &Server) -> anyhow::Result<()> {
    let owner = server.token("alice")?;
    server
        .publish_body(&owner, CrateBuilder::new("widget", "1.0.0").publish_body())
        .await?;
    let response = server
        .client
        .post(server.url("/api/v1/trusted_publishing/github_configs"))
        .header("Authorization", &owner)
        .json(&support::widget_github_config())
        .send()
        .await?;
    if response.status() != 200 {
        bail!("adding the GitHub config answered {}", response.status());
    }
    Ok(())
}

/// Exchanges each of `jwts` once, with `clients` concurrent clients (bounded by [`DURATION`]).
async fn exchanges(server: &Server, jwts: Vec<String>, clients: usize) -> support::Load {
    let count = jwts.len();
    let jwts = Arc::new(jwts);
    let client = server.client.clone();
    let url = Arc::new(server.url(EXCHANGE));
    closed_loop(clients, DURATION, count, move |i| {
        let client = client.clone();
        let url = Arc::clone(&url);
        let jwts = Arc::clone(&jwts);
        async move { exchange(&client, &url, &jwts[i]).await }
    })
    .await
}

/// A few ID tokens for the verifier, which leaves `jti` single use to its caller, so they can
/// be verified again and again.
fn jwts_for_verify(idp: &FakeIdp, audience: &str) -> Vec<String> {
    (0..64)
        .map(|_| idp.sign(&idp.github_claims(audience, json!({}))))
        .collect()
}

/// Calls the application's own verifier (whose key cache the exchanges warmed) directly.
async fn verifications(server: &Server, jwts: Arc<Vec<String>>, clients: usize) -> support::Load {
    let app = server.app.clone();
    let count = jwts.len();
    closed_loop(clients, DURATION, MAX_VERIFICATIONS, move |i| {
        let app = app.clone();
        let jwts = Arc::clone(&jwts);
        async move { app.verifier.verify(&jwts[i % count]).await.is_ok() }
    })
    .await
}

const EXCHANGE: &str = "/api/v1/trusted_publishing/tokens";

/// `POST /api/v1/trusted_publishing/tokens`; `true` when a token came back.
async fn exchange(client: &reqwest::Client, url: &str, jwt: &str) -> bool {
    match client.post(url).json(&json!({ "jwt": jwt })).send().await {
        Ok(response) if response.status() == 200 => response
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|body| body["token"].is_string()),
        _ => false,
    }
}
