//! Who is using the web app: the session (an encrypted cookie), the [`CurrentUser`] and
//! [`PageContext`] extractors, flash messages, and CSRF protection.
//!
//! A session holds the user's id and a random CSRF token, both set at login (when the session
//! is renewed). Every form carries the token in a hidden field and every POST is refused with
//! 403 unless it matches ([`CsrfForm`]); the JSON API accepts a session only together with the
//! token in an `X-CSRF-Token` header ([`api_session_user`]).

use actix_session::{Session, SessionExt};
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, web};
use diesel::OptionalExtension;
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::errors::{PageError, PageResult};
use super::next::safe_next;
use crate::app::App;
use crate::errors::{AppResult, bad_request, forbidden, internal, payload_too_large};
use crate::models::User;

const USER_ID: &str = "user_id";
const CSRF_TOKEN: &str = "csrf_token";
const FLASH: &str = "flash";
/// The form field and the API header that carry the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
pub const CSRF_HEADER: &str = "X-CSRF-Token";
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
    async fn load(app: Option<web::Data<App>>, session: Session) -> PageResult<Self> {
        let app = app.ok_or_else(|| internal(anyhow::anyhow!("the App is not registered")))?;
        let user = match session.get::<i64>(USER_ID)? {
            Some(id) => {
                let user = app
                    .db
                    .run(move |conn| Ok(User::by_id(conn, id).optional()?))
                    .await?;
                if user.is_none() {
                    // The account is gone: forget the session.
                    session.purge();
                }
                user
            }
            None => None,
        };
        let csrf_token = match &user {
            Some(_) => csrf_token(&session)?,
            None => String::new(),
        };
        let flash = session.remove_as::<Flash>(FLASH).and_then(Result::ok);
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
        let app = req.app_data::<web::Data<App>>().cloned();
        let session = req.get_session();
        Box::pin(PageContext::load(app, session))
    }
}

impl FromRequest for CurrentUser {
    type Error = PageError;
    type Future = LocalBoxFuture<'static, PageResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let app = req.app_data::<web::Data<App>>().cloned();
        let session = req.get_session();
        let next = next_of(req);
        Box::pin(async move {
            let ctx = PageContext::load(app, session).await?;
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

/// The auth guard of the `/settings` scope and `/me`: anonymous visitors are sent to log in.
pub async fn require_login(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let logged_in = req
        .get_session()
        .get::<i64>(USER_ID)
        .ok()
        .flatten()
        .is_some();
    if !logged_in {
        return Err(PageError::LoginRequired {
            next: next_of(req.request()),
        }
        .into());
    }
    next.call(req).await
}

/// Logs `user_id` in: a fresh session (nothing carried over from before the login) with a new
/// CSRF token.
pub fn log_in(session: &Session, user_id: i64) -> PageResult<()> {
    session.clear();
    session.renew();
    session.insert(USER_ID, user_id)?;
    session.insert(CSRF_TOKEN, new_csrf_token())?;
    Ok(())
}

pub fn log_out(session: &Session) {
    session.purge();
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

/// The session's CSRF token, created if it has none yet.
fn csrf_token(session: &Session) -> PageResult<String> {
    if let Some(token) = session.get::<String>(CSRF_TOKEN)? {
        return Ok(token);
    }
    let token = new_csrf_token();
    session.insert(CSRF_TOKEN, &token)?;
    Ok(token)
}

fn new_csrf_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Compares two tokens in time independent of where they differ.
pub fn same_token(expected: &str, given: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// True when `given` is this session's CSRF token.
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    match session.get::<String>(CSRF_TOKEN) {
        Ok(Some(expected)) => same_token(&expected, given),
        _ => false,
    }
}

const CSRF_REFUSED: &str = "this form has expired or did not come from this site (the CSRF check failed); go back, reload the page and try again";

/// An `application/x-www-form-urlencoded` body whose CSRF token has been checked against the
/// session. Every POST handler of the web app takes one, so no form can skip the check.
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
            if !csrf_matches(&session, form.get(CSRF_FIELD)) {
                return Err(forbidden(CSRF_REFUSED).into());
            }
            Ok(form)
        })
    }
}

/// For the JSON API: the id of the logged-in user when the request carries a session cookie
/// *and* an `X-CSRF-Token` header equal to the session's token.
///
/// - `Ok(None)`: no logged-in session, or no `X-CSRF-Token` header (so the caller can fall back
///   to an API token; a session alone never authenticates an API request);
/// - `Err(403)`: a logged-in session with a wrong token;
/// - `Ok(Some(id))`: authenticated; the caller still checks the user exists and owns the crate.
///
/// Pages put the token in `<meta name="csrf-token">`.
pub fn api_session_user(req: &HttpRequest) -> AppResult<Option<i64>> {
    let Some(header) = req.headers().get(CSRF_HEADER) else {
        return Ok(None);
    };
    let session = req.get_session();
    let Some(user_id) = session.get::<i64>(USER_ID).ok().flatten() else {
        return Ok(None);
    };
    let given = header.to_str().unwrap_or_default();
    if csrf_matches(&session, given) {
        Ok(Some(user_id))
    } else {
        Err(forbidden(
            "the X-CSRF-Token header does not match this session; reload the page and try again",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_compared_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", ""));
    }
}
