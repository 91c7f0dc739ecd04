//! `/login`, the GitHub OAuth round trip, and `POST /logout`.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::errors::PageError;
use super::me::{TOKENS_PAGE, TokenHelp};
use super::next::safe_next;
use super::session::{self, CsrfForm, Layout, PageContext};
use super::{PageResult, no_store, render, see_other};
use crate::app::App;
use crate::auth::session as auth_session;
use crate::errors::{bad_request, client, internal};
use crate::models::now;
use crate::oauth;

const PENDING_LOGIN: &str = "pending_login";

/// What the session remembers between `/login/github` and the callback.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    state: String,
    pkce_verifier: String,
    next: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    layout: Layout,
    configured: bool,
    next: String,
    callback_url: String,
    /// How to get a token without logging in (shown when GitHub login is off).
    help: TokenHelp,
    tokens_page: &'static str,
}

/// `GET /login`: a button to sign in with GitHub, or how to turn GitHub login on and how to get
/// a token for cargo meanwhile.
pub async fn login_page(
    app: web::Data<App>,
    ctx: PageContext,
    query: web::Query<NextQuery>,
) -> PageResult<HttpResponse> {
    let next = safe_next(query.next.as_deref());
    if ctx.user.is_some() {
        return Ok(see_other(&next));
    }
    render(&LoginPage {
        layout: ctx.layout,
        configured: app.config.github.oauth.is_some(),
        next,
        callback_url: format!("{}{}", app.config.base_url(), oauth::CALLBACK_PATH),
        help: TokenHelp::new(&app.config),
        tokens_page: TOKENS_PAGE,
    })
}

/// `GET /login/github`: remembers a fresh `state` and PKCE verifier, then sends the browser to
/// GitHub.
pub async fn start(
    app: web::Data<App>,
    ctx: PageContext,
    query: web::Query<NextQuery>,
) -> PageResult<HttpResponse> {
    if app.config.github.oauth.is_none() {
        return Ok(see_other("/login"));
    }
    let login = oauth::start(&app.config).map_err(internal)?;
    ctx.session.insert(
        PENDING_LOGIN,
        PendingLogin {
            state: login.state,
            pkce_verifier: login.pkce_verifier,
            next: safe_next(query.next.as_deref()),
        },
    )?;
    Ok(no_store(see_other(&login.authorize_url)))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /login/github/callback`: checks `state`, exchanges the code, logs the user in (with a
/// renewed session) and goes back where the login started.
pub async fn callback(
    app: web::Data<App>,
    ctx: PageContext,
    query: web::Query<CallbackQuery>,
) -> PageResult<HttpResponse> {
    let session = ctx.session;
    let pending = session
        .remove_as::<PendingLogin>(PENDING_LOGIN)
        .and_then(Result::ok);
    let query = query.into_inner();
    if query.error.is_some() {
        return Err(client(
            actix_web::http::StatusCode::FORBIDDEN,
            "the login was cancelled on GitHub; log in again to continue",
        )
        .into());
    }
    let (Some(pending), Some(code), Some(state)) = (pending, query.code, query.state) else {
        return Err(bad_request(
            "this login link has expired or was already used; start again from the login page",
        )
        .into());
    };
    if !auth_session::same_token(&pending.state, &state) {
        return Err(bad_request(
            "the login could not be verified (the state does not match); start again from the login page",
        )
        .into());
    }
    let github_user = oauth::finish(&app.config, &app.http, code, pending.pkce_verifier)
        .await
        .map_err(|e| match e {
            refused @ oauth::LoginError::NotAMember { .. } => {
                tracing::info!(reason = %refused, "GitHub login refused");
                PageError::App(client(actix_web::http::StatusCode::FORBIDDEN, refused))
            }
            oauth::LoginError::GitHub(e) => {
                tracing::warn!(error = format!("{e:#}"), "GitHub login failed");
                PageError::App(client(
                    actix_web::http::StatusCode::BAD_GATEWAY,
                    "GitHub did not confirm the login; try again",
                ))
            }
        })?;
    let user = app
        .db
        .transaction(move |conn| oauth::upsert_user(conn, &github_user, now()))
        .await?;
    tracing::info!(user.id = user.id, user.login = %user.login, "logged in");
    auth_session::log_in(&app, &session, user.id).await?;
    session::flash(&session, "success", format!("Logged in as {}.", user.login))?;
    Ok(see_other(&safe_next(Some(&pending.next))))
}

/// `POST /logout`: ends this session on the server, so a copy of the cookie is worthless.
pub async fn logout(
    app: web::Data<App>,
    ctx: PageContext,
    _form: CsrfForm,
) -> PageResult<HttpResponse> {
    auth_session::log_out(&app, &ctx.session).await?;
    Ok(see_other("/"))
}
