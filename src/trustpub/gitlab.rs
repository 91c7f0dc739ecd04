//! GitLab CI: the ID token's claims and how they are matched to publisher configs.
//!
//! A config names a namespace (a user or a group, with subgroups: `group/sub`), a project, the
//! path of the CI config file and optionally an environment. The token's `project_path` is split
//! at its last `/` into namespace and project, both compared ignoring case. The namespace's
//! numeric ID is captured on the first successful use and must match afterwards, so that a
//! deleted and re-created group of the same name cannot inherit trust.

use serde::{Deserialize, Serialize};

use super::errors::{MatchError, shorten};
use super::identity::de;
use super::{Match, environment_message, environment_mismatch, join_parts, list_ids, one_of};

/// The claims of a GitLab CI ID token that Wharf uses (unknown claims, such as `user_email`,
/// are ignored and never kept).
///
/// IDs are strings of digits in the token and are parsed into numbers here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitLabClaims {
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

    #[serde(deserialize_with = "de::id")]
    pub namespace_id: i64,
    /// The namespace, with subgroups: `group/sub`.
    pub namespace_path: String,
    #[serde(deserialize_with = "de::id")]
    pub project_id: i64,
    /// `group/sub/project`.
    pub project_path: String,
    #[serde(deserialize_with = "de::id")]
    pub user_id: i64,
    pub user_login: String,
    #[serde(deserialize_with = "de::id")]
    pub pipeline_id: i64,
    #[serde(default)]
    pub pipeline_source: Option<String>,
    #[serde(deserialize_with = "de::id")]
    pub job_id: i64,
    /// A branch or tag name, without `refs/…`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub ref_type: Option<String>,
    #[serde(default)]
    pub ref_path: Option<String>,
    #[serde(default, deserialize_with = "de::non_empty")]
    pub environment: Option<String>,
    #[serde(default)]
    pub deployment_tier: Option<String>,
    #[serde(default, deserialize_with = "de::optional_id")]
    pub runner_id: Option<i64>,
    /// `gitlab-hosted` or `self-hosted`.
    #[serde(default)]
    pub runner_environment: Option<String>,
    pub sha: String,
    #[serde(default)]
    pub project_visibility: Option<String>,
    /// `gitlab.com/group/sub/project//.gitlab-ci.yml@refs/heads/main`.
    pub ci_config_ref_uri: String,
    #[serde(default)]
    pub ci_config_sha: Option<String>,
}

impl GitLabClaims {
    /// The web URL of the job, on the instance that issued the token.
    pub fn job_url(&self) -> String {
        format!(
            "{}/{}/-/jobs/{}",
            self.iss.trim_end_matches('/'),
            self.project_path,
            self.job_id
        )
    }

    /// The CI config path from `ci_config_ref_uri`.
    pub fn ci_config_path(&self) -> Option<&str> {
        ci_config_path(&self.ci_config_ref_uri)
    }

    /// `project_path` split at its last `/`: (namespace with subgroups, project).
    pub fn namespace_and_project(&self) -> Option<(&str, &str)> {
        self.project_path
            .rsplit_once('/')
            .filter(|(namespace, project)| !namespace.is_empty() && !project.is_empty())
    }
}

/// The CI config path in a `ci_config_ref_uri`, between the `//` and the last `@`:
/// `gitlab.com/group/sub/project//.gitlab-ci.yml@refs/heads/main` → `.gitlab-ci.yml`,
/// `…//ci/release.yml@refs/tags/v1` → `ci/release.yml`.
pub fn ci_config_path(ci_config_ref_uri: &str) -> Option<&str> {
    let without_scheme = ci_config_ref_uri
        .strip_prefix("https://")
        .unwrap_or(ci_config_ref_uri);
    let (_, rest) = without_scheme.split_once("//")?;
    let (path, _git_ref) = rest.rsplit_once('@')?;
    (!path.is_empty()).then_some(path)
}

