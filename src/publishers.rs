//! Trusted publisher configs: field validation, creation (with the GitHub owner-ID look-up),
//! listing, removal, and the crate's "require Trusted Publishing" switch. Shared by the JSON
//! API (`api::trustpub`) and the settings pages, so the rules live in one place. Every change
//! is authorised against current ownership and written to the crate's audit log in the same
//! transaction.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::App;
use crate::db::DbConn;
use crate::errors::{AppError, AppResult, bad_request, forbidden, not_found, service_unavailable};
use crate::models::audit::{self, Actor};
use crate::models::trustpub_config::{
    GitHubConfig, GitLabConfig, NewGitHubConfig, NewGitLabConfig,
};
use crate::models::trustpub_token::{self, ExchangedToken};
use crate::models::{Crate, User, now};
use crate::trustpub::Provider;

/// At most this many publisher configs (GitHub and GitLab together) per crate.
pub const MAX_CONFIGS_PER_CRATE: usize = 20;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct GitHubConfigInput {
    #[serde(rename = "crate")]
    pub krate: String,
    pub repository_owner: String,
    pub repository_name: String,
    pub workflow_filename: String,
    #[serde(default)]
    pub environment: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct GitLabConfigInput {
    #[serde(rename = "crate")]
    pub krate: String,
    pub namespace: String,
    pub project: String,
    pub workflow_filepath: String,
    #[serde(default)]
    pub environment: Option<String>,
}

/// A problem with one field of a config, for showing next to that field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// Field errors joined into one message, for the JSON API.
pub fn field_errors_message(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl GitHubConfigInput {
    /// Trims the fields and checks each; an empty environment means "any".
    pub fn normalized(mut self) -> Result<Self, Vec<FieldError>> {
        trim_all(&mut [
            &mut self.krate,
            &mut self.repository_owner,
            &mut self.repository_name,
            &mut self.workflow_filename,
        ]);
        self.environment = normalize_environment(self.environment);
        let mut errors = Vec::new();
        check(
            &mut errors,
            "crate",
            !self.krate.is_empty(),
            "name the crate",
        );
        check(
            &mut errors,
            "repository_owner",
            crate::models::user::valid_login(&self.repository_owner),
            "a GitHub user or organization name: letters, digits and single hyphens, at most 39 characters",
        );
        check(
            &mut errors,
            "repository_name",
            valid_repo_name(&self.repository_name),
            "a GitHub repository name: letters, digits, `.`, `-` and `_`, at most 100 characters",
        );
        check(
            &mut errors,
            "workflow_filename",
            valid_workflow_filename(&self.workflow_filename),
            "the workflow's file name in .github/workflows/, such as `release.yml` (no folders; it must end in .yml or .yaml)",
        );
        check_environment(&mut errors, self.environment.as_deref());
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }
}

impl GitLabConfigInput {
    pub fn normalized(mut self) -> Result<Self, Vec<FieldError>> {
        trim_all(&mut [
            &mut self.krate,
            &mut self.namespace,
            &mut self.project,
            &mut self.workflow_filepath,
        ]);
        self.namespace = self.namespace.trim_matches('/').to_owned();
        self.environment = normalize_environment(self.environment);
        let mut errors = Vec::new();
        check(
            &mut errors,
            "crate",
            !self.krate.is_empty(),
            "name the crate",
        );
        check(
            &mut errors,
            "namespace",
            valid_gitlab_namespace(&self.namespace),
            "a GitLab group or user path, with subgroups separated by `/` (such as `group/subgroup`)",
        );
        check(
            &mut errors,
            "project",
            valid_gitlab_path_segment(&self.project),
            "a GitLab project path: letters, digits, `.`, `-` and `_`",
        );
        check(
            &mut errors,
            "workflow_filepath",
            valid_ci_config_path(&self.workflow_filepath),
            "the CI config file's path in the repository, such as `.gitlab-ci.yml` (relative, no `..`, ending in .yml or .yaml)",
        );
        check_environment(&mut errors, self.environment.as_deref());
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }
}

fn trim_all(fields: &mut [&mut String]) {
    for field in fields {
        let trimmed = field.trim();
        if trimmed.len() != field.len() {
            **field = trimmed.to_owned();
        }
    }
}

fn normalize_environment(environment: Option<String>) -> Option<String> {
    environment
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
}

fn check(errors: &mut Vec<FieldError>, field: &'static str, ok: bool, message: &str) {
    if !ok {
        errors.push(FieldError {
            field,
            message: message.to_owned(),
        });
    }
}

fn check_environment(errors: &mut Vec<FieldError>, environment: Option<&str>) {
    if let Some(env) = environment {
        check(
            errors,
            "environment",
            env.len() <= 255 && !env.chars().any(char::is_control),
            "an environment name of at most 255 characters, without control characters (leave it empty to allow any environment)",
        );
    }
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

/// Looks up the numeric ID of a GitHub user or organization, so that a config keeps trusting
/// that account and not a later one of the same name.
pub async fn github_owner_id(app: &App, owner: &str) -> AppResult<i64> {
    #[derive(Deserialize)]
    struct GitHubAccount {
        id: i64,
    }
    let mut url = app.config.github.api_url.clone();
    url.path_segments_mut()
        .map_err(|()| {
            crate::errors::internal(anyhow::anyhow!("WHARF_GITHUB_API_URL cannot be a base URL"))
        })?
        .pop_if_empty()
        .extend(["users", owner]);
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "GitHub API look-up failed");
        service_unavailable(format!(
            "cannot reach the GitHub API to look up the ID of `{owner}`; try again shortly"
        ))
    };
    let response = app
        .http
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
        404 => Err(bad_request(format!(
            "repository_owner: GitHub has no user or organization named `{owner}`"
        ))),
        status => Err(unavailable(&format!("HTTP {status}"))),
    }
}

