//! Load and soak (`scripts/load.sh`, or `cargo bench --bench load -- [OPTIONS]`): index reads
//! (hot and cold files), token exchanges (a fresh ID token each) and publishes (new versions of
//! a few crates), all at once for a fixed time, against the `wharf` binary as its own process:
//!
//! - one instance on SQLite;
//! - one instance on PostgreSQL, and two instances on one PostgreSQL database and one crate
//!   folder behind nginx (round robin), when `WHARF_BENCH_DATABASE_URL` names a PostgreSQL
//!   server (a fresh database is created and dropped).
//!
//! Per kind of request it prints the count, the throughput, p50/p99 and every answer that was
//! not a 2xx. The limits (`WHARF_RATE_LIMIT_*`) are set far above what the run can reach: an
//! answer other than 2xx or 429 fails the run.
//!
//! `--soak SECONDS` runs the same mix at a moderate, fixed rate on one instance (PostgreSQL
//! when available, else SQLite), samples the server's resident memory (`VmRSS`) every 10
//! seconds, prints the series and compares the first and the last minute: the run fails when
//! memory grew by more than [`SOAK_TOLERANCE`].
//!
//! Options: `--duration SECONDS` (each load run, default 30), `--soak SECONDS`, `--only
//! sqlite|postgres|two` (one of the load runs). Needs nginx for the two-instance run. The
//! identity provider is the fake of development mode and the tests (real RS256 keys). Loopback
//! only; every run is bounded in time.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use wharf::cli::{TokenCreate, UserAdd, add_user, create_token};
use wharf::config::{Config, RawSettings};
use wharf::db::Database;
use wharf::dev::fake_idp::{FakeIdp, Provider};

use crate::support::{Backend, CrateBuilder, Samples, index_path};

/// Crates whose index files are read again and again (6 versions each, about 1.2 KB).
const HOT_CRATES: usize = 4;
const HOT_VERSIONS: usize = 6;
/// Crates whose index files are read in turn, one after another: more than the index cache
/// holds, so most of these reads go to the database.
const COLD_CRATES: usize = 300;
/// The index cache of each instance (`WHARF_INDEX_CACHE_SIZE`): the hot files fit, the cold
/// ones (about 60 KB together) do not.
const INDEX_CACHE_SIZE: &str = "16KiB";
/// Crates that receive the new versions.
const PUBLISHED_CRATES: usize = 4;
/// Every `WHARF_RATE_LIMIT_*`: far above what a run reaches, but still counted.
const RATE_LIMIT: &str = "1000000/1m";
/// The memory growth, last minute over first minute, above which a soak fails.
const SOAK_TOLERANCE: f64 = 0.10;
const SOAK_SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The same on every instance, as an operator sets it.
const SESSION_KEY: &str = "4c1e9a7f0b3d5e6f8a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b";
const EXCHANGE: &str = "/api/v1/trusted_publishing/tokens";

/// How one kind of request is sent: `clients` loops, each waiting for its answer before the
/// next request; with a `rate`, requests are started on a fixed schedule (so many a second in
/// total), else each loop sends its next request at once.
#[derive(Debug, Clone, Copy)]
struct Pace {
    clients: usize,
    rate: Option<f64>,
}

/// The four kinds of request of a run.
#[derive(Debug, Clone, Copy)]
struct Mix {
    hot: Pace,
    cold: Pace,
    exchanges: Pace,
    publishes: Pace,
}

/// The load runs: index reads as fast as they are answered; exchanges and publishes at a fixed
/// rate (each exchange needs an ID token signed before the clock starts).
const LOAD: Mix = Mix {
    hot: Pace {
        clients: 8,
        rate: None,
    },
    cold: Pace {
        clients: 4,
        rate: None,
    },
    exchanges: Pace {
        clients: 4,
        rate: Some(100.0),
    },
    publishes: Pace {
        clients: 4,
        rate: Some(20.0),
    },
};

/// The soak: everything at a moderate, fixed rate (about 107 requests a second).
const SOAK: Mix = Mix {
    hot: Pace {
        clients: 2,
        rate: Some(80.0),
    },
    cold: Pace {
        clients: 2,
        rate: Some(20.0),
    },
    exchanges: Pace {
        clients: 1,
        rate: Some(5.0),
    },
    publishes: Pace {
        clients: 1,
        rate: Some(2.0),
    },
};

