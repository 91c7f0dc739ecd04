//! GitHub Actions: the ID token's claims and how they are matched to publisher configs.
//!
//! A config names `repository_owner`/`repository_name` (compared ignoring case, as GitHub
//! does), the owner's numeric ID (looked up when the config was created, so that a deleted and
//! re-created account of the same name cannot inherit trust), a workflow file name and optionally
//! an environment.
//!
//! The workflow is taken from `workflow_ref`, the workflow that the run started, and not from
//! `job_workflow_ref`: when a release workflow calls a reusable workflow in another repository,
//! `job_workflow_ref` names the reusable one, but the repository owner chose to trust the
//! calling workflow file. This is what crates.io does.

use serde::{Deserialize, Serialize};

use super::errors::{MatchError, VerifyError, shorten};
use super::identity::de;
use super::{Match, environment_message, environment_mismatch, join_parts, list_ids, one_of};

/// The claims of a GitHub Actions ID token that Wharf uses (unknown claims are ignored).
///
/// IDs are strings of digits in the token and are parsed into numbers here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHubClaims {
    pub iss: String,
    pub aud: String,
    #[serde(default)]
    pub sub: Option<String>,
    pub jti: String,
    #[serde(deserialize_with = "de::numeric_date")]
    pub exp: i64,
    #[serde(deserialize_with = "de::numeric_date")]
    pub iat: i64,
    #[serde(default, deserialize_with = "de::optional_numeric_date")]
    pub nbf: Option<i64>,

    /// `owner/name`.
    pub repository: String,
    pub repository_owner: String,
    #[serde(deserialize_with = "de::id")]
    pub repository_owner_id: i64,
    #[serde(deserialize_with = "de::id")]
    pub repository_id: i64,
    #[serde(default)]
    pub repository_visibility: Option<String>,
    /// The run's workflow: `owner/repo/.github/workflows/release.yml@refs/tags/v1`.
    pub workflow_ref: String,
    #[serde(default)]
    pub workflow_sha: Option<String>,
    /// The workflow of this job; differs from `workflow_ref` for a reusable workflow.
    pub job_workflow_ref: String,
    #[serde(default)]
    pub job_workflow_sha: Option<String>,
    /// The workflow's display name.
    #[serde(default)]
    pub workflow: Option<String>,
    pub event_name: String,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub environment: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub ref_type: Option<String>,
    pub sha: String,
    #[serde(deserialize_with = "de::id")]
    pub run_id: i64,
    #[serde(default, deserialize_with = "de::optional_id")]
    pub run_number: Option<i64>,
    #[serde(deserialize_with = "de::id")]
    pub run_attempt: i64,
    pub actor: String,
    #[serde(deserialize_with = "de::id")]
    pub actor_id: i64,
    /// `github-hosted` or `self-hosted`.
    #[serde(default)]
    pub runner_environment: Option<String>,
}

impl GitHubClaims {
    /// The web URL of this run attempt. The host is github.com, or the GitHub Enterprise Server
    /// whose issuer is `https://HOST/_services/token`.
    pub fn run_url(&self) -> String {
        let server = self
            .iss
            .strip_suffix("/_services/token")
            .unwrap_or("https://github.com");
        format!(
            "{server}/{}/actions/runs/{}/attempts/{}",
            self.repository, self.run_id, self.run_attempt
        )
    }

    /// The workflow file name from `workflow_ref`.
    pub fn workflow_filename(&self) -> Option<&str> {
        workflow_filename(&self.workflow_ref)
    }
}

/// Refuses runs of events where untrusted code can hold the token. Called by the verifier.
pub(crate) fn check_event(claims: &GitHubClaims) -> Result<(), VerifyError> {
    let why = match claims.event_name.as_str() {
        "pull_request_target" => {
            "`pull_request_target` workflows run with the target repository's permissions while \
             handling pull requests from forks, so code from an untrusted pull request could \
             obtain a publish token"
        }
        "workflow_run" => {
            "`workflow_run` workflows run with the repository's permissions after another \
             workflow, which may have been triggered by a pull request from a fork, and often \
             use its untrusted artifacts, so untrusted code could obtain a publish token"
        }
        _ => return Ok(()),
    };
    Err(VerifyError::invalid(format!(
        "Trusted Publishing refuses ID tokens from `{}` events: {why}. Publish from a workflow \
         triggered by `push`, `release` or `workflow_dispatch` instead.",
        claims.event_name
    )))
}

/// The file name of the workflow in a `workflow_ref`:
/// `owner/repo/.github/workflows/release.yml@refs/tags/v1` → `release.yml`.
pub fn workflow_filename(workflow_ref: &str) -> Option<&str> {
    let (_, rest) = workflow_ref.split_once("/.github/workflows/")?;
    let (filename, _git_ref) = rest.split_once('@')?;
    (!filename.is_empty() && !filename.contains('/')).then_some(filename)
}

/// A GitHub publisher config, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubPublisher {
    pub id: i64,
    pub crate_id: i64,
    pub crate_name: String,
    pub repository_owner: String,
    pub repository_owner_id: i64,
    pub repository_name: String,
    pub workflow_filename: String,
    pub environment: Option<String>,
}

enum Mismatch {
    OwnerId(i64),
    Workflow(String),
    Environment(String),
}

