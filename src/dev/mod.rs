//! Development mode: `wharf dev` runs a [`fake_idp::FakeIdp`] and a registry configured
//! against it, both on loopback, so Wharf can be tried (login, tokens, trusted publishers, a
//! trusted publish from GitHub Actions or GitLab CI) without a GitHub app or a CI system. The
//! integration tests use the same fake.

pub mod fake_idp;

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::{Config, RawSettings};
use crate::startup::Application;
use fake_idp::{FakeIdp, FakeIdpOptions, Provider};

/// Settings `wharf dev` starts from, before its own.
pub struct DevOptions {
    pub config_file: Option<PathBuf>,
    /// Port of the fake identity provider on 127.0.0.1 (0: any free port).
    pub idp_port: u16,
}

/// The registry's settings for development: the environment and file as usual (the data dir
/// defaults to `./wharf-dev-data`), with GitHub (login, REST API, GitHub Actions issuer) and
/// the trusted GitLab and Buildkite issuers pointed at the fake.
pub fn dev_config(mut raw: RawSettings, idp: &FakeIdp) -> anyhow::Result<Config> {
    if !raw.contains("data_dir") {
        raw.set("data_dir", "./wharf-dev-data");
    }
    raw.set("github_client_id", idp.client_id())
        .set("github_client_secret", idp.client_secret())
        .set("github_url", idp.base_url())
        .set("github_api_url", idp.api_url())
        .set(
            "trustpub_github_issuer",
            idp.issuer_of(Provider::GitHub).url(),
        )
        .set(
            "trustpub_gitlab_issuers",
            idp.issuer_of(Provider::GitLab).url(),
        )
        .set(
            "trustpub_buildkite_issuer",
            idp.issuer_of(Provider::Buildkite).url(),
        );
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

/// `wharf dev`: starts the fake identity provider, then the registry; serves until stopped.
pub async fn run(options: DevOptions) -> anyhow::Result<()> {
    let raw = RawSettings::load(options.config_file.as_deref())?;
    let plain = Config::from_settings(&raw)?;
    check_loopback(&plain)?;
    crate::telemetry::init(&plain.log);
    let idp = FakeIdp::start_with(FakeIdpOptions::for_dev(options.idp_port))?;
    let config = dev_config(raw, &idp)?;
    let data_dir = config.data_dir.clone();
    let application = Application::build(config).context("cannot start the registry")?;
    let app = application.app();
    let url = app.config.base_url().to_owned();
    let audience = app.config.trustpub.audience.clone();
    let fake = idp.base_url();
    println!(
        "\nWharf development mode (loopback only; the fake GitHub lets anyone log in)\n\n  registry:     {url}/\n  log in:       {url}/login  (pick any GitHub login)\n  fake IdP:     {fake}/  (GitHub, GitLab and Buildkite issuers)\n  ID tokens:    {fake}/_dev/id-token?audience={audience}\n  data:         {}\n\nPress Ctrl-C to stop.\n",
        data_dir.display(),
    );
    application
        .run_until_stopped()
        .await
        .context("the server failed")?;
    drop(idp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trustpub::ProviderKind;

    #[test]
    fn dev_mode_points_github_gitlab_and_buildkite_at_the_fake() -> anyhow::Result<()> {
        let idp = FakeIdp::start_with(FakeIdpOptions::for_dev(0))?;
        let data = tempfile::tempdir()?;
        let mut raw = RawSettings::default();
        raw.set("bind", "127.0.0.1:0")
            .set("data_dir", data.path().to_string_lossy());

        let config = dev_config(raw, &idp)?;

        let base = idp.base_url();
        assert_eq!(config.github.url.as_str().trim_end_matches('/'), base);
        assert_eq!(config.github.api_url.as_str(), format!("{base}/api/v3"));
        assert_eq!(
            config.trustpub.issuers_of(ProviderKind::GitHub),
            [format!("{base}/_services/token")]
        );
        assert_eq!(
            config.trustpub.issuers_of(ProviderKind::GitLab),
            [format!("{base}/gitlab")]
        );
        assert_eq!(
            config.trustpub.issuers_of(ProviderKind::Buildkite),
            [format!("{base}/buildkite")]
        );
        assert!(config.github.oauth.is_some(), "GitHub login is on");
        Ok(())
    }

    #[test]
    fn the_fake_refuses_to_listen_beyond_loopback() {
        let options = FakeIdpOptions {
            bind: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            ..FakeIdpOptions::for_dev(0)
        };
        assert!(FakeIdp::start_with(options).is_err());
    }
}
