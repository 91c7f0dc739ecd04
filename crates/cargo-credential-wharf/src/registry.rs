//! The registry side: `config.json`, the token exchange and the revocation.

use std::time::Duration;

use anyhow::{Context as _, bail};
use cargo_credential::Secret;
use serde::{Deserialize, Serialize};
use url::Url;

/// Every request the provider makes gives up after this long.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The path of the Trusted Publishing token endpoint below the API base.
pub const TOKENS_PATH: &str = "api/v1/trusted_publishing/tokens";

/// The one HTTP client of a provider run: bounded timeouts, our user agent.
pub fn http_client() -> anyhow::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!(
            "cargo-credential-wharf/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .context("could not set up an HTTP client")
}

/// Where a registry's `config.json` lives, for a sparse index URL (`sparse+https://host/index/`).
/// `None` for other index kinds (git), whose configuration cannot be fetched over plain HTTP.
pub fn config_json_url(index_url: &str) -> anyhow::Result<Option<Url>> {
    let Some(index) = index_url.strip_prefix("sparse+") else {
        return Ok(None);
    };
    let mut index = Url::parse(index)
        .with_context(|| format!("the registry index URL `{index_url}` is not a valid URL"))?;
    if !index.path().ends_with('/') {
        let path = format!("{}/", index.path());
        index.set_path(&path);
    }
    Ok(Some(index.join("config.json")?))
}

/// What the provider needs from a registry's `config.json`.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The `api` base URL.
    pub api: Url,
    /// `auth-required`: reading the registry needs a token too.
    pub auth_required: bool,
}

/// Reads the `api` base URL from the registry's `config.json`.
pub fn api_base(http: &reqwest::blocking::Client, config_url: &Url) -> anyhow::Result<Url> {
    Ok(registry_config(http, config_url)?.api)
}

/// Reads the registry's `config.json`.
pub fn registry_config(
    http: &reqwest::blocking::Client,
    config_url: &Url,
) -> anyhow::Result<RegistryConfig> {
    #[derive(Deserialize)]
    struct ConfigJson {
        api: Option<String>,
        #[serde(rename = "auth-required", default)]
        auth_required: bool,
    }

    let response = http
        .get(config_url.clone())
        .send()
        .with_context(|| format!("could not fetch the registry configuration {config_url}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("could not fetch the registry configuration {config_url}: HTTP {status}");
    }
    let config: ConfigJson = response
        .json()
        .with_context(|| format!("the registry configuration {config_url} is not valid JSON"))?;
    let api = config.api.with_context(|| {
        format!("the registry configuration {config_url} has no `api`, so it cannot publish")
    })?;
    let api = Url::parse(&api)
        .with_context(|| format!("the registry configuration {config_url} has an invalid `api`"))?;
    Ok(RegistryConfig {
        api,
        auth_required: config.auth_required,
    })
}

/// The audience a registry expects in ID tokens: the API host, with the port when it is not the
/// scheme's default (the same rule Wharf uses for `WHARF_TRUSTPUB_AUDIENCE`).
pub fn default_audience(api: &Url) -> anyhow::Result<String> {
    let host = api
        .host_str()
        .with_context(|| format!("the registry API URL {api} has no host"))?;
    Ok(match api.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// `{api}/api/v1/trusted_publishing/tokens`, keeping any path prefix of the API base.
pub fn tokens_url(api: &Url) -> anyhow::Result<Url> {
    let mut base = api.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base.join(TOKENS_PATH)?)
}

/// Exchanges an ID token for a registry token.
pub fn exchange(
    http: &reqwest::blocking::Client,
    api: &Url,
    jwt: Secret<&str>,
) -> anyhow::Result<Secret<String>> {
    #[derive(Serialize)]
    struct ExchangeRequest<'a> {
        jwt: &'a str,
    }
    #[derive(Deserialize)]
    struct ExchangeResponse {
        token: Secret<String>,
    }

    let url = tokens_url(api)?;
    let response = http
        .post(url.clone())
        .json(&ExchangeRequest { jwt: jwt.expose() })
        .send()
        .with_context(|| {
            format!("could not reach the registry at {url} to exchange the ID token")
        })?;
    let status = response.status();
    if status.is_client_error() {
        let body = response.text().unwrap_or_default();
        bail!(
            "the registry refused the Trusted Publishing token exchange: {}",
            error_detail(&body)
        );
    }
    if !status.is_success() {
        let body = response.text().unwrap_or_default();
        bail!(
            "the registry could not complete the Trusted Publishing token exchange \
             (HTTP {status}): {}",
            error_detail(&body)
        );
    }
    let body: ExchangeResponse = response
        .json()
        .context("the registry answered the token exchange without a `token`")?;
    if body.token.as_deref().expose().is_empty() {
        bail!("the registry answered the token exchange with an empty token");
    }
    Ok(body.token)
}

/// What became of a revocation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The registry confirmed it (2xx).
    Revoked,
    /// The registry refused it (4xx): the token is unknown, expired or already revoked, so it is
    /// unusable either way and asking again will not help.
    Refused(String),
}

