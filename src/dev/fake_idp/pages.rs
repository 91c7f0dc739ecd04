//! The fake's own pages: an index of what it serves, and the development-mode tools to mint
//! ID tokens by hand — `GET /_dev/id-token?provider=…&audience=…` (a form),
//! `POST /_dev/id-token` (the form's answer, with the token and the `curl` command that
//! exchanges it) and `POST /_dev/id-token.json` (`{"provider", "audience", …}` →
//! `{"value": "<jwt>"}`, the shape of GitHub's ID-token request endpoint).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::buildkite::{BuildkiteJob, Job as BuildkiteJobResolved};
use super::claims::LIFETIME_SECONDS;
use super::github::{GitHubRun, Run};
use super::gitlab::{GitLabJob, Job as GitLabJobResolved};
use super::{Provider, State};

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Fake identity provider</title>
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}label{display:block;font-weight:600;margin-top:.8rem}input[type=text],input:not([type]){font:inherit;padding:.3rem;width:100%}button{font:inherit;margin-top:1rem;padding:.4rem 1rem}pre,code{word-break:break-all}pre{white-space:pre-wrap;background:#f4f4f4;padding:.6rem}.note{background:#fff8c5;padding:.5rem .8rem;border:1px solid #d4a72c}.error{background:#ffebe9;padding:.5rem .8rem;border:1px solid #cf222e}nav a{margin-right:1rem}</style></head><body>
<p class="note">Fake identity provider for Wharf development: no passwords, nothing here is real.</p>
{{ body|safe }}
</body></html>"#
)]
struct Layout {
    body: String,
}

/// `body` inside the fake's page layout.
pub(crate) fn html_page(body: &impl Template) -> HttpResponse {
    html_page_with_status(StatusCode::OK, body)
}

fn html_page_with_status(status: StatusCode, body: &impl Template) -> HttpResponse {
    match body.render().and_then(|body| Layout { body }.render()) {
        Ok(page) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(page),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

/// An OAuth error answer, as GitHub sends them.
pub(crate) fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .json(json!({ "error": error, "error_description": description }))
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/_dev/id-token", web::get().to(mint_page))
        .route("/_dev/id-token", web::post().to(mint_form))
        .route("/_dev/id-token.json", web::post().to(mint_json));
}

struct IssuerRow {
    label: &'static str,
    slug: &'static str,
    url: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Fake identity provider</h1>
<h2>GitHub</h2>
<ul>
<li>Web and OAuth: <code>{{ base }}</code> (client id <code>{{ client_id }}</code>; <code>WHARF_GITHUB_URL</code>)</li>
<li>REST API: <code>{{ api }}</code> (<code>WHARF_GITHUB_API_URL</code>)</li>
<li>GitHub Actions ID-token request: <code>ACTIONS_ID_TOKEN_REQUEST_URL={{ request_url }}</code>, <code>ACTIONS_ID_TOKEN_REQUEST_TOKEN={{ request_token }}</code></li>
<li>Accounts: {{ accounts }}</li>
</ul>
<h2>Buildkite agent</h2>
<ul>
<li><code>BUILDKITE_AGENT_ENDPOINT={{ agent_endpoint }}</code>, <code>BUILDKITE_AGENT_ACCESS_TOKEN={{ agent_token }}</code>, <code>BUILDKITE_JOB_ID={{ job_id }}</code></li>
</ul>
<h2>Issuers</h2>
<table>
<thead><tr><th scope="col">Provider</th><th scope="col">Issuer</th><th scope="col">Mint by hand</th></tr></thead>
<tbody>
{% for issuer in issuers %}<tr><td>{{ issuer.label }}</td><td><code>{{ issuer.url }}</code></td><td><a href="/_dev/id-token?provider={{ issuer.slug }}">ID token</a></td></tr>
{% endfor %}</tbody>
</table>"#
)]
struct IndexPage {
    base: String,
    client_id: String,
    api: String,
    request_url: String,
    request_token: String,
    accounts: &'static str,
    agent_endpoint: String,
    agent_token: String,
    job_id: String,
    issuers: Vec<IssuerRow>,
}

