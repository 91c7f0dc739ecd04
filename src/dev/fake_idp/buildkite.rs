//! Buildkite: an issuer at `{base}/buildkite` (Buildkite's is `https://agent.buildkite.com`),
//! the Agent API endpoint that `buildkite-agent oidc request-token` calls, its claims, and
//! stand-in build pages.
//!
//! The agent's endpoint (`BUILDKITE_AGENT_ENDPOINT`, by default `https://agent.buildkite.com/v3`)
//! is `{base}/buildkite/v3` here. `POST {endpoint}/jobs/{job_id}/oidc/tokens` with
//! `Authorization: Token {BUILDKITE_AGENT_ACCESS_TOKEN}` and a JSON body
//! `{"audience": "…"?, "lifetime": N?, "claims": ["organization_id", "pipeline_id"]?}` answers
//! `{"token": "<jwt>"}`. As on Buildkite: a wrong access token is a 401, another job's ID a
//! 403, something that is not a job ID a 404; without `audience` the token's `aud` is the
//! organization's URL, and `lifetime` 0 or missing means 5 minutes. The fake runs one job,
//! [`BUILDKITE_JOB_ID`], on one agent. It refuses `aws_session_tags`, which it does not imitate.
//!
//! Build pages (`{base}/buildkite/{org}/{pipeline}/builds/{number}`) stand in for
//! `https://buildkite.com/{org}/{pipeline}/builds/{number}`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::claims::{
    LIFETIME_SECONDS, SHA, given, integer_or, merge, now, or_default, random_hex, random_uuid,
    stable_uuid, string_or_integer,
};
use super::pages::html_page;
use super::{Provider, State};

/// Defaults of [`BuildkiteJob`].
pub const BUILDKITE_ORGANIZATION: &str = "acme";
pub const BUILDKITE_ORGANIZATION_ID: &str = "0b5e6a1c-7d2f-4e4a-9c3b-2f1e0d9c8b7a";
pub const BUILDKITE_PIPELINE: &str = "widget";
pub const BUILDKITE_PIPELINE_ID: &str = "3c9d7e2a-1b4f-4a6e-8d5c-7e6f5a4b3c2d";
pub const BUILDKITE_BUILD_NUMBER: i64 = 42;
pub const BUILDKITE_BRANCH: &str = "main";
pub const BUILDKITE_STEP_KEY: &str = "publish";
/// The job the fake's agent runs: the only one its access token may request tokens for.
pub const BUILDKITE_JOB_ID: &str = "01934f2e-5b6a-4c7d-8e9f-0a1b2c3d4e5f";
pub const BUILDKITE_AGENT_ID: &str = "01934f2e-6c7d-4e8f-9a0b-1c2d3e4f5a6b";
/// Where the Agent API lives under the issuer (`/v3`, as on `agent.buildkite.com`).
pub const AGENT_API_PATH: &str = "/v3";
/// The longest `lifetime` the fake grants, in seconds.
pub const MAX_LIFETIME_SECONDS: i64 = 86_400;

/// Claims a token carries only when the request asks for them (`--claims`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionalClaim {
    OrganizationId,
    PipelineId,
}

impl OptionalClaim {
    pub const ALL: [OptionalClaim; 2] = [OptionalClaim::OrganizationId, OptionalClaim::PipelineId];

    pub fn name(self) -> &'static str {
        match self {
            OptionalClaim::OrganizationId => "organization_id",
            OptionalClaim::PipelineId => "pipeline_id",
        }
    }

    /// The claim named `name`, or an error that lists the ones there are.
    pub fn parse(name: &str) -> Result<OptionalClaim, String> {
        OptionalClaim::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| {
                format!(
                    "`{name}` is not an optional claim; there are `organization_id` and `pipeline_id`"
                )
            })
    }
}

/// A Buildkite job to mint an ID token for. Missing or blank fields take the defaults (step
/// `publish` of build 42 of `acme/widget` on branch `main`). Accepted as a form (where the
/// checkbox `with_ids` asks for `organization_id` and `pipeline_id`) and as JSON (where
/// `claims` lists optional claims as the Agent API does, and `build_number` may be a number).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BuildkiteJob {
    pub organization_slug: Option<String>,
    pub pipeline_slug: Option<String>,
    #[serde(deserialize_with = "string_or_integer")]
    pub build_number: Option<String>,
    pub build_branch: Option<String>,
    pub build_tag: Option<String>,
    pub build_commit: Option<String>,
    pub step_key: Option<String>,
    pub build_source: Option<String>,
    pub claims: Vec<String>,
    pub with_ids: Option<String>,
}