/// A GitLab publisher config, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitLabPublisher {
    pub id: i64,
    pub crate_id: i64,
    pub crate_name: String,
    pub namespace: String,
    /// Captured on the first successful use.
    pub namespace_id: Option<i64>,
    pub project: String,
    pub workflow_filepath: String,
    pub environment: Option<String>,
}

enum Mismatch {
    NamespaceId(i64),
    Workflow(String),
    Environment(String),
}

/// The configs among `publishers` that accept these claims.
///
/// `publishers` may be all configs or only those of the claims' project: namespace and project
/// are compared here anyway. A match against a config without a namespace ID carries
/// [`Match::capture_namespace_id`], which the caller must store.
pub fn match_publishers(
    claims: &GitLabClaims,
    publishers: &[GitLabPublisher],
) -> Result<Vec<Match>, MatchError> {
    let project_path = shorten(&claims.project_path);
    let Some((namespace, project)) = claims.namespace_and_project() else {
        return Err(MatchError::InvalidClaim(format!(
            "The ID token's project path `{project_path}` is not of the form `namespace/project`."
        )));
    };
    let candidates: Vec<&GitLabPublisher> = publishers
        .iter()
        .filter(|p| {
            p.namespace.eq_ignore_ascii_case(namespace) && p.project.eq_ignore_ascii_case(project)
        })
        .collect();
    if candidates.is_empty() {
        return Err(MatchError::NoConfig(format!(
            "No Trusted Publishing config exists for project `{project_path}`; an owner of the \
             crate can add one in the crate's settings."
        )));
    }
    let Some(workflow) = claims.ci_config_path() else {
        return Err(MatchError::InvalidClaim(format!(
            "The ID token's `ci_config_ref_uri` `{}` names no CI config file.",
            shorten(&claims.ci_config_ref_uri)
        )));
    };

    let mut matches = Vec::new();
    let mut mismatches = Vec::new();
    for publisher in candidates {
        let mismatch = match publisher.namespace_id {
            Some(recorded) if recorded != claims.namespace_id => {
                Some(Mismatch::NamespaceId(recorded))
            }
            _ if publisher.workflow_filepath != workflow => {
                Some(Mismatch::Workflow(publisher.workflow_filepath.clone()))
            }
            _ => environment_mismatch(
                publisher.environment.as_deref(),
                claims.environment.as_deref(),
            )
            .map(Mismatch::Environment),
        };
        match mismatch {
            None => matches.push(Match {
                publisher_id: publisher.id,
                crate_id: publisher.crate_id,
                crate_name: publisher.crate_name.clone(),
                capture_namespace_id: publisher
                    .namespace_id
                    .is_none()
                    .then_some(claims.namespace_id),
            }),
            Some(mismatch) => mismatches.push(mismatch),
        }
    }
    if !matches.is_empty() {
        return Ok(matches);
    }

    let mut workflows = Vec::new();
    let mut environments = Vec::new();
    let mut namespace_ids = Vec::new();
    for mismatch in mismatches {
        match mismatch {
            Mismatch::Workflow(w) => workflows.push(w),
            Mismatch::Environment(e) => environments.push(e),
            Mismatch::NamespaceId(id) => namespace_ids.push(id),
        }
    }
    let mut parts = Vec::new();
    if !workflows.is_empty() {
        parts.push(format!(
            "the token's CI config file is `{}`, but the configs for this project expect {}",
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
    if !namespace_ids.is_empty() {
        parts.push(format!(
            "the namespace ID {} differs from the one recorded when the config was first used \
             ({}); the group or user may have been deleted and re-created. Remove and re-add the \
             config.",
            claims.namespace_id,
            list_ids(&namespace_ids)
        ));
    }
    Err(MatchError::Mismatch(join_parts(
        format!("No Trusted Publishing config matches project `{project_path}`: "),
        parts,
    )))
}