struct Options {
    duration: Duration,
    soak: Option<Duration>,
    only: Option<String>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut options = Options {
            duration: Duration::from_secs(30),
            soak: None,
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut seconds = |name: &str| -> anyhow::Result<Duration> {
                let value = args
                    .next()
                    .with_context(|| format!("{name} needs seconds"))?;
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=86_400).contains(s))
                    .with_context(|| format!("{name}: `{value}` is not 1 to 86400 seconds"))?;
                Ok(Duration::from_secs(secs))
            };
            match arg.as_str() {
                // cargo bench passes it to every bench.
                "--bench" => {}
                "--duration" => options.duration = seconds("--duration")?,
                "--soak" => options.soak = Some(seconds("--soak")?),
                "--only" => {
                    let value = args
                        .next()
                        .context("--only needs sqlite, postgres or two")?;
                    if !["sqlite", "postgres", "two"].contains(&value.as_str()) {
                        bail!("--only: `{value}` is not sqlite, postgres or two");
                    }
                    options.only = Some(value);
                }
                other => bail!(
                    "unknown argument `{other}` (options: --duration SECONDS, --soak SECONDS, --only sqlite|postgres|two)"
                ),
            }
        }
        Ok(options)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        support::print_machine("load");
        let backends = Backend::from_env()?;
        let postgres = backends
            .iter()
            .find(|b| matches!(b, Backend::Postgres { .. }))
            .cloned();
        let idp = Arc::new(FakeIdp::start(Provider::GitHub));
        if let Some(seconds) = options.soak {
            let backend = postgres.unwrap_or(Backend::Sqlite);
            return soak(&backend, &idp, seconds).await;
        }
        let mut runs = vec![("sqlite", Backend::Sqlite, 1)];
        match postgres {
            Some(pg) => {
                runs.push(("postgres", pg.clone(), 1));
                runs.push(("two", pg, 2));
            }
            None => println!(
                "WHARF_BENCH_DATABASE_URL is not set: SQLite only, no run of two instances"
            ),
        }
        let mut failures = Vec::new();
        for (name, backend, instances) in runs {
            if options.only.as_deref().is_some_and(|only| only != name) {
                continue;
            }
            let title = format!(
                "{} on {}",
                if instances == 1 {
                    "one instance"
                } else {
                    "two instances behind nginx"
                },
                backend.name()
            );
            println!("\n=== {title}: {} s ===", options.duration.as_secs());
            let cluster = Cluster::start(&backend, instances, &idp).await?;
            let outcome = load(&cluster, &idp, options.duration).await;
            cluster.stop()?;
            if let Err(error) = outcome {
                println!("FAILED: {error:#}");
                failures.push(title);
            }
        }
        if !failures.is_empty() {
            bail!("failed: {}", failures.join("; "));
        }
        Ok(())
    })
}

/// One load run: seeds, signs the ID tokens, runs the mix for `duration`, prints the figures.
async fn load(cluster: &Cluster, idp: &Arc<FakeIdp>, duration: Duration) -> anyhow::Result<()> {
    let seed = cluster.seed(idp).await?;
    let exchanges = LOAD.exchanges.rate.unwrap_or(0.0) * duration.as_secs_f64();
    let jwts = sign_ahead(
        idp,
        &cluster.audience,
        (exchanges * 1.05).ceil() as usize + 8,
    );
    let before: Vec<Memory> = cluster.memory()?;
    let tallies = run_mix(cluster, idp, &seed, LOAD, jwts, duration).await;
    let after = cluster.memory()?;
    print_tallies(&tallies);
    for (n, (before, after)) in before.iter().zip(&after).enumerate() {
        println!(
            "resident memory, instance {}: {:.1} MB before the run, {:.1} MB after (peak {:.1} MB)",
            n + 1,
            mb(before.rss),
            mb(after.rss),
            mb(after.peak)
        );
    }
    check(&tallies)
}

