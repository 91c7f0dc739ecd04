//! GitLab CI: the ID token's claims and how they are matched to publisher configs.
//!
//! A config names a namespace (a user or a group, with subgroups: `group/sub`), a project, the
//! path of the CI config file and optionally an environment. The token's `project_path` is split
//! at its last `/` into namespace and project, both compared ignoring ASCII case. The
//! namespace's numeric ID is captured on the first successful use and must match afterwards, so
//! that a deleted and re-created group of the same name cannot inherit trust.
//!
//! The CI config comes from `ci_config_ref_uri`, which must name the project's own CI config at
//! the commit being built ([`own_ci_config_path`]): GitLab lets a project run the CI config of
//! another project, and such a pipeline must not publish as this one.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::claims::de;
use super::errors::{MatchError, shorten};
use super::provider::{
    Candidate, Cell, FieldError, FormField, IssuerSetting, Match, Provider, check,
    check_environment, environment_message, environment_mismatch, eq_optional_ignore_case,
    join_parts, list_ids, normalize_optional, one_of, trim_all,
};
use super::record::Record;
use crate::db::{DbConn, lower};
use crate::schema::{crates, trustpub_gitlab_configs};

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

/// The CI config path of a token whose `ci_config_ref_uri` names the project's own CI config
/// at the commit being built: `{issuer host}/{project_path}//{path}@{ref}`, where the host is
/// the issuer's (scheme and trailing `/` removed), host and project path are compared ignoring
/// ASCII case, and `{ref}` is exactly the token's `ref_path` or `sha` (as PyPI checks).
///
/// GitLab lets a project take its CI configuration from another project (or instance): the job
/// then runs what the other project says, and must not publish as this one. Otherwise the part
/// of the mismatch message that says what the token names and what is expected.
pub fn own_ci_config_path(claims: &GitLabClaims) -> Result<&str, String> {
    let uri = claims.ci_config_ref_uri.as_str();
    let host = claims
        .iss
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let expected = format!("{host}/{}//", claims.project_path);
    let rest = match uri.get(..expected.len()) {
        Some(start) if start.eq_ignore_ascii_case(&expected) => &uri[expected.len()..],
        _ => {
            return Err(format!(
                "the token's `ci_config_ref_uri` is `{}`, a CI config outside this project; it \
                 must start with `{}`. A pipeline whose CI configuration comes from another \
                 project cannot publish: keep the CI config in the project itself",
                shorten(uri),
                shorten(&expected)
            ));
        }
    };
    let refs = [claims.ref_path.as_deref(), Some(claims.sha.as_str())];
    let path = refs.into_iter().flatten().find_map(|r| {
        rest.strip_suffix(r)
            .and_then(|path| path.strip_suffix('@'))
            .filter(|path| !path.is_empty())
    });
    match path {
        Some(path) => Ok(path),
        None => {
            let expected = match &claims.ref_path {
                Some(ref_path) => format!(
                    "`ref_path` (`@{}`) or `sha` (`@{}`)",
                    shorten(ref_path),
                    shorten(&claims.sha)
                ),
                None => format!("`sha` (`@{}`)", shorten(&claims.sha)),
            };
            Err(format!(
                "the token's `ci_config_ref_uri` `{}` does not end in the token's {expected}: the \
                 CI config must be the one of the commit being built",
                shorten(uri)
            ))
        }
    }
}

/// GitLab CI, as a [`Provider`].
pub struct GitLab;

/// What a GitLab CI exchange records. The JSON is what earlier versions stored (`repository`
/// and `project` both hold the project path; `run_id` is the job ID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitLabData {
    pub issuer: String,
    pub repository: String,
    pub project: String,
    /// The CI config path, from `ci_config_ref_uri`.
    pub workflow: Option<String>,
    pub environment: Option<String>,
    pub run_id: String,
    pub pipeline_id: String,
    pub job_id: String,
    pub run_url: String,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub actor: String,
}

impl Record for GitLabData {
    fn source(&self) -> String {
        self.project.clone()
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        let mut details = vec![("Project", self.project.clone())];
        details.extend(self.workflow.clone().map(|w| ("CI config", w)));
        details.extend(self.environment.clone().map(|e| ("Environment", e)));
        details
    }

