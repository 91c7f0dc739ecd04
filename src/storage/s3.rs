//! The object-storage backend: `.crate` files in an S3-compatible bucket
//! (`WHARF_STORAGE_URL=s3://BUCKET[/PREFIX]`), through the `object_store` crate, on the same
//! reqwest/hyper/rustls stack as the rest of Wharf.
//!
//! The HTTP client has no overall timeout, because a download streams for as long as the
//! client takes to read it; every call gets its own deadline here instead: a probe 5 s, the
//! answer to a read 30 s (its body then flows at the client's pace, and stops when the client
//! goes away), an upload 10 s plus a second per MiB (it runs inside the publish's database
//! transaction, which holds the crate's rows — on SQLite the write lock — until it ends). A failed request is retried a few times within
//! those deadlines.

use std::time::Duration;

use actix_web::web::Bytes;
use async_trait::async_trait;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload, RetryConfig,
};
use url::Url;

use super::{Object, Storage, StorageError, StorageResult, boxed, check_key};
use crate::config::S3Config;

/// How long `/ready`'s listing may take.
const PROBE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a read may take to start answering.
const READ_DEADLINE: Duration = Duration::from_secs(30);
/// How long an upload may take: this, plus [`UPLOAD_SECONDS_PER_MIB`] for each MiB.
const UPLOAD_DEADLINE: Duration = Duration::from_secs(10);
const UPLOAD_SECONDS_PER_MIB: u64 = 1;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The variables of the AWS credential chain that `object_store` follows when no static keys
/// are configured: a web identity (EKS and other OIDC set-ups), container credentials (ECS,
/// EKS Pod Identity). Without them it asks the instance metadata service (EC2).
const CREDENTIAL_CHAIN_VARIABLES: &[&str] = &[
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

#[derive(Debug)]
pub struct S3Storage {
    store: AmazonS3,
    prefix: Option<Path>,
    presigned_downloads: Option<Duration>,
}

impl S3Storage {
    pub fn new(config: &S3Config) -> anyhow::Result<Self> {
        let allow_http = config
            .endpoint
            .as_deref()
            .is_some_and(|endpoint| endpoint.starts_with("http://"));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(allow_http)
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_timeout_disabled(),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
            });
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        match &config.credentials {
            Some(credentials) => {
                builder = builder
                    .with_access_key_id(&credentials.access_key_id)
                    .with_secret_access_key(credentials.secret_access_key.expose());
                if let Some(token) = &credentials.session_token {
                    builder = builder.with_token(token.expose());
                }
            }
            None => {
                for name in CREDENTIAL_CHAIN_VARIABLES {
                    if let Ok(value) = std::env::var(name) {
                        let key: AmazonS3ConfigKey = name.to_ascii_lowercase().parse()?;
                        builder = builder.with_config(key, value);
                    }
                }
            }
        }
        let store = builder.build()?;
        let prefix = config
            .prefix
            .as_deref()
            .map(Path::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("invalid prefix in WHARF_STORAGE_URL: {e}"))?;
        Ok(Self {
            store,
            prefix,
            presigned_downloads: config.presigned_downloads,
        })
    }

    fn path(&self, key: &str) -> StorageResult<Path> {
        check_key(key)?;
        let full = match &self.prefix {
            Some(prefix) => format!("{prefix}/{key}"),
            None => key.to_owned(),
        };
        Path::parse(&full).map_err(|_| StorageError::InvalidKey(key.to_owned()))
    }
}

/// Waits for `call` at most `deadline`; any failure means the store is unavailable.
async fn within<T>(
    deadline: Duration,
    what: &str,
    call: impl Future<Output = object_store::Result<T>>,
) -> StorageResult<T> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StorageError::unavailable(error)),
        Err(_) => Err(StorageError::unavailable(format!(
            "the object store did not {what} within {}",
            humantime::format_duration(deadline)
        ))),
    }
}