impl BuildkiteJob {
    /// The job, with defaults filled in; an error naming the field that is not valid.
    pub fn resolve(&self) -> Result<Job, String> {
        let defaults = Job::default();
        let mut optional_claims = self
            .claims
            .iter()
            .map(|name| OptionalClaim::parse(name))
            .collect::<Result<Vec<_>, _>>()?;
        if self.with_ids.is_some() {
            optional_claims = OptionalClaim::ALL.to_vec();
        }
        let organization_slug = or_default(&self.organization_slug, &defaults.organization_slug);
        let pipeline_slug = or_default(&self.pipeline_slug, &defaults.pipeline_slug);
        Ok(Job {
            organization_id: organization_id(&organization_slug),
            pipeline_id: pipeline_id(&organization_slug, &pipeline_slug),
            organization_slug,
            pipeline_slug,
            build_number: integer_or(&self.build_number, defaults.build_number, "build_number")?,
            build_branch: or_default(&self.build_branch, &defaults.build_branch),
            build_tag: given(&self.build_tag),
            build_commit: or_default(&self.build_commit, &defaults.build_commit),
            step_key: given(&self.step_key).or(defaults.step_key),
            build_source: or_default(&self.build_source, &defaults.build_source),
            optional_claims,
            ..defaults
        })
    }
}

fn organization_id(slug: &str) -> String {
    if slug.eq_ignore_ascii_case(BUILDKITE_ORGANIZATION) {
        BUILDKITE_ORGANIZATION_ID.to_owned()
    } else {
        stable_uuid("buildkite-organization", slug)
    }
}

fn pipeline_id(organization: &str, pipeline: &str) -> String {
    if organization.eq_ignore_ascii_case(BUILDKITE_ORGANIZATION)
        && pipeline.eq_ignore_ascii_case(BUILDKITE_PIPELINE)
    {
        BUILDKITE_PIPELINE_ID.to_owned()
    } else {
        stable_uuid("buildkite-pipeline", &format!("{organization}/{pipeline}"))
    }
}

/// A resolved [`BuildkiteJob`]: everything a Buildkite ID token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub organization_slug: String,
    pub organization_id: String,
    pub pipeline_slug: String,
    pub pipeline_id: String,
    pub build_number: i64,
    pub build_branch: String,
    /// `null` in the token when the build has no tag.
    pub build_tag: Option<String>,
    pub build_commit: String,
    /// `null` in the token when the step has no `key`.
    pub step_key: Option<String>,
    pub job_id: String,
    pub agent_id: String,
    /// `ui`, `api`, `webhook`, `trigger_job` or `schedule`.
    pub build_source: String,
    /// `buildkite-hosted` or `self-hosted`.
    pub runner_environment: String,
    /// Which of `organization_id` and `pipeline_id` the token carries.
    pub optional_claims: Vec<OptionalClaim>,
}

impl Default for Job {
    fn default() -> Self {
        Job {
            organization_slug: BUILDKITE_ORGANIZATION.to_owned(),
            organization_id: BUILDKITE_ORGANIZATION_ID.to_owned(),
            pipeline_slug: BUILDKITE_PIPELINE.to_owned(),
            pipeline_id: BUILDKITE_PIPELINE_ID.to_owned(),
            build_number: BUILDKITE_BUILD_NUMBER,
            build_branch: BUILDKITE_BRANCH.to_owned(),
            build_tag: None,
            build_commit: SHA.to_owned(),
            step_key: Some(BUILDKITE_STEP_KEY.to_owned()),
            job_id: BUILDKITE_JOB_ID.to_owned(),
            agent_id: BUILDKITE_AGENT_ID.to_owned(),
            build_source: "webhook".to_owned(),
            runner_environment: "buildkite-hosted".to_owned(),
            optional_claims: Vec::new(),
        }
    }
}