/// The crate, after checking that `user` owns it now.
fn owned_crate(conn: &mut DbConn, user: &User, name: &str) -> AppResult<Crate> {
    let krate = Crate::by_name(conn, name)?
        .ok_or_else(|| not_found(format!("crate `{name}` does not exist")))?;
    if !Crate::is_owner(conn, krate.id, user.id)? {
        return Err(forbidden(format!(
            "you are not an owner of crate `{}`",
            krate.name
        )));
    }
    Ok(krate)
}

fn actor(user: &User) -> Actor {
    Actor {
        name: user.login.clone(),
        user_id: Some(user.id),
    }
}

/// The crate a new config is for, after checking that `user` owns it now and that it has room
/// for one more; with its current configs, for the duplicate check.
fn crate_for_new_config(
    conn: &mut DbConn,
    user: &User,
    name: &str,
) -> AppResult<(Crate, Vec<GitHubConfig>, Vec<GitLabConfig>)> {
    let krate = owned_crate(conn, user, name)?;
    let github = GitHubConfig::for_crate(conn, krate.id)?;
    let gitlab = GitLabConfig::for_crate(conn, krate.id)?;
    if github.len() + gitlab.len() >= MAX_CONFIGS_PER_CRATE {
        return Err(bad_request(format!(
            "crate `{}` has {MAX_CONFIGS_PER_CRATE} trusted publisher configs already, the most allowed; remove one first",
            krate.name
        )));
    }
    Ok((krate, github, gitlab))
}