/// The soak: the mix at [`SOAK`]'s rates for `duration`, sampling resident memory.
async fn soak(backend: &Backend, idp: &Arc<FakeIdp>, duration: Duration) -> anyhow::Result<()> {
    println!(
        "\n=== soak: one instance on {}, {} s, memory sampled every {} s ===",
        backend.name(),
        duration.as_secs(),
        SOAK_SAMPLE_EVERY.as_secs()
    );
    let cluster = Cluster::start(backend, 1, idp).await?;
    let seed = cluster.seed(idp).await?;
    let pid = cluster.instances[0].child.id();
    let started = Instant::now();
    let sampler = tokio::spawn(async move {
        let mut series = Vec::new();
        let mut next = started + SOAK_SAMPLE_EVERY;
        while next <= started + duration {
            tokio::time::sleep_until(next.into()).await;
            let Ok(memory) = Memory::of(pid) else { break };
            let t = next.duration_since(started).as_secs();
            println!("  t = {t:>4} s   VmRSS {:>6.1} MB", mb(memory.rss));
            series.push((t, memory.rss));
            next += SOAK_SAMPLE_EVERY;
        }
        series
    });
    // Exchanges sign their ID token just before they are sent (outside the measured time):
    // tokens signed ahead would expire during a long soak.
    let tallies = run_mix(&cluster, idp, &seed, SOAK, Vec::new(), duration).await;
    let series = sampler.await?;
    let peak = cluster.memory()?[0].peak;
    cluster.stop()?;
    print_tallies(&tallies);

    let average = |from: u64, to: u64| {
        let values: Vec<u64> = series
            .iter()
            .filter(|(t, _)| *t > from && *t <= to)
            .map(|(_, rss)| *rss)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<u64>() as f64 / values.len() as f64)
    };
    let end = series.last().map_or(0, |(t, _)| *t);
    let (Some(first), Some(last)) = (average(0, 60), average(end.saturating_sub(60), end)) else {
        bail!("too few memory samples for a verdict: the soak needs at least a minute");
    };
    let growth = last / first - 1.0;
    println!(
        "resident memory: first minute {:.1} MB, last minute {:.1} MB on average ({:+.1} %), peak {:.1} MB",
        first / 1024.0,
        last / 1024.0,
        growth * 100.0,
        mb(peak)
    );
    check(&tallies)?;
    if growth > SOAK_TOLERANCE {
        println!(
            "verdict: GROWING (more than {:.0} % over the run): a leak to find",
            SOAK_TOLERANCE * 100.0
        );
        bail!("resident memory grew by {:.1} %", growth * 100.0);
    }
    println!(
        "verdict: flat (within {:.0} % from the first to the last minute)",
        SOAK_TOLERANCE * 100.0
    );
    Ok(())
}

/// What the runs need from the seeding: an API token for publishes.
struct Seed {
    token: String,
}

/// Runs the four kinds of request of `mix` at once for `duration` through the cluster's front.
async fn run_mix(
    cluster: &Cluster,
    idp: &Arc<FakeIdp>,
    seed: &Seed,
    mix: Mix,
    jwts: Vec<String>,
    duration: Duration,
) -> Vec<(String, Tally)> {
    let client = client();
    let start = Instant::now();
    let until = start + duration;
    let base = Arc::new(cluster.front.clone());

    let hot = {
        let (client, base) = (client.clone(), Arc::clone(&base));
        drive(mix.hot, start, until, move |i| {
            let url = format!("{base}/index/{}", index_path(&hot_name(i % HOT_CRATES)));
            let request = client.get(url);
            async move { send(request).await }
        })
    };
    let cold = {
        let (client, base) = (client.clone(), Arc::clone(&base));
        drive(mix.cold, start, until, move |i| {
            let url = format!("{base}/index/{}", index_path(&cold_name(i % COLD_CRATES)));
            let request = client.get(url);
            async move { send(request).await }
        })
    };
    let exchanges = {
        let (client, base) = (client.clone(), Arc::clone(&base));
        let jwts = Arc::new(jwts);
        let idp = Arc::clone(idp);
        let audience = Arc::new(cluster.audience.clone());
        drive(mix.exchanges, start, until, move |i| {
            let (client, base, jwts) = (client.clone(), Arc::clone(&base), Arc::clone(&jwts));
            let (idp, audience) = (Arc::clone(&idp), Arc::clone(&audience));
            async move {
                let jwt = match jwts.get(i) {
                    Some(jwt) => jwt.clone(),
                    None => {
                        let signed = tokio::task::spawn_blocking(move || {
                            idp.sign(&idp.github_claims(&audience, json!({})))
                        })
                        .await;
                        match signed {
                            Ok(jwt) => jwt,
                            Err(error) => {
                                return (Outcome::Failed(format!("signing: {error}")), None);
                            }
                        }
                    }
                };
                send(
                    client
                        .post(format!("{base}{EXCHANGE}"))
                        .json(&json!({ "jwt": jwt })),
                )
                .await
            }
        })
    };
    let publishes = {
        let (client, base) = (client.clone(), Arc::clone(&base));
        let token = Arc::new(seed.token.clone());
        drive(mix.publishes, start, until, move |i| {
            let body = CrateBuilder::new(
                &format!("load-pub-{}", i % PUBLISHED_CRATES),
                &format!("1.0.{}", i / PUBLISHED_CRATES),
            )
            .publish_body();
            let request = client
                .put(format!("{base}/api/v1/crates/new"))
                .header("Authorization", token.as_str())
                .body(body);
            async move { send(request).await }
        })
    };
    let (hot, cold, exchanges, publishes) = tokio::join!(hot, cold, exchanges, publishes);
    vec![
        (format!("index, hot ({HOT_CRATES} files)"), hot),
        (format!("index, cold ({COLD_CRATES} files)"), cold),
        ("token exchange".to_owned(), exchanges),
        ("publish".to_owned(), publishes),
    ]
}

