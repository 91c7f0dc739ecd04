use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::find_crate;
use crate::app::App;
use crate::auth::{Authenticated, RawToken};
use crate::db::is_unique_violation;
use crate::errors::{AppResult, bad_request};
use crate::models::crate_owner::{self, NewCrateOwner};
use crate::models::{User, audit, now};
use crate::tokens::EndpointScope;

#[derive(Deserialize)]
pub struct OwnersBody {
    users: Vec<String>,
}

const MAX_LOGINS_PER_REQUEST: usize = 20;

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
/// created with `wharf admin user add`).
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
    if body.users.is_empty() {
        return Err(bad_request("list at least one user login in `users`"));
    }
    if body.users.len() > MAX_LOGINS_PER_REQUEST {
        return Err(bad_request(format!(
            "at most {MAX_LOGINS_PER_REQUEST} logins per request"
        )));
    }
    let msg = app
        .db
        .transaction(move |conn| {
            let now = now();
            let auth = Authenticated::resolve(conn, &raw, now)?;
            let krate = find_crate(conn, &name)?;
            let user = auth.user_with_scope(EndpointScope::ChangeOwners, Some(&krate.name))?;
            user.require_owner(conn, &krate)?;
            let current = crate_owner::owners(conn, krate.id)?;
            // Each user once, however often (and in whatever ASCII case) the request names
            // them: a repeated login must not insert twice or log twice.
            let mut targets: Vec<User> = Vec::new();
            for login in &body.users {
                let target = User::by_login(conn, login)?
                    .ok_or_else(|| bad_request(format!("could not find user with login `{login}`; they must log in to this registry once first")))?;
                if !targets.iter().any(|t| t.id == target.id) {
                    targets.push(target);
                }
            }
            let mut logins = Vec::new();
            for target in targets {
                let is_owner = current.iter().any(|o| o.id == target.id);
                let already = || bad_request(format!("`{}` is already an owner of crate `{}`", target.login, krate.name));
                if adding {
                    if is_owner {
                        return Err(already());
                    }
                    NewCrateOwner { crate_id: krate.id, user_id: target.id, created_at: now, created_by: Some(user.user.id) }
                        .insert(conn)
                        // Added by a concurrent request since `current` was read.
                        .map_err(|e| if is_unique_violation(&e) { already() } else { e.into() })?;
                } else {
                    if !is_owner {
                        return Err(bad_request(format!("`{}` is not an owner of crate `{}`", target.login, krate.name)));
                    }
                    crate_owner::remove(conn, krate.id, target.id)?;
                }
                audit::record(
                    conn,
                    krate.id,
                    &auth.actor(),
                    if adding { "owner_add" } else { "owner_remove" },
                    json!({ "login": target.login }),
                    now,
                )?;
                logins.push(target.login);
            }
            if !adding && crate_owner::owners(conn, krate.id)?.is_empty() {
                return Err(bad_request("cannot remove all owners of a crate; add another owner first"));
            }
            let who = logins.join(", ");
            Ok(if adding {
                format!("user {who} has been added as an owner of crate {}", krate.name)
            } else {
                format!("user {who} has been removed as an owner of crate {}", krate.name)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "ok": true, "msg": msg })))
}
