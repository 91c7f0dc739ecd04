use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::app::App;
use crate::auth::{Authenticated, RawToken};
use crate::errors::{AppResult, not_found};
use crate::models::krate::find_crate;
use crate::models::version::max_version;
use crate::models::{Crate, Version, audit, index_file, now};
use crate::tokens::EndpointScope;

/// `DELETE /api/v1/crates/{name}/{version}/yank`
pub async fn yank(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    set_yanked(app, req, path.into_inner(), true).await
}

/// `PUT /api/v1/crates/{name}/{version}/unyank`
pub async fn unyank(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    set_yanked(app, req, path.into_inner(), false).await
}

async fn set_yanked(
    app: web::Data<App>,
    req: HttpRequest,
    (name, num): (String, String),
    yanked: bool,
) -> AppResult<HttpResponse> {
    let raw = RawToken::from_request(&req)?;
    let canonical = app
        .db
        .transaction(move |conn| {
            let now = now();
            let auth = Authenticated::resolve(conn, &raw, now)?;
            let krate = find_crate(conn, &name)?;
            let user = auth.user_with_scope(EndpointScope::Yank, Some(&krate.name))?;
            user.require_owner(conn, &krate)?;
            let version = Version::find(conn, krate.id, &num)?.ok_or_else(|| {
                not_found(format!("crate `{}` has no version `{num}`", krate.name))
            })?;
            if version.yanked != yanked {
                Version::set_yanked(conn, version.id, yanked)?;
                let max = max_version(conn, krate.id)?;
                Crate::set_max_version(conn, krate.id, max.as_deref())?;
                index_file::rerender(conn, &krate, version.id, now)?;
                let action = if yanked { "yank" } else { "unyank" };
                audit::record(
                    conn,
                    krate.id,
                    &auth.actor(),
                    action,
                    json!({ "version": version.num }),
                    now,
                )?;
            }
            Ok(krate.canonical_name)
        })
        .await?;
    // Committed: this instance serves the changed line from now on (the others within a second).
    app.index_cache.invalidate(&canonical);
    Ok(HttpResponse::Ok().json(json!({ "ok": true })))
}