pub async fn create_github_config(
    app: &App,
    user: User,
    input: GitHubConfigInput,
) -> AppResult<(Crate, GitHubConfig)> {
    let input = input.normalized()?;
    // Check ownership before asking GitHub anything.
    let name = input.krate.clone();
    let owner_check = user.clone();
    app.db
        .run(move |conn| owned_crate(conn, &owner_check, &name).map(drop))
        .await?;
    let owner_id = github_owner_id(app, &input.repository_owner).await?;
    app.db
        .transaction(move |conn| {
            let (krate, existing, _) = crate_for_new_config(conn, &user, &input.krate)?;
            let duplicate = existing.iter().any(|c| {
                c.repository_owner
                    .eq_ignore_ascii_case(&input.repository_owner)
                    && c.repository_name
                        .eq_ignore_ascii_case(&input.repository_name)
                    && c.workflow_filename == input.workflow_filename
                    && eq_env(c.environment.as_deref(), input.environment.as_deref())
            });
            if duplicate {
                return Err(bad_request(
                    "this GitHub trusted publisher config exists already for this crate",
                ));
            }
            let now = now();
            let config = NewGitHubConfig {
                crate_id: krate.id,
                repository_owner: &input.repository_owner,
                repository_owner_id: owner_id,
                repository_name: &input.repository_name,
                workflow_filename: &input.workflow_filename,
                environment: input.environment.as_deref(),
                created_at: now,
                created_by: Some(user.id),
            }
            .insert(conn)?;
            audit::record(
                conn,
                krate.id,
                &actor(&user),
                "trustpub_github_add",
                github_json(&krate, &config),
                now,
            )?;
            Ok((krate, config))
        })
        .await
}

pub async fn create_gitlab_config(
    app: &App,
    user: User,
    input: GitLabConfigInput,
) -> AppResult<(Crate, GitLabConfig)> {
    let input = input.normalized()?;
    app.db
        .transaction(move |conn| {
            let (krate, _, existing) = crate_for_new_config(conn, &user, &input.krate)?;
            let duplicate = existing.iter().any(|c| {
                c.namespace.eq_ignore_ascii_case(&input.namespace)
                    && c.project.eq_ignore_ascii_case(&input.project)
                    && c.workflow_filepath == input.workflow_filepath
                    && eq_env(c.environment.as_deref(), input.environment.as_deref())
            });
            if duplicate {
                return Err(bad_request(
                    "this GitLab trusted publisher config exists already for this crate",
                ));
            }
            let now = now();
            let config = NewGitLabConfig {
                crate_id: krate.id,
                namespace: &input.namespace,
                project: &input.project,
                workflow_filepath: &input.workflow_filepath,
                environment: input.environment.as_deref(),
                created_at: now,
                created_by: Some(user.id),
            }
            .insert(conn)?;
            audit::record(
                conn,
                krate.id,
                &actor(&user),
                "trustpub_gitlab_add",
                gitlab_json(&krate, &config),
                now,
            )?;
            Ok((krate, config))
        })
        .await
}

fn eq_env(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (None, None) => true,
        _ => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    GitHub,
    GitLab,
}

impl ConfigKind {
    /// The CI platform whose tokens configs of this kind accept.
    pub fn provider(self) -> Provider {
        match self {
            ConfigKind::GitHub => Provider::GitHub,
            ConfigKind::GitLab => Provider::GitLab,
        }
    }
}

/// Removes a config of a crate `user` owns, and revokes at once every unexpired token minted
/// through it (for that crate: a token minted for several crates keeps the others); returns
/// how many tokens were revoked. An unknown id, or one of a crate the user does not own, is
/// "not found" either way, so ids of other crates' configs are not revealed.
pub async fn delete_config(app: &App, user: User, kind: ConfigKind, id: i64) -> AppResult<usize> {
    app.db
        .transaction(move |conn| {
            let missing = || not_found(format!("no trusted publisher config with id {id}"));
            let (crate_id, detail, action) = match kind {
                ConfigKind::GitHub => {
                    let config = GitHubConfig::by_id(conn, id)?.ok_or_else(missing)?;
                    let krate = Crate::by_id(conn, config.crate_id)?;
                    (
                        krate.id,
                        github_json(&krate, &config),
                        "trustpub_github_remove",
                    )
                }
                ConfigKind::GitLab => {
                    let config = GitLabConfig::by_id(conn, id)?.ok_or_else(missing)?;
                    let krate = Crate::by_id(conn, config.crate_id)?;
                    (
                        krate.id,
                        gitlab_json(&krate, &config),
                        "trustpub_gitlab_remove",
                    )
                }
            };
            if !Crate::is_owner(conn, crate_id, user.id)? {
                return Err(missing());
            }
            match kind {
                ConfigKind::GitHub => GitHubConfig::delete(conn, id)?,
                ConfigKind::GitLab => GitLabConfig::delete(conn, id)?,
            }
            let now = now();
            let revoked =
                trustpub_token::revoke_minted_through(conn, kind.provider(), id, &user.login, now)?;
            let mut detail = detail;
            detail["revoked_tokens"] = json!(revoked);
            audit::record(conn, crate_id, &actor(&user), action, detail, now)?;
            Ok(revoked)
        })
        .await
}

