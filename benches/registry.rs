//! Registry throughput and latency, printed as figures (`cargo bench --bench registry`):
//!
//! - hot index-file requests, with and without `If-None-Match` (the 304 path);
//! - publish latency of a small crate;
//! - how publish and index cost grow from 1 to 10,000 versions of one crate.
//!
//! Runs on SQLite in a temporary folder, and on PostgreSQL too when `WHARF_BENCH_DATABASE_URL`
//! is a `postgres://` URL (a fresh database is created and dropped). Loopback only; every loop
//! is bounded in count and time.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wharf::config::RawSettings;

use crate::support::{Backend, CrateBuilder, Samples, Server, closed_loop, index_path, ms};

/// Concurrent clients hammering one index file.
const INDEX_CLIENTS: usize = 32;
/// How long each index load test runs, and its cap on requests.
const INDEX_DURATION: Duration = Duration::from_secs(5);
const INDEX_MAX_REQUESTS: usize = 500_000;
/// Versions of the hot crate.
const HOT_VERSIONS: usize = 10;
/// Sequential publishes of the small crate.
const PUBLISHES: usize = 50;
/// Versions published in the growth test, and where it reports.
const GROWTH_VERSIONS: usize = 10_000;
const CHECKPOINTS: [usize; 5] = [1, 10, 100, 1000, 10_000];
/// Neighbours on each side taken into a checkpoint's publish latency (median and mean).
const WINDOW: usize = 10;
/// Index fetches averaged at each checkpoint.
const INDEX_FETCHES: usize = 50;
/// The growth test stops early (and says so) after this long.
const GROWTH_BUDGET: Duration = Duration::from_secs(480);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        support::print_machine("registry");
        for backend in Backend::from_env()? {
            let started = Instant::now();
            println!("\n=== {} ===", backend.name());
            let server = Server::start(&backend, RawSettings::default()).await?;
            let token = server.token("bench")?;
            hot_index(&server, &token).await?;
            publish_latency(&server, &token).await?;
            growth(&server, &token).await?;
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

/// A small crate's publish body; built before the clock starts.
fn body(name: &str, version: &str) -> Vec<u8> {
    CrateBuilder::new(name, version).publish_body()
}

async fn hot_index(server: &Server, token: &str) -> anyhow::Result<()> {
    let name = "hot-crate";
    for i in 0..HOT_VERSIONS {
        server
            .publish_body(token, body(name, &format!("1.0.{i}")))
            .await?;
    }
    let url = Arc::new(server.url(&format!("/index/{}", index_path(name))));
    let first = server.client.get(url.as_str()).send().await?;
    if first.status() != 200 {
        bail!("index file answered {}", first.status());
    }
    let etag = first
        .headers()
        .get("etag")
        .context("the index file has no ETag")?
        .to_str()?
        .to_owned();
    let size = first.bytes().await?.len();
    println!(
        "\nhot index file: {HOT_VERSIONS} versions, {size} bytes, GET /index/… for {INDEX_DURATION:?} each"
    );

    let client = server.client.clone();
    let full = {
        let url = Arc::clone(&url);
        closed_loop(
            INDEX_CLIENTS,
            INDEX_DURATION,
            INDEX_MAX_REQUESTS,
            move |_| {
                let client = client.clone();
                let url = Arc::clone(&url);
                async move {
                    match client.get(url.as_str()).send().await {
                        Ok(response) if response.status() == 200 => {
                            response.bytes().await.is_ok_and(|b| b.len() == size)
                        }
                        _ => false,
                    }
                }
            },
        )
        .await
    };
    full.report("  200 (full body)", INDEX_CLIENTS);

    let client = server.client.clone();
    let etag = Arc::new(etag);
    let revalidated = closed_loop(
        INDEX_CLIENTS,
        INDEX_DURATION,
        INDEX_MAX_REQUESTS,
        move |_| {
            let client = client.clone();
            let url = Arc::clone(&url);
            let etag = Arc::clone(&etag);
            async move {
                match client
                    .get(url.as_str())
                    .header("If-None-Match", etag.as_str())
                    .send()
                    .await
                {
                    Ok(response) => response.status() == 304 && response.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        },
    )
    .await;
    revalidated.report("  304 (If-None-Match)", INDEX_CLIENTS);
    Ok(())
}

async fn publish_latency(server: &Server, token: &str) -> anyhow::Result<()> {
    let name = "small-crate";
    let mut latencies = Vec::with_capacity(PUBLISHES);
    for i in 0..PUBLISHES {
        let body = body(name, &format!("0.1.{i}"));
        let size = body.len();
        let started = Instant::now();
        server.publish_body(token, body).await?;
        latencies.push(started.elapsed());
        if i == 0 {
            println!(
                "\npublish of a small crate ({size}-byte request), {PUBLISHES} versions one after another:"
            );
        }
    }
    let samples = Samples::new(latencies);
    println!("  latency {}", samples.summary());
    Ok(())
}

async fn growth(server: &Server, token: &str) -> anyhow::Result<()> {
    let name = "growing-crate";
    let url = server.url(&format!("/index/{}", index_path(name)));
    println!(
        "\ngrowth: {GROWTH_VERSIONS} versions of one crate; publish latency is the median and the mean of versions n-{WINDOW}..=n+{WINDOW} (the median is robust to stalls of a busy machine), index fetch the mean of {INDEX_FETCHES} GETs"
    );
    let started = Instant::now();
    let mut publishes = Vec::with_capacity(GROWTH_VERSIONS);
    // (versions, index bytes, mean fetch)
    let mut index = Vec::new();
    for n in 1..=GROWTH_VERSIONS {
        if started.elapsed() > GROWTH_BUDGET {
            println!(
                "  (stopped after {} versions: over {GROWTH_BUDGET:?})",
                n - 1
            );
            break;
        }
        let body = body(name, &format!("1.{}.{}", n / 100, n % 100));
        let sent = Instant::now();
        server.publish_body(token, body).await?;
        publishes.push(sent.elapsed());
        if CHECKPOINTS.contains(&n) {
            let mut total = Duration::ZERO;
            let mut bytes = 0;
            for _ in 0..INDEX_FETCHES {
                let sent = Instant::now();
                let response = server.client.get(&url).send().await?;
                if response.status() != 200 {
                    bail!("index file answered {}", response.status());
                }
                bytes = response.bytes().await?.len();
                total += sent.elapsed();
            }
            index.push((n, bytes, total / INDEX_FETCHES as u32));
        }
    }
    println!(
        "  {:>8}  {:>14}  {:>14}  {:>14}  {:>12}  {:>14}",
        "versions", "publish (n)", "publish (med)", "publish (avg)", "index bytes", "index fetch"
    );
    let mut first_median = None;
    for (n, bytes, fetch) in index {
        let low = n.saturating_sub(WINDOW).max(1);
        let high = (n + WINDOW).min(publishes.len());
        let window = &publishes[low - 1..high];
        let mean = window.iter().sum::<Duration>() / window.len() as u32;
        let mut sorted = window.to_vec();
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        let base = *first_median.get_or_insert(median);
        println!(
            "  {n:>8}  {:>14}  {:>14}  {:>14}  {bytes:>12}  {:>14}  ({:.2}x version 1)",
            ms(publishes[n - 1]),
            ms(median),
            ms(mean),
            ms(fetch),
            median.as_secs_f64() / base.as_secs_f64().max(f64::MIN_POSITIVE)
        );
    }
    println!(
        "  ({} publishes in {:.1} s)",
        publishes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
