//! Two `wharf serve` processes on one database and one crate storage, behind nginx as a
//! round-robin load balancer, with `WHARF_PUBLIC_URL` pointing at nginx: what one instance
//! does, the other sees at once; an ID token is single-use across both; a version published
//! through both at once has one winner; mail written through both is delivered once; and
//! killing one instance mid-burst loses nothing.
//!
//! The database is the suite's: one SQLite file that both processes open (WAL, with a busy
//! timeout), or a PostgreSQL database when `WHARF_TEST_DATABASE_URL` names a server. The crate
//! storage is a bucket on `WHARF_TEST_S3_ENDPOINT` when that is set, else one folder.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wharf::cli::{UserAdd, add_user};

use crate::admin_check::admin_check;
use crate::e2e_cargo::{Cargo, write_package};
use crate::support::fake_idp::{FakeIdp, Provider};
use crate::support::nginx::{Nginx, free_port};
use crate::support::process::Spawned;
use crate::support::smtp::SmtpSink;
use crate::support::{CrateBuilder, TestApp, detail, index_path, s3};

/// The same session key on every instance, as an operator sets it.
const SESSION_KEY: &str = "8f3a0c55e1b24d6b9a7c0e4f1d2b3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c";

struct Instance {
    port: u16,
    process: Option<Spawned>,
    _data_dir: tempfile::TempDir,
}

impl Instance {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGKILL, as an out-of-memory killer or a pulled plug would.
    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(process) = self.process.take() {
            process.stop()?;
        }
        Ok(())
    }
}

struct Cluster {
    nginx: Nginx,
    instances: [Instance; 2],
    /// The test's own in-process server on the same database and storage: it created the
    /// database and the storage, and makes users and tokens as an operator would.
    seed: TestApp,
    idp: FakeIdp,
    client: reqwest::Client,
}

impl Cluster {
    async fn start() -> anyhow::Result<Cluster> {
        Cluster::start_with(None).await
    }

    /// With `mail`, every instance (the seed too: all share the outbox) sends through it.
    async fn start_with(mail: Option<&SmtpSink>) -> anyhow::Result<Cluster> {
        let idp = FakeIdp::start(Provider::GitHub);
        let mut builder = TestApp::builder().github_idp(&idp);
        if std::env::var(s3::ENDPOINT_VARIABLE).is_ok_and(|e| !e.trim().is_empty()) {
            builder = builder.s3();
        }
        if let Some(sink) = mail {
            builder = builder.smtp(sink);
        }
        let seed = builder.spawn().await;
        let nginx_port = free_port()?;
        let public_url = format!("http://127.0.0.1:{nginx_port}");
        let smtp_url = mail.map(SmtpSink::url);
        let instances = [
            start_instance(&seed, &idp, &public_url, smtp_url.as_deref()).await?,
            start_instance(&seed, &idp, &public_url, smtp_url.as_deref()).await?,
        ];
        let nginx = Nginx::start(nginx_port, &instances.each_ref().map(|i| i.port)).await?;
        Ok(Cluster {
            nginx,
            instances,
            seed,
            idp,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        })
    }

    /// The audience of ID tokens for this registry: the host of its public URL, nginx's.
    fn audience(&self) -> String {
        format!("127.0.0.1:{}", self.nginx.port)
    }