fn hot_name(n: usize) -> String {
    format!("load-hot-{n}")
}

fn cold_name(n: usize) -> String {
    format!("load-cold-{n}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        // Below the server's keep-alive of 5 s: a connection idle for that long may be closed
        // by the server just as the client sends on it, which then fails without an answer
        // (the HTTP/1.1 keep-alive race, which the soak's slow loops met a few times in 10
        // minutes). Clients such as cargo retry then; this one drops them first.
        .pool_idle_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// How one request ended.
enum Outcome {
    Ok,
    /// An answer other than 2xx: the status and the start of the body.
    Status(u16, String),
    /// No answer (connection refused or reset, timeout).
    Failed(String),
}

/// Sends `request` and reads the whole answer; the time is measured from send to last byte.
async fn send(request: reqwest::RequestBuilder) -> (Outcome, Option<Duration>) {
    let sent = Instant::now();
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return (Outcome::Failed(chain(&error)), None),
    };
    let status = response.status();
    match response.bytes().await {
        Ok(_) if status.is_success() => (Outcome::Ok, Some(sent.elapsed())),
        Ok(body) => {
            let text = String::from_utf8_lossy(&body);
            (
                Outcome::Status(status.as_u16(), text.chars().take(200).collect()),
                None,
            )
        }
        Err(error) => (
            Outcome::Failed(format!("{status}, then {}", chain(&error))),
            None,
        ),
    }
}

/// An error with its causes (reqwest's own message names only the URL).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What the loops of one kind of request saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    /// Answers other than 2xx by status (0: no answer), with the first one's body.
    errors: BTreeMap<u16, (usize, String)>,
    elapsed: Duration,
}

impl Tally {
    fn requests(&self) -> usize {
        self.latencies.len() + self.errors.values().map(|(n, _)| n).sum::<usize>()
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (status, (n, first)) in other.errors {
            let entry = self.errors.entry(status).or_insert((0, first));
            entry.0 += n;
        }
    }

    fn record(&mut self, outcome: Outcome, latency: Option<Duration>) {
        match (outcome, latency) {
            (Outcome::Ok, Some(latency)) => self.latencies.push(latency),
            (Outcome::Ok, None) => {}
            (Outcome::Status(status, body), _) => {
                self.errors.entry(status).or_insert((0, body)).0 += 1;
            }
            (Outcome::Failed(error), _) => self.errors.entry(0).or_insert((0, error)).0 += 1,
        }
    }
}

/// Runs `pace.clients` loops of `request(i)` (i counts this kind's requests from 0) from
/// `start` until `until`.
async fn drive<F, Fut>(pace: Pace, start: Instant, until: Instant, request: F) -> Tally
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (Outcome, Option<Duration>)> + Send,
{
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..pace.clients {
        let request = request.clone();
        let counter = Arc::clone(&counter);
        tasks.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if let Some(rate) = pace.rate {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    if due >= until {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                } else if Instant::now() >= until {
                    break;
                }
                let (outcome, latency) = request(i).await;
                tally.record(outcome, latency);
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(tally) => total.merge(tally),
            Err(error) => {
                total.record(Outcome::Failed(format!("a client task: {error}")), None);
            }
        }
    }
    total.elapsed = start.elapsed();
    total
}

