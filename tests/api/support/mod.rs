//! The test harness: a real server per test on 127.0.0.1 with a fresh database (SQLite by
//! default; PostgreSQL when `WHARF_TEST_DATABASE_URL` is a `postgres://` URL), and helpers to
//! build crates and publish them.

#![allow(
    dead_code,
    reason = "each test module uses a different part of the harness"
)]

pub mod crates;
pub mod gnu_tar;
pub mod nginx;
pub mod process;
pub mod raw_http;
pub mod s3;
pub mod smtp;
pub mod tmpfs;
pub mod web_client;

/// The fake identity provider of development mode, which the tests share.
pub use wharf::dev::fake_idp;

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::web;
use anyhow::Context;
use diesel::{Connection, RunQueryDsl};
use serde_json::Value;
use wharf::app::App;
use wharf::cli::{TokenCreate, UserAdd, add_user, create_token};
use wharf::config::{Config, RawSettings, StorageConfig};
use wharf::startup::Application;

pub use self::crates::CrateBuilder;

pub struct TestApp {
    pub base_url: String,
    pub port: u16,
    /// The metrics listener's port, when the test set `metrics_bind`.
    pub metrics_port: Option<u16>,
    pub client: reqwest::Client,
    pub app: web::Data<App>,
    pub data_dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop the server's workers; the database and folder go with the test.
        drop(handle.stop(false));
    }
}

pub struct TestAppBuilder {
    settings: RawSettings,
    /// Another instance whose database and storage this one shares.
    shared_database: Option<(String, StorageConfig)>,
    storage: TestStorage,
    /// Mail retried and polled within a fraction of a second (see [`TestAppBuilder::smtp`]).
    fast_mail: bool,
}

