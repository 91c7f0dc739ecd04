//! Wharf against a static file server, printed as figures (`cargo bench --bench http`): the
//! `wharf` binary runs as its own process, nginx serves the very same bytes at the very same
//! paths from a temporary folder, and `wrk -t2 -c50` loads each in turn:
//!
//! - the hot index file (GET, and the revalidation with `If-None-Match`);
//! - a `.crate` download;
//! - the hot index file of a private registry (`WHARF_AUTH_REQUIRED=true`, cargo's token in
//!   `Authorization`) against the same file from an open one, authentication on vs off;
//!
//! plus the server's resident memory: idle after start, and its peak after the whole run
//! (which includes a burst of concurrent publishes of a 1 MiB crate).
//!
//! Needs `wrk` and `nginx` on the PATH (scripts/bench.sh installs them); without them it says
//! so and measures nothing. SQLite, and PostgreSQL too when `WHARF_BENCH_DATABASE_URL` is set.
//! Loopback only; every load lasts a fixed time.

mod support;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wharf::cli::{TokenCreate, UserAdd, add_user, create_token};
use wharf::config::{Config, RawSettings};
use wharf::db::Database;

use crate::support::{Backend, CrateBuilder, index_path};

/// wrk's threads and connections, as in the figures Wharf is compared by.
const WRK_THREADS: usize = 2;
const WRK_CONNECTIONS: usize = 50;
const WRK_DURATION: &str = "5s";
/// Versions of the hot crate (about 1.2 KB of index file).
const HOT_VERSIONS: usize = 6;
/// Concurrent publishes of a larger crate, for the peak memory.
const BURST_PUBLISHES: usize = 8;
const BURST_CRATE_BYTES: usize = 1024 * 1024;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        support::print_machine("http");
        for tool in ["wrk", "nginx"] {
            if which(tool).is_none() {
                println!(
                    "`{tool}` is not installed: nothing measured (scripts/bench.sh installs it)"
                );
                return Ok(());
            }
        }
        for backend in Backend::from_env()? {
            println!("\n=== {} ===", backend.name());
            run(&backend).await?;
        }
        Ok(())
    })
}

