//! Configuration: `WHARF_*` environment variables, optionally a `wharf.toml` (given with
//! `--config`) holding the same keys in lower case without the prefix. The environment wins.
//!
//! Every default lets `wharf serve` start on a fresh machine with nothing set.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::limits::{Action, Rate, RateLimitConfig};
use crate::registry::publish::{MetadataField, RequiredMetadata};
use crate::trustpub::ProviderKind;

/// The longest lifetime an exchanged Trusted Publishing token may be given.
pub const MAX_TRUSTPUB_TOKEN_TTL: Duration = Duration::from_secs(6 * 60 * 60);
/// `WHARF_PENDING_PUBLISHER_TTL` when unset: 30 days.
pub const DEFAULT_PENDING_PUBLISHER_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
pub const MAX_PENDING_PUBLISHER_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The longest a login may last.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The standard AWS variables that configure S3 credentials and the region, read under their
/// own names (no `WHARF_` prefix); a `wharf.toml` may set them in lower case too.
const AWS_KEYS: &[&str] = &[
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region",
    "aws_default_region",
];

/// The longest a presigned download URL may stay valid (SigV4's limit).
pub const MAX_PRESIGNED_DOWNLOAD_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The keys Wharf reads, in lower case; `WHARF_` + upper case in the environment.
const KEYS: &[&str] = &[
    "bind",
    "public_url",
    "data_dir",
    "database_url",
    "database_pool_size",
    "storage_dir",
    "storage_url",
    "s3_endpoint",
    "s3_presigned_downloads",
    "session_key",
    "session_ttl",
    "github_client_id",
    "github_client_secret",
    "github_url",
    "github_api_url",
    "github_allowed_orgs",
    "auth_required",
    "trustpub_audience",
    "trustpub_token_ttl",
    "pending_publisher_ttl",
    "max_crate_size",
    "max_unpacked_size",
    "max_concurrent_publishes",
    "publish_queue_timeout",
    "index_cache_size",
    "download_cache_size",
    "required_metadata",
    "rate_limit_publishes_per_crate",
    "rate_limit_publishes_per_publisher",
    "rate_limit_exchanges_per_address",
    "rate_limit_exchanges_per_publisher",
    "trusted_proxies",
    "metrics_bind",
    "smtp_url",
    "mail_from",
    "log",
    "log_format",
    "dev_mode",
];

#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub public_url: Url,
    /// True when `public_url` (and with it the audience) was derived from `bind`.
    pub public_url_derived: bool,
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    /// Where `.crate` files are kept.
    pub storage: StorageConfig,
    /// `None`: generated once and kept in the data dir (see [`crate::startup`]).
    pub session_key: Option<Secret>,
    /// How long a login lasts (checked by the server; the cookie expires with it).
    pub session_ttl: Duration,
    pub github: GitHubConfig,
    /// `WHARF_AUTH_REQUIRED`: a private registry, where reading needs a credential too.
    pub auth_required: bool,
    pub trustpub: TrustpubConfig,
    pub limits: Limits,
    /// The metadata fields every new version must carry (`WHARF_REQUIRED_METADATA`).
    pub required_metadata: RequiredMetadata,
    /// Limits on publishes and exchanges, kept in the database (`WHARF_RATE_LIMIT_*`).
    pub rate_limits: RateLimitConfig,
    /// A separate listener for Prometheus text at `/metrics`; `None`: no metrics listener.
    pub metrics_bind: Option<SocketAddr>,
    /// Notification mail (`WHARF_SMTP_URL`, `WHARF_MAIL_FROM`).
    pub mail: crate::mail::MailSettings,
    pub log: LogConfig,
}

#[derive(Clone)]
pub struct DatabaseConfig {
    /// May carry a password, so it is kept secret.
    pub url: Secret,
    pub pool_size: u32,
}

/// Where `.crate` files are kept: a folder (`WHARF_STORAGE_DIR`), or an S3-compatible bucket
/// (`WHARF_STORAGE_URL=s3://…`).
#[derive(Clone, Debug)]
pub enum StorageConfig {
    Fs { dir: PathBuf },
    S3(S3Config),
}

#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// Prepended (with a `/`) to every key; no leading or trailing `/`.
    pub prefix: Option<String>,
    /// An S3-compatible server; `None` is AWS.
    pub endpoint: Option<String>,
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`); `None` leaves it to the client (us-east-1).
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`; `None` leaves it to the AWS credential
    /// chain of the environment (web identity, ECS/EKS container credentials, instance
    /// metadata).
    pub credentials: Option<S3Credentials>,
    /// Downloads redirect to a presigned URL valid this long; `None` streams them.
    pub presigned_downloads: Option<Duration>,
}

#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key id is not a secret, but it is not needed in logs either.
        f.write_str("[static credentials]")
    }
}

impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageConfig::Fs { dir } => write!(f, "{}", dir.display()),
            StorageConfig::S3(s3) => {
                write!(f, "s3://{}", s3.bucket)?;
                if let Some(prefix) = &s3.prefix {
                    write!(f, "/{prefix}")?;
                }
                if let Some(endpoint) = &s3.endpoint {
                    write!(f, " at {endpoint}")?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Clone)]
pub struct GitHubConfig {
    /// `None` turns GitHub login off.
    pub oauth: Option<GitHubOAuth>,
    pub url: Url,
    pub api_url: Url,
    /// `WHARF_GITHUB_ALLOWED_ORGS`: only active members of these organisations may log in;
    /// empty: any GitHub account may.
    pub allowed_orgs: Vec<String>,
}