impl Job {
    /// `refs/tags/TAG` for a tagged build, else `refs/heads/BRANCH`, as in `sub`.
    pub fn git_ref(&self) -> String {
        match &self.build_tag {
            Some(tag) => format!("refs/tags/{tag}"),
            None => format!("refs/heads/{}", self.build_branch),
        }
    }

    /// The claims of a Buildkite ID token for this job, with a fresh `jti` and `iat`/`nbf` now,
    /// `exp` after `lifetime` seconds.
    pub(crate) fn claims(&self, state: &State, audience: &str, lifetime: i64) -> Value {
        let now = now();
        let sub = format!(
            "organization:{}:pipeline:{}:ref:{}:commit:{}:step:{}",
            self.organization_slug,
            self.pipeline_slug,
            self.git_ref(),
            self.build_commit,
            self.step_key.as_deref().unwrap_or_default(),
        );
        let mut claims = json!({
            "iss": state.issuer(Provider::Buildkite).url(),
            "sub": sub,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": random_uuid(),
            "organization_slug": self.organization_slug,
            "pipeline_slug": self.pipeline_slug,
            "build_number": self.build_number,
            "build_branch": self.build_branch,
            "build_tag": self.build_tag,
            "build_commit": self.build_commit,
            "step_key": self.step_key,
            "job_id": self.job_id,
            "agent_id": self.agent_id,
            "build_source": self.build_source,
            "runner_environment": self.runner_environment,
        });
        for claim in &self.optional_claims {
            claims[claim.name()] = match claim {
                OptionalClaim::OrganizationId => json!(self.organization_id),
                OptionalClaim::PipelineId => json!(self.pipeline_id),
            };
        }
        claims
    }
}

/// The default audience, as Buildkite's: the organization's URL.
fn default_audience(state: &State, job: &Job) -> String {
    format!(
        "{}/{}",
        state.issuer(Provider::Buildkite).url(),
        job.organization_slug
    )
}

/// The default job's claims (without the optional ones) merged with `overrides` (a `null`
/// removes a claim).
pub(crate) fn default_claims(state: &State, audience: &str, overrides: Value) -> Value {
    merge(
        Job::default().claims(state, audience, LIFETIME_SECONDS),
        overrides,
    )
}

/// The agent of the fake: its access token and the job it runs.
pub(crate) struct AgentState {
    /// `BUILDKITE_AGENT_ACCESS_TOKEN`.
    pub access_token: String,
    /// `BUILDKITE_JOB_ID`.
    pub job_id: String,
}

impl AgentState {
    pub(crate) fn new() -> AgentState {
        AgentState {
            access_token: format!("bkaat_fake{}", random_hex(16)),
            job_id: BUILDKITE_JOB_ID.to_owned(),
        }
    }
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    let issuer = Provider::Buildkite.issuer_path();
    cfg.route(
        &format!("{issuer}{AGENT_API_PATH}/jobs/{{job}}/oidc/tokens"),
        web::post().to(request_token),
    )
    .route(
        &format!("{issuer}/{{organization}}/{{pipeline}}/builds/{{number}}"),
        web::get().to(build_page),
    );
}

/// The body of an OIDC token request, as the agent sends it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    lifetime: Option<i64>,
    #[serde(default)]
    claims: Vec<String>,
    #[serde(default)]
    aws_session_tags: Vec<String>,
}