async fn run(backend: &Backend) -> anyhow::Result<()> {
    let server = WharfProcess::start(backend).await?;
    let idle = server.memory()?;
    let token = server.token("bench")?;
    let client = reqwest::Client::new();

    for i in 0..HOT_VERSIONS {
        server
            .publish(
                &client,
                &token,
                CrateBuilder::new("hot-crate", &format!("1.0.{i}")).publish_body(),
            )
            .await?;
    }
    let index = format!("/index/{}", index_path("hot-crate"));
    let download = "/api/v1/crates/hot-crate/1.0.0/download".to_owned();
    let first = client.get(server.url(&index)).send().await?;
    let etag = header(&first, "etag")?;
    let index_bytes = first.bytes().await?;
    let crate_bytes = client
        .get(server.url(&download))
        .send()
        .await?
        .bytes()
        .await?;

    let nginx = Nginx::start(&[(&index, &index_bytes), (&download, &crate_bytes)])?;
    let nginx_etag = header(&client.get(nginx.url(&index)).send().await?, "etag")?;

    println!(
        "wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_DURATION}, requests per second (Wharf / nginx):"
    );
    let mut rows = Vec::new();
    let label = format!(
        "hot index file ({} bytes, {HOT_VERSIONS} versions)",
        index_bytes.len()
    );
    rows.push((
        label,
        wrk(&server.url(&index), None)?,
        wrk(&nginx.url(&index), None)?,
    ));
    rows.push((
        "index revalidation (304)".to_owned(),
        wrk(&server.url(&index), Some(&etag))?,
        wrk(&nginx.url(&index), Some(&nginx_etag))?,
    ));
    rows.push((
        format!("crate download ({} bytes)", crate_bytes.len()),
        wrk(&server.url(&download), None)?,
        wrk(&nginx.url(&download), None)?,
    ));
    for (label, wharf, nginx) in &rows {
        println!(
            "  {label:<42} {wharf:>9.0} / {nginx:>9.0} = {:.2}",
            wharf / nginx
        );
    }

    // Peak memory: a burst of publishes of a larger crate on top of the loads above.
    let mut tasks = Vec::new();
    for i in 0..BURST_PUBLISHES {
        let body = CrateBuilder::new("big-crate", &format!("1.0.{i}"))
            .file("src/blob.bin", &incompressible(BURST_CRATE_BYTES, i as u64))
            .publish_body();
        let client = client.clone();
        let url = server.url("/api/v1/crates/new");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .header("Authorization", token)
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for task in tasks {
        let status = task.await??;
        if status != 200 {
            bail!("a publish of the burst answered {status}");
        }
    }
    let after = server.memory()?;
    auth_on_vs_off(backend, &index, &server.url(&index)).await?;
    println!(
        "resident memory: idle {:.1} MB after start, {:.1} MB now, peak {:.1} MB (after the loads and {BURST_PUBLISHES} concurrent publishes of a {} KiB crate)",
        mb(idle.0),
        mb(after.0),
        mb(after.1),
        BURST_CRATE_BYTES / 1024
    );
    drop(nginx);
    server.stop()?;
    Ok(())
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Bytes that do not compress, so the crate file really is that large.
fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn header(response: &reqwest::Response, name: &str) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get(name)
        .with_context(|| format!("no {name} header from {}", response.url()))?
        .to_str()?
        .to_owned())
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{url} did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rounds of the authentication on/off comparison; the median of each is printed, so that a
/// neighbour's burst of CPU use on a shared machine does not decide the ratio.
const AUTH_ROUNDS: usize = 3;

/// The hot index file with authentication on (a private registry; every request carries an
/// API token, as cargo sends it) against the same file from the open registry at `open_url`,
/// measured in alternation.
async fn auth_on_vs_off(backend: &Backend, index: &str, open_url: &str) -> anyhow::Result<()> {
    let private = WharfProcess::start_with(backend, &[("auth_required", "true")]).await?;
    let token = private.token("bench")?;
    let client = reqwest::Client::new();
    for i in 0..HOT_VERSIONS {
        private
            .publish(
                &client,
                &token,
                CrateBuilder::new("hot-crate", &format!("1.0.{i}")).publish_body(),
            )
            .await?;
    }
    let anonymous = client.get(private.url(index)).send().await?.status();
    if anonymous != 401 {
        bail!("the private registry answered {anonymous} to an anonymous index request");
    }
    let authorization = [format!("Authorization: {token}")];
    let mut on = Vec::new();
    let mut off = Vec::new();
    for _ in 0..AUTH_ROUNDS {
        off.push(wrk(open_url, None)?);
        on.push(wrk_with(&private.url(index), &authorization)?);
    }
    let (private_rps, open_rps) = (median(on), median(off));
    println!(
        "  {:<42} {private_rps:>9.0} / {open_rps:>9.0} = {:.2} (authentication on / off, median of {AUTH_ROUNDS}; target at least 0.90)",
        "hot index file, private registry",
        private_rps / open_rps
    );
    private.stop()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Requests per second that `wrk` reports for `url`.
fn wrk(url: &str, if_none_match: Option<&str>) -> anyhow::Result<f64> {
    let headers: Vec<String> = if_none_match
        .map(|etag| format!("If-None-Match: {etag}"))
        .into_iter()
        .collect();
    wrk_with(url, &headers)
}

/// Requests per second that `wrk` reports for `url`, sending `headers` (`Name: value`).
fn wrk_with(url: &str, headers: &[String]) -> anyhow::Result<f64> {
    let mut command = Command::new(which("wrk").context("wrk")?);
    command.args([
        format!("-t{WRK_THREADS}"),
        format!("-c{WRK_CONNECTIONS}"),
        format!("-d{WRK_DURATION}"),
    ]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.arg(url).output().context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx or 3xx responses") {
        bail!("wrk got error answers from {url}:\n{text}");
    }
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))
}

