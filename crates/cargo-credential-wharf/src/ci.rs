//! Where the provider runs, and how it gets the job's OIDC ID token there.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use cargo_credential::Secret;
use serde::Deserialize;
use url::Url;

use crate::options::Options;
use crate::registry::error_detail;

/// A snapshot of the environment variables the provider reads, taken once at start-up so that
/// tests can run the provider against an environment of their own.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    temp_dir: PathBuf,
}

/// Names only: the values include the runner's request token and GitLab's ID token.
impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("temp_dir", &self.temp_dir)
            .finish()
    }
}

impl Environment {
    /// The process's own environment.
    pub fn from_process() -> Self {
        Self::new(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
        .with_temp_dir(std::env::temp_dir())
    }

    /// An environment holding exactly `vars`; the temporary directory is the system's.
    pub fn new<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: vars
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
            temp_dir: std::env::temp_dir(),
        }
    }

    /// Replaces the directory used when neither `RUNNER_TEMP` nor `CI_BUILDS_DIR` is set.
    pub fn with_temp_dir(mut self, temp_dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = temp_dir.into();
        self
    }

    /// The value of `name`, treating an empty value as unset.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// The system temporary directory as it was at start-up.
    pub fn temp_dir(&self) -> &PathBuf {
        &self.temp_dir
    }

    /// Works out whether an ID token can be had here, and from where.
    pub fn detect(&self, options: &Options) -> Detection {
        if let (Some(request_url), Some(request_token)) = (
            self.var("ACTIONS_ID_TOKEN_REQUEST_URL"),
            self.var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        ) {
            return Detection::Available(IdTokenSource::GitHubActions {
                request_url: request_url.to_owned(),
                request_token: Secret::from(request_token.to_owned()),
            });
        }
        if self.var("GITLAB_CI") == Some("true") {
            let variable = options.gitlab_token_env.clone();
            return match self.var(&variable) {
                Some(jwt) => Detection::Available(IdTokenSource::GitLabCi {
                    variable,
                    jwt: Secret::from(jwt.to_owned()),
                }),
                None => Detection::Unavailable(format!(
                    "this is GitLab CI, but `{variable}` holds no ID token; declare it in the job \
                     with `id_tokens: {{ {variable}: {{ aud: <registry host> }} }}` (or point \
                     `--gitlab-token-env` at the variable you use)"
                )),
            };
        }
        if self.var("GITHUB_ACTIONS") == Some("true") {
            return Detection::Unavailable(
                "this is GitHub Actions, but the job may not request an ID token \
                 (ACTIONS_ID_TOKEN_REQUEST_URL is not set); give the job \
                 `permissions: id-token: write`"
                    .to_owned(),
            );
        }
        Detection::NotInCi
    }
}

/// The outcome of [`Environment::detect`].
#[derive(Debug)]
pub enum Detection {
    /// An ID token can be obtained.
    Available(IdTokenSource),
    /// This is a CI job, but no ID token can be had; the text says how to fix that.
    Unavailable(String),
    /// Neither GitHub Actions nor GitLab CI.
    NotInCi,
}

/// Where the ID token comes from.
#[derive(Debug)]
pub enum IdTokenSource {
    /// GitHub Actions mints a fresh token, for the audience we ask for, on every request.
    GitHubActions {
        request_url: String,
        request_token: Secret<String>,
    },
    /// GitLab CI puts one token per job, with the audience fixed in the pipeline, in a variable.
    GitLabCi {
        variable: String,
        jwt: Secret<String>,
    },
}

impl IdTokenSource {
    /// Which ID token this is, for messages.
    pub fn describe(&self, audience: &str) -> String {
        match self {
            Self::GitHubActions { .. } => {
                format!("the GitHub Actions ID token (audience `{audience}`)")
            }
            Self::GitLabCi { variable, .. } => format!("the GitLab CI ID token in `{variable}`"),
        }
    }

    /// The ID token for `audience`. GitLab's token was issued before the job started, so there
    /// the audience is whatever `id_tokens:` asked for.
    pub fn id_token(
        &self,
        http: &reqwest::blocking::Client,
        audience: &str,
    ) -> anyhow::Result<Secret<String>> {
        match self {
            Self::GitHubActions {
                request_url,
                request_token,
            } => github_id_token(http, request_url, request_token.as_deref(), audience),
            Self::GitLabCi { jwt, .. } => Ok(jwt.clone()),
        }
    }
}

/// The URL GitHub's ID-token endpoint is asked with: the runner's URL (which already carries a
/// query string) plus `audience`.
pub fn github_id_token_url(request_url: &str, audience: &str) -> anyhow::Result<Url> {
    let mut url =
        Url::parse(request_url).context("ACTIONS_ID_TOKEN_REQUEST_URL is not a valid URL")?;
    url.query_pairs_mut().append_pair("audience", audience);
    Ok(url)
}