    async fn publish(&self, url: String, token: &str, krate: &CrateBuilder) -> (u16, Value) {
        let response = self
            .client
            .put(url)
            .header("Authorization", token)
            .body(krate.publish_body())
            .send()
            .await
            .expect("send publish");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn exchange(&self, url: String, jwt: &str) -> (u16, Value) {
        let response = self
            .client
            .post(url)
            .json(&json!({ "jwt": jwt }))
            .send()
            .await
            .expect("send exchange");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The index lines of `name` and a download of each of its versions, through nginx: every
    /// version in `expected` is listed once, with the SHA-256 of the expected file as its
    /// `cksum`, and downloads as exactly that file.
    async fn assert_served(&self, name: &str, expected: &[CrateBuilder]) -> anyhow::Result<()> {
        let index = self
            .client
            .get(self.nginx.url(&format!("/index/{}", index_path(name))))
            .send()
            .await?;
        assert_eq!(index.status(), 200);
        let lines: Vec<Value> = index
            .text()
            .await?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(lines.len(), expected.len(), "{lines:?}");
        for krate in expected {
            let tarball = krate.tarball();
            let line: Vec<&Value> = lines
                .iter()
                .filter(|l| l["vers"] == krate.version.as_str())
                .collect();
            assert_eq!(line.len(), 1, "{} {}: {lines:?}", name, krate.version);
            assert_eq!(line[0]["cksum"], hex::encode(Sha256::digest(&tarball)));
            let download = self
                .client
                .get(
                    self.nginx
                        .url(&format!("/api/v1/crates/{name}/{}/download", krate.version)),
                )
                .send()
                .await?;
            assert_eq!(download.status(), 200, "{name} {}", krate.version);
            assert_eq!(download.bytes().await?, tarball);
        }
        Ok(())
    }
}

/// What a `GET` brought back.
enum Fetched {
    /// A status and a whole body (as long as its `Content-Length`).
    Body(reqwest::StatusCode, Vec<u8>),
    /// A `200` whose body ended early.
    Cut(String),
    /// No answer.
    Failed(String),
}

async fn get(client: &reqwest::Client, url: &str) -> Fetched {
    let response = match client.get(url).send().await {
        Ok(response) => response,
        Err(error) => return Fetched::Failed(format!("{error:#}")),
    };
    let status = response.status();
    match response.bytes().await {
        Ok(body) => Fetched::Body(status, body.to_vec()),
        Err(error) if status == 200 => Fetched::Cut(format!("{error:#}")),
        Err(error) => Fetched::Failed(format!("{status}, then {error:#}")),
    }
}

/// `wharf serve` as its own process, on the seed's database and storage.
async fn start_instance(
    seed: &TestApp,
    idp: &FakeIdp,
    public_url: &str,
    smtp_url: Option<&str>,
) -> anyhow::Result<Instance> {
    let config = seed.config();
    let data_dir = tempfile::tempdir()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    command
        .arg("serve")
        .env("WHARF_BIND", "127.0.0.1:0")
        .env("WHARF_DATA_DIR", data_dir.path())
        .env("WHARF_DATABASE_URL", config.database.url.expose())
        .env("WHARF_DATABASE_POOL_SIZE", "4")
        .env("WHARF_PUBLIC_URL", public_url)
        .env("WHARF_SESSION_KEY", SESSION_KEY)
        .env(
            "WHARF_TRUSTPUB_GITHUB_ISSUER",
            idp.issuer_of(Provider::GitHub).url(),
        )
        .env("WHARF_GITHUB_API_URL", idp.api_url())
        .env("WHARF_LOG", "info")
        .envs(s3::env_of(&config.storage));
    if let Some(url) = smtp_url {
        command.env("WHARF_SMTP_URL", url);
    }
    let mut process = Spawned::start(command)?;
    process.wait_for("listening").await?;
    let log = process.stderr() + &process.stdout();
    let port = log
        .lines()
        .find(|line| line.contains("listening"))
        .and_then(|line| line.rsplit("port=").next())
        .and_then(|port| port.trim().parse::<u16>().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in the `listening` line:\n{log}"))?;
    Ok(Instance {
        port,
        process: Some(process),
        _data_dir: data_dir,
    })
}

/// A cargo whose registry `wharf` has its index at `index_base` (`http://host:port`).
fn cargo_at(
    root: &std::path::Path,
    index_base: &str,
    token: Option<String>,
) -> anyhow::Result<Cargo> {
    let home = root.join("cargo-home");
    std::fs::create_dir_all(&home)?;
    std::fs::write(
        home.join("config.toml"),
        format!("[registries.wharf]\nindex = \"sparse+{index_base}/index/\"\n\n[net]\nretry = 0\n"),
    )?;
    Ok(Cargo {
        home,
        target: root.join("target"),
        token,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_publishes_through_one_instance_and_resolves_through_the_other_at_once()
-> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let token = cluster.seed.token("alice");
    let root = tempfile::tempdir()?;
    let publisher = cargo_at(
        &root.path().join("publisher"),
        &cluster.nginx.base_url,
        Some(token),
    )?;
    let base = root.path().join("base");
    write_package(
        &base,
        "[package]\nname = \"lb-base\"\nversion = \"1.0.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"Published behind a load balancer\"\n",
        "pub fn forty_two() -> u32 { 42 }\n",
    )?;

    publisher
        .ok(&base, &["publish", "--registry", "wharf"])
        .await?;

    // nginx's log names the instance that took the publish; the dependent resolves through
    // the other one, reading its index directly.
    let log = cluster.nginx.access_log();
    let publish_line = log
        .lines()
        .find(|line| line.starts_with("PUT /api/v1/crates/new 200 "))
        .ok_or_else(|| anyhow::anyhow!("no publish in nginx's log:\n{log}"))?;
    let took_it = cluster
        .instances
        .iter()
        .position(|i| publish_line.contains(&format!("127.0.0.1:{} ", i.port)))
        .ok_or_else(|| anyhow::anyhow!("which instance? {publish_line}"))?;
    let other = &cluster.instances[1 - took_it];
    let resolver = cargo_at(
        &root.path().join("resolver"),
        &format!("http://127.0.0.1:{}", other.port),
        None,
    )?;
    let user = root.path().join("user");
    write_package(
        &user,
        "[package]\nname = \"lb-user\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\nlb-base = { version = \"1\", registry = \"wharf\" }\n",
        "fn main() { println!(\"answer={}\", lb_base::forty_two()); }\n",
    )?;
    let stdout = resolver.ok(&user, &["run", "--quiet"]).await?;
    assert_eq!(stdout.trim(), "answer=42");
    let lock = std::fs::read_to_string(user.join("Cargo.lock"))?;
    assert!(
        lock.contains("name = \"lb-base\"\nversion = \"1.0.0\""),
        "{lock}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_exchanged_on_one_instance_is_refused_as_a_replay_on_the_other()
-> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let owner = cluster.seed.token("alice");
    cluster
        .seed
        .publish_ok(&owner, &CrateBuilder::new("widget", "1.0.0"))
        .await;
    cluster.seed.add_github_config(&owner, "widget", None).await;
    let jwt = cluster
        .idp
        .sign(&cluster.idp.github_claims(&cluster.audience(), json!({})));
    let [first, second] = &cluster.instances;

    let (status, body) = cluster
        .exchange(first.url("/api/v1/trusted_publishing/tokens"), &jwt)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, replay) = cluster
        .exchange(second.url("/api/v1/trusted_publishing/tokens"), &jwt)
        .await;

    assert_eq!(status, 400, "{replay}");
    assert_eq!(
        detail(&replay),
        "this ID token has already been exchanged; each ID token can be used once. Request a fresh ID token from your CI platform"
    );
    // The token minted on the first instance publishes through the second.
    let token = body["token"].as_str().unwrap_or_default();
    let (status, body) = cluster
        .publish(
            second.url("/api/v1/crates/new"),
            token,
            &CrateBuilder::new("widget", "1.1.0"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_version_published_through_both_at_once_has_exactly_one_winner() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let token = cluster.seed.token("alice");
    let [first, second] = &cluster.instances;
    let mut winners = Vec::new();
    for round in 0..4 {
        let version = format!("1.0.{round}");
        let one = CrateBuilder::new("contested", &version).file("src/who.rs", b"// first\n");
        let two = CrateBuilder::new("contested", &version).file("src/who.rs", b"// second\n");

        let ((status_one, body_one), (status_two, body_two)) = tokio::join!(
            cluster.publish(first.url("/api/v1/crates/new"), &token, &one),
            cluster.publish(second.url("/api/v1/crates/new"), &token, &two),
        );

        let mut statuses = [status_one, status_two];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{body_one} {body_two}");
        let loser_body = if status_one == 409 {
            &body_one
        } else {
            &body_two
        };
        let taken = format!(
            "crate version `contested@{version}` is already uploaded; versions cannot be replaced, publish a new version"
        );
        // The first round also races to create the crate, which the loser may learn first.
        let created =
            "crate `contested` was created by another publish at the same moment; try again";
        assert!(
            detail(loser_body) == taken || (round == 0 && detail(loser_body) == created),
            "{loser_body}"
        );
        winners.push(if status_one == 200 { one } else { two });
    }

    cluster.assert_served("contested", &winners).await?;
    let check = admin_check(&cluster.seed);
    assert!(check.status.success(), "nothing partial: {check:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_written_through_both_instances_is_delivered_once() -> anyhow::Result<()> {
    let sink = SmtpSink::start().await?;
    let cluster = Cluster::start_with(Some(&sink)).await?;
    for login in ["alice", "bob"] {
        add_user(
            &cluster.seed.app.db,
            &UserAdd {
                login: login.to_owned(),
                github_id: None,
                email: Some(format!("{login}@example.com")),
                admin: false,
            },
        )?;
    }
    let alice = cluster.seed.token("alice");
    let (status, body) = cluster
        .publish(
            cluster.instances[0].url("/api/v1/crates/new"),
            &alice,
            &CrateBuilder::new("mailed", "1.0.0"),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Six owner changes through nginx, which sends them to both instances in turn; each is
    // mailed to alice and to bob (a removed owner is told too).
    let owners = cluster.nginx.url("/api/v1/crates/mailed/owners");
    for _ in 0..3 {
        for add in [true, false] {
            let request = if add {
                cluster.client.put(&owners)
            } else {
                cluster.client.delete(&owners)
            };
            let response = request
                .header("Authorization", &alice)
                .json(&json!({ "users": ["bob"] }))
                .send()
                .await?;
            assert_eq!(response.status(), 200, "{}", response.text().await?);
        }
    }

    let mails = sink.wait_for(12).await?;
    let mut received: Vec<(String, String)> = mails
        .iter()
        .flat_map(|m| m.rcpt_tos.iter().map(|to| (m.subject.clone(), to.clone())))
        .collect();
    received.sort();
    let mut expected: Vec<(String, String)> = ["added", "removed"]
        .into_iter()
        .flat_map(|change| {
            ["alice@example.com", "bob@example.com"]
                .map(|to| (format!("mailed: owner bob {change}"), to.to_owned()))
        })
        .flat_map(|pair| std::iter::repeat_n(pair, 3))
        .collect();
    expected.sort();
    assert_eq!(received, expected, "each mail once: {mails:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_instance_mid_burst_loses_no_request_and_no_version() -> anyhow::Result<()> {
    let mut cluster = Cluster::start().await?;
    let token = cluster.seed.token("alice");
    let versions: Vec<CrateBuilder> = (0..6)
        .map(|n| {
            CrateBuilder::new("burst", &format!("0.{n}.0"))
                .file("src/data.rs", &crate::support::crates::noise(2048, n))
        })
        .collect();
    for krate in &versions {
        let (status, body) = cluster
            .publish(cluster.nginx.url("/api/v1/crates/new"), &token, krate)
            .await;
        assert_eq!(status, 200, "{body}");
    }

    const TASKS: usize = 4;
    const REQUESTS: usize = 60;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = cluster.client.clone();
        let base = cluster.nginx.base_url.clone();
        let done = done.clone();
        let files: Vec<(String, Vec<u8>)> = versions
            .iter()
            .map(|k| (k.version.clone(), k.tarball()))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut cuts = Vec::new();
            for n in 0..REQUESTS {
                let (version, tarball) = &files[(task + n) % files.len()];
                let (path, expected) = if n % 2 == 0 {
                    (format!("/index/{}", index_path("burst")), None)
                } else {
                    (
                        format!("/api/v1/crates/burst/{version}/download"),
                        Some(tarball),
                    )
                };
                let url = format!("{base}{path}");
                let whole = |body: &[u8]| match expected {
                    Some(tarball) => body == &tarball[..],
                    None => {
                        body.split(|b| *b == b'\n')
                            .filter(|l| !l.is_empty())
                            .count()
                            == 6
                    }
                };
                match get(&client, &url).await {
                    Fetched::Body(status, body) if status == 200 => {
                        if !whole(&body) {
                            failures.push(format!("{path}: a wrong or partial body"));
                        }
                    }
                    Fetched::Body(status, body) => failures.push(format!(
                        "{path}: {status} {}",
                        String::from_utf8_lossy(&body)
                    )),
                    // The instance died after nginx had passed on the response's head: nothing
                    // can resend it, but the client sees the cut (the body is shorter than its
                    // Content-Length) and retries, as cargo does.
                    Fetched::Cut(error) => {
                        cuts.push(format!("{path}: {error}"));
                        match get(&client, &url).await {
                            Fetched::Body(status, body) if status == 200 && whole(&body) => {}
                            _ => failures.push(format!("{path}: the retry after a cut failed")),
                        }
                    }
                    Fetched::Failed(error) => failures.push(format!("{path}: {error}")),
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (failures, cuts)
        }));
    }
    while done.load(std::sync::atomic::Ordering::SeqCst) < TASKS * REQUESTS / 4 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cluster.instances[0].kill()?;
    let at_kill = done.load(std::sync::atomic::Ordering::SeqCst);
    let mut failures = Vec::new();
    let mut cuts = Vec::new();
    for task in tasks {
        let (failed, cut) = task.await?;
        failures.extend(failed);
        cuts.extend(cut);
    }

    assert!(
        at_kill < TASKS * REQUESTS,
        "the instance died in the middle of the burst ({at_kill} of {} done)",
        TASKS * REQUESTS
    );
    assert!(
        failures.is_empty(),
        "{failures:#?}\n{}",
        cluster.nginx.error_log()
    );
    let log = cluster.nginx.access_log();
    let killed = format!("127.0.0.1:{}", cluster.instances[0].port);
    let survivor = format!("127.0.0.1:{}", cluster.instances[1].port);
    assert!(
        log.contains(&format!("{killed}, {survivor} ")),
        "nginx passed a request the killed instance could not take to the survivor:\n{log}"
    );
    cluster.assert_served("burst", &versions).await?;
    // The survivor alone, too: it answers for everything that was published.
    let index = cluster
        .client
        .get(cluster.instances[1].url(&format!("/index/{}", index_path("burst"))))
        .send()
        .await?;
    assert_eq!(index.status(), 200);
    assert_eq!(index.text().await?.lines().count(), versions.len());
    Ok(())
}