#[derive(Clone)]
pub struct GitHubOAuth {
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Clone, Debug)]
pub struct TrustpubConfig {
    pub audience: String,
    pub audience_derived: bool,
    /// The trusted issuers of each provider, from its setting
    /// ([`crate::trustpub::ProviderKind::issuer_setting`]).
    pub issuers: BTreeMap<ProviderKind, Vec<String>>,
    pub token_ttl: Duration,
    /// How long a pending publisher (a config for a crate that does not exist yet) waits for
    /// its first publish.
    pub pending_ttl: Duration,
}

impl TrustpubConfig {
    /// The trusted issuers of `kind`.
    pub fn issuers_of(&self, kind: ProviderKind) -> &[String] {
        self.issuers.get(&kind).map_or(&[], Vec::as_slice)
    }
}

/// Whether `key` is a setting: one of [`KEYS`] or a provider's issuer setting.
fn is_key(key: &str) -> bool {
    KEYS.contains(&key)
        || ProviderKind::ALL
            .iter()
            .any(|kind| kind.issuer_setting().key == key)
}

/// Every setting's key, for messages.
fn all_keys() -> Vec<&'static str> {
    let mut keys = KEYS.to_vec();
    keys.extend(ProviderKind::ALL.iter().map(|k| k.issuer_setting().key));
    keys
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_crate_size: u64,
    pub max_unpacked_size: u64,
    /// Publishes that may read and verify a crate file at once (each holds up to
    /// `max_crate_size` in memory and inflates up to `max_unpacked_size`).
    pub max_concurrent_publishes: usize,
    /// How long a publish waits for one of those slots before it is refused with 503, and how
    /// long an upload may send nothing before it is cut off with 408.
    pub publish_queue_timeout: Duration,
    /// Bytes of rendered index files kept in memory (`WHARF_INDEX_CACHE_SIZE`); 0 turns the
    /// cache off.
    pub index_cache_size: u64,
    /// Bytes of small `.crate` files kept in memory (`WHARF_DOWNLOAD_CACHE_SIZE`); 0 turns the
    /// cache off.
    pub download_cache_size: u64,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub filter: String,
    pub json: bool,
}