async fn index(state: web::Data<State>) -> HttpResponse {
    html_page(&IndexPage {
        base: state.base_url.clone(),
        client_id: state.github.client_id.clone(),
        api: state.github_api_url(),
        request_url: state.id_token_request_url(),
        request_token: state.github.request_token.clone(),
        accounts: match state.accounts.policy() {
            super::AccountPolicy::OnDemand => "every login exists (created on demand)",
            super::AccountPolicy::Listed => {
                "only listed accounts and those signed in exist; others are 404"
            }
        },
        agent_endpoint: state.buildkite_agent_endpoint(),
        agent_token: state.buildkite.access_token.clone(),
        job_id: state.buildkite.job_id.clone(),
        issuers: Provider::ALL
            .into_iter()
            .map(|provider| IssuerRow {
                label: provider.label(),
                slug: provider.slug(),
                url: state.issuer(provider).url().to_owned(),
            })
            .collect(),
    })
}

/// One input of the mint form.
struct Field {
    name: &'static str,
    label: &'static str,
    value: String,
    checkbox: bool,
}

impl Field {
    fn text(name: &'static str, label: &'static str, value: impl Into<String>) -> Field {
        Field {
            name,
            label,
            value: value.into(),
            checkbox: false,
        }
    }
}

/// The form's inputs for `provider`, filled with the defaults, then with what was sent.
fn fields(provider: Provider, sent: &Map<String, Value>) -> Vec<Field> {
    let mut fields = match provider {
        Provider::GitHub => {
            let run = Run::default();
            vec![
                Field::text("repository", "Repository (owner/name)", run.repository),
                Field::text("workflow", "Workflow file name", run.workflow),
                Field::text("actor", "Actor", run.actor),
                Field::text("environment", "Environment (optional)", ""),
                Field::text("ref", "Git ref", run.git_ref),
                Field::text("event_name", "Event", run.event_name),
                Field::text("run_id", "Run ID", run.run_id.to_string()),
                Field::text("sha", "Commit SHA", run.sha),
            ]
        }
        Provider::GitLab => {
            let job = GitLabJobResolved::default();
            vec![
                Field::text(
                    "project_path",
                    "Project path (namespace/project)",
                    job.project_path,
                ),
                Field::text("ci_config_path", "CI config file", job.ci_config_path),
                Field::text("user_login", "User", job.user_login),
                Field::text("environment", "Environment (optional)", ""),
                Field::text("ref", "Tag or branch", job.git_ref),
                Field::text("ref_type", "Ref type (tag or branch)", job.ref_type),
                Field::text("job_id", "Job ID", job.job_id.to_string()),
                Field::text("sha", "Commit SHA", job.sha),
            ]
        }
        Provider::Buildkite => {
            let job = BuildkiteJobResolved::default();
            vec![
                Field::text("organization_slug", "Organization", job.organization_slug),
                Field::text("pipeline_slug", "Pipeline", job.pipeline_slug),
                Field::text("step_key", "Step key", job.step_key.unwrap_or_default()),
                Field::text("build_branch", "Branch", job.build_branch),
                Field::text("build_tag", "Tag (optional)", ""),
                Field::text("build_number", "Build number", job.build_number.to_string()),
                Field::text("build_commit", "Commit SHA", job.build_commit),
                Field {
                    name: "with_ids",
                    label: "Include organization_id and pipeline_id",
                    value: String::new(),
                    checkbox: true,
                },
            ]
        }
    };
    for field in &mut fields {
        if let Some(value) = sent.get(field.name).and_then(Value::as_str) {
            field.value = value.to_owned();
        }
    }
    fields
}

