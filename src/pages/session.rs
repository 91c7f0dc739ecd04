//! The web app's side of the session: the [`CurrentUser`] and [`PageContext`] extractors, the
//! [`require_login`] guard, flash messages, and CSRF-checked forms ([`CsrfForm`]). Whether a
//! request carries a live login is decided in [`crate::auth::session`] ([`login_of`]), which the
//! JSON API shares.
//!
//! Every form carries the CSRF token in a hidden field and every POST is refused with 403
//! unless it matches a live login's token ([`CsrfForm`]).

use std::future::Future;

use actix_session::{Session, SessionExt};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, ResponseError, web};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::errors::{PageError, PageResult};
use super::next::safe_next;
use crate::auth::session::{csrf_matches, csrf_token, login_of};
use crate::errors::{AppResult, bad_request, forbidden, payload_too_large};
use crate::models::User;

const FLASH: &str = "flash";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
/// The largest form body accepted.
pub const FORM_LIMIT: usize = 64 * 1024;

/// What the base template needs on every page.
#[derive(Default, Debug, Clone)]
pub struct Layout {
    pub user: Option<NavUser>,
    /// Empty when nobody is logged in (anonymous visitors have no forms to post).
    pub csrf_token: String,
    pub flash: Option<Flash>,
}

#[derive(Debug, Clone)]
pub struct NavUser {
    pub login: String,
}

/// A one-time message shown on the next page, after a redirect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// `success` or `warning`.
    pub kind: String,
    pub message: String,
}

/// The session and, if someone is logged in, the user. Reading it takes the flash message.
pub struct PageContext {
    pub user: Option<User>,
    pub layout: Layout,
    pub session: Session,
}

/// A logged-in user; pages that take it redirect anonymous visitors to `/login`.
pub struct CurrentUser {
    pub user: User,
    pub layout: Layout,
    pub session: Session,
}

impl PageContext {
    async fn load(
        login: impl Future<Output = AppResult<Option<User>>>,
        session: Session,
    ) -> PageResult<Self> {
        let user = login.await?;
        let csrf_token = match &user {
            Some(_) => csrf_token(&session)?,
            None => String::new(),
        };
        // Only a page that shows a flash changes the session (and so sends a cookie).
        let flash = if session.contains_key(FLASH) {
            session.remove_as::<Flash>(FLASH).and_then(Result::ok)
        } else {
            None
        };
        let layout = Layout {
            user: user.as_ref().map(|u| NavUser {
                login: u.login.clone(),
            }),
            csrf_token,
            flash,
        };
        Ok(PageContext {
            user,
            layout,
            session,
        })
    }
}

impl FromRequest for PageContext {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, PageResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(PageContext::load(login_of(req), req.get_session()))
    }
}

impl FromRequest for CurrentUser {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, PageResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let context = PageContext::load(login_of(req), req.get_session());
        let next = next_of(req);
        Box::pin(async move {
            let ctx = context.await?;
            match ctx.user {
                Some(user) => Ok(CurrentUser {
                    user,
                    layout: ctx.layout,
                    session: ctx.session,
                }),
                None => Err(PageError::LoginRequired { next }),
            }
        })
    }
}

/// Where to come back to after logging in: this page (a GET), or for a POST the page it was
/// posted from (its path without the last segment is not reliable, so the home page). Only a
/// plain path of this site (see [`safe_next`]).
fn next_of(req: &HttpRequest) -> String {
    if req.method() == actix_web::http::Method::GET {
        safe_next(req.uri().path_and_query().map(|p| p.as_str()))
    } else {
        "/".to_owned()
    }
}

/// The auth guard of the `/settings` scope and `/me/…` (not `/me` itself): visitors without a
/// live login are sent to log in. The answer is a response (not an error), so the default
/// headers apply to it.
pub async fn require_login(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let refusal = match login_of(req.request()).await {
        Ok(Some(_)) => return Ok(next.call(req).await?.map_into_left_body()),
        Ok(None) => PageError::LoginRequired {
            next: next_of(req.request()),
        },
        Err(error) => PageError::App(error),
    };
    Ok(req
        .into_response(refusal.error_response())
        .map_into_right_body())
}

/// Shows `message` on the next page.
pub fn flash(session: &Session, kind: &str, message: impl Into<String>) -> PageResult<()> {
    session.insert(
        FLASH,
        Flash {
            kind: kind.to_owned(),
            message: message.into(),
        },
    )?;
    Ok(())
}

const CSRF_REFUSED: &str = "this form has expired or did not come from this site (the CSRF check failed); go back, reload the page and try again";

/// An `application/x-www-form-urlencoded` body whose CSRF token has been checked against a
/// live login's session. Every POST handler of the web app takes one, so no form can skip the
/// check; every form of the web app is posted by a logged-in user.
pub struct CsrfForm {
    fields: Vec<(String, String)>,
}

impl CsrfForm {
    /// The field's value, or `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of a repeated field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == name)
    }
}

impl FromRequest for CsrfForm {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, PageResult<Self>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let login = login_of(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = body
                .await
                .map_err(|_| bad_request("cannot read the form"))?;
            if body.len() > FORM_LIMIT {
                return Err(payload_too_large("the form is too large").into());
            }
            let fields: Vec<(String, String)> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            let form = CsrfForm { fields };
            // A session that ended on the server (logged out, expired) posts nothing, whatever
            // its cookie still holds.
            let live = login.await?.is_some();
            if !live || !csrf_matches(&session, form.get(CSRF_FIELD)) {
                return Err(forbidden(CSRF_REFUSED).into());
            }
            Ok(form)
        })
    }
}