/// The configs among `publishers` that accept these claims.
///
/// `publishers` may be all configs or only those of the claims' repository: the repository is
/// compared here anyway. When none matches, the error names the repository and each field that
/// differed, with what the configs expect.
pub fn match_publishers(
    claims: &GitHubClaims,
    publishers: &[GitHubPublisher],
) -> Result<Vec<Match>, MatchError> {
    let repository = shorten(&claims.repository);
    let Some((owner, name)) = claims.repository.split_once('/') else {
        return Err(MatchError::InvalidClaim(format!(
            "The ID token's repository `{repository}` is not of the form `owner/name`."
        )));
    };
    let candidates: Vec<&GitHubPublisher> = publishers
        .iter()
        .filter(|p| {
            p.repository_owner.eq_ignore_ascii_case(owner)
                && p.repository_name.eq_ignore_ascii_case(name)
        })
        .collect();
    if candidates.is_empty() {
        return Err(MatchError::NoConfig(format!(
            "No Trusted Publishing config exists for repository `{repository}`; an owner of the \
             crate can add one in the crate's settings."
        )));
    }
    let Some(workflow) = workflow_filename(&claims.workflow_ref) else {
        return Err(MatchError::InvalidClaim(format!(
            "The ID token's `workflow_ref` `{}` names no workflow file under `.github/workflows/`.",
            shorten(&claims.workflow_ref)
        )));
    };

    let mut matches = Vec::new();
    let mut mismatches = Vec::new();
    for publisher in candidates {
        let mismatch = if publisher.repository_owner_id != claims.repository_owner_id {
            Some(Mismatch::OwnerId(publisher.repository_owner_id))
        } else if publisher.workflow_filename != workflow {
            Some(Mismatch::Workflow(publisher.workflow_filename.clone()))
        } else {
            environment_mismatch(
                publisher.environment.as_deref(),
                claims.environment.as_deref(),
            )
            .map(Mismatch::Environment)
        };
        match mismatch {
            None => matches.push(Match {
                publisher_id: publisher.id,
                crate_id: publisher.crate_id,
                crate_name: publisher.crate_name.clone(),
                capture_namespace_id: None,
            }),
            Some(mismatch) => mismatches.push(mismatch),
        }
    }
    if !matches.is_empty() {
        return Ok(matches);
    }

    let mut workflows = Vec::new();
    let mut environments = Vec::new();
    let mut owner_ids = Vec::new();
    for mismatch in mismatches {
        match mismatch {
            Mismatch::Workflow(w) => workflows.push(w),
            Mismatch::Environment(e) => environments.push(e),
            Mismatch::OwnerId(id) => owner_ids.push(id),
        }
    }
    let mut parts = Vec::new();
    if !workflows.is_empty() {
        parts.push(format!(
            "the token's workflow is `{}`, but the configs for this repository expect workflow {}",
            shorten(workflow),
            one_of(&workflows)
        ));
    }
    if !environments.is_empty() {
        parts.push(environment_message(
            claims.environment.as_deref(),
            &environments,
        ));
    }
    if !owner_ids.is_empty() {
        parts.push(format!(
            "the repository owner ID {} differs from the one recorded when the config was \
             created ({}); the account may have been deleted and re-created. Remove and re-add \
             the config.",
            claims.repository_owner_id,
            list_ids(&owner_ids)
        ));
    }
    Err(MatchError::Mismatch(join_parts(
        format!("No Trusted Publishing config matches repository `{repository}`: "),
        parts,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(repository: &str, environment: Option<&str>) -> GitHubClaims {
        let workflow_ref = format!("{repository}/.github/workflows/release.yml@refs/tags/v1");
        GitHubClaims {
            iss: "https://token.actions.githubusercontent.com".to_owned(),
            aud: "wharf.test".to_owned(),
            sub: None,
            jti: "jti".to_owned(),
            exp: 0,
            iat: 0,
            nbf: None,
            repository: repository.to_owned(),
            repository_owner: repository.split('/').next().unwrap_or_default().to_owned(),
            repository_owner_id: 65,
            repository_id: 74,
            repository_visibility: None,
            job_workflow_ref: workflow_ref.clone(),
            workflow_ref,
            workflow_sha: None,
            job_workflow_sha: None,
            workflow: None,
            event_name: "push".to_owned(),
            environment: environment.map(str::to_owned),
            git_ref: "refs/tags/v1".to_owned(),
            ref_type: None,
            sha: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            run_id: 1,
            run_number: None,
            run_attempt: 1,
            actor: "octocat".to_owned(),
            actor_id: 1,
            runner_environment: None,
        }
    }

    fn publisher(environment: Option<&str>) -> GitHubPublisher {
        GitHubPublisher {
            id: 1,
            crate_id: 10,
            crate_name: "widget".to_owned(),
            repository_owner: "kube-org".to_owned(),
            repository_owner_id: 65,
            repository_name: "stats".to_owned(),
            workflow_filename: "release.yml".to_owned(),
            environment: environment.map(str::to_owned),
        }
    }

    #[test]
    fn repository_and_environment_fold_ascii_case_only() {
        // (repository claim, environment claim, configured environment, accepted)
        let cases = [
            ("Kube-Org/STATS", Some("K8S"), Some("k8s"), true),
            ("\u{212A}ube-org/stats", None, None, false), // KELVIN SIGN
            ("kube-org/\u{17F}tats", None, None, false),  // LONG S
            ("kube-org/stat\u{17F}", None, None, false),
            ("kube-org/stats", Some("\u{212A}8s"), Some("k8s"), false),
            ("kube-org/stats", Some("\u{212A}8S"), Some("K8S"), false),
            (
                "kube-org/stats",
                Some("product\u{131}on"),
                Some("production"),
                false,
            ),
            ("kube-org/stats", Some("\u{130}nfra"), Some("infra"), false),
        ];
        for (repository, claimed, configured, accepted) in cases {
            let result = match_publishers(&claims(repository, claimed), &[publisher(configured)]);
            assert_eq!(
                result.is_ok(),
                accepted,
                "{repository:?} {claimed:?} against {configured:?}: {result:?}"
            );
        }
    }
}
