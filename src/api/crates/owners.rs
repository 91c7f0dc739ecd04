use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::auth::{Authenticated, RawToken};
use crate::errors::{AppResult, bad_request};
use crate::models::krate::find_crate;
use crate::models::{crate_owner, now};
use crate::services::owners::{self, OwnersError};
use crate::tokens::EndpointScope;

#[derive(Deserialize)]
pub struct OwnersBody {
    users: Vec<String>,
}

/// `GET /api/v1/crates/{name}/owners`: public, as on crates.io.
pub async fn list(app: web::Data<App>, path: web::Path<String>) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    let base = app.config.base_url().to_owned();
    let owners = app
        .db
        .run(move |conn| {
            let krate = find_crate(conn, &name)?;
            Ok(crate_owner::owners(conn, krate.id)?)
        })
        .await?;
    let users: Vec<_> = owners
        .iter()
        .map(|u| {
            json!({
                "id": u.id,
                "login": u.login,
                "name": u.name,
                "avatar": u.avatar_url,
                "kind": "user",
                "url": format!("{base}/users/{}", u.login),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "users": users })))
}

/// `PUT /api/v1/crates/{name}/owners`: adds owners (they must have logged in once, or been
/// created with `wharf admin user add`). The rules are in [`crate::services::owners`].
pub async fn add(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<OwnersBody>,
) -> AppResult<HttpResponse> {
    change(app, req, path.into_inner(), body.into_inner(), true).await
}

/// `DELETE /api/v1/crates/{name}/owners`
pub async fn remove(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<OwnersBody>,
) -> AppResult<HttpResponse> {
    change(app, req, path.into_inner(), body.into_inner(), false).await
}

async fn change(
    app: web::Data<App>,
    req: HttpRequest,
    name: String,
    body: OwnersBody,
    adding: bool,
) -> AppResult<HttpResponse> {
    let raw = RawToken::from_request(&req)?;
    owners::check_logins(&body.users).map_err(|error| match error {
        OwnersError::NoLogins => bad_request("list at least one user login in `users`"),
        error => error.into(),
    })?;
    let msg = app
        .db
        .transaction(move |conn| {
            let now = now();
            let auth = Authenticated::resolve(conn, &raw, now)?;
            let krate = find_crate(conn, &name)?;
            let user = auth.user_with_scope(EndpointScope::ChangeOwners, Some(&krate.name))?;
            let who = if adding {
                owners::add(conn, &user.user, &krate, &body.users, now)?
            } else {
                owners::remove(conn, &user.user, &krate, &body.users, now)?
            }
            .join(", ");
            Ok(if adding {
                format!(
                    "user {who} has been added as an owner of crate {}",
                    krate.name
                )
            } else {
                format!(
                    "user {who} has been removed as an owner of crate {}",
                    krate.name
                )
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "ok": true, "msg": msg })))
}