/// A secret whose `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url.as_str())
            .field("data_dir", &self.data_dir)
            .field("database", &self.database.backend_name())
            .field("storage", &self.storage)
            .field("github_login", &self.github.oauth.is_some())
            .field("github_allowed_orgs", &self.github.allowed_orgs)
            .field("auth_required", &self.auth_required)
            .field("trustpub", &self.trustpub)
            .field("limits", &self.limits)
            .field("rate_limits", &self.rate_limits)
            .field("metrics_bind", &self.metrics_bind)
            .field("mail", &self.mail)
            .field(
                "required_metadata",
                &self
                    .required_metadata
                    .fields()
                    .map(MetadataField::key)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl DatabaseConfig {
    pub fn is_postgres(&self) -> bool {
        let url = self.url.expose();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    pub fn backend_name(&self) -> &'static str {
        if self.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

/// Raw `key → value` settings before they are checked.
#[derive(Default, Debug, Clone)]
pub struct RawSettings(BTreeMap<String, String>);

impl RawSettings {
    /// Reads the optional TOML file, then the process environment over it.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut raw = match config_file {
            Some(path) => Self::from_toml_file(path)?,
            None => Self::default(),
        };
        raw.merge_env(std::env::vars());
        Ok(raw)
    }

    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        Self::from_toml_str(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        let table: toml::Table = toml::from_str(text).context("invalid TOML")?;
        let mut raw = Self::default();
        for (key, value) in table {
            if !is_key(&key) && !AWS_KEYS.contains(&key.as_str()) {
                bail!(
                    "unknown configuration key `{key}` (known keys: {}, {})",
                    all_keys().join(", "),
                    AWS_KEYS.join(", ")
                );
            }
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .into_iter()
                    .map(|item| match item {
                        toml::Value::String(s) => Ok(s),
                        other => Err(anyhow!("`{key}`: expected strings, found {other}")),
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .join(","),
                other => bail!("`{key}`: unsupported value {other}"),
            };
            raw.0.insert(key, value);
        }
        Ok(raw)
    }

    pub fn merge_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (name, value) in vars {
            let standard = name.to_ascii_lowercase();
            if name.starts_with("AWS_") && AWS_KEYS.contains(&standard.as_str()) {
                self.0.insert(standard, value);
                continue;
            }
            if let Some(key) = name.strip_prefix("WHARF_") {
                let key = key.to_ascii_lowercase();
                if is_key(&key) {
                    self.0.insert(key, value);
                }
            }
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// True when `key` has a non-empty value.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

impl Config {
    /// Reads the configuration from the environment and the optional file.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Self> {
        Self::from_settings(&RawSettings::load(config_file)?)
    }

    pub fn from_settings(raw: &RawSettings) -> anyhow::Result<Self> {
        let bind: SocketAddr = raw
            .get("bind")
            .unwrap_or("127.0.0.1:8080")
            .parse()
            .context("WHARF_BIND must be an address such as 127.0.0.1:8080")?;

        let public_url_derived = raw.get("public_url").is_none();
        let public_url = match raw.get("public_url") {
            Some(url) => parse_url("WHARF_PUBLIC_URL", url)?,
            None => parse_url("WHARF_PUBLIC_URL", &format!("http://{bind}"))?,
        };
        if !matches!(public_url.scheme(), "http" | "https") {
            bail!("WHARF_PUBLIC_URL must be an http:// or https:// URL");
        }

        let data_dir = PathBuf::from(raw.get("data_dir").unwrap_or("./wharf-data"));
        let database_url = match raw.get("database_url") {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}", data_dir.join("wharf.db").display()),
        };
        if !(database_url.starts_with("sqlite://")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("WHARF_DATABASE_URL must start with sqlite:// or postgres://");
        }
        let pool_size = match raw.get("database_pool_size") {
            Some(n) => n
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .context("WHARF_DATABASE_POOL_SIZE must be a number from 1 to 1000")?,
            None => 16,
        };

        let storage = storage_config(raw, &data_dir)?;

        let session_key = raw.get("session_key").map(Secret::new);
        let session_ttl = match raw.get("session_ttl") {
            Some(ttl) => humantime::parse_duration(ttl).with_context(|| {
                format!("WHARF_SESSION_TTL: `{ttl}` is not a duration such as 14d or 8h")
            })?,
            None => Duration::from_secs(14 * 24 * 60 * 60),
        };
        if session_ttl > MAX_SESSION_TTL || session_ttl < Duration::from_secs(1) {
            bail!("WHARF_SESSION_TTL must be between 1s and 365d");
        }

        let oauth = match (raw.get("github_client_id"), raw.get("github_client_secret")) {
            (Some(id), Some(secret)) => Some(GitHubOAuth {
                client_id: id.to_owned(),
                client_secret: Secret::new(secret),
            }),
            (None, None) => None,
            _ => bail!(
                "set both WHARF_GITHUB_CLIENT_ID and WHARF_GITHUB_CLIENT_SECRET to turn GitHub login on, or neither"
            ),
        };
        let github = GitHubConfig {
            oauth,
            url: parse_url(
                "WHARF_GITHUB_URL",
                raw.get("github_url").unwrap_or("https://github.com"),
            )?,
            api_url: parse_url(
                "WHARF_GITHUB_API_URL",
                raw.get("github_api_url")
                    .unwrap_or("https://api.github.com"),
            )?,
            allowed_orgs: allowed_orgs(raw.get("github_allowed_orgs").unwrap_or_default())?,
        };
        let auth_required = match raw.get("auth_required").map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => bail!(
                "WHARF_AUTH_REQUIRED must be `true` (a private registry: reading needs a credential) or `false`, not `{other}`"
            ),
        };

        let audience = match raw.get("trustpub_audience") {
            Some(aud) => aud.to_owned(),
            None => host_with_port(&public_url)?,
        };
        let audience_derived = raw.get("trustpub_audience").is_none();
        let mut issuers: BTreeMap<ProviderKind, Vec<String>> = BTreeMap::new();
        for kind in ProviderKind::ALL {
            let setting = kind.issuer_setting();
            let env = setting.env_name();
            let value = raw.get(setting.key).unwrap_or(setting.default);
            let values: Vec<&str> = if setting.many {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            } else {
                vec![value]
            };
            let checked = values
                .into_iter()
                .map(|issuer| check_issuer(&env, issuer))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for issuer in &checked {
                if let Some((other, _)) = issuers.iter().find(|(_, i)| i.contains(issuer)) {
                    bail!(
                        "{env}: the issuer `{issuer}` is also configured for {}; an issuer belongs to one CI provider",
                        other.label()
                    );
                }
            }
            issuers.insert(*kind, checked);
        }
        let token_ttl = match raw.get("trustpub_token_ttl") {
            Some(ttl) => humantime::parse_duration(ttl).with_context(|| {
                format!("WHARF_TRUSTPUB_TOKEN_TTL: `{ttl}` is not a duration such as 30m")
            })?,
            None => Duration::from_secs(30 * 60),
        };
        if token_ttl > MAX_TRUSTPUB_TOKEN_TTL || token_ttl < Duration::from_secs(60) {
            bail!("WHARF_TRUSTPUB_TOKEN_TTL must be between 1m and 6h");
        }
        let pending_ttl = match raw.get("pending_publisher_ttl") {
            Some(ttl) => humantime::parse_duration(ttl).with_context(|| {
                format!("WHARF_PENDING_PUBLISHER_TTL: `{ttl}` is not a duration such as 30d")
            })?,
            None => DEFAULT_PENDING_PUBLISHER_TTL,
        };
        if pending_ttl > MAX_PENDING_PUBLISHER_TTL || pending_ttl < Duration::from_secs(60) {
            bail!("WHARF_PENDING_PUBLISHER_TTL must be between 1m and 365d");
        }

        let limits = Limits {
            max_crate_size: parse_size(
                "WHARF_MAX_CRATE_SIZE",
                raw.get("max_crate_size").unwrap_or("10MiB"),
            )?,
            max_unpacked_size: parse_size(
                "WHARF_MAX_UNPACKED_SIZE",
                raw.get("max_unpacked_size").unwrap_or("512MiB"),
            )?,
            max_concurrent_publishes: match raw.get("max_concurrent_publishes") {
                Some(n) => n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .context("WHARF_MAX_CONCURRENT_PUBLISHES must be a number from 1 to 1024")?,
                None => 4,
            },
            publish_queue_timeout: match raw.get("publish_queue_timeout") {
                Some(wait) => humantime::parse_duration(wait)
                    .ok()
                    .filter(|wait| {
                        (Duration::from_secs(1)..=Duration::from_secs(600)).contains(wait)
                    })
                    .with_context(|| {
                        format!(
                            "WHARF_PUBLISH_QUEUE_TIMEOUT: `{wait}` is not a duration from 1s to 10m, such as 30s"
                        )
                    })?,
                None => Duration::from_secs(30),
            },
            index_cache_size: parse_size(
                "WHARF_INDEX_CACHE_SIZE",
                raw.get("index_cache_size").unwrap_or("64MiB"),
            )?,
            download_cache_size: parse_size(
                "WHARF_DOWNLOAD_CACHE_SIZE",
                raw.get("download_cache_size").unwrap_or("16MiB"),
            )?,
        };
        if limits.download_cache_size > 64 * 1024 * 1024 * 1024 {
            bail!("WHARF_DOWNLOAD_CACHE_SIZE must be at most 64GiB (0 turns the cache off)");
        }
        if limits.index_cache_size > 64 * 1024 * 1024 * 1024 {
            bail!("WHARF_INDEX_CACHE_SIZE must be at most 64GiB (0 turns the cache off)");
        }
        if limits.max_crate_size == 0 || limits.max_crate_size > 1024 * 1024 * 1024 {
            bail!("WHARF_MAX_CRATE_SIZE must be between 1 byte and 1GiB");
        }

        let required_metadata =
            RequiredMetadata::parse_list(raw.get("required_metadata").unwrap_or_default())
                .context("WHARF_REQUIRED_METADATA")?;

        let rate_limits = rate_limit_config(raw)?;
        let metrics_bind = match raw.get("metrics_bind") {
            Some(address) => Some(address.parse::<SocketAddr>().with_context(|| {
                format!("WHARF_METRICS_BIND: `{address}` is not an address such as 127.0.0.1:9090")
            })?),
            None => None,
        };
        if metrics_bind.is_some_and(|metrics| metrics == bind && bind.port() != 0) {
            bail!(
                "WHARF_METRICS_BIND must differ from WHARF_BIND: metrics are served on a listener of their own"
            );
        }

        let mail = crate::mail::MailSettings::parse(
            raw.get("smtp_url"),
            raw.get("mail_from"),
            &public_url,
        )?;

        let log = LogConfig {
            filter: raw.get("log").unwrap_or("info").to_owned(),
            json: match raw.get("log_format") {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => bail!("WHARF_LOG_FORMAT must be `text` or `json`, not `{other}`"),
            },
        };

        Ok(Config {
            bind,
            public_url,
            public_url_derived,
            data_dir,
            database: DatabaseConfig {
                url: Secret::new(database_url),
                pool_size,
            },
            storage,
            session_key,
            session_ttl,
            github,
            auth_required,
            trustpub: TrustpubConfig {
                audience,
                audience_derived,
                issuers,
                token_ttl,
                pending_ttl,
            },
            limits,
            required_metadata,
            rate_limits,
            metrics_bind,
            mail,
            log,
        })
    }

    /// After binding to port 0: records the real port, and in the URL and audience derived
    /// from the bind address.
    pub fn set_bound_port(&mut self, port: u16) -> anyhow::Result<()> {
        self.bind.set_port(port);
        if self.public_url_derived {
            self.public_url = parse_url("WHARF_PUBLIC_URL", &format!("http://{}", self.bind))?;
            if self.trustpub.audience_derived {
                self.trustpub.audience = host_with_port(&self.public_url)?;
            }
        }
        Ok(())
    }

    /// The public URL without a trailing slash, for building links.
    pub fn base_url(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// `WHARF_GITHUB_ALLOWED_ORGS`: comma-separated GitHub organisation names (letters, digits and
/// single inner hyphens, at most 39 characters, as GitHub allows), without duplicates.
fn allowed_orgs(value: &str) -> anyhow::Result<Vec<String>> {
    let mut orgs: Vec<String> = Vec::new();
    for org in value
        .split(',')
        .map(str::trim)
        .filter(|org| !org.is_empty())
    {
        let valid = org.len() <= 39
            && org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !org.starts_with('-')
            && !org.ends_with('-')
            && !org.contains("--");
        if !valid {
            bail!(
                "WHARF_GITHUB_ALLOWED_ORGS: `{org}` is not a GitHub organisation name (letters, digits and single hyphens, at most 39 characters); list names separated by commas, such as acme,acme-labs"
            );
        }
        if !orgs.iter().any(|known| known.eq_ignore_ascii_case(org)) {
            orgs.push(org.to_owned());
        }
    }
    Ok(orgs)
}

/// The default limits: generous enough for CI bursts (a workspace of many crates released by
/// one job, a matrix of jobs exchanging at once behind one NAT address).
const DEFAULT_RATE_LIMITS: [(Action, &str); 4] = [
    (Action::PublishPerCrate, "30/10m"),
    (Action::PublishPerPublisher, "300/10m"),
    (Action::ExchangePerAddress, "300/1m"),
    (Action::ExchangePerPublisher, "60/1m"),
];

/// `WHARF_RATE_LIMIT_*` and `WHARF_TRUSTED_PROXIES`.
fn rate_limit_config(raw: &RawSettings) -> anyhow::Result<RateLimitConfig> {
    let mut config = RateLimitConfig::default();
    for (action, default) in DEFAULT_RATE_LIMITS {
        let setting = action.setting();
        let key = setting
            .strip_prefix("WHARF_")
            .unwrap_or(setting)
            .to_ascii_lowercase();
        let rate = Rate::parse(raw.get(&key).unwrap_or(default))
            .map_err(|error| anyhow!("{setting}: {error}"))?;
        let slot: &mut Option<Rate> = match action {
            Action::PublishPerCrate => &mut config.publishes_per_crate,
            Action::PublishPerPublisher => &mut config.publishes_per_publisher,
            Action::ExchangePerAddress => &mut config.exchanges_per_address,
            Action::ExchangePerPublisher => &mut config.exchanges_per_publisher,
        };
        *slot = rate;
    }
    config.trusted_proxies = raw
        .get("trusted_proxies")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    anyhow!(
                        "WHARF_TRUSTED_PROXIES: `{entry}` is not an address or a CIDR such as 10.0.0.0/8 or fd00::/8"
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(config)
}

/// `WHARF_STORAGE_URL` (`s3://BUCKET[/PREFIX]`) with its S3 settings, or else the folder
/// `WHARF_STORAGE_DIR`.
fn storage_config(raw: &RawSettings, data_dir: &Path) -> anyhow::Result<StorageConfig> {
    let Some(url) = raw.get("storage_url") else {
        for key in ["s3_endpoint", "s3_presigned_downloads"] {
            if raw.contains(key) {
                bail!(
                    "WHARF_{} is set, but WHARF_STORAGE_URL is not: set WHARF_STORAGE_URL=s3://BUCKET[/PREFIX] to keep crate files in object storage, or unset WHARF_{}",
                    key.to_ascii_uppercase(),
                    key.to_ascii_uppercase()
                );
            }
        }
        let dir = raw
            .get("storage_dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("crates"));
        return Ok(StorageConfig::Fs { dir });
    };
    if raw.contains("storage_dir") {
        bail!(
            "set WHARF_STORAGE_DIR (crate files in a folder) or WHARF_STORAGE_URL (crate files in object storage), not both"
        );
    }
    let (bucket, prefix) = parse_storage_url(url)?;
    let endpoint = raw
        .get("s3_endpoint")
        .map(|endpoint| check_https_or_loopback("WHARF_S3_ENDPOINT", endpoint))
        .transpose()?;
    let region = raw
        .get("aws_region")
        .or_else(|| raw.get("aws_default_region"))
        .map(|region| region.trim().to_owned());
    let credentials = match (
        raw.get("aws_access_key_id"),
        raw.get("aws_secret_access_key"),
    ) {
        (Some(id), Some(secret)) => Some(S3Credentials {
            access_key_id: id.trim().to_owned(),
            secret_access_key: Secret::new(secret.trim()),
            session_token: raw.get("aws_session_token").map(Secret::new),
        }),
        (None, None) => None,
        _ => bail!(
            "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the object storage, or neither (to use the credentials of the environment: an IAM role of the instance or container)"
        ),
    };
    let presigned_downloads = raw
        .get("s3_presigned_downloads")
        .map(|ttl| {
            humantime::parse_duration(ttl.trim())
                .ok()
                .filter(|ttl| (Duration::from_secs(60)..=MAX_PRESIGNED_DOWNLOAD_TTL).contains(ttl))
                .with_context(|| {
                    format!(
                        "WHARF_S3_PRESIGNED_DOWNLOADS: `{ttl}` is not a duration from 1m to 7d, such as 15m (how long a download's presigned URL stays valid); unset it to stream downloads through Wharf"
                    )
                })
        })
        .transpose()?;
    Ok(StorageConfig::S3(S3Config {
        bucket,
        prefix,
        endpoint,
        region,
        credentials,
        presigned_downloads,
    }))
}

/// `s3://BUCKET[/PREFIX]` → the bucket and the prefix (without surrounding `/`).
fn parse_storage_url(value: &str) -> anyhow::Result<(String, Option<String>)> {
    let expected = "WHARF_STORAGE_URL must look like s3://BUCKET or s3://BUCKET/PREFIX";
    let url = Url::parse(value.trim()).with_context(|| format!("{expected}, not `{value}`"))?;
    if url.scheme() != "s3" {
        bail!(
            "{expected}, not `{value}` (only S3-compatible object storage is supported; for a folder, set WHARF_STORAGE_DIR instead)"
        );
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.port().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        bail!(
            "{expected}, not `{value}`: credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the server in WHARF_S3_ENDPOINT"
        );
    }
    let bucket = url.host_str().unwrap_or_default();
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid_bucket {
        bail!(
            "WHARF_STORAGE_URL: `{bucket}` is not a bucket name (3 to 63 lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit)"
        );
    }
    let path = url.path().trim_matches('/');
    let prefix = if path.is_empty() {
        None
    } else {
        let valid = path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
        if !valid {
            bail!(
                "WHARF_STORAGE_URL: the prefix `{path}` must be folder names (ASCII letters, digits, `-`, `_`, `.`) separated by single `/`, without `.` or `..`"
            );
        }
        Some(path.to_owned())
    };
    Ok((bucket.to_owned(), prefix))
}

fn parse_url(name: &str, value: &str) -> anyhow::Result<Url> {
    Url::parse(value).with_context(|| format!("{name}: `{value}` is not a URL"))
}

/// `host` or `host:port` when the port is not the scheme's default.
fn host_with_port(url: &Url) -> anyhow::Result<String> {
    let host = url.host_str().context("WHARF_PUBLIC_URL has no host")?;
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

fn parse_size(name: &str, value: &str) -> anyhow::Result<u64> {
    let size: bytesize::ByteSize = value
        .trim()
        .parse()
        .map_err(|e| anyhow!("{name}: `{value}` is not a size such as 10MiB ({e})"))?;
    Ok(size.as_u64())
}

/// An issuer must be `https://`, or `http://` on a loopback host (for tests and local trials).
pub fn check_issuer(name: &str, value: &str) -> anyhow::Result<String> {
    check_https_or_loopback(name, value)
}

/// A URL of a server Wharf talks to (an issuer, an S3 endpoint): `https://`, or `http://` on a
/// loopback host (for tests and local trials). Returned without a trailing `/`.
pub fn check_https_or_loopback(name: &str, value: &str) -> anyhow::Result<String> {
    let url = parse_url(name, value)?;
    let trimmed = value.trim_end_matches('/').to_owned();
    match url.scheme() {
        "https" => Ok(trimmed),
        "http" if is_loopback(&url) => Ok(trimmed),
        _ => bail!(
            "{name}: `{value}` must be an https:// URL (http:// is allowed only on a loopback host)"
        ),
    }
}

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        let mut raw = RawSettings::default();
        for (k, v) in pairs {
            raw.set(k, *v);
        }
        Config::from_settings(&raw)
    }

    #[test]
    fn defaults_start_on_loopback_with_sqlite() -> anyhow::Result<()> {
        let config = config(&[])?;
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(
            config.database.url.expose(),
            "sqlite://./wharf-data/wharf.db"
        );
        assert!(
            matches!(&config.storage, StorageConfig::Fs { dir } if dir == Path::new("./wharf-data/crates"))
        );
        assert_eq!(config.trustpub.audience, "127.0.0.1:8080");
        assert_eq!(config.trustpub.token_ttl, Duration::from_secs(1800));
        assert_eq!(config.session_ttl, Duration::from_secs(14 * 24 * 60 * 60));
        assert_eq!(config.limits.max_crate_size, 10 * 1024 * 1024);
        assert!(config.github.oauth.is_none());
        assert!(config.required_metadata.is_empty());
        Ok(())
    }

    #[test]
    fn required_metadata_is_a_list_of_known_fields() -> anyhow::Result<()> {
        let listed = config(&[("required_metadata", "description,license")])?;
        assert_eq!(
            listed.required_metadata,
            RequiredMetadata::new([MetadataField::Description, MetadataField::License])
        );

        let err = config(&[("required_metadata", "description,licence")])
            .map(|_| ())
            .expect_err("an unknown field is refused");
        let message = format!("{err:#}");
        assert!(
            message.starts_with("WHARF_REQUIRED_METADATA: unknown metadata field `licence`;"),
            "{message}"
        );

        let raw = RawSettings::from_toml_str("required_metadata = [\"description\", \"readme\"]")?;
        assert_eq!(
            Config::from_settings(&raw)?.required_metadata,
            RequiredMetadata::new([MetadataField::Description, MetadataField::Readme])
        );
        Ok(())
    }

    fn s3_of(config: &Config) -> &S3Config {
        match &config.storage {
            StorageConfig::S3(s3) => s3,
            other => panic!("expected S3 storage, got {other:?}"),
        }
    }

    #[test]
    fn a_storage_url_selects_a_bucket_and_a_prefix() -> anyhow::Result<()> {
        let configured = config(&[
            ("storage_url", "s3://crates.example/registry/prod/"),
            ("s3_endpoint", "https://garage.example.com:3900/"),
            ("aws_access_key_id", "GK31c2f218a2e44f485b94239e"),
            ("aws_secret_access_key", "very-secret"),
            ("aws_region", "garage"),
            ("s3_presigned_downloads", "15m"),
        ])?;
        let s3 = s3_of(&configured);
        assert_eq!(s3.bucket, "crates.example");
        assert_eq!(s3.prefix.as_deref(), Some("registry/prod"));
        assert_eq!(
            s3.endpoint.as_deref(),
            Some("https://garage.example.com:3900")
        );
        assert_eq!(s3.region.as_deref(), Some("garage"));
        assert_eq!(s3.presigned_downloads, Some(Duration::from_secs(900)));
        assert_eq!(
            configured.storage.to_string(),
            "s3://crates.example/registry/prod at https://garage.example.com:3900"
        );
        let debug = format!("{configured:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(!debug.contains("GK31c2f218a2e44f485b94239e"), "{debug}");

        let plain = config(&[("storage_url", "s3://wharf")])?;
        let s3 = s3_of(&plain);
        assert_eq!((s3.prefix.as_deref(), s3.endpoint.as_deref()), (None, None));
        assert!(s3.credentials.is_none() && s3.presigned_downloads.is_none());
        Ok(())
    }

    #[test]
    fn bad_storage_settings_are_refused_saying_what_to_set() {
        for (pairs, expected) in [
            (
                &[("storage_url", "https://s3.amazonaws.com/bucket")][..],
                "WHARF_STORAGE_URL must look like s3://BUCKET or s3://BUCKET/PREFIX",
            ),
            (
                &[("storage_url", "s3://Bad_Bucket")],
                "`Bad_Bucket` is not a bucket name",
            ),
            (&[("storage_url", "s3://ab")], "`ab` is not a bucket name"),
            (
                &[("storage_url", "s3://key:secret@bucket")],
                "credentials go in AWS_ACCESS_KEY_ID",
            ),
            (
                &[("storage_url", "s3://bucket/a//b")],
                "must be folder names",
            ),
            (
                &[
                    ("storage_url", "s3://bucket"),
                    ("storage_dir", "/srv/crates"),
                ],
                "set WHARF_STORAGE_DIR (crate files in a folder) or WHARF_STORAGE_URL",
            ),
            (
                &[("s3_endpoint", "https://s3.example.com")],
                "WHARF_S3_ENDPOINT is set, but WHARF_STORAGE_URL is not",
            ),
            (
                &[
                    ("storage_url", "s3://bucket"),
                    ("s3_endpoint", "http://minio.example.com:9000"),
                ],
                "WHARF_S3_ENDPOINT: `http://minio.example.com:9000` must be an https:// URL (http:// is allowed only on a loopback host)",
            ),
            (
                &[
                    ("storage_url", "s3://bucket"),
                    ("aws_access_key_id", "AKIA"),
                ],
                "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ),
            (
                &[
                    ("storage_url", "s3://bucket"),
                    ("s3_presigned_downloads", "8d"),
                ],
                "WHARF_S3_PRESIGNED_DOWNLOADS: `8d` is not a duration from 1m to 7d",
            ),
            (
                &[
                    ("storage_url", "s3://bucket"),
                    ("s3_presigned_downloads", "yes"),
                ],
                "WHARF_S3_PRESIGNED_DOWNLOADS: `yes` is not a duration",
            ),
        ] {
            let err = config(pairs).map(|_| ()).expect_err("refused");
            let message = format!("{err:#}");
            assert!(message.contains(expected), "{pairs:?}: {message}");
        }
        assert!(
            config(&[
                ("storage_url", "s3://bucket"),
                ("s3_endpoint", "http://127.0.0.1:9000")
            ])
            .is_ok(),
            "plain http on loopback"
        );
    }

    #[test]
    fn aws_credentials_come_from_the_standard_variables() -> anyhow::Result<()> {
        let mut raw = RawSettings::from_toml_str(
            "storage_url = \"s3://bucket\"\naws_region = \"eu-west-1\"",
        )?;
        raw.merge_env([
            ("AWS_ACCESS_KEY_ID".to_owned(), "AKIAEXAMPLE".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "secret".to_owned()),
            ("AWS_SESSION_TOKEN".to_owned(), "session".to_owned()),
            ("AWS_DEFAULT_REGION".to_owned(), "us-west-2".to_owned()),
            ("WHARF_AWS_REGION".to_owned(), "ignored".to_owned()),
            ("AWS_PROFILE".to_owned(), "ignored".to_owned()),
        ]);
        let config = Config::from_settings(&raw)?;
        let s3 = s3_of(&config);
        let credentials = s3.credentials.as_ref().expect("static credentials");
        assert_eq!(credentials.access_key_id, "AKIAEXAMPLE");
        assert_eq!(credentials.secret_access_key.expose(), "secret");
        assert_eq!(
            credentials.session_token.as_ref().map(Secret::expose),
            Some("session")
        );
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"), "AWS_REGION wins");
        Ok(())
    }

    #[test]
    fn audience_omits_the_default_port() -> anyhow::Result<()> {
        let config = config(&[("public_url", "https://crates.example.com")])?;
        assert_eq!(config.trustpub.audience, "crates.example.com");
        Ok(())
    }

    #[test]
    fn plain_http_issuers_are_refused_unless_loopback() {
        assert!(config(&[("trustpub_gitlab_issuers", "http://gitlab.example.com")]).is_err());
        assert!(config(&[("trustpub_gitlab_issuers", "http://127.0.0.1:9999")]).is_ok());
        assert!(config(&[("trustpub_github_issuer", "http://localhost:1")]).is_ok());
    }

    #[test]
    fn every_provider_has_its_issuer_setting_and_an_issuer_belongs_to_one() -> anyhow::Result<()> {
        let defaults = config(&[])?;
        let issuers = |kind| defaults.trustpub.issuers_of(kind).to_vec();
        assert_eq!(
            issuers(ProviderKind::GitHub),
            ["https://token.actions.githubusercontent.com"]
        );
        assert_eq!(issuers(ProviderKind::GitLab), ["https://gitlab.com"]);
        assert_eq!(
            issuers(ProviderKind::Buildkite),
            ["https://agent.buildkite.com"]
        );

        let mut raw = RawSettings::default();
        raw.merge_env([(
            "WHARF_TRUSTPUB_BUILDKITE_ISSUER".to_owned(),
            "http://127.0.0.1:9/buildkite/".to_owned(),
        )]);
        let config = Config::from_settings(&raw)?;
        assert_eq!(
            config.trustpub.issuers_of(ProviderKind::Buildkite),
            ["http://127.0.0.1:9/buildkite"]
        );
        assert!(
            RawSettings::from_toml_str("trustpub_buildkite_issuer = \"https://bk.example\"")
                .is_ok()
        );
        assert!(
            config_error(&[("trustpub_buildkite_issuer", "http://bk.example.com")]).starts_with(
                "WHARF_TRUSTPUB_BUILDKITE_ISSUER: `http://bk.example.com` must be an https:// URL"
            )
        );
        assert_eq!(
            config_error(&[("trustpub_gitlab_issuers", "https://agent.buildkite.com")]),
            "WHARF_TRUSTPUB_BUILDKITE_ISSUER: the issuer `https://agent.buildkite.com` is also configured for GitLab CI; an issuer belongs to one CI provider"
        );
        Ok(())
    }

    fn config_error(pairs: &[(&str, &str)]) -> String {
        config(pairs)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    }

    #[test]
    fn token_ttl_is_bounded() {
        assert!(config(&[("trustpub_token_ttl", "7h")]).is_err());
        assert!(config(&[("trustpub_token_ttl", "6h")]).is_ok());
    }

    #[test]
    fn pending_publisher_ttl_is_a_bounded_duration() -> anyhow::Result<()> {
        assert_eq!(
            config(&[])?.trustpub.pending_ttl,
            Duration::from_secs(30 * 24 * 60 * 60)
        );
        assert_eq!(
            config(&[("pending_publisher_ttl", "2d")])?
                .trustpub
                .pending_ttl,
            Duration::from_secs(2 * 24 * 60 * 60)
        );
        assert!(config(&[("pending_publisher_ttl", "366d")]).is_err());
        assert!(config(&[("pending_publisher_ttl", "0s")]).is_err());
        assert_eq!(
            config_error(&[("pending_publisher_ttl", "soon")]),
            "WHARF_PENDING_PUBLISHER_TTL: `soon` is not a duration such as 30d: expected number at 0"
        );
        Ok(())
    }

    #[test]
    fn session_ttl_is_a_bounded_duration() -> anyhow::Result<()> {
        assert_eq!(
            config(&[("session_ttl", "8h")])?.session_ttl,
            Duration::from_secs(8 * 60 * 60)
        );
        assert!(config(&[("session_ttl", "366d")]).is_err());
        assert!(config(&[("session_ttl", "0s")]).is_err());
        assert!(config(&[("session_ttl", "forever")]).is_err());
        Ok(())
    }

    #[test]
    fn publish_concurrency_and_queue_timeout_have_bounded_defaults() -> anyhow::Result<()> {
        let limits = config(&[])?.limits;
        assert_eq!(limits.max_concurrent_publishes, 4);
        assert_eq!(limits.publish_queue_timeout, Duration::from_secs(30));
        let limits = config(&[
            ("max_concurrent_publishes", "16"),
            ("publish_queue_timeout", "2m"),
        ])?
        .limits;
        assert_eq!(limits.max_concurrent_publishes, 16);
        assert_eq!(limits.publish_queue_timeout, Duration::from_secs(120));
        for (key, value) in [
            ("max_concurrent_publishes", "0"),
            ("max_concurrent_publishes", "many"),
            ("publish_queue_timeout", "0s"),
            ("publish_queue_timeout", "1h"),
        ] {
            assert!(config(&[(key, value)]).is_err(), "{key}={value}");
        }
        Ok(())
    }

    #[test]
    fn rate_limits_have_generous_defaults_and_can_be_turned_off() -> anyhow::Result<()> {
        let limits = config(&[])?.rate_limits;
        let rate = |max, secs| {
            Some(Rate {
                max,
                window: Duration::from_secs(secs),
            })
        };
        assert_eq!(limits.publishes_per_crate, rate(30, 600));
        assert_eq!(limits.publishes_per_publisher, rate(300, 600));
        assert_eq!(limits.exchanges_per_address, rate(300, 60));
        assert_eq!(limits.exchanges_per_publisher, rate(60, 60));
        assert!(limits.trusted_proxies.is_empty());
        let limits = config(&[
            ("rate_limit_publishes_per_crate", "off"),
            ("rate_limit_publishes_per_publisher", "0"),
            ("rate_limit_exchanges_per_address", "5/2s"),
            ("rate_limit_exchanges_per_publisher", "1/1h"),
            ("trusted_proxies", "10.0.0.0/8, 192.0.2.7 ,fd00::/8"),
        ])?
        .rate_limits;
        assert_eq!(limits.publishes_per_crate, None);
        assert_eq!(limits.publishes_per_publisher, None);
        assert_eq!(limits.exchanges_per_address, rate(5, 2));
        assert_eq!(limits.exchanges_per_publisher, rate(1, 3600));
        let proxies: Vec<String> = limits
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]);

        let error = |key, value| {
            format!(
                "{:#}",
                config(&[(key, value)]).map(|_| ()).expect_err("refused")
            )
        };
        assert_eq!(
            error("rate_limit_publishes_per_crate", "30 per minute"),
            "WHARF_RATE_LIMIT_PUBLISHES_PER_CRATE: `30 per minute` is not a limit such as 30/10m (at most 30 per 10 minutes), or 0/off for none"
        );
        assert!(
            error("rate_limit_exchanges_per_address", "1/100ms")
                .starts_with("WHARF_RATE_LIMIT_EXCHANGES_PER_ADDRESS: `1/100ms`: the window must be whole seconds")
        );
        assert_eq!(
            error("trusted_proxies", "10.0.0.0/33"),
            "WHARF_TRUSTED_PROXIES: `10.0.0.0/33` is not an address or a CIDR such as 10.0.0.0/8 or fd00::/8"
        );
        Ok(())
    }

    #[test]
    fn the_metrics_listener_is_off_unless_set_and_apart_from_the_main_one() -> anyhow::Result<()> {
        assert_eq!(config(&[])?.metrics_bind, None);
        assert_eq!(
            config(&[("metrics_bind", "127.0.0.1:9090")])?.metrics_bind,
            Some("127.0.0.1:9090".parse()?)
        );
        assert!(
            format!(
                "{:#}",
                config(&[("metrics_bind", "9090")])
                    .map(|_| ())
                    .expect_err("refused")
            )
            .contains("not an address such as 127.0.0.1:9090")
        );
        assert!(
            format!(
                "{:#}",
                config(&[
                    ("bind", "127.0.0.1:8080"),
                    ("metrics_bind", "127.0.0.1:8080")
                ])
                .map(|_| ())
                .expect_err("refused")
            )
            .contains("must differ from WHARF_BIND")
        );
        Ok(())
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() -> anyhow::Result<()> {
        let config = config(&[
            ("github_client_id", "id"),
            ("github_client_secret", "very-secret"),
            ("database_url", "postgres://u:hunter2@db/wharf"),
        ])?;
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret"));
        assert!(!debug.contains("hunter2"));
        Ok(())
    }

    #[test]
    fn toml_keys_are_checked_and_environment_wins() -> anyhow::Result<()> {
        assert!(RawSettings::from_toml_str("bnid = \"x\"").is_err());
        let mut raw =
            RawSettings::from_toml_str("bind = \"127.0.0.1:9000\"\nmax_crate_size = \"1MiB\"")?;
        raw.merge_env([("WHARF_BIND".to_owned(), "127.0.0.1:9001".to_owned())]);
        let config = Config::from_settings(&raw)?;
        assert_eq!(config.bind.port(), 9001);
        assert_eq!(config.limits.max_crate_size, 1024 * 1024);
        Ok(())
    }

    #[test]
    fn a_private_registry_and_allowed_orgs_are_checked() -> anyhow::Result<()> {
        let open = config(&[])?;
        assert!(!open.auth_required);
        assert!(open.github.allowed_orgs.is_empty());

        let private = config(&[
            ("auth_required", "true"),
            ("github_allowed_orgs", " acme, acme-labs ,ACME,"),
        ])?;
        assert!(private.auth_required);
        assert_eq!(private.github.allowed_orgs, ["acme", "acme-labs"]);

        let error = |key: &str, value: &str| {
            config(&[(key, value)])
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default()
        };
        assert!(error("auth_required", "yes").contains("WHARF_AUTH_REQUIRED must be `true`"));
        for bad in ["-acme", "acme-", "ac--me", "acme/labs", &"a".repeat(40)] {
            assert!(
                error("github_allowed_orgs", bad).contains("WHARF_GITHUB_ALLOWED_ORGS"),
                "{bad} should be refused"
            );
        }
        Ok(())
    }
}