/// How many unexpired tokens removing the config `id` of `kind` would revoke.
pub async fn tokens_minted_through(app: &App, kind: ConfigKind, id: i64) -> AppResult<i64> {
    app.db
        .run(move |conn| {
            Ok(trustpub_token::live_count_minted_through(
                conn,
                kind.provider(),
                id,
                now(),
            )?)
        })
        .await
}

/// The unexpired tokens that may still publish a crate `user` owns.
pub async fn exchanged_tokens(
    app: &App,
    user: User,
    crate_name: String,
) -> AppResult<Vec<ExchangedToken>> {
    app.db
        .run(move |conn| {
            let krate = owned_crate(conn, &user, &crate_name)?;
            Ok(trustpub_token::live_for_crate(conn, krate.id, now())?)
        })
        .await
}

/// Revokes the exchanged token `token_id` for a crate `user` owns: it can no longer publish
/// that crate (a token minted for several crates keeps the others, whose owners did not
/// revoke it). Returns the crate and the token as it was. A token that cannot publish the
/// crate now (unknown, expired, revoked already, or minted for other crates) is "not found".
pub async fn revoke_exchanged_token(
    app: &App,
    user: User,
    crate_name: String,
    token_id: i64,
) -> AppResult<(Crate, ExchangedToken)> {
    app.db
        .transaction(move |conn| {
            let krate = owned_crate(conn, &user, &crate_name)?;
            let now = now();
            let token = trustpub_token::live_for_crate(conn, krate.id, now)?
                .into_iter()
                .find(|t| t.id == token_id)
                .ok_or_else(|| {
                    not_found(format!(
                        "crate `{}` has no unexpired publish token {token_id} to revoke",
                        krate.name
                    ))
                })?;
            trustpub_token::revoke_for_crate(conn, token.id, krate.id, &user.login, now)?;
            audit::record(
                conn,
                krate.id,
                &actor(&user),
                "trustpub_token_revoke",
                json!({
                    "token_id": token.id,
                    "actor": token.actor,
                    "workflow": token.workflow(),
                    "run_url": token.run_url(),
                    "expires_at": token.expires_at.and_utc(),
                }),
                now,
            )?;
            Ok((krate, token))
        })
        .await
}

/// The configs of a crate `user` owns.
pub async fn list_configs(
    app: &App,
    user: User,
    crate_name: String,
) -> AppResult<(Crate, Vec<GitHubConfig>, Vec<GitLabConfig>)> {
    app.db
        .run(move |conn| {
            let krate = owned_crate(conn, &user, &crate_name)?;
            let github = GitHubConfig::for_crate(conn, krate.id)?;
            let gitlab = GitLabConfig::for_crate(conn, krate.id)?;
            Ok((krate, github, gitlab))
        })
        .await
}

