//! GitHub and GitLab publisher configs: list, create, delete (crates.io's shapes).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::manager;
use crate::app::App;
use crate::errors::{AppResult, bad_request, not_found};
use crate::models::Crate;
use crate::models::trustpub_config::{GitHubConfig, GitLabConfig};
use crate::publishers::{
    self, ConfigKind, GitHubConfigInput, GitLabConfigInput, github_json, gitlab_json,
};

#[derive(Deserialize)]
pub struct CrateQuery {
    #[serde(rename = "crate")]
    krate: Option<String>,
}

#[derive(Deserialize)]
pub struct GitHubBody {
    github_config: GitHubConfigInput,
}

#[derive(Deserialize)]
pub struct GitLabBody {
    gitlab_config: GitLabConfigInput,
}

fn crate_param(query: CrateQuery) -> AppResult<String> {
    query
        .krate
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad_request("name the crate with `?crate=NAME`"))
}

/// `GET /api/v1/trusted_publishing/github_configs?crate=NAME`
pub async fn list_github(
    app: web::Data<App>,
    req: HttpRequest,
    query: web::Query<CrateQuery>,
) -> AppResult<HttpResponse> {
    list(app, req, query.into_inner(), ConfigKind::GitHub).await
}

/// `GET /api/v1/trusted_publishing/gitlab_configs?crate=NAME`
pub async fn list_gitlab(
    app: web::Data<App>,
    req: HttpRequest,
    query: web::Query<CrateQuery>,
) -> AppResult<HttpResponse> {
    list(app, req, query.into_inner(), ConfigKind::GitLab).await
}

async fn list(
    app: web::Data<App>,
    req: HttpRequest,
    query: CrateQuery,
    kind: ConfigKind,
) -> AppResult<HttpResponse> {
    let name = crate_param(query)?;
    let user = manager(&app, &req, Some(name.clone())).await?;
    let (krate, github, gitlab) = publishers::list_configs(&app, user, name).await?;
    Ok(HttpResponse::Ok().json(match kind {
        ConfigKind::GitHub => {
            let configs: Vec<_> = github.iter().map(|c| github_json(&krate, c)).collect();
            json!({ "github_configs": configs })
        }
        ConfigKind::GitLab => {
            let configs: Vec<_> = gitlab.iter().map(|c| gitlab_json(&krate, c)).collect();
            json!({ "gitlab_configs": configs })
        }
    }))
}

/// `POST /api/v1/trusted_publishing/github_configs`
pub async fn create_github(
    app: web::Data<App>,
    req: HttpRequest,
    body: web::Json<GitHubBody>,
) -> AppResult<HttpResponse> {
    let input = body.into_inner().github_config;
    let user = manager(&app, &req, Some(input.krate.clone())).await?;
    let (krate, config) = publishers::create_github_config(&app, user, input).await?;
    Ok(HttpResponse::Ok().json(json!({ "github_config": github_json(&krate, &config) })))
}

/// `POST /api/v1/trusted_publishing/gitlab_configs`
pub async fn create_gitlab(
    app: web::Data<App>,
    req: HttpRequest,
    body: web::Json<GitLabBody>,
) -> AppResult<HttpResponse> {
    let input = body.into_inner().gitlab_config;
    let user = manager(&app, &req, Some(input.krate.clone())).await?;
    let (krate, config) = publishers::create_gitlab_config(&app, user, input).await?;
    Ok(HttpResponse::Ok().json(json!({ "gitlab_config": gitlab_json(&krate, &config) })))
}

/// `DELETE /api/v1/trusted_publishing/github_configs/{id}`
pub async fn delete_github(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    delete(app, req, ConfigKind::GitHub, path.into_inner()).await
}

/// `DELETE /api/v1/trusted_publishing/gitlab_configs/{id}`
pub async fn delete_gitlab(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    delete(app, req, ConfigKind::GitLab, path.into_inner()).await
}

async fn delete(
    app: web::Data<App>,
    req: HttpRequest,
    kind: ConfigKind,
    id: i64,
) -> AppResult<HttpResponse> {
    // The token's crate scopes are checked against the config's crate.
    let crate_name = app
        .db
        .run(move |conn| {
            let crate_id = match kind {
                ConfigKind::GitHub => GitHubConfig::by_id(conn, id)?.map(|c| c.crate_id),
                ConfigKind::GitLab => GitLabConfig::by_id(conn, id)?.map(|c| c.crate_id),
            };
            Ok(match crate_id {
                Some(crate_id) => Some(Crate::by_id(conn, crate_id)?.name),
                None => None,
            })
        })
        .await?;
    let user = manager(&app, &req, crate_name.clone()).await?;
    if crate_name.is_none() {
        return Err(not_found(format!(
            "no trusted publisher config with id {id}"
        )));
    }
    publishers::delete_config(&app, user, kind, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
