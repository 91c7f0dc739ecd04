//! Publisher configs of every provider: `GET|POST /api/v1/trusted_publishing/{kind}_configs`
//! and `DELETE …/{kind}_configs/{id}` (crates.io's shapes: a body `{"{kind}_config": {"crate",
//! …fields}}`, answers `{"{kind}_config": …}` and `{"{kind}_configs": […]}`). The kind is looked
//! up in the provider registry; an unknown kind is a 404.
//!
//! A crate that does not exist yet gets a *pending* config (`services::pending`), for a caller
//! who may create crates; its id is negative, and it carries `"pending": true`, `"expires_at"`
//! and `"void"`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{crate_creator, manager};
use crate::app::App;
use crate::errors::{AppResult, bad_request, not_found};
use crate::services::{pending, publishers};
use crate::trustpub::provider::Provider;
use crate::trustpub::providers::{ProviderKind, with_provider};

#[derive(Deserialize)]
pub struct CrateQuery {
    #[serde(rename = "crate")]
    krate: Option<String>,
}

/// A config in a request body: its crate and the provider's fields.
#[derive(Deserialize)]
struct ConfigBody<I> {
    #[serde(rename = "crate")]
    krate: String,
    #[serde(flatten)]
    input: I,
}

fn crate_param(query: CrateQuery) -> AppResult<String> {
    query
        .krate
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad_request("name the crate with `?crate=NAME`"))
}

/// The provider of `{kind}_configs`.
fn provider(kind: &str) -> AppResult<ProviderKind> {
    ProviderKind::from_kind(kind).ok_or_else(|| {
        let known = ProviderKind::ALL
            .iter()
            .map(|k| format!("`{}_configs`", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        not_found(format!(
            "there are no `{kind}_configs`: trusted publishers are configured under {known}"
        ))
    })
}

/// `GET /api/v1/trusted_publishing/{kind}_configs?crate=NAME`
pub async fn list(
    app: web::Data<App>,
    req: HttpRequest,
    kind: web::Path<String>,
    query: web::Query<CrateQuery>,
) -> AppResult<HttpResponse> {
    let kind = provider(&kind)?;
    let name = crate_param(query.into_inner())?;
    if !publishers::crate_exists(&app, name.clone()).await? {
        // The caller's pending configs for the name, when the caller may create crates; else
        // the answer for a crate that does not exist.
        if let Ok(user) = crate_creator(&app, &req, Some(name.clone())).await {
            let configs: Vec<Value> = with_provider!(kind, P => {
                pending::list_for_name::<P>(&app, user, name).await?
            })
            .into_iter()
            .map(|view| view.json)
            .collect();
            return Ok(
                HttpResponse::Ok().json(json!({ format!("{}_configs", kind.as_str()): configs }))
            );
        }
    }
    let user = manager(&app, &req, Some(name.clone())).await?;
    let configs: Vec<Value> = with_provider!(kind, P => {
        let (krate, configs) = publishers::list::<P>(&app, user, name).await?;
        configs.iter().map(|c| P::config_json(c, &krate.name)).collect()
    });
    Ok(HttpResponse::Ok().json(json!({ format!("{}_configs", kind.as_str()): configs })))
}

/// `POST /api/v1/trusted_publishing/{kind}_configs`
pub async fn create(
    app: web::Data<App>,
    req: HttpRequest,
    kind: web::Path<String>,
    body: web::Json<Value>,
) -> AppResult<HttpResponse> {
    let kind = provider(&kind)?;
    let key = format!("{}_config", kind.as_str());
    let mut body = body.into_inner();
    let Some(config) = body.get_mut(&key).map(Value::take) else {
        return Err(bad_request(format!(
            "the request body must be a JSON object `{{\"{key}\": {{\"crate\": …}}}}`"
        )));
    };
    let json = with_provider!(kind, P => {
        let body: ConfigBody<<P as Provider>::Input> = serde_json::from_value(config)
            .map_err(|e| bad_request(format!("invalid `{key}` in the request body: {e}")))?;
        if body.krate.trim().is_empty()
            || publishers::crate_exists(&app, body.krate.clone()).await?
        {
            let user = manager(&app, &req, Some(body.krate.clone())).await?;
            let (krate, config) =
                publishers::create::<P>(&app, user, body.krate, body.input).await?;
            P::config_json(&config, &krate.name)
        } else {
            // A crate that does not exist yet: a pending config, for a caller who may create
            // crates.
            let user = crate_creator(&app, &req, Some(body.krate.clone())).await?;
            pending::create::<P>(&app, user, body.krate, body.input).await?.json
        }
    });
    Ok(HttpResponse::Ok().json(json!({ key: json })))
}

/// `DELETE /api/v1/trusted_publishing/{kind}_configs/{id}`
pub async fn delete(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let (kind, id) = path.into_inner();
    let kind = provider(&kind)?;
    if let Some(row_id) = pending::row_id(id) {
        let user = crate_creator(&app, &req, None).await?;
        pending::delete(&app, user, Some(kind), row_id).await?;
        return Ok(HttpResponse::NoContent().finish());
    }
    with_provider!(kind, P => {
        // The token's crate scopes are checked against the config's crate.
        let crate_name = publishers::config_crate_name::<P>(&app, id).await?;
        let user = manager(&app, &req, crate_name.clone()).await?;
        if crate_name.is_none() {
            return Err(not_found(format!(
                "no trusted publisher config with id {id}"
            )));
        }
        publishers::delete::<P>(&app, user, id).await?;
    });
    Ok(HttpResponse::NoContent().finish())
}