fn upload_deadline(len: usize) -> Duration {
    let mib = u64::try_from(len / (1024 * 1024)).unwrap_or(u64::MAX);
    UPLOAD_DEADLINE.saturating_add(Duration::from_secs(
        mib.saturating_mul(UPLOAD_SECONDS_PER_MIB),
    ))
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(&self, key: &str, bytes: Bytes) -> StorageResult<()> {
        let path = self.path(key)?;
        let deadline = upload_deadline(bytes.len());
        // Served with the object, also through presigned URLs.
        let attributes = Attributes::from_iter([(Attribute::ContentType, "application/gzip")]);
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        within(
            deadline,
            "store the file",
            self.store
                .put_opts(&path, PutPayload::from_bytes(bytes), options),
        )
        .await?;
        Ok(())
    }

    async fn open(&self, key: &str) -> StorageResult<Option<Object>> {
        let path = self.path(key)?;
        let result = match tokio::time::timeout(READ_DEADLINE, self.store.get(&path)).await {
            Ok(Ok(result)) => result,
            Ok(Err(object_store::Error::NotFound { .. })) => return Ok(None),
            Ok(Err(error)) => return Err(StorageError::unavailable(error)),
            Err(_) => {
                return Err(StorageError::unavailable(format!(
                    "the object store did not answer a read within {}",
                    humantime::format_duration(READ_DEADLINE)
                )));
            }
        };
        let size = result.meta.size;
        Ok(Some(Object {
            size,
            stream: boxed(result.into_stream(), StorageError::unavailable),
        }))
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        let path = self.path(key)?;
        match within(READ_DEADLINE, "delete the file", self.store.delete(&path)).await {
            Ok(()) => Ok(()),
            Err(StorageError::Unavailable(cause))
                if matches!(
                    cause.downcast_ref::<object_store::Error>(),
                    Some(object_store::Error::NotFound { .. })
                ) =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    async fn download_url(&self, key: &str) -> StorageResult<Option<Url>> {
        let Some(ttl) = self.presigned_downloads else {
            return Ok(None);
        };
        let path = self.path(key)?;
        // Signing is local, unless the credentials must first be fetched (a role).
        let url = within(
            READ_DEADLINE,
            "provide credentials",
            self.store.signed_url(reqwest::Method::GET, &path, ttl),
        )
        .await?;
        Ok(Some(url))
    }

    async fn check(&self) -> StorageResult<()> {
        within(
            PROBE_DEADLINE,
            "list the bucket",
            self.store.list_with_delimiter(self.prefix.as_ref()),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(prefix: Option<&str>) -> S3Config {
        S3Config {
            bucket: "crates".to_owned(),
            prefix: prefix.map(str::to_owned),
            endpoint: Some("http://127.0.0.1:9".to_owned()),
            region: Some("garage".to_owned()),
            credentials: Some(crate::config::S3Credentials {
                access_key_id: "GK1".to_owned(),
                secret_access_key: crate::config::Secret::new("secret"),
                session_token: None,
            }),
            presigned_downloads: Some(Duration::from_secs(900)),
        }
    }

    #[test]
    fn keys_go_under_the_prefix() -> anyhow::Result<()> {
        let storage = S3Storage::new(&config(Some("registry/prod")))?;
        assert_eq!(
            storage.path("crates/foo/foo-1.0.0.crate")?.as_ref(),
            "registry/prod/crates/foo/foo-1.0.0.crate"
        );
        let storage = S3Storage::new(&config(None))?;
        assert_eq!(storage.path("crates/foo/x")?.as_ref(), "crates/foo/x");
        assert!(storage.path("../x").is_err());
        Ok(())
    }

    #[tokio::test]
    async fn presigned_urls_point_at_the_endpoint_and_expire() -> anyhow::Result<()> {
        let storage = S3Storage::new(&config(Some("p")))?;
        let url = storage
            .download_url("crates/foo/foo-1.0.0.crate")
            .await?
            .expect("presigned downloads are on");
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert_eq!(url.path(), "/crates/p/crates/foo/foo-1.0.0.crate");
        let query: std::collections::HashMap<_, _> = url.query_pairs().collect();
        assert_eq!(query["X-Amz-Expires"], "900");
        assert!(query["X-Amz-Credential"].starts_with("GK1/"));
        assert!(query["X-Amz-Credential"].contains("/garage/s3/"));
        Ok(())
    }

    #[test]
    fn uploads_get_more_time_for_bigger_files() {
        assert_eq!(upload_deadline(1000), Duration::from_secs(10));
        assert_eq!(upload_deadline(10 * 1024 * 1024), Duration::from_secs(20));
    }
}