/// The `wharf` binary of this build, serving a fresh database on a free loopback port.
struct WharfProcess {
    child: Child,
    base_url: String,
    settings: RawSettings,
    postgres: Option<(String, String)>,
    _data_dir: tempfile::TempDir,
}

impl WharfProcess {
    async fn start(backend: &Backend) -> anyhow::Result<Self> {
        Self::start_with(backend, &[]).await
    }

    /// [`WharfProcess::start`] with more settings (`key`, value).
    async fn start_with(backend: &Backend, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut pairs = vec![
            ("bind", format!("127.0.0.1:{port}")),
            ("data_dir", data_dir.path().to_string_lossy().into_owned()),
            ("log", "warn".to_owned()),
        ];
        pairs.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres { admin_url } => {
                let (url, name) = support::fresh_postgres_database(admin_url)?;
                pairs.push(("database_url", url));
                Some((admin_url.clone(), name))
            }
        };
        let mut settings = RawSettings::default();
        let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdout(Stdio::null());
        for (key, value) in &pairs {
            command.env(format!("WHARF_{}", key.to_ascii_uppercase()), value);
            settings.set(key, value.clone());
        }
        let child = command.spawn().context("starting the wharf binary")?;
        let base_url = format!("http://127.0.0.1:{port}");
        let server = Self {
            child,
            base_url,
            settings,
            postgres,
            _data_dir: data_dir,
        };
        wait_until_up(&server.url("/health")).await?;
        // Settle: what a freshly started, idle server holds.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(server)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// An API token, made as `wharf admin` would (on the same database).
    fn token(&self, login: &str) -> anyhow::Result<String> {
        let config = Config::from_settings(&self.settings)?;
        let db = Database::connect(&config.database)?;
        add_user(
            &db,
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
        Ok(create_token(&db, &args)?.1)
    }

    async fn publish(
        &self,
        client: &reqwest::Client,
        token: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<()> {
        let response = client
            .put(self.url("/api/v1/crates/new"))
            .header("Authorization", token)
            .body(body)
            .send()
            .await?;
        if response.status() != 200 {
            bail!(
                "publish answered {}: {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(())
    }

    /// (resident, peak resident) in KiB, from /proc.
    fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in /proc/…/status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        if let Some((admin_url, name)) = &self.postgres {
            support::drop_postgres_database(admin_url, name)?;
        }
        Ok(())
    }
}

/// nginx on a free loopback port serving `files` (URL path → bytes) from a temporary folder.
struct Nginx {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl Nginx {
    fn start(files: &[(&str, &[u8])]) -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        // nginx's workers run as an unprivileged user when it is started as root.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))?;
        let www = root.path().join("www");
        for (path, bytes) in files {
            let file = www.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(file.parent().context("a parent folder")?)?;
            std::fs::write(&file, bytes)?;
        }
        std::fs::create_dir_all(root.path().join("tmp"))?;
        let port = free_port()?;
        let config = root.path().join("nginx.conf");
        std::fs::write(&config, nginx_config(root.path(), &www, port))?;
        let child = Command::new(which("nginx").context("nginx")?)
            .args(["-e", &root.path().join("error.log").to_string_lossy()])
            .args(["-p", &root.path().to_string_lossy(), "-c"])
            .arg(&config)
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let nginx = Self {
            child,
            port,
            _root: root,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("nginx did not listen within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
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

/// A plain static-file configuration, one worker per CPU (as Wharf has), in the foreground.
fn nginx_config(root: &Path, www: &Path, port: u16) -> String {
    let root = root.display();
    let www = www.display();
    format!(
        "daemon off;\nworker_processes auto;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 1000000;\n  default_type application/octet-stream;\n\
           client_body_temp_path {root}/tmp;\n  proxy_temp_path {root}/tmp;\n  fastcgi_temp_path {root}/tmp;\n  uwsgi_temp_path {root}/tmp;\n  scgi_temp_path {root}/tmp;\n\
           server {{\n    listen 127.0.0.1:{port};\n    root {www};\n  }}\n}}\n"
    )
}
