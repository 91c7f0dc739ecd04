//! `/api/v1/trusted_publishing/…`: the token exchange and publisher config management,
//! compatible with crates.io's API.

pub mod configs;
pub mod tokens;

use actix_web::HttpRequest;

use crate::app::App;
use crate::auth::{Authenticated, RawToken};
use crate::errors::{AppResult, forbidden};
use crate::models::{User, now};
use crate::tokens::EndpointScope;

/// The user managing Trusted Publishing: a logged-in session whose `X-CSRF-Token` header
/// matches (see [`crate::auth::session::api_session_user`]), or the holder of an API token with
/// the `trusted-publishing` scope (whose crate scopes must allow `crate_name`, when known).
pub async fn manager(app: &App, req: &HttpRequest, crate_name: Option<String>) -> AppResult<User> {
    caller_with_scope(app, req, EndpointScope::TrustedPublishing, crate_name).await
}

/// The user managing pending publishers (configs for a crate that does not exist yet): one
/// who may create crates — a logged-in session (with `X-CSRF-Token`), or the holder of an API
/// token with the `publish-new` scope (whose crate scopes must allow `crate_name`, when known).
pub async fn crate_creator(
    app: &App,
    req: &HttpRequest,
    crate_name: Option<String>,
) -> AppResult<User> {
    caller_with_scope(app, req, EndpointScope::PublishNew, crate_name).await
}

async fn caller_with_scope(
    app: &App,
    req: &HttpRequest,
    scope: EndpointScope,
    crate_name: Option<String>,
) -> AppResult<User> {
    if let Some(user) = crate::auth::session::api_session_user(req).await? {
        return Ok(user);
    }
    if req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .is_none()
    {
        return Err(forbidden(format!(
            "managing Trusted Publishing requires an API token with the `{scope}` scope, or a logged-in session"
        )));
    }
    let raw = RawToken::from_request(req)?;
    app.db
        .run(move |conn| {
            let auth = Authenticated::resolve(conn, &raw, now())?;
            let user = auth.user_with_scope(scope, crate_name.as_deref())?;
            Ok(user.user.clone())
        })
        .await
}
