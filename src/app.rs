//! The shared application state, built once at startup and handed to handlers as `web::Data`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::auth::cache::TokenCache;
use crate::config::Config;
use crate::db::Database;
use crate::errors::{AppResult, busy, internal};
use crate::index_cache::IndexCache;
use crate::index_cache::downloads::DownloadCache;
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::storage::{self, Storage};
use crate::trustpub::{TrustpubSettings, Verifier};

pub struct App {
    pub config: Config,
    pub db: Database,
    pub storage: Arc<dyn Storage>,
    /// One HTTP client (connection pool) for every outbound call.
    pub http: reqwest::Client,
    /// Verifies CI ID tokens; holds the per-issuer key cache.
    pub verifier: Verifier,
    /// Bounds the publishes that read and verify a crate file at once.
    pub publish_slots: PublishSlots,
    /// Every Prometheus metric (served on `WHARF_METRICS_BIND` when set).
    pub metrics: Arc<Metrics>,
    /// Rate limits on publishes and exchanges, counted in the database.
    pub limiter: RateLimiter,
    /// Rendered index files in memory (see [`crate::index_cache`]).
    pub index_cache: Arc<IndexCache>,
    /// Small, hot `.crate` files in memory.
    pub download_cache: DownloadCache,
    /// Tokens found live in the last few seconds, for a private registry's reads
    /// ([`crate::auth::may_read`]); cleared on every revocation made here.
    pub token_cache: TokenCache,
}

/// When a publish refused for want of a slot should try again (`Retry-After`, seconds).
const PUBLISH_RETRY_AFTER: u64 = 60;

/// The publishes that may buffer and verify a crate file at once, so that a burst of uploads
/// costs bounded memory and CPU. A publish waits a bounded time for a slot, then gets 503.
pub struct PublishSlots {
    semaphore: Semaphore,
    slots: usize,
    wait: Duration,
}

impl PublishSlots {
    pub fn new(slots: usize, wait: Duration) -> Self {
        Self {
            semaphore: Semaphore::new(slots),
            slots,
            wait,
        }
    }

    /// A slot, held until the permit is dropped.
    pub async fn acquire(&self) -> AppResult<SemaphorePermit<'_>> {
        match tokio::time::timeout(self.wait, self.semaphore.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(internal(closed)),
            Err(_) => {
                tracing::warn!(slots = self.slots, "a publish waited too long for a slot");
                Err(busy(
                    format!(
                        "the registry is busy with other publishes (at most {} at once) and none finished within {}; try again in a minute",
                        self.slots,
                        humantime::format_duration(self.wait)
                    ),
                    PUBLISH_RETRY_AFTER,
                ))
            }
        }
    }
}

impl App {
    /// Connects to the database (running migrations) and opens the storage.
    pub fn build(config: Config) -> anyhow::Result<Self> {
        let db = Database::connect(&config.database)?;
        let applied = db.migrate()?;
        if applied > 0 {
            tracing::info!(migrations = applied, "database migrated");
        }
        let storage = storage::open(&config.storage)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client")?;
        let verifier = Verifier::new(
            http.clone(),
            TrustpubSettings {
                audience: config.trustpub.audience.clone(),
                issuers: config.trustpub.issuers.clone(),
            },
        );
        let publish_slots = PublishSlots::new(
            config.limits.max_concurrent_publishes,
            config.limits.publish_queue_timeout,
        );
        let metrics = Arc::new(Metrics::new(&db));
        let limiter = RateLimiter::new(config.rate_limits.clone(), metrics.clone());
        let index_cache = Arc::new(IndexCache::new(config.limits.index_cache_size));
        let download_cache = DownloadCache::new(config.limits.download_cache_size);
        Ok(Self {
            index_cache,
            download_cache,
            token_cache: TokenCache::default(),
            config,
            db,
            storage,
            http,
            verifier,
            publish_slots,
            metrics,
            limiter,
        })
    }
}