/// Revokes a registry token (`DELETE {api}/api/v1/trusted_publishing/tokens` with
/// `Authorization: Bearer <token>`, the form crates.io requires and Wharf accepts). Network
/// failures and 5xx answers are errors: the token may still be live.
pub fn revoke(
    http: &reqwest::blocking::Client,
    api: &Url,
    token: Secret<&str>,
) -> anyhow::Result<Revocation> {
    let url = tokens_url(api)?;
    let response = http
        .delete(url.clone())
        .bearer_auth(token.expose())
        .send()
        .with_context(|| format!("could not reach the registry at {url} to revoke a token"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(Revocation::Revoked);
    }
    let body = response.text().unwrap_or_default();
    if status.is_client_error() {
        return Ok(Revocation::Refused(format!(
            "HTTP {status}: {}",
            error_detail(&body)
        )));
    }
    bail!(
        "the registry could not revoke the token (HTTP {status}): {}",
        error_detail(&body)
    )
}

/// The registry's explanation from an error body: the `detail`s of cargo's
/// `{"errors":[{"detail":"…"}]}`, else the start of the body as text.
pub fn error_detail(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        detail: String,
    }

    if let Ok(parsed) = serde_json::from_str::<ErrorBody>(body) {
        let details: Vec<&str> = parsed
            .errors
            .iter()
            .map(|error| error.detail.trim())
            .filter(|detail| !detail.is_empty())
            .collect();
        if !details.is_empty() {
            return details.join("; ");
        }
    }
    let text = body.trim();
    if text.is_empty() {
        return "(the response had no body)".to_owned();
    }
    const LIMIT: usize = 500;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_sits_next_to_a_sparse_index() -> anyhow::Result<()> {
        let url = config_json_url("sparse+http://127.0.0.1:8080/index/")?;
        assert_eq!(
            url.as_ref().map(Url::as_str),
            Some("http://127.0.0.1:8080/index/config.json")
        );
        Ok(())
    }

    #[test]
    fn an_index_url_without_trailing_slash_keeps_its_last_segment() -> anyhow::Result<()> {
        let url = config_json_url("sparse+https://wharf.example.com/index")?;
        assert_eq!(
            url.as_ref().map(Url::as_str),
            Some("https://wharf.example.com/index/config.json")
        );
        Ok(())
    }

    #[test]
    fn a_git_index_has_no_fetchable_config() -> anyhow::Result<()> {
        assert_eq!(
            config_json_url("https://github.com/rust-lang/crates.io-index")?,
            None
        );
        Ok(())
    }

    #[test]
    fn the_audience_is_the_host_without_a_default_port() -> anyhow::Result<()> {
        assert_eq!(
            default_audience(&Url::parse("https://Wharf.Example.com")?)?,
            "wharf.example.com"
        );
        assert_eq!(
            default_audience(&Url::parse("https://wharf.example.com:443/")?)?,
            "wharf.example.com"
        );
        assert_eq!(
            default_audience(&Url::parse("http://wharf.example.com:80")?)?,
            "wharf.example.com"
        );
        Ok(())
    }

    #[test]
    fn the_audience_keeps_a_port_that_is_not_the_default() -> anyhow::Result<()> {
        assert_eq!(
            default_audience(&Url::parse("http://127.0.0.1:8080")?)?,
            "127.0.0.1:8080"
        );
        assert_eq!(
            default_audience(&Url::parse("https://[::1]:8443/")?)?,
            "[::1]:8443"
        );
        Ok(())
    }

    #[test]
    fn the_tokens_endpoint_keeps_a_path_prefix_of_the_api() -> anyhow::Result<()> {
        assert_eq!(
            tokens_url(&Url::parse("http://127.0.0.1:8080")?)?.as_str(),
            "http://127.0.0.1:8080/api/v1/trusted_publishing/tokens"
        );
        assert_eq!(
            tokens_url(&Url::parse("https://example.com/wharf")?)?.as_str(),
            "https://example.com/wharf/api/v1/trusted_publishing/tokens"
        );
        Ok(())
    }

    #[test]
    fn error_details_are_taken_from_cargo_error_bodies() {
        let body = r#"{"errors":[{"detail":"no Trusted Publishing config matches repository `o/r`"},{"detail":"second"}]}"#;
        assert_eq!(
            error_detail(body),
            "no Trusted Publishing config matches repository `o/r`; second"
        );
    }

    #[test]
    fn a_body_that_is_not_cargo_json_is_shown_as_text() {
        assert_eq!(error_detail("  Bad Gateway \n"), "Bad Gateway");
        assert_eq!(error_detail(""), "(the response had no body)");
        let long = "x".repeat(600);
        assert_eq!(error_detail(&long).chars().count(), 501);
    }
}