    fn run_label(&self) -> String {
        format!("job {}", self.job_id)
    }

    fn run_url(&self) -> &str {
        &self.run_url
    }

    fn sha(&self) -> &str {
        &self.sha
    }

    fn summary(&self) -> String {
        match &self.workflow {
            Some(workflow) => format!("{} ({workflow})", self.project),
            None => self.project.clone(),
        }
    }
}

/// A GitLab publisher config, as stored.
#[derive(Queryable, Selectable, Identifiable, Debug, Clone, PartialEq, Eq)]
#[diesel(table_name = trustpub_gitlab_configs)]
pub struct GitLabConfig {
    pub id: i64,
    pub crate_id: i64,
    pub namespace: String,
    /// Captured on the first successful use.
    pub namespace_id: Option<i64>,
    pub project: String,
    pub workflow_filepath: String,
    pub environment: Option<String>,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
}

/// A GitLab publisher config as submitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GitLabInput {
    pub namespace: String,
    pub project: String,
    pub workflow_filepath: String,
    #[serde(default)]
    pub environment: Option<String>,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = trustpub_gitlab_configs)]
struct NewGitLabConfig<'a> {
    crate_id: i64,
    namespace: &'a str,
    project: &'a str,
    workflow_filepath: &'a str,
    environment: Option<&'a str>,
    created_at: NaiveDateTime,
    created_by: Option<i64>,
}

enum Mismatch {
    NamespaceId(i64),
    Workflow(String),
    Environment(String),
}