/// Requests an ID token from the GitHub Actions runtime
/// (`GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` → `{"value": "<jwt>"}`).
fn github_id_token(
    http: &reqwest::blocking::Client,
    request_url: &str,
    request_token: Secret<&str>,
    audience: &str,
) -> anyhow::Result<Secret<String>> {
    #[derive(Deserialize)]
    struct IdTokenResponse {
        value: Secret<String>,
    }

    let url = github_id_token_url(request_url, audience)?;
    let response = http
        .get(url)
        .bearer_auth(request_token.expose())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .context("could not request an ID token from GitHub Actions")?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().unwrap_or_default();
        bail!(
            "GitHub Actions did not issue an ID token (HTTP {status}): {}",
            error_detail(&body)
        );
    }
    let body: IdTokenResponse = response
        .json()
        .context("GitHub Actions answered the ID-token request with an unexpected body")?;
    if body.value.as_deref().expose().is_empty() {
        bail!("GitHub Actions answered the ID-token request with an empty token");
    }
    Ok(body.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(vars: &[(&str, &str)], options: &Options) -> Detection {
        Environment::new(vars.iter().copied()).detect(options)
    }

    #[test]
    fn github_actions_with_id_token_permission_is_a_source() {
        let detection = detect(
            &[
                ("GITHUB_ACTIONS", "true"),
                (
                    "ACTIONS_ID_TOKEN_REQUEST_URL",
                    "https://runner/token?api-version=2.0",
                ),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token"),
            ],
            &Options::default(),
        );
        assert!(
            matches!(detection, Detection::Available(IdTokenSource::GitHubActions { ref request_url, .. }) if request_url == "https://runner/token?api-version=2.0"),
            "{detection:?}"
        );
    }

    #[test]
    fn github_actions_without_id_token_permission_says_which_permission_is_missing() {
        let detection = detect(&[("GITHUB_ACTIONS", "true")], &Options::default());
        let Detection::Unavailable(message) = detection else {
            panic!("expected Unavailable, got {detection:?}");
        };
        assert!(message.contains("id-token: write"), "{message}");
    }

    #[test]
    fn gitlab_ci_reads_the_token_from_the_configured_variable() {
        let options = Options {
            gitlab_token_env: "MY_ID_TOKEN".to_owned(),
            ..Options::default()
        };
        let detection = detect(
            &[
                ("GITLAB_CI", "true"),
                ("MY_ID_TOKEN", "a.b.c"),
                ("WHARF_ID_TOKEN", "x.y.z"),
            ],
            &options,
        );
        let Detection::Available(IdTokenSource::GitLabCi { variable, jwt }) = detection else {
            panic!("expected a GitLab source, got {detection:?}");
        };
        assert_eq!(variable, "MY_ID_TOKEN");
        assert_eq!(jwt.expose(), "a.b.c");
    }

    #[test]
    fn gitlab_ci_without_the_variable_explains_id_tokens() {
        let detection = detect(&[("GITLAB_CI", "true")], &Options::default());
        let Detection::Unavailable(message) = detection else {
            panic!("expected Unavailable, got {detection:?}");
        };
        assert!(message.contains("id_tokens:"), "{message}");
        assert!(message.contains("WHARF_ID_TOKEN"), "{message}");
    }

    #[test]
    fn debug_output_names_variables_without_their_values() {
        let env = Environment::new([("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "very-secret")]);
        let debug = format!("{env:?}");
        assert!(debug.contains("ACTIONS_ID_TOKEN_REQUEST_TOKEN"), "{debug}");
        assert!(!debug.contains("very-secret"), "{debug}");
    }

    #[test]
    fn a_developer_machine_is_not_ci() {
        let detection = detect(
            &[("HOME", "/home/me"), ("GITLAB_CI", "")],
            &Options::default(),
        );
        assert!(matches!(detection, Detection::NotInCi), "{detection:?}");
    }

    #[test]
    fn the_audience_is_appended_to_the_existing_query_string() -> anyhow::Result<()> {
        let url = github_id_token_url(
            "https://pipelines.actions.githubusercontent.com/abc/idtoken/1?api-version=2.0",
            "wharf.example.com:8443",
        )?;
        assert_eq!(
            url.as_str(),
            "https://pipelines.actions.githubusercontent.com/abc/idtoken/1?api-version=2.0&audience=wharf.example.com%3A8443"
        );
        Ok(())
    }

    #[test]
    fn the_audience_becomes_the_query_when_there_was_none() -> anyhow::Result<()> {
        let url = github_id_token_url("http://127.0.0.1:9/token", "wharf")?;
        assert_eq!(url.as_str(), "http://127.0.0.1:9/token?audience=wharf");
        Ok(())
    }
}
