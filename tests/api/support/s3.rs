//! The S3-compatible server the object-storage tests run against, named by
//! `WHARF_TEST_S3_ENDPOINT` (`scripts/test.sh` starts moto's server on loopback for it). Each
//! test gets a fresh bucket. Credentials are the standard `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY` when set (a MinIO or Garage needs real ones), else anything (moto
//! takes any).
//!
//! [`CuttableProxy`] stands between a server and the store, to take the store away and bring
//! it back.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wharf::config::StorageConfig;

pub const ENDPOINT_VARIABLE: &str = "WHARF_TEST_S3_ENDPOINT";

/// The S3 server's endpoint; a test that needs one fails, saying how to start one.
pub fn endpoint() -> String {
    match std::env::var(ENDPOINT_VARIABLE) {
        Ok(endpoint) if !endpoint.trim().is_empty() => {
            endpoint.trim().trim_end_matches('/').to_owned()
        }
        _ => panic!(
            "this test needs an S3-compatible server: set {ENDPOINT_VARIABLE}=http://127.0.0.1:PORT. \
             scripts/test.sh starts one; by hand: pip install 'moto[server]==5.2.1' && \
             moto_server -H 127.0.0.1 -p 9000 & export {ENDPOINT_VARIABLE}=http://127.0.0.1:9000"
        ),
    }
}

pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

pub fn credentials() -> Credentials {
    let var = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    Credentials {
        access_key_id: var("AWS_ACCESS_KEY_ID", "wharf-test"),
        secret_access_key: var("AWS_SECRET_ACCESS_KEY", "wharf-test-secret"),
        region: var("AWS_REGION", "us-east-1"),
    }
}

static BUCKETS: AtomicU64 = AtomicU64::new(0);

/// Creates a fresh bucket on the test server and returns its name.
pub async fn create_bucket(endpoint: &str) -> anyhow::Result<String> {
    let name = format!(
        "wharf-test-{}-{}-{}",
        std::process::id(),
        BUCKETS.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos()
    );
    let status = signed(reqwest::Method::PUT, &format!("{endpoint}/{name}")).await?;
    if !status.is_success() {
        bail!("creating the bucket {name} at {endpoint} answered {status}");
    }
    Ok(name)
}

/// Sends an empty request signed with the test credentials (SigV4); returns the status.
async fn signed(method: reqwest::Method, url: &str) -> anyhow::Result<reqwest::StatusCode> {
    let credentials = credentials();
    let credential = AwsCredential {
        key_id: credentials.access_key_id.clone(),
        secret_key: credentials.secret_access_key.clone(),
        token: None,
    };
    let mut request = http::Request::builder()
        .method(method.clone())
        .uri(url)
        .body(HttpRequestBody::empty())?;
    AwsAuthorizer::new(&credential, "s3", &credentials.region).authorize(&mut request, None);
    let response = reqwest::Client::new()
        .request(method, url)
        .headers(request.headers().clone())
        .send()
        .await
        .with_context(|| format!("cannot reach the S3 server at {url}"))?;
    Ok(response.status())
}

/// The settings (`RawSettings` keys) that make a server use `bucket` at `endpoint`.
pub fn settings(endpoint: &str, bucket: &str) -> Vec<(&'static str, String)> {
    let credentials = credentials();
    vec![
        ("storage_url", format!("s3://{bucket}")),
        ("s3_endpoint", endpoint.to_owned()),
        ("aws_access_key_id", credentials.access_key_id),
        ("aws_secret_access_key", credentials.secret_access_key),
        ("aws_region", credentials.region),
    ]
}

/// The same storage as `config`, as `RawSettings` keys (for a second instance).
pub fn settings_of(config: &StorageConfig) -> Vec<(&'static str, String)> {
    match config {
        StorageConfig::Fs { dir } => vec![("storage_dir", dir.to_string_lossy().into_owned())],
        StorageConfig::S3(s3) => {
            let mut url = format!("s3://{}", s3.bucket);
            if let Some(prefix) = &s3.prefix {
                url = format!("{url}/{prefix}");
            }
            let mut settings = vec![("storage_url", url)];
            if let Some(endpoint) = &s3.endpoint {
                settings.push(("s3_endpoint", endpoint.clone()));
            }
            if let Some(region) = &s3.region {
                settings.push(("aws_region", region.clone()));
            }
            if let Some(credentials) = &s3.credentials {
                settings.push(("aws_access_key_id", credentials.access_key_id.clone()));
                settings.push((
                    "aws_secret_access_key",
                    credentials.secret_access_key.expose().to_owned(),
                ));
            }
            if let Some(ttl) = s3.presigned_downloads {
                settings.push((
                    "s3_presigned_downloads",
                    humantime::format_duration(ttl).to_string(),
                ));
            }
            settings
        }
    }
}

/// The same storage as `config`, as the environment of a `wharf` process.
pub fn env_of(config: &StorageConfig) -> Vec<(String, String)> {
    settings_of(config)
        .into_iter()
        .map(|(key, value)| {
            let name = if key.starts_with("aws_") {
                key.to_ascii_uppercase()
            } else {
                format!("WHARF_{}", key.to_ascii_uppercase())
            };
            (name, value)
        })
        .collect()
}

/// A TCP proxy on loopback in front of the S3 server. While cut, it closes every connection
/// it has and every new one at once, as a store that went down would.
pub struct CuttableProxy {
    pub endpoint: String,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(target_endpoint: &str) -> anyhow::Result<Self> {
        let target_url = url::Url::parse(target_endpoint)?;
        let target: SocketAddr = tokio::net::lookup_host((
            target_url
                .host_str()
                .context("the S3 endpoint has no host")?,
            target_url
                .port_or_known_default()
                .context("the S3 endpoint has no port")?,
        ))
        .await?
        .next()
        .context("the S3 endpoint's host has no address")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let (up, watcher) = watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut state = watcher.clone();
                if !*state.borrow_and_update() {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|up| !up) => {}
                    }
                });
            }
        });
        Ok(Self { endpoint, up, task })
    }

    /// The store is gone: open connections are closed, new ones closed at once.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// The store is back.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