struct ProviderLink {
    slug: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<h1>Mint a {{ label }} ID token</h1>
<nav aria-label="Providers">{% for link in providers %}<a href="/_dev/id-token?provider={{ link.slug }}&amp;audience={{ audience|urlencode }}">{{ link.label }}</a>{% endfor %}</nav>
<p>The token is signed by this fake's issuer <code>{{ issuer }}</code>; exchange it at the registry's <code>POST /api/v1/trusted_publishing/tokens</code>.</p>
{% if !error.is_empty() %}<p class="error" id="mint-error">{{ error }}</p>{% endif %}
<form method="post" action="/_dev/id-token">
<input type="hidden" name="provider" value="{{ slug }}">
<label for="audience">Audience (the registry's host and port)</label><input id="audience" name="audience" value="{{ audience }}" required>
{% for field in fields %}{% if field.checkbox %}<label><input type="checkbox" id="{{ field.name }}" name="{{ field.name }}"{% if !field.value.is_empty() %} checked{% endif %}> {{ field.label }}</label>
{% else %}<label for="{{ field.name }}">{{ field.label }}</label><input id="{{ field.name }}" name="{{ field.name }}" value="{{ field.value }}">
{% endif %}{% endfor %}<button type="submit" id="mint">Mint ID token</button>
</form>
{% if !token.is_empty() %}
<h2>ID token</h2>
<pre id="id-token">{{ token }}</pre>
<h2>Exchange it</h2>
<pre>curl -s -X POST -H 'Content-Type: application/json' \
  -d '{"jwt":"{{ token }}"}' \
  {{ registry }}/api/v1/trusted_publishing/tokens</pre>
{% endif %}"#
)]
struct MintPage {
    label: &'static str,
    slug: &'static str,
    providers: Vec<ProviderLink>,
    issuer: String,
    audience: String,
    fields: Vec<Field>,
    error: String,
    token: String,
    registry: String,
}

impl MintPage {
    fn new(state: &State, provider: Provider, audience: String, sent: &Map<String, Value>) -> Self {
        MintPage {
            label: provider.label(),
            slug: provider.slug(),
            providers: Provider::ALL
                .into_iter()
                .map(|p| ProviderLink {
                    slug: p.slug(),
                    label: p.label(),
                })
                .collect(),
            issuer: state.issuer(provider).url().to_owned(),
            registry: format!("http://{audience}"),
            audience,
            fields: fields(provider, sent),
            error: String::new(),
            token: String::new(),
        }
    }
}

#[derive(Deserialize)]
struct MintQuery {
    provider: Option<String>,
    audience: Option<String>,
}

fn provider_named(name: Option<&str>) -> Result<Provider, String> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(Provider::GitHub),
        Some(name) => Provider::ALL
            .into_iter()
            .find(|p| p.slug() == name)
            .ok_or_else(|| {
                format!("`provider` must be `github`, `gitlab` or `buildkite`, not `{name}`")
            }),
    }
}

async fn mint_page(state: web::Data<State>, query: web::Query<MintQuery>) -> HttpResponse {
    let query = query.into_inner();
    let provider = match provider_named(query.provider.as_deref()) {
        Ok(provider) => provider,
        Err(e) => return HttpResponse::BadRequest().body(e),
    };
    html_page(&MintPage::new(
        &state,
        provider,
        query.audience.unwrap_or_default(),
        &Map::new(),
    ))
}

