//! The shared application state, built once at startup and handed to handlers as `web::Data`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::db::Database;
use crate::storage::{FsStorage, Storage};
use crate::trustpub::{TrustpubSettings, Verifier};

pub struct App {
    pub config: Config,
    pub db: Database,
    pub storage: Arc<dyn Storage>,
    /// One HTTP client (connection pool) for every outbound call.
    pub http: reqwest::Client,
    /// Verifies CI ID tokens; holds the per-issuer key cache.
    pub verifier: Verifier,
}

impl App {
    /// Connects to the database (running migrations) and opens the storage.
    pub fn build(config: Config) -> anyhow::Result<Self> {
        let db = Database::connect(&config.database)?;
        let applied = db.migrate()?;
        if applied > 0 {
            tracing::info!(migrations = applied, "database migrated");
        }
        let storage = FsStorage::new(&config.storage_dir).with_context(|| {
            format!(
                "cannot create the storage folder {}",
                config.storage_dir.display()
            )
        })?;
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
                github_issuer: config.trustpub.github_issuer.clone(),
                gitlab_issuers: config.trustpub.gitlab_issuers.clone(),
            },
        );
        Ok(Self {
            config,
            db,
            storage: Arc::new(storage),
            http,
            verifier,
        })
    }
}
