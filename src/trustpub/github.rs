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

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::claims::de;
use super::errors::{MatchError, VerifyError, shorten};
use super::provider::{
    Candidate, Cell, FieldError, FormField, IssuerSetting, LookupError, Lookups, Match, Provider,
    check, check_environment, configs_expect, environment_message, environment_mismatch,
    eq_optional_ignore_case, join_parts, list_ids, normalize_optional, one_of, one_of_exact,
    trim_all,
};
use super::record::Record;
use crate::db::{DbConn, lower};
use crate::schema::{crates, trustpub_github_configs};

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
pub fn check_event(claims: &GitHubClaims) -> Result<(), VerifyError> {
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

/// GitHub Actions, as a [`Provider`].
pub struct GitHub;

/// What a GitHub Actions exchange records. The JSON is what earlier versions stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHubData {
    pub issuer: String,
    /// `owner/name`.
    pub repository: String,
    /// The workflow file name, from `workflow_ref`.
    pub workflow: Option<String>,
    pub environment: Option<String>,
    pub run_id: String,
    pub run_url: String,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub actor: String,
    /// The reusable workflow that ran the job (`job_workflow_ref`), when it is not the run's
    /// own workflow. Absent in records of jobs that ran their own workflow, and in older ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reusable_workflow: Option<String>,
}

impl Record for GitHubData {
    fn source(&self) -> String {
        self.repository.clone()
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        let mut details = vec![("Repository", self.repository.clone())];
        details.extend(self.workflow.clone().map(|w| ("Workflow", w)));
        details.extend(self.environment.clone().map(|e| ("Environment", e)));
        details.extend(
            self.reusable_workflow
                .clone()
                .map(|w| ("Reusable workflow", w)),
        );
        details
    }

    fn run_label(&self) -> String {
        format!("run {}", self.run_id)
    }

    fn run_url(&self) -> &str {
        &self.run_url
    }

    fn sha(&self) -> &str {
        &self.sha
    }

    fn summary(&self) -> String {
        match &self.workflow {
            Some(workflow) => format!("{} ({workflow})", self.repository),
            None => self.repository.clone(),
        }
    }
}

/// A GitHub publisher config, as stored.
#[derive(Queryable, Selectable, Identifiable, Debug, Clone, PartialEq, Eq)]
#[diesel(table_name = trustpub_github_configs)]
pub struct GitHubConfig {
    pub id: i64,
    pub crate_id: i64,
    pub repository_owner: String,
    pub repository_owner_id: i64,
    pub repository_name: String,
    pub workflow_filename: String,
    pub environment: Option<String>,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
    /// When set, the reusable workflow the job must run (`job_workflow_ref`):
    /// `owner/repo/.github/workflows/file.yml`, optionally with `@ref`.
    pub reusable_workflow: Option<String>,
}

/// A GitHub publisher config as submitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GitHubInput {
    pub repository_owner: String,
    pub repository_name: String,
    pub workflow_filename: String,
    #[serde(default)]
    pub environment: Option<String>,
    /// `owner/repo/.github/workflows/file.yml[@ref]`; absent, null or empty: no constraint.
    #[serde(default)]
    pub reusable_workflow: Option<String>,
    /// Looked up through the GitHub API before the config is stored (whatever a request
    /// body says is overwritten by the look-up); kept in a pending config's JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_owner_id: Option<i64>,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = trustpub_github_configs)]
struct NewGitHubConfig<'a> {
    crate_id: i64,
    repository_owner: &'a str,
    repository_owner_id: i64,
    repository_name: &'a str,
    workflow_filename: &'a str,
    environment: Option<&'a str>,
    created_at: NaiveDateTime,
    created_by: Option<i64>,
    reusable_workflow: Option<&'a str>,
}

enum Mismatch {
    OwnerId(i64),
    Workflow(String),
    Environment(String),
    ReusableWorkflow(String),
}

