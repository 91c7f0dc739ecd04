//! What both benchmarks share: a real server on 127.0.0.1:0 with a fresh database (SQLite in a
//! temporary folder, or a new PostgreSQL database), a user with an API token, and latency
//! statistics.

#![allow(
    dead_code,
    reason = "each benchmark uses a different part of the support module"
)]

#[allow(
    dead_code,
    reason = "the benchmarks use only part of the crate builder"
)]
#[path = "../../tests/api/support/crates.rs"]
pub mod crates;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::web;
use anyhow::{Context, bail};
use diesel::{Connection, RunQueryDsl};
use wharf::app::App;
use wharf::cli::{TokenCreate, UserAdd, add_user, create_token};
use wharf::config::{Config, RawSettings};
use wharf::startup::Application;

pub use self::crates::CrateBuilder;

/// The rate-limit settings, and the ceiling the benchmarks give each of them.
pub const RATE_LIMITS: [&str; 4] = [
    "rate_limit_publishes_per_crate",
    "rate_limit_publishes_per_publisher",
    "rate_limit_exchanges_per_address",
    "rate_limit_exchanges_per_publisher",
];
pub const UNREACHED_RATE: &str = "100000000/1m";

/// Where the server keeps its data.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// A fresh database is created through this administrative `postgres://` URL.
    Postgres {
        admin_url: String,
    },
}

impl Backend {
    /// SQLite, and PostgreSQL too when `WHARF_BENCH_DATABASE_URL` is a `postgres://` URL.
    pub fn from_env() -> anyhow::Result<Vec<Backend>> {
        let mut backends = vec![Backend::Sqlite];
        match std::env::var("WHARF_BENCH_DATABASE_URL") {
            Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                backends.push(Backend::Postgres { admin_url: url });
            }
            Ok(url) if !url.is_empty() => {
                bail!("WHARF_BENCH_DATABASE_URL must be a postgres:// URL, not {url}")
            }
            _ => {}
        }
        Ok(backends)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// A running server; stopped (and its PostgreSQL database dropped) by [`Server::stop`].
pub struct Server {
    pub base_url: String,
    pub app: web::Data<App>,
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    postgres: Option<(String, String)>,
    _data_dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server as `wharf serve` would, with `settings` on top of the defaults.
    pub async fn start(backend: &Backend, mut settings: RawSettings) -> anyhow::Result<Server> {
        let data_dir = tempfile::tempdir().context("creating a temporary folder")?;
        settings.set("bind", "127.0.0.1:0");
        settings.set("data_dir", data_dir.path().to_string_lossy());
        // The rate limiter counts every publish and exchange as in production, but with ceilings
        // a benchmark cannot reach (the defaults would refuse its 31st publish of one crate).
        for key in RATE_LIMITS {
            if !settings.contains(key) {
                settings.set(key, UNREACHED_RATE);
            }
        }
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres { admin_url } => {
                let (url, name) = fresh_postgres_database(admin_url)?;
                settings.set("database_url", url);
                Some((admin_url.clone(), name))
            }
        };
        let config = Config::from_settings(&settings)?;
        let application = Application::build(config)?;
        let port = application.port();
        let app = application.app();
        let handle = application.server_handle();
        tokio::spawn(application.run_until_stopped());
        Ok(Server {
            base_url: format!("http://127.0.0.1:{port}"),
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(256)
                .build()?,
            handle,
            postgres,
            _data_dir: data_dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// An unrestricted API token of a new user `login`, made as `wharf admin` would.
    pub fn token(&self, login: &str) -> anyhow::Result<String> {
        add_user(
            &self.app.db,
            &UserAdd {
                login: login.to_owned(),
                github_id: None,
                email: None,
                admin: false,
            },
        )?;
        let args = TokenCreate {
            user: login.to_owned(),
            name: "bench".to_owned(),
            scopes: Vec::new(),
            crates: Vec::new(),
            expires_in: None,
        };
        Ok(create_token(&self.app.db, &args)?.1)
    }

    /// `PUT /api/v1/crates/new` with a prepared body; fails unless the server answers 200.
    pub async fn publish_body(&self, token: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let response = self
            .client
            .put(self.url("/api/v1/crates/new"))
            .header("Authorization", token)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        if status != 200 {
            let text = response.text().await.unwrap_or_default();
            bail!("publish answered {status}: {text}");
        }
        Ok(())
    }

    /// Stops the server and drops its PostgreSQL database, if any.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        if let Some((admin_url, name)) = &self.postgres {
            drop_postgres_database(admin_url, name)?;
        }
        Ok(())
    }
}

pub fn drop_postgres_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = diesel::PgConnection::establish(admin_url)?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn)?;
    Ok(())
}