impl Provider for GitLab {
    const KIND: &'static str = "gitlab";
    const LABEL: &'static str = "GitLab CI";
    const ISSUER: IssuerSetting = IssuerSetting {
        key: "trustpub_gitlab_issuers",
        default: "https://gitlab.com",
        many: true,
    };
    const FORM_ID: &'static str = "gl";
    const FIELDS: &'static [FormField] = &[
        FormField {
            name: "namespace",
            label: "Namespace",
            hint: "The group or user, with subgroups separated by /.",
            required: true,
        },
        FormField {
            name: "project",
            label: "Project",
            hint: "",
            required: true,
        },
        FormField {
            name: "workflow_filepath",
            label: "CI config file path",
            hint: "Usually .gitlab-ci.yml.",
            required: true,
        },
        FormField {
            name: "environment",
            label: "Environment (optional)",
            hint: "If set, only jobs deploying to this environment may publish.",
            required: false,
        },
    ];
    const COLUMNS: &'static [&'static str] = &["Project", "CI config", "Environment"];

    type Claims = GitLabClaims;
    type Data = GitLabData;
    type Config = GitLabConfig;
    type Input = GitLabInput;

    fn published_by(claims: &GitLabClaims) -> String {
        claims.user_login.clone()
    }

    fn subject(claims: &GitLabClaims) -> String {
        format!("project `{}`", shorten(&claims.project_path))
    }

    fn data(claims: &GitLabClaims) -> GitLabData {
        GitLabData {
            issuer: claims.iss.clone(),
            repository: claims.project_path.clone(),
            project: claims.project_path.clone(),
            workflow: claims.ci_config_path().map(str::to_owned),
            environment: claims.environment.clone(),
            run_id: claims.job_id.to_string(),
            pipeline_id: claims.pipeline_id.to_string(),
            job_id: claims.job_id.to_string(),
            run_url: claims.job_url(),
            sha: claims.sha.clone(),
            git_ref: claims.git_ref.clone(),
            actor: claims.user_login.clone(),
        }
    }

    fn match_configs(
        claims: &GitLabClaims,
        candidates: &[Candidate<GitLabConfig>],
    ) -> Result<Vec<Match>, MatchError> {
        match_publishers(claims, candidates)
    }

    fn normalize(mut input: GitLabInput) -> Result<GitLabInput, Vec<FieldError>> {
        trim_all(&mut [
            &mut input.namespace,
            &mut input.project,
            &mut input.workflow_filepath,
        ]);
        input.namespace = input.namespace.trim_matches('/').to_owned();
        input.environment = normalize_optional(input.environment);
        let mut errors = Vec::new();
        check(
            &mut errors,
            "namespace",
            valid_gitlab_namespace(&input.namespace),
            "a GitLab group or user path, with subgroups separated by `/` (such as `group/subgroup`)",
        );
        check(
            &mut errors,
            "project",
            valid_gitlab_path_segment(&input.project),
            "a GitLab project path: letters, digits, `.`, `-` and `_`",
        );
        check(
            &mut errors,
            "workflow_filepath",
            valid_ci_config_path(&input.workflow_filepath),
            "the CI config file's path in the repository, such as `.gitlab-ci.yml` (relative, no `..`, ending in .yml or .yaml)",
        );
        check_environment(&mut errors, input.environment.as_deref());
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(errors)
        }
    }

    fn is_duplicate(c: &GitLabConfig, input: &GitLabInput) -> bool {
        c.namespace.eq_ignore_ascii_case(&input.namespace)
            && c.project.eq_ignore_ascii_case(&input.project)
            && c.workflow_filepath == input.workflow_filepath
            && eq_optional_ignore_case(c.environment.as_deref(), input.environment.as_deref())
    }

    fn pending_config(
        id: i64,
        input: &GitLabInput,
        created_by: i64,
        created_at: NaiveDateTime,
    ) -> GitLabConfig {
        GitLabConfig {
            id,
            crate_id: 0,
            namespace: input.namespace.clone(),
            namespace_id: None,
            project: input.project.clone(),
            workflow_filepath: input.workflow_filepath.clone(),
            environment: input.environment.clone(),
            created_at,
            created_by: Some(created_by),
        }
    }

    fn config_id(config: &GitLabConfig) -> i64 {
        config.id
    }

    fn config_crate_id(config: &GitLabConfig) -> i64 {
        config.crate_id
    }

    fn config_created_at(config: &GitLabConfig) -> NaiveDateTime {
        config.created_at
    }

    fn config_json(c: &GitLabConfig, crate_name: &str) -> serde_json::Value {
        json!({
            "id": c.id,
            "crate": crate_name,
            "namespace": c.namespace,
            "namespace_id": c.namespace_id,
            "project": c.project,
            "workflow_filepath": c.workflow_filepath,
            "environment": c.environment,
            "created_at": c.created_at.and_utc(),
        })
    }

    fn describe(c: &GitLabConfig) -> String {
        let env = c
            .environment
            .as_deref()
            .map(|e| format!(", environment {e}"))
            .unwrap_or_default();
        format!(
            "{}/{}, {}{env}",
            c.namespace, c.project, c.workflow_filepath
        )
    }

    fn row(c: &GitLabConfig) -> Vec<Cell> {
        vec![
            Cell::Text(format!("{}/{}", c.namespace, c.project)),
            Cell::Code(c.workflow_filepath.clone()),
            Cell::optional(c.environment.as_deref()),
        ]
    }

    /// The configs of the claims' project (namespace and project ignoring ASCII case). A
    /// prefilter only, like GitHub's; the matcher decides.
    fn candidates(
        conn: &mut DbConn,
        claims: &GitLabClaims,
    ) -> QueryResult<Vec<Candidate<GitLabConfig>>> {
        let (namespace, project) = claims
            .project_path
            .rsplit_once('/')
            .unwrap_or(("", &claims.project_path));
        let rows: Vec<(GitLabConfig, String)> = trustpub_gitlab_configs::table
            .inner_join(crates::table)
            .filter(lower(trustpub_gitlab_configs::namespace).eq(namespace.to_ascii_lowercase()))
            .filter(lower(trustpub_gitlab_configs::project).eq(project.to_ascii_lowercase()))
            .select((GitLabConfig::as_select(), crates::name))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(config, crate_name)| Candidate { crate_name, config })
            .collect())
    }

    /// Records the namespace ID seen on first use; never overwrites one already recorded.
    fn record_use(conn: &mut DbConn, config_id: i64, claims: &GitLabClaims) -> QueryResult<()> {
        diesel::update(
            trustpub_gitlab_configs::table
                .find(config_id)
                .filter(trustpub_gitlab_configs::namespace_id.is_null()),
        )
        .set(trustpub_gitlab_configs::namespace_id.eq(claims.namespace_id))
        .execute(conn)?;
        Ok(())
    }

    fn for_crate(conn: &mut DbConn, crate_id: i64) -> QueryResult<Vec<GitLabConfig>> {
        trustpub_gitlab_configs::table
            .filter(trustpub_gitlab_configs::crate_id.eq(crate_id))
            .order(trustpub_gitlab_configs::id.asc())
            .select(GitLabConfig::as_select())
            .load(conn)
    }

    fn by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<GitLabConfig>> {
        trustpub_gitlab_configs::table
            .find(id)
            .select(GitLabConfig::as_select())
            .first(conn)
            .optional()
    }

    fn insert(
        conn: &mut DbConn,
        crate_id: i64,
        input: &GitLabInput,
        created_by: i64,
        now: NaiveDateTime,
    ) -> QueryResult<GitLabConfig> {
        diesel::insert_into(trustpub_gitlab_configs::table)
            .values(NewGitLabConfig {
                crate_id,
                namespace: &input.namespace,
                project: &input.project,
                workflow_filepath: &input.workflow_filepath,
                environment: input.environment.as_deref(),
                created_at: now,
                created_by: Some(created_by),
            })
            .execute(conn)?;
        trustpub_gitlab_configs::table
            .filter(trustpub_gitlab_configs::crate_id.eq(crate_id))
            .order(trustpub_gitlab_configs::id.desc())
            .select(GitLabConfig::as_select())
            .first(conn)
    }

    fn delete(conn: &mut DbConn, id: i64) -> QueryResult<()> {
        diesel::delete(trustpub_gitlab_configs::table.find(id)).execute(conn)?;
        Ok(())
    }
}

