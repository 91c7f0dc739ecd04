//! GitLab CI: an issuer shaped like a self-managed GitLab at `{base}/gitlab` (a relative URL
//! root), its claims, and stand-in job pages.
//!
//! GitLab hands ID tokens to jobs as environment variables (`id_tokens:` in `.gitlab-ci.yml`),
//! so there is no endpoint to request one: a job's token is [`GitLabJob`]'s claims, signed.
//! Discovery is at `{issuer}/.well-known/openid-configuration` and the key set at
//! `{issuer}/oauth/discovery/keys`, as on GitLab. Job links (`{issuer}/{project}/-/jobs/{id}`)
//! lead back to the fake.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::claims::{
    LIFETIME_SECONDS, SHA, given, integer_or, merge, now, or_default, random_uuid, stable_id,
    string_or_integer,
};
use super::pages::html_page;
use super::{Provider, State};

/// Defaults of [`GitLabJob`].
pub const GITLAB_NAMESPACE: &str = "acme";
pub const GITLAB_NAMESPACE_ID: i64 = 72;
pub const GITLAB_PROJECT: &str = "widget";
pub const GITLAB_PROJECT_ID: i64 = 20;
pub const GITLAB_CI_CONFIG: &str = ".gitlab-ci.yml";
pub const GITLAB_USER: &str = "gitlab-user";
pub const GITLAB_USER_ID: i64 = 1;
pub const GITLAB_REF: &str = "v1.0.0";
pub const GITLAB_PIPELINE_ID: i64 = 574;
pub const GITLAB_JOB_ID: i64 = 302;

/// A GitLab CI job to mint an ID token for. Missing or blank fields take the defaults
/// (`acme/widget`'s `.gitlab-ci.yml`, run by `gitlab-user` for tag `v1.0.0`). Accepted as a
/// form and as JSON (where `job_id` may also be a number).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GitLabJob {
    /// `namespace/project`, the namespace possibly with subgroups.
    pub project_path: Option<String>,
    /// The CI config file's path in the project.
    pub ci_config_path: Option<String>,
    pub user_login: Option<String>,
    pub environment: Option<String>,
    /// A tag or branch name.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// `tag` or `branch`.
    pub ref_type: Option<String>,
    #[serde(deserialize_with = "string_or_integer")]
    pub job_id: Option<String>,
    pub sha: Option<String>,
}

impl GitLabJob {
    /// The job, with defaults filled in; an error naming the field that is not valid.
    pub fn resolve(&self) -> Result<Job, String> {
        let defaults = Job::default();
        let project_path = or_default(&self.project_path, &defaults.project_path);
        if !project_path
            .rsplit_once('/')
            .is_some_and(|(namespace, project)| {
                !namespace.is_empty()
                    && !project.is_empty()
                    && !namespace.split('/').any(str::is_empty)
            })
        {
            return Err(format!(
                "`project_path` must be `namespace/project`, not `{project_path}`"
            ));
        }
        let ref_type = or_default(&self.ref_type, &defaults.ref_type);
        if !matches!(ref_type.as_str(), "tag" | "branch") {
            return Err(format!(
                "`ref_type` must be `tag` or `branch`, not `{ref_type}`"
            ));
        }
        Ok(Job {
            project_path,
            ci_config_path: or_default(&self.ci_config_path, &defaults.ci_config_path),
            user_login: or_default(&self.user_login, &defaults.user_login),
            environment: given(&self.environment),
            git_ref: or_default(&self.git_ref, &defaults.git_ref),
            ref_type,
            job_id: integer_or(&self.job_id, defaults.job_id, "job_id")?,
            sha: or_default(&self.sha, &defaults.sha),
        })
    }
}

/// A resolved [`GitLabJob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub project_path: String,
    pub ci_config_path: String,
    pub user_login: String,
    pub environment: Option<String>,
    pub git_ref: String,
    pub ref_type: String,
    pub job_id: i64,
    pub sha: String,
}

impl Default for Job {
    fn default() -> Self {
        Job {
            project_path: format!("{GITLAB_NAMESPACE}/{GITLAB_PROJECT}"),
            ci_config_path: GITLAB_CI_CONFIG.to_owned(),
            user_login: GITLAB_USER.to_owned(),
            environment: None,
            git_ref: GITLAB_REF.to_owned(),
            ref_type: "tag".to_owned(),
            job_id: GITLAB_JOB_ID,
            sha: SHA.to_owned(),
        }
    }
}

impl Job {
    /// `refs/tags/…` or `refs/heads/…`.
    pub fn ref_path(&self) -> String {
        match self.ref_type.as_str() {
            "tag" => format!("refs/tags/{}", self.git_ref),
            _ => format!("refs/heads/{}", self.git_ref),
        }
    }