/// Mints a token from a request's fields: `provider` (default `github`), `audience`, and the
/// fields of [`GitHubRun`], [`GitLabJob`] or [`BuildkiteJob`].
fn mint(state: &State, provider: Provider, fields: &Map<String, Value>) -> Result<String, String> {
    let audience = fields
        .get("audience")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or("`audience` is required: the registry's audience (its host and port)")?;
    let object = Value::Object(fields.clone());
    let bad = |e: serde_json::Error| format!("the request is not valid: {e}");
    let claims = match provider {
        Provider::GitHub => serde_json::from_value::<GitHubRun>(object)
            .map_err(bad)?
            .resolve()?
            .claims(state, audience),
        Provider::GitLab => serde_json::from_value::<GitLabJob>(object)
            .map_err(bad)?
            .resolve()?
            .claims(state, audience),
        Provider::Buildkite => serde_json::from_value::<BuildkiteJob>(object)
            .map_err(bad)?
            .resolve()?
            .claims(state, audience, LIFETIME_SECONDS),
    };
    state
        .issuer(provider)
        .try_sign(&claims)
        .map_err(|e| e.to_string())
}

async fn mint_form(
    state: web::Data<State>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let sent: Map<String, Value> = form
        .into_inner()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let provider = match provider_named(sent.get("provider").and_then(Value::as_str)) {
        Ok(provider) => provider,
        Err(e) => return HttpResponse::BadRequest().body(e),
    };
    let audience = sent
        .get("audience")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut page = MintPage::new(&state, provider, audience, &sent);
    match mint(&state, provider, &sent) {
        Ok(token) => {
            page.token = token;
            html_page(&page)
        }
        Err(error) => {
            page.error = error;
            html_page_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

/// `POST /_dev/id-token.json`: `{"provider"?, "audience", …}` → `{"value": "<jwt>"}`; bad
/// input → 400 `{"message"}`.
async fn mint_json(state: web::Data<State>, body: web::Json<Value>) -> HttpResponse {
    let Value::Object(fields) = body.into_inner() else {
        return HttpResponse::BadRequest()
            .json(json!({ "message": "the body must be a JSON object" }));
    };
    let result = provider_named(fields.get("provider").and_then(Value::as_str))
        .and_then(|provider| mint(&state, provider, &fields));
    match result {
        Ok(token) => HttpResponse::Ok().json(json!({ "value": token })),
        Err(message) => HttpResponse::BadRequest().json(json!({ "message": message })),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::super::testing::verify;
    use super::super::{FakeIdp, FakeIdpOptions, GITHUB_OWNER_ID};
    use super::*;

    async fn mint_json(idp: &FakeIdp, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        let response = reqwest::Client::new()
            .post(format!("{}/_dev/id-token.json", idp.base_url()))
            .json(&body)
            .send()
            .await?;
        Ok((response.status(), response.json().await?))
    }

    #[tokio::test]
    async fn the_json_endpoint_mints_tokens_of_every_provider() -> anyhow::Result<()> {
        let idp = FakeIdp::start_with(FakeIdpOptions::for_dev(0))?;
        let cases = [
            (
                Provider::GitHub,
                json!({ "audience": "127.0.0.1:8080", "repository": "new-org/thing", "run_id": 99 }),
                ("repository", json!("new-org/thing")),
            ),
            (
                Provider::GitLab,
                json!({ "provider": "gitlab", "audience": "127.0.0.1:8080", "project_path": "group/sub/app" }),
                ("project_path", json!("group/sub/app")),
            ),
            (
                Provider::Buildkite,
                json!({ "provider": "buildkite", "audience": "127.0.0.1:8080", "pipeline_slug": "app", "claims": ["pipeline_id"] }),
                ("pipeline_slug", json!("app")),
            ),
        ];
        for (provider, body, (claim, value)) in cases {
            let (status, answer) = mint_json(&idp, body).await?;
            assert_eq!(status, StatusCode::OK, "{answer}");
            let issuer = idp.issuer_of(provider).url();
            let claims = verify(issuer, answer["value"].as_str().unwrap_or_default()).await?;
            assert_eq!(claims["aud"], "127.0.0.1:8080");
            assert_eq!(claims[claim], value, "{provider:?}");
            match provider {
                Provider::GitHub => {
                    assert_eq!(claims["run_id"], "99");
                    assert_eq!(
                        claims["repository_owner_id"],
                        idp.account_id("new-org").unwrap_or_default().to_string(),
                        "the owner ID is the one the REST API answers"
                    );
                }
                Provider::GitLab => assert_eq!(claims["namespace_path"], "group/sub"),
                Provider::Buildkite => {
                    assert!(claims["pipeline_id"].is_string());
                    assert!(claims.get("organization_id").is_none());
                }
            }
        }
        Ok(())
    }

    #[tokio::test]
    async fn the_json_endpoint_names_what_is_wrong() -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::GitHub);
        let cases = [
            (json!({}), "`audience` is required"),
            (
                json!({ "audience": "a", "provider": "circleci" }),
                "`provider` must be",
            ),
            (
                json!({ "audience": "a", "run_id": "soon" }),
                "`run_id` must be a whole number",
            ),
            (
                json!({ "audience": "a", "provider": "gitlab", "project_path": "x" }),
                "`project_path`",
            ),
            (
                json!({ "audience": "a", "provider": "buildkite", "claims": ["x"] }),
                "`x` is not an optional claim",
            ),
            (json!({ "audience": "a", "repository": 7 }), "not valid"),
        ];
        for (body, expected) in cases {
            let (status, answer) = mint_json(&idp, body.clone()).await?;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            let message = answer["message"].as_str().unwrap_or_default();
            assert!(message.contains(expected), "{body}: {message}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn the_form_shows_the_token_or_what_is_wrong() -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::GitHub);
        let client = reqwest::Client::new();
        let form = client
            .get(format!(
                "{}/_dev/id-token?provider=buildkite&audience=127.0.0.1:8080",
                idp.base_url()
            ))
            .send()
            .await?;
        assert_eq!(form.status(), StatusCode::OK);
        let form = form.text().await?;
        assert!(
            form.contains(r#"name="pipeline_slug" value="widget""#),
            "{form}"
        );
        assert!(form.contains(r#"value="127.0.0.1:8080""#));

        let minted = client
            .post(format!("{}/_dev/id-token", idp.base_url()))
            .form(&[
                ("provider", "buildkite"),
                ("audience", "127.0.0.1:8080"),
                ("pipeline_slug", "gadget"),
                ("with_ids", "on"),
            ])
            .send()
            .await?;
        assert_eq!(minted.status(), StatusCode::OK);
        let page = minted.text().await?;
        let token = page
            .split(r#"<pre id="id-token">"#)
            .nth(1)
            .and_then(|rest| rest.split("</pre>").next())
            .unwrap_or_default();
        let claims = verify(idp.issuer_of(Provider::Buildkite).url(), token).await?;
        assert_eq!(claims["pipeline_slug"], "gadget");
        assert!(claims["organization_id"].is_string());
        assert!(
            page.contains(r#"value="gadget""#),
            "the form keeps what was sent"
        );

        let refused = client
            .post(format!("{}/_dev/id-token", idp.base_url()))
            .form(&[
                ("provider", "github"),
                ("audience", "a"),
                ("repository", "nope"),
            ])
            .send()
            .await?;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = refused.text().await?;
        assert!(page.contains(r#"id="mint-error""#), "{page}");
        assert!(!page.contains(r#"id="id-token""#));
        Ok(())
    }

    #[tokio::test]
    async fn the_index_lists_every_issuer_and_the_ci_settings() -> anyhow::Result<()> {
        let idp = FakeIdp::start(Provider::GitHub);
        let page = reqwest::get(idp.base_url()).await?.text().await?;
        for provider in Provider::ALL {
            assert!(page.contains(idp.issuer_of(provider).url()), "{page}");
        }
        assert!(page.contains(&idp.id_token_request_url().replace('&', "&amp;")));
        assert!(page.contains(idp.buildkite_agent_access_token()));
        assert_eq!(
            GITHUB_OWNER_ID,
            idp.account_id("octo-org").unwrap_or_default()
        );
        Ok(())
    }
}