/// Where a test server keeps crate files.
enum TestStorage {
    /// A folder in the test's data dir, unless `WHARF_TEST_STORAGE=s3` asks for a bucket (so
    /// that the whole suite can run against object storage), or the test set a storage.
    Default,
    /// A fresh bucket on the S3 server of `WHARF_TEST_S3_ENDPOINT`, reached at `via` (that
    /// server itself, or a proxy in front of it).
    S3 { via: Option<String> },
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            settings: RawSettings::default(),
            shared_database: None,
            storage: TestStorage::Default,
            fast_mail: false,
        }
    }

    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn config(&self) -> &Config {
        &self.app.config
    }

    /// The object stored under `key`, read through the server's storage.
    pub async fn stored(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.app.storage.open(key).await? {
            Some(object) => Ok(Some(object.read_all().await?)),
            None => Ok(None),
        }
    }

    /// Creates a user the way an operator would (`wharf admin user add`).
    pub fn user(&self, login: &str) -> wharf::models::User {
        add_user(
            &self.app.db,
            &UserAdd {
                login: login.to_owned(),
                github_id: None,
                email: None,
                admin: false,
            },
        )
        .expect("create user")
    }

    /// An unrestricted API token for `login` (creating the user if needed).
    pub fn token(&self, login: &str) -> String {
        self.token_with(login, &[], &[])
    }

    pub fn token_with(&self, login: &str, scopes: &[&str], crates: &[&str]) -> String {
        let exists = self
            .app
            .db
            .blocking(|conn| Ok(wharf::models::User::by_login(conn, login)?))
            .expect("look up user")
            .is_some();
        if !exists {
            self.user(login);
        }
        let args = TokenCreate {
            user: login.to_owned(),
            name: "test".to_owned(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            crates: crates.iter().map(|s| s.to_string()).collect(),
            expires_in: None,
        };
        create_token(&self.app.db, &args).expect("create token").1
    }

    pub async fn publish(&self, token: &str, krate: &CrateBuilder) -> reqwest::Response {
        self.publish_body(token, krate.publish_body()).await
    }

    pub async fn publish_body(&self, token: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .put(self.url("/api/v1/crates/new"))
            .header("Authorization", token)
            .body(body)
            .send()
            .await
            .expect("send publish")
    }

    /// Publishes and asserts success.
    pub async fn publish_ok(&self, token: &str, krate: &CrateBuilder) {
        let response = self.publish(token, krate).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status, 200,
            "publish of {} {} failed: {body}",
            krate.name, krate.version
        );
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` with `token` in `Authorization`.
    pub async fn get_json_with(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .header("Authorization", token)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn index_lines(&self, name: &str) -> Vec<Value> {
        let response = self
            .client
            .get(self.url(&format!("/index/{}", index_path(name))))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "index file of {name}");
        let text = response.text().await.expect("body");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("index line is JSON"))
            .collect()
    }
}

impl TestApp {
    /// The audience ID tokens must carry for this server.
    pub fn audience(&self) -> String {
        self.config().trustpub.audience.clone()
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/v1/trusted_publishing/tokens`.
    pub async fn exchange(&self, jwt: &str) -> (u16, Value) {
        self.post_json(
            "/api/v1/trusted_publishing/tokens",
            None,
            &serde_json::json!({ "jwt": jwt }),
        )
        .await
    }

    /// Adds a Buildkite publisher config for `organization/pipeline`, with an optional branch
    /// and step key; returns the answer (asserting a 200).
    pub async fn add_buildkite_config(
        &self,
        token: &str,
        krate: &str,
        organization: &str,
        pipeline: &str,
        branch: Option<&str>,
        step_key: Option<&str>,
    ) -> Value {
        let (status, body) = self
            .post_json(
                "/api/v1/trusted_publishing/buildkite_configs",
                Some(token),
                &serde_json::json!({ "buildkite_config": {
                    "crate": krate,
                    "organization": organization,
                    "pipeline": pipeline,
                    "branch": branch,
                    "step_key": step_key,
                }}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Adds a GitHub publisher config for the fake IdP's default repository and workflow.
    pub async fn add_github_config(
        &self,
        token: &str,
        krate: &str,
        environment: Option<&str>,
    ) -> Value {
        let (status, body) = self
            .post_json(
                "/api/v1/trusted_publishing/github_configs",
                Some(token),
                &serde_json::json!({ "github_config": {
                    "crate": krate,
                    "repository_owner": fake_idp::GITHUB_OWNER,
                    "repository_name": fake_idp::GITHUB_REPO,
                    "workflow_filename": fake_idp::GITHUB_WORKFLOW,
                    "environment": environment,
                }}),
            )
            .await;
        assert_eq!(status, 200, "adding a GitHub config: {body}");
        body
    }

    /// Adds a GitLab publisher config for the fake IdP's default project.
    pub async fn add_gitlab_config(
        &self,
        token: &str,
        krate: &str,
        namespace: &str,
        environment: Option<&str>,
    ) -> Value {
        let (status, body) = self
            .post_json(
                "/api/v1/trusted_publishing/gitlab_configs",
                Some(token),
                &serde_json::json!({ "gitlab_config": {
                    "crate": krate,
                    "namespace": namespace,
                    "project": fake_idp::GITLAB_PROJECT,
                    "workflow_filepath": fake_idp::GITLAB_CI_CONFIG,
                    "environment": environment,
                }}),
            )
            .await;
        assert_eq!(status, 200, "adding a GitLab config: {body}");
        body
    }
}

/// cargo's index path for a crate name.
pub fn index_path(name: &str) -> String {
    let name = name.to_lowercase();
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

/// Of simultaneous requests competing for one thing, exactly one was answered 200 and every
/// other one refused with 400.
pub fn assert_one_won(statuses: &[u16]) {
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

/// The `detail` of the first error in an API error body.
pub fn detail(body: &Value) -> &str {
    body["errors"][0]["detail"]
        .as_str()
        .unwrap_or("<no detail>")
}

impl TestAppBuilder {
    /// Trusts `idp`'s GitHub Actions issuer and uses its GitHub REST API.
    pub fn github_idp(self, idp: &fake_idp::FakeIdp) -> Self {
        self.set(
            "trustpub_github_issuer",
            idp.issuer_of(fake_idp::Provider::GitHub).url(),
        )
        .set("github_api_url", idp.api_url())
    }

    /// Logs in through `idp`'s GitHub (OAuth client, web and REST API).
    pub fn github_login(self, idp: &fake_idp::FakeIdp) -> Self {
        self.set("github_client_id", idp.client_id())
            .set("github_client_secret", idp.client_secret())
            .set("github_url", idp.base_url())
            .set("github_api_url", idp.api_url())
    }

    /// Trusts `idp`'s GitLab issuer (a self-managed GitLab) besides gitlab.com.
    pub fn gitlab_idp(self, idp: &fake_idp::FakeIdp) -> Self {
        self.set(
            "trustpub_gitlab_issuers",
            format!(
                "https://gitlab.com,{}",
                idp.issuer_of(fake_idp::Provider::GitLab).url()
            ),
        )
    }

    /// Trusts `idp`'s Buildkite issuer (in place of `https://agent.buildkite.com`).
    pub fn buildkite_idp(self, idp: &fake_idp::FakeIdp) -> Self {
        self.set(
            "trustpub_buildkite_issuer",
            idp.issuer_of(fake_idp::Provider::Buildkite).url(),
        )
    }

    /// A second instance on the same database and storage, as behind a load balancer.
    pub fn sharing_database_with(mut self, other: &TestApp) -> Self {
        self.shared_database = Some((
            other.config().database.url.expose().to_owned(),
            other.config().storage.clone(),
        ));
        self
    }

    /// Keeps crate files in a fresh bucket on the S3 server named by `WHARF_TEST_S3_ENDPOINT`;
    /// the test fails, saying how to start one, when it is unset.
    pub fn s3(mut self) -> Self {
        self.storage = TestStorage::S3 { via: None };
        self
    }

    /// As [`TestAppBuilder::s3`], but the server reaches the store through `proxy`.
    pub fn s3_through(mut self, proxy: &s3::CuttableProxy) -> Self {
        self.storage = TestStorage::S3 {
            via: Some(proxy.endpoint.clone()),
        };
        self
    }

    /// Sends notification mail to `sink`, retrying and polling every fraction of a second
    /// (instead of from 30 s and every 10 s), so tests of a server that goes down and returns
    /// take seconds.
    pub fn smtp(mut self, sink: &smtp::SmtpSink) -> Self {
        self.settings.set("smtp_url", sink.url());
        self.fast_mail = true;
        self
    }

    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.settings.set(key, value);
        self
    }

    pub async fn spawn(mut self) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        self.settings.set("bind", "127.0.0.1:0");
        self.settings
            .set("data_dir", data_dir.path().to_string_lossy());
        match &self.shared_database {
            Some((url, storage)) => {
                self.settings.set("database_url", url.clone());
                for (key, value) in s3::settings_of(storage) {
                    self.settings.set(key, value);
                }
            }
            None => {
                let url = test_database_url(&data_dir).expect("test database");
                self.settings.set("database_url", url);
                let storage_chosen =
                    self.settings.contains("storage_dir") || self.settings.contains("storage_url");
                let via = match self.storage {
                    TestStorage::S3 { via } => Some(via),
                    TestStorage::Default if !storage_chosen && s3_by_default() => Some(None),
                    TestStorage::Default => None,
                };
                if let Some(via) = via {
                    let endpoint = s3::endpoint();
                    let bucket = s3::create_bucket(&endpoint)
                        .await
                        .expect("a bucket on the test S3 server");
                    for (key, value) in s3::settings(via.as_deref().unwrap_or(&endpoint), &bucket) {
                        self.settings.set(key, value);
                    }
                }
            }
        }
        self.settings.set("database_pool_size", "4");
        let mut config = Config::from_settings(&self.settings).expect("config");
        if self.fast_mail {
            let mail = &mut config.mail;
            mail.retry_base = std::time::Duration::from_millis(100);
            mail.retry_cap = std::time::Duration::from_millis(400);
            mail.poll_interval = std::time::Duration::from_millis(200);
            mail.send_timeout = std::time::Duration::from_secs(5);
        }
        let application = Application::build(config).expect("build app");
        let port = application.port();
        let metrics_port = application.metrics_port();
        let app = application.app();
        let handle = application.server_handle();
        tokio::spawn(application.run_until_stopped());
        TestApp {
            base_url: format!("http://127.0.0.1:{port}"),
            port,
            metrics_port,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            app,
            data_dir,
            handle,
        }
    }
}

/// `WHARF_TEST_STORAGE=s3` runs every test that does not choose a storage against a bucket.
fn s3_by_default() -> bool {
    match std::env::var("WHARF_TEST_STORAGE").as_deref() {
        Ok("s3") => true,
        Ok("" | "fs") | Err(_) => false,
        Ok(other) => panic!("WHARF_TEST_STORAGE must be `s3` or `fs`, not `{other}`"),
    }
}

static DATABASES: AtomicU64 = AtomicU64::new(0);

/// A fresh database for one test.
pub fn test_database_url(data_dir: &tempfile::TempDir) -> anyhow::Result<String> {
    match std::env::var("WHARF_TEST_DATABASE_URL") {
        Ok(admin_url) if admin_url.starts_with("postgres") => {
            let name = format!(
                "wharf_test_{}_{}_{}",
                std::process::id(),
                DATABASES.fetch_add(1, Ordering::SeqCst),
                rand_suffix()
            );
            let mut conn = diesel::PgConnection::establish(&admin_url)
                .with_context(|| "cannot connect to WHARF_TEST_DATABASE_URL".to_string())?;
            diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
            let mut url = url::Url::parse(&admin_url)?;
            url.set_path(&format!("/{name}"));
            Ok(url.to_string())
        }
        Ok(other) if !other.is_empty() => {
            anyhow::bail!("WHARF_TEST_DATABASE_URL must be a postgres:// URL, not {other}")
        }
        _ => Ok(format!(
            "sqlite://{}",
            data_dir.path().join("wharf.db").display()
        )),
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