impl Provider for GitHub {
    const KIND: &'static str = "github";
    const LABEL: &'static str = "GitHub Actions";
    const ISSUER: IssuerSetting = IssuerSetting {
        key: "trustpub_github_issuer",
        default: "https://token.actions.githubusercontent.com",
        many: false,
    };
    const FORM_ID: &'static str = "gh";
    const FIELDS: &'static [FormField] = &[
        FormField {
            name: "repository_owner",
            label: "Repository owner",
            hint: "The GitHub user or organization, e.g. rust-lang.",
            required: true,
        },
        FormField {
            name: "repository_name",
            label: "Repository name",
            hint: "",
            required: true,
        },
        FormField {
            name: "workflow_filename",
            label: "Workflow file name",
            hint: "The file in .github/workflows/, e.g. release.yml.",
            required: true,
        },
        FormField {
            name: "environment",
            label: "Environment (optional)",
            hint: "If set, only jobs running in this GitHub environment may publish.",
            required: false,
        },
        FormField {
            name: "reusable_workflow",
            label: "Reusable workflow (optional)",
            hint: "If set, the publishing job must run this reusable workflow: owner/repo/.github/workflows/file.yml, optionally @ref (e.g. @refs/heads/main). The workflow file above still names the calling workflow.",
            required: false,
        },
    ];
    const COLUMNS: &'static [&'static str] =
        &["Repository", "Workflow", "Environment", "Reusable workflow"];

    type Claims = GitHubClaims;
    type Data = GitHubData;
    type Config = GitHubConfig;
    type Input = GitHubInput;

    fn check(claims: &GitHubClaims) -> Result<(), VerifyError> {
        check_event(claims)
    }

    fn published_by(claims: &GitHubClaims) -> String {
        claims.actor.clone()
    }

    fn subject(claims: &GitHubClaims) -> String {
        format!("repository `{}`", shorten(&claims.repository))
    }

    fn data(claims: &GitHubClaims) -> GitHubData {
        GitHubData {
            issuer: claims.iss.clone(),
            repository: claims.repository.clone(),
            workflow: claims.workflow_filename().map(str::to_owned),
            environment: claims.environment.clone(),
            run_id: claims.run_id.to_string(),
            run_url: claims.run_url(),
            sha: claims.sha.clone(),
            git_ref: claims.git_ref.clone(),
            actor: claims.actor.clone(),
            reusable_workflow: (claims.job_workflow_ref != claims.workflow_ref)
                .then(|| claims.job_workflow_ref.clone()),
        }
    }

    fn match_configs(
        claims: &GitHubClaims,
        candidates: &[Candidate<GitHubConfig>],
    ) -> Result<Vec<Match>, MatchError> {
        match_publishers(claims, candidates)
    }

    fn normalize(mut input: GitHubInput) -> Result<GitHubInput, Vec<FieldError>> {
        trim_all(&mut [
            &mut input.repository_owner,
            &mut input.repository_name,
            &mut input.workflow_filename,
        ]);
        input.environment = normalize_optional(input.environment);
        input.reusable_workflow = normalize_optional(input.reusable_workflow);
        let mut errors = Vec::new();
        check(
            &mut errors,
            "repository_owner",
            crate::models::user::valid_login(&input.repository_owner),
            "a GitHub user or organization name: letters, digits and single hyphens, at most 39 characters",
        );
        check(
            &mut errors,
            "repository_name",
            valid_repo_name(&input.repository_name),
            "a GitHub repository name: letters, digits, `.`, `-` and `_`, at most 100 characters",
        );
        check(
            &mut errors,
            "workflow_filename",
            valid_workflow_filename(&input.workflow_filename),
            "the workflow's file name in .github/workflows/, such as `release.yml` (no folders; it must end in .yml or .yaml)",
        );
        check_environment(&mut errors, input.environment.as_deref());
        if let Some(reusable) = input.reusable_workflow.as_deref() {
            check(
                &mut errors,
                "reusable_workflow",
                valid_reusable_workflow(reusable),
                "a reusable workflow as `owner/repo/.github/workflows/file.yml`, optionally followed by `@ref` (such as `@refs/heads/main`); leave it empty for no constraint",
            );
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(errors)
        }
    }

    fn look_up(
        lookups: &Lookups<'_>,
        mut input: GitHubInput,
    ) -> impl std::future::Future<Output = Result<GitHubInput, LookupError>> + Send {
        let http = lookups.http.clone();
        let api_url = lookups.github_api_url.clone();
        async move {
            input.repository_owner_id =
                Some(owner_id(&http, &api_url, &input.repository_owner).await?);
            Ok(input)
        }
    }

    fn is_duplicate(c: &GitHubConfig, input: &GitHubInput) -> bool {
        c.repository_owner
            .eq_ignore_ascii_case(&input.repository_owner)
            && c.repository_name
                .eq_ignore_ascii_case(&input.repository_name)
            && c.workflow_filename == input.workflow_filename
            && eq_optional_ignore_case(c.environment.as_deref(), input.environment.as_deref())
            && c.reusable_workflow == input.reusable_workflow
    }

    fn pending_config(
        id: i64,
        input: &GitHubInput,
        created_by: i64,
        created_at: NaiveDateTime,
    ) -> GitHubConfig {
        GitHubConfig {
            id,
            crate_id: 0,
            repository_owner: input.repository_owner.clone(),
            // Looked up before a pending config is stored; 0 (no account) matches nothing.
            repository_owner_id: input.repository_owner_id.unwrap_or(0),
            repository_name: input.repository_name.clone(),
            workflow_filename: input.workflow_filename.clone(),
            environment: input.environment.clone(),
            created_at,
            created_by: Some(created_by),
            reusable_workflow: input.reusable_workflow.clone(),
        }
    }

    fn config_id(config: &GitHubConfig) -> i64 {
        config.id
    }

    fn config_crate_id(config: &GitHubConfig) -> i64 {
        config.crate_id
    }

    fn config_created_at(config: &GitHubConfig) -> NaiveDateTime {
        config.created_at
    }

    fn config_json(c: &GitHubConfig, crate_name: &str) -> serde_json::Value {
        json!({
            "id": c.id,
            "crate": crate_name,
            "repository_owner": c.repository_owner,
            "repository_owner_id": c.repository_owner_id,
            "repository_name": c.repository_name,
            "workflow_filename": c.workflow_filename,
            "environment": c.environment,
            "reusable_workflow": c.reusable_workflow,
            "created_at": c.created_at.and_utc(),
        })
    }

    fn describe(c: &GitHubConfig) -> String {
        let env = c
            .environment
            .as_deref()
            .map(|e| format!(", environment {e}"))
            .unwrap_or_default();
        let reusable = c
            .reusable_workflow
            .as_deref()
            .map(|w| format!(", reusable workflow {w}"))
            .unwrap_or_default();
        format!(
            "{}/{}, workflow {}{env}{reusable}",
            c.repository_owner, c.repository_name, c.workflow_filename
        )
    }

    fn row(c: &GitHubConfig) -> Vec<Cell> {
        vec![
            Cell::Text(format!("{}/{}", c.repository_owner, c.repository_name)),
            Cell::Code(c.workflow_filename.clone()),
            Cell::optional(c.environment.as_deref()),
            match c.reusable_workflow.as_deref() {
                Some(w) => Cell::Code(w.to_owned()),
                None => Cell::Any,
            },
        ]
    }

    /// The configs of the claims' repository. A prefilter only: names are ASCII (checked when
    /// a config is created), so `lower()` and `to_ascii_lowercase` fold exactly ASCII, and a
    /// claim with any other character finds nothing; the matcher decides.
    fn candidates(
        conn: &mut DbConn,
        claims: &GitHubClaims,
    ) -> QueryResult<Vec<Candidate<GitHubConfig>>> {
        let (owner, name) = claims
            .repository
            .split_once('/')
            .unwrap_or((&claims.repository, ""));
        let rows: Vec<(GitHubConfig, String)> = trustpub_github_configs::table
            .inner_join(crates::table)
            .filter(lower(trustpub_github_configs::repository_owner).eq(owner.to_ascii_lowercase()))
            .filter(lower(trustpub_github_configs::repository_name).eq(name.to_ascii_lowercase()))
            .select((GitHubConfig::as_select(), crates::name))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(config, crate_name)| Candidate { crate_name, config })
            .collect())
    }

    fn for_crate(conn: &mut DbConn, crate_id: i64) -> QueryResult<Vec<GitHubConfig>> {
        trustpub_github_configs::table
            .filter(trustpub_github_configs::crate_id.eq(crate_id))
            .order(trustpub_github_configs::id.asc())
            .select(GitHubConfig::as_select())
            .load(conn)
    }

    fn by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<GitHubConfig>> {
        trustpub_github_configs::table
            .find(id)
            .select(GitHubConfig::as_select())
            .first(conn)
            .optional()
    }

    fn insert(
        conn: &mut DbConn,
        crate_id: i64,
        input: &GitHubInput,
        created_by: i64,
        now: NaiveDateTime,
    ) -> QueryResult<GitHubConfig> {
        let new = NewGitHubConfig {
            crate_id,
            repository_owner: &input.repository_owner,
            // Looked up before the transaction; a config is never stored without it.
            repository_owner_id: input
                .repository_owner_id
                .ok_or(diesel::result::Error::NotFound)?,
            repository_name: &input.repository_name,
            workflow_filename: &input.workflow_filename,
            environment: input.environment.as_deref(),
            created_at: now,
            created_by: Some(created_by),
            reusable_workflow: input.reusable_workflow.as_deref(),
        };
        diesel::insert_into(trustpub_github_configs::table)
            .values(&new)
            .execute(conn)?;
        trustpub_github_configs::table
            .filter(trustpub_github_configs::crate_id.eq(crate_id))
            .order(trustpub_github_configs::id.desc())
            .select(GitHubConfig::as_select())
            .first(conn)
    }

    fn delete(conn: &mut DbConn, id: i64) -> QueryResult<()> {
        diesel::delete(trustpub_github_configs::table.find(id)).execute(conn)?;
        Ok(())
    }
}