fn valid_gitlab_path_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 255
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && segment.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && !segment.ends_with('.')
}

fn valid_gitlab_namespace(namespace: &str) -> bool {
    namespace.len() <= 255 && namespace.split('/').all(valid_gitlab_path_segment)
}

fn valid_ci_config_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 255
        && !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && (path.ends_with(".yml") || path.ends_with(".yaml"))
}

/// The configs among `candidates` that accept these claims.
///
/// `candidates` may be all configs or only those of the claims' project: namespace and project
/// are compared here anyway. A config without a namespace ID matches any; the exchange then
/// records the token's ([`Provider::record_use`]).
pub fn match_publishers(
    claims: &GitLabClaims,
    candidates: &[Candidate<GitLabConfig>],
) -> Result<Vec<Match>, MatchError> {
    let project_path = shorten(&claims.project_path);
    let Some((namespace, project)) = claims.namespace_and_project() else {
        return Err(MatchError::InvalidClaim(format!(
            "The ID token's project path `{project_path}` is not of the form `namespace/project`."
        )));
    };
    let candidates: Vec<&Candidate<GitLabConfig>> = candidates
        .iter()
        .filter(|c| {
            c.config.namespace.eq_ignore_ascii_case(namespace)
                && c.config.project.eq_ignore_ascii_case(project)
        })
        .collect();
    if candidates.is_empty() {
        return Err(MatchError::NoConfig(format!(
            "No Trusted Publishing config exists for project `{project_path}`; an owner of the \
             crate can add one in the crate's settings."
        )));
    }
    let workflow = own_ci_config_path(claims).map_err(|part| {
        MatchError::Mismatch(join_parts(
            format!("No Trusted Publishing config matches project `{project_path}`: "),
            vec![part],
        ))
    })?;

    let mut matches = Vec::new();
    let mut mismatches = Vec::new();
    for candidate in candidates {
        let publisher = &candidate.config;
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

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn claims(iss: &str, project_path: &str, ci_config_ref_uri: &str) -> GitLabClaims {
        GitLabClaims {
            iss: iss.to_owned(),
            aud: "wharf.test".to_owned(),
            sub: None,
            jti: "jti".to_owned(),
            exp: 0,
            iat: 0,
            nbf: None,
            namespace_id: 72,
            namespace_path: "acme".to_owned(),
            project_id: 20,
            project_path: project_path.to_owned(),
            user_id: 1,
            user_login: "gitlab-user".to_owned(),
            pipeline_id: 574,
            pipeline_source: Some("push".to_owned()),
            job_id: 302,
            git_ref: "v1.0.0".to_owned(),
            ref_type: Some("tag".to_owned()),
            ref_path: Some("refs/tags/v1.0.0".to_owned()),
            environment: None,
            deployment_tier: None,
            runner_id: None,
            runner_environment: None,
            sha: SHA.to_owned(),
            project_visibility: None,
            ci_config_ref_uri: ci_config_ref_uri.to_owned(),
            ci_config_sha: None,
        }
    }

    fn publisher(workflow_filepath: &str) -> GitLabConfig {
        GitLabConfig {
            id: 1,
            crate_id: 10,
            namespace: "acme".to_owned(),
            namespace_id: None,
            project: "widget".to_owned(),
            workflow_filepath: workflow_filepath.to_owned(),
            environment: None,
            created_at: NaiveDateTime::default(),
            created_by: None,
        }
    }

    fn candidate(config: GitLabConfig) -> Candidate<GitLabConfig> {
        Candidate {
            crate_name: "widget".to_owned(),
            config,
        }
    }

    /// `Ok(())` for a match, else the message.
    fn outcome(claims: &GitLabClaims, publisher: GitLabConfig) -> Result<(), String> {
        match match_publishers(claims, &[candidate(publisher)]) {
            Ok(matches) if matches.len() == 1 => Ok(()),
            Ok(matches) => Err(format!("unexpected matches {matches:?}")),
            Err(error) => Err(error.to_string()),
        }
    }

    #[test]
    fn the_ci_config_must_be_the_projects_own_at_the_built_ref() {
        let gitlab = "https://gitlab.com";
        let sha_uri = format!("gitlab.com/acme/widget//.gitlab-ci.yml@{SHA}");
        // (what, issuer, ci_config_ref_uri, configured path, None for a match or a part of
        // the refusal)
        let cases: Vec<(&str, &str, String, &str, Option<&str>)> = vec![
            (
                "own config at ref_path",
                gitlab,
                "gitlab.com/acme/widget//.gitlab-ci.yml@refs/tags/v1.0.0".into(),
                ".gitlab-ci.yml",
                None,
            ),
            ("own config at sha", gitlab, sha_uri, ".gitlab-ci.yml", None),
            (
                "nested path, ASCII case of host and project differs",
                gitlab,
                "GitLab.com/Acme/Widget//ci/release.yml@refs/tags/v1.0.0".into(),
                "ci/release.yml",
                None,
            ),
            (
                "self-managed instance on a port",
                "http://127.0.0.1:8929/",
                "127.0.0.1:8929/acme/widget//.gitlab-ci.yml@refs/tags/v1.0.0".into(),
                ".gitlab-ci.yml",
                None,
            ),
            (
                "config of another project",
                gitlab,
                "gitlab.com/mallory/ci-templates//.gitlab-ci.yml@refs/tags/v1.0.0".into(),
                ".gitlab-ci.yml",
                Some(
                    "the token's `ci_config_ref_uri` is \
                     `gitlab.com/mallory/ci-templates//.gitlab-ci.yml@refs/tags/v1.0.0`, a CI \
                     config outside this project; it must start with `gitlab.com/acme/widget//`",
                ),
            ),
            (
                "config of a project whose path only starts like this one's",
                gitlab,
                "gitlab.com/acme/widget-ci//.gitlab-ci.yml@refs/tags/v1.0.0".into(),
                ".gitlab-ci.yml",
                Some("it must start with `gitlab.com/acme/widget//`"),
            ),
            (
                "config of a project below this one",
                gitlab,
                "gitlab.com/acme/widget/ci//.gitlab-ci.yml@refs/tags/v1.0.0".into(),
                ".gitlab-ci.yml",
                Some("a CI config outside this project"),
            ),
            (
                "config on another instance",
                gitlab,
                "gitlab.example.com/acme/widget//.gitlab-ci.yml@refs/tags/v1.0.0".into(),
                ".gitlab-ci.yml",
                Some("it must start with `gitlab.com/acme/widget//`"),
            ),
            (
                "host that only starts like the issuer's",
                gitlab,
                "gitlab.com.evil.example/acme/widget//.gitlab-ci.yml@refs/tags/v1.0.0".into(),
                ".gitlab-ci.yml",
                Some("a CI config outside this project"),
            ),
            (
                "config of another branch",
                gitlab,
                "gitlab.com/acme/widget//.gitlab-ci.yml@refs/heads/unprotected".into(),
                ".gitlab-ci.yml",
                Some(
                    "the token's `ci_config_ref_uri` \
                     `gitlab.com/acme/widget//.gitlab-ci.yml@refs/heads/unprotected` does not \
                     end in the token's `ref_path` (`@refs/tags/v1.0.0`) or `sha` \
                     (`@0123456789abcdef0123456789abcdef01234567`)",
                ),
            ),
            (
                "no ref at all",
                gitlab,
                "gitlab.com/acme/widget//.gitlab-ci.yml".into(),
                ".gitlab-ci.yml",
                Some("does not end in the token's `ref_path`"),
            ),
            (
                "another file of this project",
                gitlab,
                "gitlab.com/acme/widget//ci/other.yml@refs/tags/v1.0.0".into(),
                ".gitlab-ci.yml",
                Some(
                    "the token's CI config file is `ci/other.yml`, but the configs for this \
                     project expect `.gitlab-ci.yml`",
                ),
            ),
        ];
        for (what, iss, uri, path, refusal) in cases {
            let result = outcome(&claims(iss, "acme/widget", &uri), publisher(path));
            match refusal {
                None => assert_eq!(result, Ok(()), "{what}"),
                Some(part) => {
                    let message = result.err().unwrap_or_default();
                    assert!(message.contains(part), "{what}: {message}");
                }
            }
        }
    }

    #[test]
    fn without_ref_path_only_the_sha_is_accepted() {
        let mut at_ref = claims(
            "https://gitlab.com",
            "acme/widget",
            "gitlab.com/acme/widget//.gitlab-ci.yml@refs/tags/v1.0.0",
        );
        at_ref.ref_path = None;
        let message = outcome(&at_ref, publisher(".gitlab-ci.yml")).err();
        assert!(
            message.as_deref().is_some_and(|m| m.contains(
                "does not end in the token's `sha` (`@0123456789abcdef0123456789abcdef01234567`)"
            )),
            "{message:?}"
        );
        let mut at_sha = at_ref.clone();
        at_sha.ci_config_ref_uri = format!("gitlab.com/acme/widget//.gitlab-ci.yml@{SHA}");
        assert_eq!(outcome(&at_sha, publisher(".gitlab-ci.yml")), Ok(()));
    }

    #[test]
    fn namespace_project_and_environment_fold_ascii_case_only() {
        // (project_path claim, environment claim, configured environment, accepted)
        let cases = [
            ("ACME/Widget", Some("K8S"), Some("k8s"), true),
            ("acme/widget", Some("\u{212A}8s"), Some("k8s"), false), // KELVIN SIGN
            ("a\u{212A}me/widget", None, None, false),
            ("acme/wid\u{17F}et", None, None, false), // LONG S (as a stand-in: not `g`)
            ("acme/w\u{131}dget", None, None, false), // DOTLESS I
            ("acme/W\u{130}dget", None, None, false), // CAPITAL I WITH DOT ABOVE
        ];
        for (project_path, claimed, configured, accepted) in cases {
            let uri = format!("gitlab.com/{project_path}//.gitlab-ci.yml@refs/tags/v1.0.0");
            let mut claims = claims("https://gitlab.com", project_path, &uri);
            claims.environment = claimed.map(str::to_owned);
            let publisher = GitLabConfig {
                environment: configured.map(str::to_owned),
                ..publisher(".gitlab-ci.yml")
            };
            let result = outcome(&claims, publisher);
            assert_eq!(
                result.is_ok(),
                accepted,
                "{project_path:?} {claimed:?} against {configured:?}: {result:?}"
            );
        }
    }

    #[test]
    fn namespace_ids_and_files_are_reported_precisely() {
        let uri = "gitlab.com/acme/widget//.gitlab-ci.yml@refs/tags/v1.0.0";
        let base = claims("https://gitlab.com", "acme/widget", uri);
        // (what, claims, config, None for a match or the whole message)
        let cases: Vec<(&str, GitLabClaims, GitLabConfig, Option<&str>)> = vec![
            (
                "a recorded namespace ID that still holds",
                base.clone(),
                GitLabConfig {
                    namespace_id: Some(72),
                    ..publisher(".gitlab-ci.yml")
                },
                None,
            ),
            (
                "a namespace ID that changed",
                GitLabClaims {
                    namespace_id: 999,
                    ..base.clone()
                },
                GitLabConfig {
                    namespace_id: Some(72),
                    ..publisher(".gitlab-ci.yml")
                },
                Some(
                    "No Trusted Publishing config matches project `acme/widget`: the namespace ID \
                     999 differs from the one recorded when the config was first used (72); the \
                     group or user may have been deleted and re-created. Remove and re-add the \
                     config.",
                ),
            ),
            (
                "another CI config path",
                base.clone(),
                publisher("ci/release.yml"),
                Some(
                    "No Trusted Publishing config matches project `acme/widget`: the token's CI \
                     config file is `.gitlab-ci.yml`, but the configs for this project expect \
                     `ci/release.yml`.",
                ),
            ),
            (
                "no environment where the config wants one",
                base.clone(),
                GitLabConfig {
                    environment: Some("production".to_owned()),
                    ..publisher(".gitlab-ci.yml")
                },
                Some(
                    "No Trusted Publishing config matches project `acme/widget`: the token has no \
                     environment, but the config expects `production`.",
                ),
            ),
            (
                "a project of a subgroup is another project",
                claims(
                    "https://gitlab.com",
                    "acme/tools/widget",
                    "gitlab.com/acme/tools/widget//.gitlab-ci.yml@refs/tags/v1.0.0",
                ),
                publisher(".gitlab-ci.yml"),
                Some(
                    "No Trusted Publishing config exists for project `acme/tools/widget`; an owner \
                     of the crate can add one in the crate's settings.",
                ),
            ),
        ];
        for (what, claims, config, expected) in cases {
            let result = outcome(&claims, config);
            match expected {
                None => assert_eq!(result, Ok(()), "{what}"),
                Some(message) => assert_eq!(result, Err(message.to_owned()), "{what}"),
            }
        }
    }

    #[test]
    fn the_record_names_the_job_and_the_ci_config() {
        let claims = claims(
            "https://gitlab.example.com",
            "acme/sub/widget",
            "gitlab.example.com/acme/sub/widget//ci/release.yml@refs/tags/v1.0.0",
        );
        let data = GitLab::data(&claims);
        assert_eq!(
            data.run_url,
            "https://gitlab.example.com/acme/sub/widget/-/jobs/302"
        );
        assert_eq!(data.workflow.as_deref(), Some("ci/release.yml"));
        assert_eq!(
            (data.run_id.as_str(), data.pipeline_id.as_str()),
            ("302", "574")
        );
        assert_eq!(GitLab::published_by(&claims), "gitlab-user");
    }

    #[test]
    fn ci_config_paths_are_parsed_like_crates_io_does() {
        let cases = [
            (
                "gitlab.com/group/sub/project//.gitlab-ci.yml@refs/heads/main",
                Some(".gitlab-ci.yml"),
            ),
            (
                "gitlab.com/group/project//ci/release@v1.yml@refs/tags/v1",
                Some("ci/release@v1.yml"),
            ),
            ("gitlab.com/group/project/.gitlab-ci.yml", None),
        ];
        for (uri, expected) in cases {
            assert_eq!(ci_config_path(uri), expected, "{uri}");
        }
    }

    #[test]
    fn config_fields_allow_subgroups_and_nested_ci_files() {
        let input = GitLabInput {
            namespace: "/group/sub-group/".into(),
            project: "my.project".into(),
            workflow_filepath: "ci/release.yml".into(),
            environment: None,
        };
        let normalized = GitLab::normalize(input.clone()).map_err(|e| format!("{e:?}"));
        assert_eq!(
            normalized.map(|c| c.namespace),
            Ok("group/sub-group".to_owned())
        );
        let bad = GitLabInput {
            workflow_filepath: "../x.yml".into(),
            namespace: "a//b".into(),
            ..input
        };
        let fields: Vec<_> = GitLab::normalize(bad)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["namespace", "workflow_filepath"]);
    }
}