    /// The claims of a GitLab CI ID token for this job, with a fresh `jti` and `iat`/`nbf` now,
    /// `exp` in 5 minutes.
    pub(crate) fn claims(&self, state: &State, audience: &str) -> Value {
        let issuer = state.issuer(Provider::GitLab).url();
        let project_path = &self.project_path;
        let namespace = project_path
            .rsplit_once('/')
            .map_or(project_path.as_str(), |(namespace, _)| namespace);
        let default_project =
            project_path.eq_ignore_ascii_case(&format!("{GITLAB_NAMESPACE}/{GITLAB_PROJECT}"));
        let namespace_id = if namespace.eq_ignore_ascii_case(GITLAB_NAMESPACE) {
            GITLAB_NAMESPACE_ID
        } else {
            stable_id("gitlab-namespace", namespace)
        };
        let project_id = if default_project {
            GITLAB_PROJECT_ID
        } else {
            stable_id("gitlab-project", project_path)
        };
        let user_id = if self.user_login.eq_ignore_ascii_case(GITLAB_USER) {
            GITLAB_USER_ID
        } else {
            stable_id("gitlab-user", &self.user_login)
        };
        let ref_path = self.ref_path();
        let now = now();
        let mut claims = json!({
            "namespace_id": namespace_id.to_string(),
            "namespace_path": namespace,
            "project_id": project_id.to_string(),
            "project_path": project_path,
            "user_id": user_id.to_string(),
            "user_login": self.user_login,
            "user_email": format!("{}@example.com", self.user_login.to_ascii_lowercase()),
            "user_access_level": "maintainer",
            "pipeline_id": GITLAB_PIPELINE_ID.to_string(),
            "pipeline_source": "push",
            "job_id": self.job_id.to_string(),
            "ref": self.git_ref,
            "ref_type": self.ref_type,
            "ref_path": ref_path,
            "ref_protected": "true",
            "runner_id": 1,
            "runner_environment": "gitlab-hosted",
            "sha": self.sha,
            "project_visibility": "public",
            "ci_config_ref_uri": ci_config_ref_uri(issuer, project_path, &self.ci_config_path, &ref_path),
            "ci_config_sha": self.sha,
            "jti": random_uuid(),
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + LIFETIME_SECONDS,
            "sub": format!("project_path:{project_path}:ref_type:{}:ref:{}", self.ref_type, self.git_ref),
            "aud": audience,
        });
        if let Some(environment) = &self.environment {
            claims["environment"] = json!(environment);
            claims["environment_protected"] = json!("true");
            claims["deployment_tier"] = json!("production");
        }
        claims
    }
}

/// `ci_config_ref_uri` as GitLab writes it: the instance's host, port and relative URL root
/// (its issuer without the scheme), the project path, `//`, the config path, `@` and the ref:
/// `127.0.0.1:PORT/gitlab/acme/widget//.gitlab-ci.yml@refs/tags/v1.0.0`.
pub fn ci_config_ref_uri(
    issuer: &str,
    project_path: &str,
    config_path: &str,
    ref_path: &str,
) -> String {
    let server = issuer
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    format!("{server}/{project_path}//{config_path}@{ref_path}")
}

/// The default job's claims merged with `overrides` (a `null` removes a claim).
pub(crate) fn default_claims(state: &State, audience: &str, overrides: Value) -> Value {
    merge(Job::default().claims(state, audience), overrides)
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        &format!(
            "{}/{{project:.+}}/-/jobs/{{job}}",
            Provider::GitLab.issuer_path()
        ),
        web::get().to(job_page),
    );
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Job {{ job }}</h1>
<p>Project <strong>{{ project }}</strong>. This is the fake's stand-in for a GitLab CI job page.</p>"#
)]
struct JobPage {
    project: String,
    job: String,
}

async fn job_page(path: web::Path<(String, String)>) -> HttpResponse {
    let (project, job) = path.into_inner();
    html_page(&JobPage { project, job })
}

#[cfg(test)]
mod tests {
    use super::super::testing::verify;
    use super::super::{FakeIdp, Provider};
    use super::*;

    #[tokio::test]
    async fn a_job_token_names_its_own_ci_config_on_the_issuers_server_and_its_job_page_exists()
    -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::GitLab);
        let job = GitLabJob {
            project_path: Some("acme/tools/widget".to_owned()),
            ci_config_path: Some("ci/release.yml".to_owned()),
            git_ref: Some("main".to_owned()),
            ref_type: Some("branch".to_owned()),
            ..GitLabJob::default()
        }
        .resolve()
        .map_err(anyhow::Error::msg)?;

        let claims = verify(
            idp.issuer(),
            &idp.sign(&idp.gitlab_job_claims("wharf.test", &job)),
        )
        .await?;

        let server = idp.issuer().trim_start_matches("http://").to_owned();
        assert!(server.ends_with("/gitlab"));
        assert_eq!(
            claims["ci_config_ref_uri"],
            format!("{server}/acme/tools/widget//ci/release.yml@refs/heads/main")
        );
        assert_eq!(claims["namespace_path"], "acme/tools");
        assert_eq!(claims["ref_path"], "refs/heads/main");
        assert_eq!(
            claims["sub"],
            "project_path:acme/tools/widget:ref_type:branch:ref:main"
        );
        let page = reqwest::get(format!("{}/acme/tools/widget/-/jobs/302", idp.issuer())).await?;
        assert_eq!(page.status(), reqwest::StatusCode::OK);
        assert!(page.text().await?.contains("acme/tools/widget"));
        Ok(())
    }

    #[test]
    fn bad_job_fields_are_named() {
        let bad_path = GitLabJob {
            project_path: Some("widget".to_owned()),
            ..GitLabJob::default()
        };
        assert!(
            bad_path
                .resolve()
                .is_err_and(|e| e.contains("`project_path`"))
        );
        let bad_type = GitLabJob {
            ref_type: Some("commit".to_owned()),
            ..GitLabJob::default()
        };
        assert!(bad_type.resolve().is_err_and(|e| e.contains("`ref_type`")));
        assert_eq!(Job::default().ref_path(), "refs/tags/v1.0.0");
    }
}
