//! Development mode: `wharf dev` runs a [`fake_github::FakeGitHub`] and a registry configured
//! against it, both on loopback, so Wharf can be tried (login, tokens, trusted publishers, a
//! trusted publish) without a GitHub app or a CI system. The integration tests use the same
//! fake.

pub mod fake_github;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::{Config, RawSettings};
use crate::startup::Application;
use fake_github::{FakeGitHub, FakeGitHubOptions};

/// Settings `wharf dev` starts from, before its own.
pub struct DevOptions {
    pub config_file: Option<PathBuf>,
    /// Port of the fake GitHub on 127.0.0.1 (0: any free port).
    pub github_port: u16,
}

/// The registry's settings for development: the environment and file as usual (the data dir
/// defaults to `./wharf-dev-data`), with GitHub pointed at the fake.
pub fn dev_config(mut raw: RawSettings, github: &FakeGitHub) -> anyhow::Result<Config> {
    if !raw.contains("data_dir") {
        raw.set("data_dir", "./wharf-dev-data");
    }
    raw.set("github_client_id", github.client_id())
        .set("github_client_secret", github.client_secret())
        .set("github_url", github.base_url())
        .set("github_api_url", github.base_url())
        .set("trustpub_github_issuer", github.issuer());
    let config = Config::from_settings(&raw)?;
    check_loopback(&config)?;
    Ok(config)
}

fn check_loopback(config: &Config) -> anyhow::Result<()> {
    if !config.bind.ip().is_loopback() {
        bail!(
            "`wharf dev` only listens on loopback (its login accepts anyone): set WHARF_BIND to 127.0.0.1:PORT, not {}",
            config.bind
        );
    }
    Ok(())
}

/// `wharf dev`: starts the fake GitHub, then the registry; serves until stopped.
pub async fn run(options: DevOptions) -> anyhow::Result<()> {
    let raw = RawSettings::load(options.config_file.as_deref())?;
    let plain = Config::from_settings(&raw)?;
    check_loopback(&plain)?;
    crate::telemetry::init(&plain.log);
    let github = FakeGitHub::start(FakeGitHubOptions {
        bind: SocketAddr::from(([127, 0, 0, 1], options.github_port)),
        ..FakeGitHubOptions::default()
    })?;
    let config = dev_config(raw, &github)?;
    let data_dir = config.data_dir.clone();
    let application = Application::build(config).context("cannot start the registry")?;
    let app = application.app();
    let url = app.config.base_url().to_owned();
    let audience = app.config.trustpub.audience.clone();
    println!(
        "\nWharf development mode (loopback only; the fake GitHub lets anyone log in)\n\n  registry:     {url}/\n  log in:       {url}/login  (pick any GitHub login)\n  fake GitHub:  {}/\n  ID tokens:    {}/_dev/id-token?audience={audience}\n  data:         {}\n\nPress Ctrl-C to stop.\n",
        github.base_url(),
        github.base_url(),
        data_dir.display(),
    );
    application
        .run_until_stopped()
        .await
        .context("the server failed")?;
    drop(github);
    Ok(())
}