fn print_tallies(tallies: &[(String, Tally)]) {
    println!(
        "  {:<26} {:>9} {:>9} {:>10} {:>10}  not 2xx",
        "kind", "requests", "per s", "p50 ms", "p99 ms"
    );
    for (kind, tally) in tallies {
        let samples = Samples::new(tally.latencies.clone());
        let errors: Vec<String> = tally
            .errors
            .iter()
            .map(|(status, (n, _))| match status {
                0 => format!("{n} without answer"),
                status => format!("{n} × {status}"),
            })
            .collect();
        println!(
            "  {kind:<26} {:>9} {:>9.1} {:>10.2} {:>10.2}  {}",
            tally.requests(),
            tally.requests() as f64 / tally.elapsed.as_secs_f64(),
            samples.percentile(50.0).as_secs_f64() * 1000.0,
            samples.percentile(99.0).as_secs_f64() * 1000.0,
            if errors.is_empty() {
                "0".to_owned()
            } else {
                errors.join(", ")
            }
        );
        for (status, (_, first)) in &tally.errors {
            println!("      first {status}: {first}");
        }
    }
}

/// Fails on any answer other than 2xx or 429 (the limits are set high, but a 429 is what a
/// limit is for, not a fault).
fn check(tallies: &[(String, Tally)]) -> anyhow::Result<()> {
    let unexpected: Vec<String> = tallies
        .iter()
        .flat_map(|(kind, tally)| {
            tally
                .errors
                .iter()
                .filter(|(status, _)| **status != 429)
                .map(move |(status, (n, _))| format!("{kind}: {n} × {status}"))
        })
        .collect();
    if !unexpected.is_empty() {
        bail!("answers other than 2xx and 429: {}", unexpected.join(", "));
    }
    if let Some((kind, _)) = tallies.iter().find(|(_, t)| t.latencies.is_empty()) {
        bail!("no {kind} request succeeded");
    }
    Ok(())
}

/// `count` ID tokens for `audience`, signed on every CPU before the clock starts.
fn sign_ahead(idp: &Arc<FakeIdp>, audience: &str, count: usize) -> Vec<String> {
    let signing = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = count.div_ceil(threads);
    let jwts: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    (0..per_thread)
                        .map(|_| idp.sign(&idp.github_claims(audience, json!({}))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    });
    println!(
        "signed {} ID tokens (RS256, 2048-bit) in {:.1} s before the clock starts",
        jwts.len(),
        signing.elapsed().as_secs_f64()
    );
    jwts
}

/// Resident memory of a process, in KiB.
struct Memory {
    rss: u64,
    peak: u64,
}