pub fn fresh_postgres_database(admin_url: &str) -> anyhow::Result<(String, String)> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!("wharf_bench_{}_{nanos}", std::process::id());
    let mut conn = diesel::PgConnection::establish(admin_url)
        .context("cannot connect to WHARF_BENCH_DATABASE_URL")?;
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
    let mut url = url::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    Ok((url.to_string(), name))
}

/// cargo's index path for a crate name.
/// The body that adds the fake identity provider's GitHub workflow as the trusted publisher of
/// crate `widget` (`POST /api/v1/trusted_publishing/github_configs`).
pub fn widget_github_config() -> serde_json::Value {
    use wharf::dev::fake_idp;
    serde_json::json!({ "github_config": {
        "crate": "widget",
        "repository_owner": fake_idp::GITHUB_OWNER,
        "repository_name": fake_idp::GITHUB_REPO,
        "workflow_filename": fake_idp::GITHUB_WORKFLOW,
        "environment": null,
    }})
}

pub fn index_path(name: &str) -> String {
    let name = name.to_lowercase();
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

/// Latencies of one measurement.
#[derive(Debug, Default)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    pub fn new(mut samples: Vec<Duration>) -> Samples {
        samples.sort_unstable();
        Samples { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The `p`-th percentile (nearest rank), zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub fn mean(&self) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        self.sorted.iter().sum::<Duration>() / self.sorted.len() as u32
    }

    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }

    /// `p50 … p99 … mean … max` in milliseconds.
    pub fn summary(&self) -> String {
        format!(
            "p50 {}  p99 {}  mean {}  max {}",
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            ms(self.mean()),
            ms(self.max())
        )
    }
}

/// A duration in milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The outcome of a closed-loop load test.
pub struct Load {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    pub latencies: Samples,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn report(&self, label: &str, clients: usize) {
        println!(
            "{label}: {clients} client{}, {} ok, {} failed in {:.2} s = {:.0}/s",
            if clients == 1 { "" } else { "s" },
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.per_second()
        );
        println!("    latency {}", self.latencies.summary());
    }
}

/// Runs `clients` concurrent loops of `request(i)` (each awaiting its answer before the next,
/// `true` for success) until `duration` has passed or `max_requests` were started in total.
/// The argument `i` counts requests across all clients from 0.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    duration: Duration,
    max_requests: usize,
    request: F,
) -> Load
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let request = request.clone();
        let counter = std::sync::Arc::clone(&counter);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= max_requests {
                    break;
                }
                let sent = Instant::now();
                if request(i).await {
                    latencies.push(sent.elapsed());
                } else {
                    failed += 1;
                }
            }
            (latencies, failed)
        });
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok((mut l, f)) => {
                latencies.append(&mut l);
                failed += f;
            }
            Err(_) => failed += 1,
        }
    }
    let elapsed = started.elapsed();
    Load {
        ok: latencies.len(),
        failed,
        elapsed,
        latencies: Samples::new(latencies),
    }
}

/// The machine, for the report's header.
pub fn print_machine(bench: &str) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "wharf {bench} benchmark: {cpus} CPUs, {} {}; client and server share the machine \
         (loopback)",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
}