/// Whether the job's `job_workflow_ref` (`owner/repo/.github/workflows/file.yml@ref`) runs
/// the configured reusable workflow: the same repository (ignoring ASCII case, as GitHub does),
/// the same path exactly, and, when the configured value has `@ref`, exactly that ref.
pub fn reusable_workflow_matches(configured: &str, job_workflow_ref: &str) -> bool {
    let (configured_path, configured_ref) = match configured.split_once('@') {
        Some((path, git_ref)) => (path, Some(git_ref)),
        None => (configured, None),
    };
    let Some((job_path, job_ref)) = job_workflow_ref.split_once('@') else {
        return false;
    };
    let split = |path: &'_ str| -> Option<(String, String)> {
        let mut parts = path.splitn(3, '/');
        let (owner, repo, rest) = (parts.next()?, parts.next()?, parts.next()?);
        Some((format!("{owner}/{repo}"), rest.to_owned()))
    };
    let (Some((configured_repo, configured_file)), Some((job_repo, job_file))) =
        (split(configured_path), split(job_path))
    else {
        return false;
    };
    configured_repo.eq_ignore_ascii_case(&job_repo)
        && configured_file == job_file
        && configured_ref.is_none_or(|r| r == job_ref)
}

/// `owner/repo/.github/workflows/file.yml`, optionally with a non-empty `@ref`.
fn valid_reusable_workflow(value: &str) -> bool {
    let (path, git_ref) = match value.split_once('@') {
        Some((path, git_ref)) => (path, Some(git_ref)),
        None => (value, None),
    };
    let ref_ok = git_ref.is_none_or(|r| {
        !r.is_empty()
            && r.len() <= 255
            && !r.contains('@')
            && !r.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    let mut parts = path.splitn(3, '/');
    let (Some(owner), Some(repo), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    ref_ok
        && crate::models::user::valid_login(owner)
        && valid_repo_name(repo)
        && rest
            .strip_prefix(".github/workflows/")
            .is_some_and(valid_workflow_filename)
}

fn valid_repo_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn valid_workflow_filename(name: &str) -> bool {
    name.len() <= 255
        && !name.contains('/')
        && !name.contains('\\')
        && (name.len() > 4 && name.ends_with(".yml") || name.len() > 5 && name.ends_with(".yaml"))
}

/// Looks up the numeric ID of a GitHub user or organization, so that a config keeps trusting
/// that account and not a later one of the same name.
async fn owner_id(
    http: &reqwest::Client,
    api_url: &url::Url,
    owner: &str,
) -> Result<i64, LookupError> {
    #[derive(Deserialize)]
    struct GitHubAccount {
        id: i64,
    }
    let mut url = api_url.clone();
    url.path_segments_mut()
        .map_err(|()| LookupError::Unavailable("WHARF_GITHUB_API_URL cannot be a base URL".into()))?
        .pop_if_empty()
        .extend(["users", owner]);
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "GitHub API look-up failed");
        LookupError::Unavailable(format!(
            "cannot reach the GitHub API to look up the ID of `{owner}`; try again shortly"
        ))
    };
    let response = http
        .get(url)
        .header("Accept", "application/vnd.github+json")
        .send()
        .await
        .map_err(|e| unavailable(&e))?;
    match response.status().as_u16() {
        200 => {
            let account: GitHubAccount = response.json().await.map_err(|e| unavailable(&e))?;
            Ok(account.id)
        }
        404 => Err(LookupError::Field(FieldError::new(
            "repository_owner",
            format!("GitHub has no user or organization named `{owner}`"),
        ))),
        status => Err(unavailable(&format!("HTTP {status}"))),
    }
}

/// The configs among `candidates` that accept these claims.
///
/// `candidates` may be all configs or only those of the claims' repository: the repository is
/// compared here anyway. When none matches, the error names the repository and each field that
/// differed, with what the configs expect.
pub fn match_publishers(
    claims: &GitHubClaims,
    candidates: &[Candidate<GitHubConfig>],
) -> Result<Vec<Match>, MatchError> {
    let repository = shorten(&claims.repository);
    let Some((owner, name)) = claims.repository.split_once('/') else {
        return Err(MatchError::InvalidClaim(format!(
            "The ID token's repository `{repository}` is not of the form `owner/name`."
        )));
    };
    let candidates: Vec<&Candidate<GitHubConfig>> = candidates
        .iter()
        .filter(|c| {
            c.config.repository_owner.eq_ignore_ascii_case(owner)
                && c.config.repository_name.eq_ignore_ascii_case(name)
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
    for candidate in candidates {
        let publisher = &candidate.config;
        let mismatch = if publisher.repository_owner_id != claims.repository_owner_id {
            Some(Mismatch::OwnerId(publisher.repository_owner_id))
        } else if publisher.workflow_filename != workflow {
            Some(Mismatch::Workflow(publisher.workflow_filename.clone()))
        } else if let Some(environment) = environment_mismatch(
            publisher.environment.as_deref(),
            claims.environment.as_deref(),
        ) {
            Some(Mismatch::Environment(environment))
        } else {
            publisher
                .reusable_workflow
                .as_deref()
                .filter(|reusable| !reusable_workflow_matches(reusable, &claims.job_workflow_ref))
                .map(|reusable| Mismatch::ReusableWorkflow(reusable.to_owned()))
        };
        match mismatch {
            None => matches.push(Match {
                publisher_id: publisher.id,
                crate_id: publisher.crate_id,
                crate_name: candidate.crate_name.clone(),
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
    let mut reusables = Vec::new();
    for mismatch in mismatches {
        match mismatch {
            Mismatch::Workflow(w) => workflows.push(w),
            Mismatch::Environment(e) => environments.push(e),
            Mismatch::OwnerId(id) => owner_ids.push(id),
            Mismatch::ReusableWorkflow(w) => reusables.push(w),
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
    if !reusables.is_empty() {
        let distinct = one_of_exact(&reusables);
        parts.push(format!(
            "the job runs the workflow `{}` (job_workflow_ref), but {} reusable workflow {distinct}",
            shorten(&claims.job_workflow_ref),
            configs_expect(&distinct)
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
    use serde_json::{Value, json};

    use super::*;

    /// The claims of a run of `release.yml` in `octo-org/widget`, with `overrides` merged in
    /// (a `null` removes a claim).
    fn claims(overrides: Value) -> GitHubClaims {
        let mut claims = json!({
            "iss": "https://token.actions.githubusercontent.com",
            "aud": "wharf.test",
            "jti": "jti",
            "exp": 0,
            "iat": 0,
            "repository": "octo-org/widget",
            "repository_owner": "octo-org",
            "repository_owner_id": "65",
            "repository_id": "74",
            "workflow_ref": "octo-org/widget/.github/workflows/release.yml@refs/tags/v1",
            "job_workflow_ref": "octo-org/widget/.github/workflows/release.yml@refs/tags/v1",
            "event_name": "push",
            "ref": "refs/tags/v1",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "run_id": "4242",
            "run_attempt": "1",
            "actor": "octocat",
            "actor_id": "1",
        });
        if let (Some(claims), Value::Object(overrides)) = (claims.as_object_mut(), overrides) {
            for (key, value) in overrides {
                if value.is_null() {
                    claims.remove(&key);
                } else {
                    claims.insert(key, value);
                }
            }
        }
        match serde_json::from_value(claims) {
            Ok(claims) => claims,
            Err(e) => panic!("test claims: {e}"),
        }
    }

    fn config(
        id: i64,
        crate_name: &str,
        change: impl FnOnce(&mut GitHubConfig),
    ) -> Candidate<GitHubConfig> {
        let mut config = GitHubConfig {
            id,
            crate_id: id * 10,
            repository_owner: "octo-org".to_owned(),
            repository_owner_id: 65,
            repository_name: "widget".to_owned(),
            workflow_filename: "release.yml".to_owned(),
            environment: None,
            created_at: NaiveDateTime::default(),
            created_by: None,
            reusable_workflow: None,
        };
        change(&mut config);
        Candidate {
            crate_name: crate_name.to_owned(),
            config,
        }
    }

    fn env(environment: &str) -> impl FnOnce(&mut GitHubConfig) {
        let environment = environment.to_owned();
        move |c| c.environment = Some(environment)
    }

    fn same(_: &mut GitHubConfig) {}

    /// The crates that matched, or the message.
    fn outcome(
        claims: &GitHubClaims,
        configs: &[Candidate<GitHubConfig>],
    ) -> Result<Vec<String>, String> {
        match_publishers(claims, configs)
            .map(|m| m.into_iter().map(|m| m.crate_name).collect())
            .map_err(|e| e.to_string())
    }

    /// (what, claim overrides, configs, the crates that match or the whole message)
    type Case = (
        &'static str,
        Value,
        Vec<Candidate<GitHubConfig>>,
        Result<Vec<String>, String>,
    );

    #[test]
    fn tokens_are_matched_against_configs() {
        let ok = |names: &[&str]| Ok(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
        // (what, claim overrides, configs, expected crates or the whole message)
        let cases: Vec<Case> = vec![
            ("the configured workflow", json!({}), vec![config(1, "widget", same)], ok(&["widget"])),
            (
                "owner and name ignoring ASCII case",
                json!({ "repository": "Octo-Org/WIDGET", "repository_owner": "Octo-Org" }),
                vec![config(1, "widget", same)],
                ok(&["widget"]),
            ),
            (
                "an environment ignoring ASCII case",
                json!({ "environment": "Production" }),
                vec![config(1, "widget", env("production"))],
                ok(&["widget"]),
            ),
            (
                "no configured environment accepts one",
                json!({ "environment": "staging" }),
                vec![config(1, "widget", same)],
                ok(&["widget"]),
            ),
            (
                "other repositories are ignored and several crates match",
                json!({}),
                vec![
                    config(1, "widget", same),
                    config(2, "other", |c| c.repository_name = "other".to_owned()),
                    config(3, "widget-derive", same),
                ],
                ok(&["widget", "widget-derive"]),
            ),
            (
                "a reusable workflow elsewhere: matched on the calling workflow",
                json!({ "job_workflow_ref": "octo-org/shared/.github/workflows/publish.yml@refs/heads/main" }),
                vec![config(1, "widget", same)],
                ok(&["widget"]),
            ),
            (
                "a repository without config",
                json!({}),
                vec![config(1, "widget", |c| c.repository_owner = "someone-else".to_owned())],
                Err("No Trusted Publishing config exists for repository `octo-org/widget`; an owner of the crate can add one in the crate's settings.".to_owned()),
            ),
            (
                "an owner ID that changed",
                json!({ "repository_owner_id": "123" }),
                vec![config(1, "widget", |c| c.repository_owner_id = 456)],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the repository owner ID 123 differs from the one recorded when the config was created (456); the account may have been deleted and re-created. Remove and re-add the config.".to_owned()),
            ),
            (
                "another workflow",
                json!({
                    "workflow_ref": "octo-org/widget/.github/workflows/ci.yml@refs/heads/main",
                    "job_workflow_ref": "octo-org/widget/.github/workflows/ci.yml@refs/heads/main",
                }),
                vec![config(1, "widget", same)],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the token's workflow is `ci.yml`, but the configs for this repository expect workflow `release.yml`.".to_owned()),
            ),
            (
                "a workflow that calls the configured file as a reusable workflow",
                json!({
                    "workflow_ref": "octo-org/widget/.github/workflows/ci.yml@refs/heads/main",
                    "job_workflow_ref": "octo-org/widget/.github/workflows/release.yml@refs/heads/main",
                }),
                vec![config(1, "widget", same)],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the token's workflow is `ci.yml`, but the configs for this repository expect workflow `release.yml`.".to_owned()),
            ),
            (
                "workflow file names are compared exactly",
                json!({ "workflow_ref": "octo-org/widget/.github/workflows/Release.yml@refs/tags/v1" }),
                vec![config(1, "widget", same)],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the token's workflow is `Release.yml`, but the configs for this repository expect workflow `release.yml`.".to_owned()),
            ),
            (
                "another environment",
                json!({ "environment": "staging" }),
                vec![config(1, "widget", env("production"))],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the token has environment `staging`, but the config expects `production`.".to_owned()),
            ),
            (
                "no environment where configs want one",
                json!({}),
                vec![config(1, "widget", env("production")), config(2, "widget-derive", env("release"))],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the token has no environment, but the configs expect `production` or `release`.".to_owned()),
            ),
            (
                "every differing field is reported",
                json!({ "environment": "staging" }),
                vec![
                    config(1, "widget", |c| c.workflow_filename = "publish.yml".to_owned()),
                    config(2, "widget-derive", env("production")),
                ],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the token's workflow is `release.yml`, but the configs for this repository expect workflow `publish.yml`; the token has environment `staging`, but the config expects `production`.".to_owned()),
            ),
            (
                "a repository that is not owner/name",
                json!({ "repository": "widget" }),
                vec![config(1, "widget", same)],
                Err("The ID token's repository `widget` is not of the form `owner/name`.".to_owned()),
            ),
        ];
        for (what, overrides, configs, expected) in cases {
            assert_eq!(outcome(&claims(overrides), &configs), expected, "{what}");
        }
    }

    #[test]
    fn repository_and_environment_fold_ascii_case_only() {
        // (repository claim, environment claim, configured environment, accepted)
        let cases = [
            ("Octo-Org/WIDGET", Some("K8S"), Some("k8s"), true),
            ("o\u{212A}to-org/widget", None, None, false), // KELVIN SIGN
            ("octo-org/widget\u{17F}", None, None, false), // LONG S
            ("octo-org/w\u{131}dget", None, None, false),  // DOTLESS I
            ("octo-org/widget", Some("\u{212A}8s"), Some("k8s"), false),
            ("octo-org/widget", Some("\u{212A}8S"), Some("K8S"), false),
            (
                "octo-org/widget",
                Some("product\u{131}on"),
                Some("production"),
                false,
            ),
            ("octo-org/widget", Some("\u{130}nfra"), Some("infra"), false),
        ];
        for (repository, claimed, configured, accepted) in cases {
            let claims = claims(json!({ "repository": repository, "environment": claimed }));
            let configs = [config(1, "widget", |c| {
                c.environment = configured.map(str::to_owned)
            })];
            let result = match_publishers(&claims, &configs);
            assert_eq!(
                result.is_ok(),
                accepted,
                "{repository:?} {claimed:?} against {configured:?}: {result:?}"
            );
        }
    }

    #[test]
    fn refused_events_are_explained() {
        for (event, refused) in [
            ("push", false),
            ("release", false),
            ("pull_request_target", true),
            ("workflow_run", true),
        ] {
            let result = check_event(&claims(json!({ "event_name": event })));
            assert_eq!(result.is_err(), refused, "{event}");
            if let Err(e) = result {
                assert!(e.to_string().contains(&format!("`{event}` events")), "{e}");
            }
        }
    }

    #[test]
    fn workflow_refs_are_parsed_like_crates_io_does() {
        let cases = [
            (
                "octo/widget/.github/workflows/release.yml@refs/tags/v1",
                Some("release.yml"),
            ),
            (
                "octo/widget/.github/workflows/release.yml@refs/heads/a@b",
                Some("release.yml"),
            ),
            ("octo/widget/release.yml@refs/tags/v1", None),
            ("octo/widget/.github/workflows/release.yml", None),
            (
                "octo/widget/.github/workflows/sub/release.yml@refs/tags/v1",
                None,
            ),
        ];
        for (workflow_ref, expected) in cases {
            assert_eq!(workflow_filename(workflow_ref), expected, "{workflow_ref}");
        }
    }

    #[test]
    fn the_record_links_to_the_run_on_its_server() {
        let data = GitHub::data(&claims(json!({})));
        assert_eq!(
            data.run_url,
            "https://github.com/octo-org/widget/actions/runs/4242/attempts/1"
        );
        let enterprise = GitHub::data(&claims(
            json!({ "iss": "https://ghe.example.com/_services/token" }),
        ));
        assert!(
            enterprise
                .run_url
                .starts_with("https://ghe.example.com/octo-org/widget/")
        );
        assert_eq!(data.workflow.as_deref(), Some("release.yml"));
        assert_eq!(GitHub::published_by(&claims(json!({}))), "octocat");
    }

    #[test]
    fn reusable_workflows_are_compared_with_the_jobs_workflow() {
        const JOB: &str = "octo-org/shared/.github/workflows/publish.yml@refs/heads/main";
        // (configured, job_workflow_ref, accepted)
        let cases = [
            ("octo-org/shared/.github/workflows/publish.yml", JOB, true),
            ("Octo-Org/SHARED/.github/workflows/publish.yml", JOB, true),
            (
                "octo-org/shared/.github/workflows/publish.yml@refs/heads/main",
                JOB,
                true,
            ),
            (
                "octo-org/shared/.github/workflows/publish.yml@refs/heads/dev",
                JOB,
                false,
            ),
            (
                "octo-org/shared/.github/workflows/publish.yml@refs/heads/Main",
                JOB,
                false,
            ),
            ("octo-org/shared/.github/workflows/Publish.yml", JOB, false),
            ("octo-org/other/.github/workflows/publish.yml", JOB, false),
            ("evil-org/shared/.github/workflows/publish.yml", JOB, false),
            (
                "octo-org/shared/.github/workflows/publish.yml",
                "octo-org/shared/.github/workflows/publish.yml",
                false,
            ),
            (
                "octo-org/shared/.github/workflows/publish.yml",
                "garbage",
                false,
            ),
        ];
        for (configured, job, accepted) in cases {
            assert_eq!(
                reusable_workflow_matches(configured, job),
                accepted,
                "{configured} vs {job}"
            );
        }
    }

    #[test]
    fn a_configured_reusable_workflow_must_run_the_job() {
        const SHARED: &str = "octo-org/shared/.github/workflows/publish.yml";
        let reusable = |value: &'static str| {
            move |c: &mut GitHubConfig| c.reusable_workflow = Some(value.to_owned())
        };
        let job = json!({ "job_workflow_ref": format!("{SHARED}@refs/heads/main") });
        // (what, claim overrides, configs, expected crates or the whole message)
        let cases: Vec<Case> = vec![
            ("the job runs it", job.clone(), vec![config(1, "widget", reusable(SHARED))], Ok(vec!["widget".to_owned()])),
            (
                "the job runs it at the configured ref",
                job.clone(),
                vec![config(1, "widget", reusable("octo-org/shared/.github/workflows/publish.yml@refs/heads/main"))],
                Ok(vec!["widget".to_owned()]),
            ),
            (
                "the job runs the calling workflow itself",
                json!({}),
                vec![config(1, "widget", reusable(SHARED))],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the job runs the workflow `octo-org/widget/.github/workflows/release.yml@refs/tags/v1` (job_workflow_ref), but the config expects reusable workflow `octo-org/shared/.github/workflows/publish.yml`.".to_owned()),
            ),
            (
                "another ref",
                job.clone(),
                vec![
                    config(1, "widget", reusable("octo-org/shared/.github/workflows/publish.yml@refs/tags/v2")),
                    config(2, "widget", reusable("octo-org/shared/.github/workflows/publish.yml@refs/tags/v3")),
                ],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the job runs the workflow `octo-org/shared/.github/workflows/publish.yml@refs/heads/main` (job_workflow_ref), but the configs expect reusable workflow `octo-org/shared/.github/workflows/publish.yml@refs/tags/v2` or `octo-org/shared/.github/workflows/publish.yml@refs/tags/v3`.".to_owned()),
            ),
            (
                "the calling workflow still decides",
                json!({
                    "workflow_ref": "octo-org/widget/.github/workflows/other.yml@refs/tags/v1",
                    "job_workflow_ref": format!("{SHARED}@refs/heads/main"),
                }),
                vec![config(1, "widget", reusable(SHARED))],
                Err("No Trusted Publishing config matches repository `octo-org/widget`: the token's workflow is `other.yml`, but the configs for this repository expect workflow `release.yml`.".to_owned()),
            ),
        ];
        for (what, overrides, configs, expected) in cases {
            assert_eq!(outcome(&claims(overrides), &configs), expected, "{what}");
        }
        // The record names the reusable workflow when one ran the job, and only then.
        let data = GitHub::data(&claims(job));
        assert_eq!(
            data.reusable_workflow.as_deref(),
            Some("octo-org/shared/.github/workflows/publish.yml@refs/heads/main")
        );
        assert!(data.details().contains(&(
            "Reusable workflow",
            "octo-org/shared/.github/workflows/publish.yml@refs/heads/main".to_owned()
        )));
        assert_eq!(GitHub::data(&claims(json!({}))).reusable_workflow, None);
    }

    #[test]
    fn reusable_workflow_fields_are_checked() {
        // (value, valid)
        let cases = [
            ("octo-org/shared/.github/workflows/publish.yml", true),
            (
                "octo-org/shared/.github/workflows/publish.yaml@refs/heads/main",
                true,
            ),
            ("octo-org/shared/.github/workflows/publish.yml@v1", true),
            ("octo-org/shared/.github/workflows/publish.yml@", false),
            ("octo-org/shared/.github/workflows/publish.yml@a b", false),
            ("octo-org/shared/publish.yml", false),
            ("octo-org/.github/workflows/publish.yml", false),
            (
                "octo-org/shared/.github/workflows/nested/publish.yml",
                false,
            ),
            ("-bad/shared/.github/workflows/publish.yml", false),
            ("publish.yml", false),
        ];
        for (value, valid) in cases {
            let mut with = input("o", "r", "release.yml", None);
            with.reusable_workflow = Some(format!("  {value} "));
            let normalized = GitHub::normalize(with);
            assert_eq!(normalized.is_ok(), valid, "{value}");
            if let Ok(normalized) = normalized {
                assert_eq!(normalized.reusable_workflow.as_deref(), Some(value));
            }
        }
        let mut empty = input("o", "r", "release.yml", None);
        empty.reusable_workflow = Some("  ".to_owned());
        assert_eq!(
            GitHub::normalize(empty).map(|i| i.reusable_workflow),
            Ok(None)
        );
    }

    fn input(owner: &str, repo: &str, workflow: &str, env: Option<&str>) -> GitHubInput {
        GitHubInput {
            repository_owner: owner.into(),
            repository_name: repo.into(),
            workflow_filename: workflow.into(),
            environment: env.map(Into::into),
            reusable_workflow: None,
            repository_owner_id: None,
        }
    }

    #[test]
    fn config_fields_are_trimmed_and_checked() {
        let ok = GitHub::normalize(input(" octo-org ", "widget.rs", "release.yml", Some("  ")));
        let ok = ok.map_err(|e| format!("{e:?}"));
        assert_eq!(
            ok.as_ref().map(|c| c.repository_owner.as_str()),
            Ok("octo-org")
        );
        assert_eq!(ok.as_ref().map(|c| c.environment.clone()), Ok(None));
        let errors = GitHub::normalize(input(
            "-bad",
            "a/b",
            ".github/workflows/release.yml",
            Some("x\u{7}"),
        ));
        let fields: Vec<_> = errors
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "repository_owner",
                "repository_name",
                "workflow_filename",
                "environment"
            ]
        );
        assert!(GitHub::normalize(input("o", "r", "release.json", None)).is_err());
        assert!(GitHub::normalize(input("o", "r", ".yml", None)).is_err());
    }
}