impl Memory {
    fn of(pid: u32) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            peak: field("VmHWM:")?,
        })
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One `wharf serve` process.
struct Instance {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// One or two instances on one database and one crate folder; with two, nginx in front.
struct Cluster {
    instances: Vec<Instance>,
    nginx: Option<Nginx>,
    /// Where the load goes: the instance, or nginx.
    front: String,
    /// The `aud` of ID tokens for this registry: the host of its public URL.
    audience: String,
    settings: RawSettings,
    postgres: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(backend: &Backend, instances: usize, idp: &FakeIdp) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let ports: Vec<u16> = (0..instances)
            .map(|_| free_port())
            .collect::<anyhow::Result<_>>()?;
        let front_port = if instances == 1 {
            ports[0]
        } else {
            free_port()?
        };
        let front = format!("http://127.0.0.1:{front_port}");
        let storage = dir.path().join("crates");
        let mut shared = vec![
            ("public_url", front.clone()),
            ("storage_dir", storage.to_string_lossy().into_owned()),
            ("session_key", SESSION_KEY.to_owned()),
            ("trustpub_github_issuer", idp.issuer().to_owned()),
            ("github_api_url", idp.api_url()),
            ("index_cache_size", INDEX_CACHE_SIZE.to_owned()),
            ("log", "warn".to_owned()),
        ];
        for limit in [
            "rate_limit_publishes_per_crate",
            "rate_limit_publishes_per_publisher",
            "rate_limit_exchanges_per_address",
            "rate_limit_exchanges_per_publisher",
        ] {
            shared.push((limit, RATE_LIMIT.to_owned()));
        }
        let postgres = match backend {
            Backend::Sqlite => {
                // One SQLite file for all instances (only one in the runs here).
                let file = dir.path().join("wharf.db");
                shared.push(("database_url", format!("sqlite://{}", file.display())));
                None
            }
            Backend::Postgres { admin_url } => {
                let (url, name) = support::fresh_postgres_database(admin_url)?;
                shared.push(("database_url", url));
                Some((admin_url.clone(), name))
            }
        };
        let mut settings = RawSettings::default();
        settings.set("data_dir", dir.path().join("admin").to_string_lossy());
        for (key, value) in &shared {
            settings.set(key, value.clone());
        }
        let mut started = Vec::new();
        for (n, port) in ports.iter().enumerate() {
            let data_dir = dir.path().join(format!("instance-{n}"));
            std::fs::create_dir_all(&data_dir)?;
            let log = dir.path().join(format!("instance-{n}.log"));
            let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
            command
                .arg("serve")
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("WHARF_BIND", format!("127.0.0.1:{port}"))
                .env("WHARF_DATA_DIR", &data_dir)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log)?)
                .stderr(std::fs::File::options().append(true).open(&log)?);
            for (key, value) in &shared {
                command.env(format!("WHARF_{}", key.to_ascii_uppercase()), value);
            }
            let child = command.spawn().context("starting the wharf binary")?;
            let instance = Instance {
                child,
                port: *port,
                log,
            };
            let up = wait_until_up(&format!("http://127.0.0.1:{port}/health")).await;
            started.push(instance);
            if let Err(error) = up {
                let log = std::fs::read_to_string(&started[n].log).unwrap_or_default();
                for instance in &mut started {
                    drop(instance.child.kill());
                    drop(instance.child.wait());
                }
                bail!("{error:#}\n{log}");
            }
        }
        let nginx = if instances > 1 {
            Some(Nginx::start(dir.path(), front_port, &ports)?)
        } else {
            None
        };
        Ok(Cluster {
            instances: started,
            nginx,
            front,
            audience: format!("127.0.0.1:{front_port}"),
            settings,
            postgres,
            _dir: dir,
        })
    }

    /// A user with an API token, the hot and cold crates, and a crate with a GitHub Actions
    /// publisher for the exchanges (whose first exchange, on every instance, fetches the keys).
    async fn seed(&self, idp: &FakeIdp) -> anyhow::Result<Seed> {
        let started = Instant::now();
        let config = Config::from_settings(&self.settings)?;
        let db = Database::connect(&config.database)?;
        add_user(
            &db,
            &UserAdd {
                login: "load".to_owned(),
                github_id: None,
                email: None,
                admin: false,
            },
        )?;
        let args = TokenCreate {
            user: "load".to_owned(),
            name: "load".to_owned(),
            scopes: Vec::new(),
            crates: Vec::new(),
            expires_in: None,
        };
        let token = create_token(&db, &args)?.1;
        let client = client();
        let mut bodies = vec![CrateBuilder::new("widget", "1.0.0").publish_body()];
        for n in 0..HOT_CRATES {
            for v in 0..HOT_VERSIONS {
                bodies.push(CrateBuilder::new(&hot_name(n), &format!("1.0.{v}")).publish_body());
            }
        }
        for n in 0..COLD_CRATES {
            bodies.push(CrateBuilder::new(&cold_name(n), "1.0.0").publish_body());
        }
        let count = bodies.len();
        let bodies = Arc::new(std::sync::Mutex::new(bodies.into_iter()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (client, bodies, token) = (client.clone(), Arc::clone(&bodies), token.clone());
            let url = format!("{}/api/v1/crates/new", self.front);
            tasks.spawn(async move {
                loop {
                    let next = match bodies.lock() {
                        Ok(mut bodies) => bodies.next(),
                        Err(_) => bail!("a seeding task panicked"),
                    };
                    let Some(body) = next else { return Ok(()) };
                    let response = client
                        .put(&url)
                        .header("Authorization", &token)
                        .body(body)
                        .send()
                        .await?;
                    let status = response.status();
                    if status != 200 {
                        bail!(
                            "a seeding publish answered {status}: {}",
                            response.text().await?
                        );
                    }
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        let response = client
            .post(format!(
                "{}/api/v1/trusted_publishing/github_configs",
                self.front
            ))
            .header("Authorization", &token)
            .json(&support::widget_github_config())
            .send()
            .await?;
        if response.status() != 200 {
            bail!(
                "adding the GitHub config answered {}",
                response.status().as_u16()
            );
        }
        for instance in &self.instances {
            let jwt = idp.sign(&idp.github_claims(&self.audience, json!({})));
            let url = format!("http://127.0.0.1:{}{EXCHANGE}", instance.port);
            match send(client.post(url).json(&json!({ "jwt": jwt }))).await.0 {
                Outcome::Ok => {}
                Outcome::Status(status, body) => {
                    bail!("the warm-up exchange answered {status}: {body}")
                }
                Outcome::Failed(error) => bail!("the warm-up exchange failed: {error}"),
            }
        }
        println!(
            "seeded {count} publishes ({HOT_CRATES} hot crates of {HOT_VERSIONS} versions, \
             {COLD_CRATES} cold crates, one with a GitHub Actions publisher) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Seed { token })
    }

    fn memory(&self) -> anyhow::Result<Vec<Memory>> {
        self.instances
            .iter()
            .map(|i| Memory::of(i.child.id()))
            .collect()
    }

    /// Stops nginx and the instances, drops the PostgreSQL database; a log line of an instance
    /// at `WARN` or above is printed.
    fn stop(mut self) -> anyhow::Result<()> {
        drop(self.nginx.take());
        for (n, instance) in self.instances.iter_mut().enumerate() {
            instance.child.kill()?;
            instance.child.wait()?;
            let log = std::fs::read_to_string(&instance.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            if !lines.is_empty() {
                println!(
                    "instance {} logged {} lines, the first:",
                    n + 1,
                    lines.len()
                );
                for line in lines.iter().take(5) {
                    println!("    {line}");
                }
            }
        }
        if let Some((admin_url, name)) = &self.postgres {
            support::drop_postgres_database(admin_url, name)?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for instance in &mut self.instances {
            drop(instance.child.kill());
            drop(instance.child.wait());
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_until_up(url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{url} did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// nginx on 127.0.0.1 as a round-robin load balancer, with keep-alive connections to the
/// instances (closed after 4 s idle, before Wharf's 5 s would close them), in the foreground.
struct Nginx {
    child: Child,
}

impl Nginx {
    fn start(dir: &Path, port: u16, upstreams: &[u16]) -> anyhow::Result<Nginx> {
        let root = dir.join("nginx");
        std::fs::create_dir_all(root.join("tmp"))?;
        let user = if nix_uid_is_root(dir)? {
            "user root;\n"
        } else {
            ""
        };
        let servers: String = upstreams
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p};\n"))
            .collect();
        let r = root.display();
        let config = format!(
            "{user}daemon off;\nworker_processes auto;\npid {r}/nginx.pid;\nerror_log {r}/error.log;\n\
             events {{ worker_connections 2048; }}\n\
             http {{\n  access_log off;\n  client_max_body_size 12m;\n\
               client_body_temp_path {r}/tmp;\n  proxy_temp_path {r}/tmp;\n  fastcgi_temp_path {r}/tmp;\n  uwsgi_temp_path {r}/tmp;\n  scgi_temp_path {r}/tmp;\n\
               upstream wharf {{\n{servers}    keepalive 64;\n    keepalive_timeout 4s;\n  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://wharf;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}\n}}\n"
        );
        let config_path = root.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let child = Command::new(nginx_binary()?)
            .arg("-p")
            .arg(&root)
            .arg("-e")
            .arg(root.join("error.log"))
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let nginx = Nginx { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(root.join("error.log")).unwrap_or_default();
                bail!("nginx did not listen on port {port} within 10 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would leave them running).
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if !stopped.is_ok_and(|s| s.success()) {
            drop(self.child.kill());
        }
        drop(self.child.wait());
    }
}

/// Whether `dir` belongs to root: nginx's workers would then switch to `nobody`, who cannot
/// write there.
fn nix_uid_is_root(dir: &Path) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    Ok(std::fs::metadata(dir)?.uid() == 0)
}

/// `nginx` from PATH or its usual places.
fn nginx_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .context("nginx is not installed (`apt-get install nginx`)")
}