fn message(status: u16, text: impl Into<String>) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({ "message": text.into() }))
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `POST {endpoint}/jobs/{job_id}/oidc/tokens`.
async fn request_token(
    state: web::Data<State>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let agent = &state.buildkite;
    let expected = format!("Token {}", agent.access_token);
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == expected);
    if !authorized {
        return message(
            401,
            "Unauthorized: the agent access token is missing or wrong",
        );
    }
    let job_id = path.into_inner();
    if !is_uuid(&job_id) {
        return message(404, format!("No job found with ID `{job_id}`"));
    }
    if !job_id.eq_ignore_ascii_case(&agent.job_id) {
        return message(
            403,
            format!("Forbidden: job `{job_id}` is not assigned to this agent"),
        );
    }
    let body: TokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TokenRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => return message(400, format!("The request body is not valid: {e}")),
        }
    };
    if !body.aws_session_tags.is_empty() {
        return message(
            422,
            "`aws_session_tags` is not imitated by the fake Buildkite; leave it out",
        );
    }
    let lifetime = match body.lifetime {
        None | Some(0) => LIFETIME_SECONDS,
        Some(seconds @ 1..=MAX_LIFETIME_SECONDS) => seconds,
        Some(other) => {
            return message(
                422,
                format!(
                    "`lifetime` must be between 0 and {MAX_LIFETIME_SECONDS} seconds, not {other}"
                ),
            );
        }
    };
    let optional_claims = match body
        .claims
        .iter()
        .map(|name| OptionalClaim::parse(name))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(claims) => claims,
        Err(e) => return message(422, e),
    };
    let job = Job {
        job_id: agent.job_id.clone(),
        optional_claims,
        ..Job::default()
    };
    let audience = body
        .audience
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| default_audience(&state, &job));
    let issuer = state.issuer(Provider::Buildkite);
    let claims = merge(
        job.claims(&state, &audience, lifetime),
        issuer.token_overrides(),
    );
    match issuer.try_sign(&claims) {
        Ok(token) => {
            issuer.record_token_request();
            HttpResponse::Ok().json(json!({ "token": token }))
        }
        Err(e) => message(500, e.to_string()),
    }
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Build #{{ number }}</h1>
<p>Pipeline <strong>{{ organization }}/{{ pipeline }}</strong>. This is the fake's stand-in for a Buildkite build page.</p>"#
)]
struct BuildPage {
    organization: String,
    pipeline: String,
    number: String,
}