/// Turns "require Trusted Publishing" on or off; returns the updated crate.
pub async fn set_trustpub_only(
    app: &App,
    user: User,
    crate_name: String,
    value: bool,
) -> AppResult<Crate> {
    app.db
        .transaction(move |conn| {
            let krate = owned_crate(conn, &user, &crate_name)?;
            if krate.trustpub_only != value {
                Crate::set_trustpub_only(conn, krate.id, value)?;
                audit::record(
                    conn,
                    krate.id,
                    &actor(&user),
                    "trustpub_only",
                    json!({ "trustpub_only": value }),
                    now(),
                )?;
            }
            Ok(Crate::by_id(conn, krate.id)?)
        })
        .await
}

pub fn github_json(krate: &Crate, c: &GitHubConfig) -> serde_json::Value {
    json!({
        "id": c.id,
        "crate": krate.name,
        "repository_owner": c.repository_owner,
        "repository_owner_id": c.repository_owner_id,
        "repository_name": c.repository_name,
        "workflow_filename": c.workflow_filename,
        "environment": c.environment,
        "created_at": c.created_at.and_utc(),
    })
}

pub fn gitlab_json(krate: &Crate, c: &GitLabConfig) -> serde_json::Value {
    json!({
        "id": c.id,
        "crate": krate.name,
        "namespace": c.namespace,
        "namespace_id": c.namespace_id,
        "project": c.project,
        "workflow_filepath": c.workflow_filepath,
        "environment": c.environment,
        "created_at": c.created_at.and_utc(),
    })
}

impl From<Vec<FieldError>> for AppError {
    fn from(errors: Vec<FieldError>) -> Self {
        bad_request(field_errors_message(&errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github(owner: &str, repo: &str, workflow: &str, env: Option<&str>) -> GitHubConfigInput {
        GitHubConfigInput {
            krate: "foo".into(),
            repository_owner: owner.into(),
            repository_name: repo.into(),
            workflow_filename: workflow.into(),
            environment: env.map(Into::into),
        }
    }

    #[test]
    fn github_fields_are_trimmed_and_checked() {
        let ok = github(" octo-org ", "widget.rs", "release.yml", Some("  ")).normalized();
        let ok = ok.map_err(|e| format!("{e:?}"));
        assert_eq!(
            ok.as_ref().map(|c| c.repository_owner.as_str()),
            Ok("octo-org")
        );
        assert_eq!(ok.as_ref().map(|c| c.environment.clone()), Ok(None));
        let errors = github(
            "-bad",
            "a/b",
            ".github/workflows/release.yml",
            Some("x\u{7}"),
        )
        .normalized();
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
        assert!(github("o", "r", "release.json", None).normalized().is_err());
        assert!(github("o", "r", ".yml", None).normalized().is_err());
    }

    #[test]
    fn duplicate_environments_fold_ascii_case_only() {
        let cases = [
            (Some("k8s"), Some("K8S"), true),
            (None, None, true),
            (Some("k8s"), None, false),
            (Some("k8s"), Some("\u{212A}8s"), false), // KELVIN SIGN
            (Some("staging"), Some("\u{17F}taging"), false), // LONG S
            (Some("prod-é"), Some("PROD-É"), false),
        ];
        for (a, b, same) in cases {
            assert_eq!(eq_env(a, b), same, "{a:?} {b:?}");
        }
    }

    #[test]
    fn gitlab_fields_allow_subgroups_and_nested_ci_files() {
        let input = GitLabConfigInput {
            krate: "foo".into(),
            namespace: "/group/sub-group/".into(),
            project: "my.project".into(),
            workflow_filepath: "ci/release.yml".into(),
            environment: None,
        };
        let normalized = input.clone().normalized().map_err(|e| format!("{e:?}"));
        assert_eq!(
            normalized.map(|c| c.namespace),
            Ok("group/sub-group".to_owned())
        );
        let bad = GitLabConfigInput {
            workflow_filepath: "../x.yml".into(),
            namespace: "a//b".into(),
            ..input
        };
        let fields: Vec<_> = bad
            .normalized()
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["namespace", "workflow_filepath"]);
    }
}
