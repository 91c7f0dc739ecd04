//! What a Trusted Publishing exchange leaves behind, typed: [`TrustpubData`] (one variant per
//! provider, tagged by `provider` as crates.io's `TrustpubData` is) is built from the verified
//! identity, stored as JSON with the exchanged token, and copied, with the config that matched
//! ([`Published`]), onto every version the token publishes and into the audit log. Everything
//! that shows it (the crate API, the history page, the settings page's token list) reads it
//! back through serde and the [`Record`] methods: never by guessing keys.
//!
//! The JSON of the GitHub and GitLab variants is exactly what earlier versions stored, so rows
//! written before this type existed read unchanged (tests below).

use serde::{Deserialize, Serialize};

pub use super::providers::TrustpubData;

/// How a record is shown: each provider's [`super::Provider::Data`] implements it.
pub trait Record {
    /// What published, for people: `octo-org/widget`, `group/project`, `acme/widget`.
    fn source(&self) -> String;
    /// The facts shown under it, as (term, value), e.g. ("Workflow", "release.yml").
    fn details(&self) -> Vec<(&'static str, String)>;
    /// The run, job or build: `run 4242`, `job 302`, `build 42`.
    fn run_label(&self) -> String;
    /// A link to the run, job or build.
    fn run_url(&self) -> &str;
    /// The commit that was built.
    fn sha(&self) -> &str;
    /// One line for lists: `octo-org/widget (release.yml)`.
    fn summary(&self) -> String;
}

/// What a version published through Trusted Publishing records: the exchange's record and the
/// config that matched the crate (`null` if unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    #[serde(flatten)]
    pub data: TrustpubData,
    pub config_id: Option<i64>,
}

impl Published {
    /// Reads a stored record; `None` (logged) if it is not one.
    pub fn parse(stored: &str) -> Option<Published> {
        serde_json::from_str(stored)
            .inspect_err(|e| tracing::warn!(error = %e, "unreadable Trusted Publishing record"))
            .ok()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl TrustpubData {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The link to the run, if it is an http(s) URL (a record is never shown as another kind
    /// of link).
    pub fn safe_run_url(&self) -> Option<&str> {
        let url = self.record().run_url();
        (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
    }

    /// The first 12 characters of the commit.
    pub fn short_sha(&self) -> String {
        self.record().sha().chars().take(12).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Records as earlier versions of the exchange wrote them (keys sorted, as serde_json
    /// writes them).
    const STORED: [&str; 3] = [
        r#"{"actor":"octocat","config_id":7,"environment":null,"issuer":"https://token.actions.githubusercontent.com","provider":"github","ref":"refs/tags/v1","repository":"octo-org/widget","run_id":"4242","run_url":"https://github.com/octo-org/widget/actions/runs/4242/attempts/1","sha":"0123456789abcdef0123456789abcdef01234567","workflow":"release.yml"}"#,
        r#"{"actor":"gitlab-user","config_id":null,"environment":"production","issuer":"https://gitlab.com","job_id":"302","pipeline_id":"574","project":"acme/sub/widget","provider":"gitlab","ref":"v1.0.0","repository":"acme/sub/widget","run_id":"302","run_url":"https://gitlab.com/acme/sub/widget/-/jobs/302","sha":"0123456789abcdef0123456789abcdef01234567","workflow":".gitlab-ci.yml"}"#,
        // A token from before the link table still carried `config_ids`.
        r#"{"actor":"octocat","config_id":3,"config_ids":{"1":3},"environment":"release","issuer":"https://token.actions.githubusercontent.com","provider":"github","ref":"refs/heads/main","repository":"octo-org/widget","run_id":"1","run_url":"https://github.com/octo-org/widget/actions/runs/1/attempts/1","sha":"abc","workflow":null}"#,
    ];

    #[test]
    fn records_written_before_the_type_read_back_unchanged() -> anyhow::Result<()> {
        for stored in STORED {
            let published: Published = serde_json::from_str(stored)?;
            let mut expected: Value = serde_json::from_str(stored)?;
            if let Some(object) = expected.as_object_mut() {
                object.remove("config_ids");
            }
            assert_eq!(published.to_json(), expected, "{stored}");
            // What the crate API sends (keys sorted) is byte for byte what it sent before.
            if !stored.contains("config_ids") {
                assert_eq!(published.to_json().to_string(), stored);
            }
        }
        Ok(())
    }

    #[test]
    fn records_are_shown_by_their_provider_not_by_their_labels() -> anyhow::Result<()> {
        let github: Published = serde_json::from_str(STORED[0])?;
        assert_eq!(github.data.kind().as_str(), "github");
        assert_eq!(github.data.record().run_label(), "run 4242");
        assert_eq!(github.data.record().source(), "octo-org/widget");
        let gitlab: Published = serde_json::from_str(STORED[1])?;
        assert_eq!(gitlab.data.record().run_label(), "job 302");
        assert_eq!(gitlab.data.short_sha(), "0123456789ab");
        // A provider label in a field does not change how a record reads.
        let mut disguised: Value = serde_json::from_str(STORED[0])?;
        disguised["repository"] = json!("gitlab/GitLab CI");
        let disguised: Published = serde_json::from_value(disguised)?;
        assert_eq!(disguised.data.kind().as_str(), "github");
        assert_eq!(disguised.data.record().run_label(), "run 4242");
        Ok(())
    }

    #[test]
    fn a_record_of_an_unknown_provider_or_shape_is_not_read() {
        assert!(Published::parse(r#"{"provider":"jenkins","config_id":1}"#).is_none());
        assert!(Published::parse(r#"{"provider":"github"}"#).is_none());
        assert!(Published::parse("not json").is_none());
    }

    #[test]
    fn only_http_links_are_offered() -> anyhow::Result<()> {
        let mut value: Value = serde_json::from_str(STORED[0])?;
        value["run_url"] = json!("javascript:alert(1)");
        let published: Published = serde_json::from_value(value)?;
        assert_eq!(published.data.safe_run_url(), None);
        Ok(())
    }
}