async fn build_page(path: web::Path<(String, String, String)>) -> HttpResponse {
    let (organization, pipeline, number) = path.into_inner();
    html_page(&BuildPage {
        organization,
        pipeline,
        number,
    })
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::super::testing::verify;
    use super::super::{FakeIdp, Provider};
    use super::*;

    /// `POST {endpoint}/jobs/{job}/oidc/tokens` as the agent sends it.
    async fn request(
        idp: &FakeIdp,
        job: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = reqwest::Client::new()
            .post(format!(
                "{}/jobs/{job}/oidc/tokens",
                idp.buildkite_agent_endpoint()
            ))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request.send().await?;
        Ok((response.status(), response.json().await?))
    }

    #[tokio::test]
    async fn the_agent_api_mints_a_token_for_the_agents_job() -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::Buildkite);
        let token = format!("Token {}", idp.buildkite_agent_access_token());
        assert!(idp.buildkite_agent_endpoint().ends_with("/buildkite/v3"));

        let (status, body) = request(
            &idp,
            idp.buildkite_job_id(),
            Some(&token),
            r#"{"audience":"wharf.test"}"#,
        )
        .await?;

        assert_eq!(status, StatusCode::OK, "{body}");
        let claims = verify(idp.issuer(), body["token"].as_str().unwrap_or_default()).await?;
        assert_eq!(claims["iss"], idp.issuer_of(Provider::Buildkite).url());
        assert_eq!(claims["aud"], "wharf.test");
        assert_eq!(
            claims["sub"],
            format!(
                "organization:acme:pipeline:widget:ref:refs/heads/main:commit:{SHA}:step:publish"
            )
        );
        assert_eq!(claims["build_number"], json!(BUILDKITE_BUILD_NUMBER));
        assert_eq!(claims["build_tag"], Value::Null);
        assert_eq!(claims["step_key"], BUILDKITE_STEP_KEY);
        assert_eq!(claims["job_id"], BUILDKITE_JOB_ID);
        assert_eq!(claims["agent_id"], BUILDKITE_AGENT_ID);
        assert_eq!(claims["runner_environment"], "buildkite-hosted");
        assert!(claims.get("organization_id").is_none());
        assert!(claims.get("pipeline_id").is_none());
        assert_eq!(
            claims["exp"].as_i64().unwrap_or_default() - claims["iat"].as_i64().unwrap_or_default(),
            LIFETIME_SECONDS
        );
        assert_eq!(idp.id_token_requests().len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn requested_claims_lifetime_and_the_default_audience_are_honoured() -> anyhow::Result<()>
    {
        let idp = FakeIdp::start(Provider::Buildkite);
        let token = format!("Token {}", idp.buildkite_agent_access_token());
        idp.set_id_token_overrides(json!({ "build_tag": "v1.0.0" }));

        let (status, body) = request(
            &idp,
            idp.buildkite_job_id(),
            Some(&token),
            r#"{"lifetime":600,"claims":["organization_id","pipeline_id"]}"#,
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        let claims = verify(idp.issuer(), body["token"].as_str().unwrap_or_default()).await?;
        assert_eq!(claims["organization_id"], BUILDKITE_ORGANIZATION_ID);
        assert_eq!(claims["pipeline_id"], BUILDKITE_PIPELINE_ID);
        assert_eq!(claims["build_tag"], "v1.0.0");
        assert_eq!(
            claims["exp"].as_i64().unwrap_or_default() - claims["iat"].as_i64().unwrap_or_default(),
            600
        );
        assert_eq!(claims["aud"], format!("{}/acme", idp.issuer()));

        let (status, body) = request(&idp, idp.buildkite_job_id(), Some(&token), "").await?;
        assert_eq!(
            status,
            StatusCode::OK,
            "an empty body asks for the defaults: {body}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn the_agent_api_refuses_other_tokens_other_jobs_and_bad_requests() -> anyhow::Result<()>
    {
        let idp = FakeIdp::start(Provider::Buildkite);
        let job = idp.buildkite_job_id().to_owned();
        let token = format!("Token {}", idp.buildkite_agent_access_token());
        let bearer = format!("Bearer {}", idp.buildkite_agent_access_token());
        let cases: [(&str, Option<&str>, &str, StatusCode); 9] = [
            (&job, None, "{}", StatusCode::UNAUTHORIZED),
            (&job, Some("Token guess"), "{}", StatusCode::UNAUTHORIZED),
            (&job, Some(&bearer), "{}", StatusCode::UNAUTHORIZED),
            (
                "a078e2d2-86e9-4c12-bf3b-612a8058d0a4",
                Some(&token),
                "{}",
                StatusCode::FORBIDDEN,
            ),
            ("2", Some(&token), "{}", StatusCode::NOT_FOUND),
            (&job, Some(&token), "{not json", StatusCode::BAD_REQUEST),
            (
                &job,
                Some(&token),
                r#"{"claims":["agent_secret"]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                &job,
                Some(&token),
                r#"{"lifetime":-1}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                &job,
                Some(&token),
                r#"{"aws_session_tags":["organization_id"]}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ];
        for (job, authorization, body, expected) in cases {
            let (status, answer) = request(&idp, job, authorization, body).await?;
            assert_eq!(status, expected, "{job} {authorization:?} {body}: {answer}");
            assert!(answer["message"].is_string(), "{answer}");
            assert!(answer.get("token").is_none());
        }
        assert!(idp.id_token_requests().is_empty());
        Ok(())
    }

    #[test]
    fn a_tagged_build_without_a_step_key_has_a_tag_ref_and_null_claims() {
        let job = Job {
            build_tag: Some("v2.0.0".to_owned()),
            step_key: None,
            ..Job::default()
        };
        assert_eq!(job.git_ref(), "refs/tags/v2.0.0");
        let resolved = BuildkiteJob {
            pipeline_slug: Some("gadget".to_owned()),
            with_ids: Some("on".to_owned()),
            ..BuildkiteJob::default()
        }
        .resolve();
        assert!(
            resolved
                .as_ref()
                .is_ok_and(|job| job.optional_claims.len() == 2
                    && job.pipeline_id != BUILDKITE_PIPELINE_ID
                    && job.organization_id == BUILDKITE_ORGANIZATION_ID)
        );
        let unknown = BuildkiteJob {
            claims: vec!["secret".to_owned()],
            ..BuildkiteJob::default()
        };
        assert!(unknown.resolve().is_err_and(|e| e.contains("`secret`")));
    }

    #[tokio::test]
    async fn null_step_key_and_build_tag_stay_in_the_claims() -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::Buildkite);
        let claims = idp.buildkite_job_claims(
            "wharf.test",
            &Job {
                step_key: None,
                ..Job::default()
            },
        );
        assert_eq!(claims["step_key"], Value::Null);
        assert_eq!(claims["build_tag"], Value::Null);
        assert!(
            claims["sub"]
                .as_str()
                .is_some_and(|sub| sub.ends_with(":step:"))
        );
        Ok(())
    }
}
