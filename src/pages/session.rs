//! Who is using the web app: the session (an encrypted cookie), the login it carries (checked
//! against the database), the [`CurrentUser`] and [`PageContext`] extractors, flash messages,
//! and CSRF protection.
//!
//! At login the cookie is renewed and given a random session id and a random CSRF token; the
//! server keeps the id's hash, the user and the expiry in `sessions` (see
//! [`crate::models::session`]). The cookie alone never proves a login: every place that trusts
//! it — [`PageContext`], [`CurrentUser`], the [`require_login`] guard, [`CsrfForm`] and
//! [`api_session_user`] — goes through [`login_of`], which looks the session up (joined with
//! its user, once per request however many of them ask). Logging out deletes the row, so a
//! copied cookie stops working; "log out everywhere" deletes all of a user's rows.
//!
//! Every form carries the CSRF token in a hidden field and every POST is refused with 403
//! unless it matches a live login's token ([`CsrfForm`]); the JSON API accepts a session only
//! together with the token in an `X-CSRF-Token` header ([`api_session_user`]).

use std::future::Future;
use std::rc::Rc;

use actix_session::{Session, SessionExt};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::errors::{PageError, PageResult};
use super::next::safe_next;
use crate::app::App;
use crate::errors::{AppResult, bad_request, forbidden, internal, payload_too_large};
use crate::models::{self, User, now};
use crate::tokens;

/// The random session id (the server stores its hash).
const SESSION_ID: &str = "session_id";
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

/// The request's login, looked up once and shared by everything that asks for it.
type LoginMemo = Rc<OnceCell<Option<User>>>;

/// The user of this request's live login, if any: the session row exists, has not expired,
/// and its user exists. The first call looks the session id up in the database (one query,
/// joined with the user); later calls in the same request reuse it. A session id the server
/// no longer knows (logged out, expired) is removed from the cookie.
pub fn login_of(req: &HttpRequest) -> impl Future<Output = AppResult<Option<User>>> + 'static {
    let app = req.app_data::<web::Data<App>>().cloned();
    let session = req.get_session();
    let memo = {
        let mut extensions = req.extensions_mut();
        match extensions.get::<LoginMemo>() {
            Some(memo) => memo.clone(),
            None => {
                let memo = LoginMemo::default();
                extensions.insert(memo.clone());
                memo
            }
        }
    };
    async move {
        let login = memo.get_or_try_init(|| look_up(app, session)).await?;
        Ok(login.clone())
    }
}

async fn look_up(app: Option<web::Data<App>>, session: Session) -> AppResult<Option<User>> {
    // An unreadable value counts as no login (the cookie is authenticated, so this is a bug or
    // a changed format, never a forgery).
    let Some(id) = session.get::<String>(SESSION_ID).ok().flatten() else {
        return Ok(None);
    };
    let app = app.ok_or_else(|| internal(anyhow::anyhow!("the App is not registered")))?;
    let id_hash = tokens::hash(&id);
    let user = app
        .db
        .run(move |conn| Ok(models::session::user_of(conn, &id_hash, now())?))
        .await?;
    match user {
        Some(user) => Ok(Some(user)),
        None => {
            // Logged out elsewhere, expired, or the account is gone.
            session.remove(SESSION_ID);
            session.remove(CSRF_TOKEN);
            Ok(None)
        }
    }
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

/// Logs `user_id` in: a new server-side session (ending the one this cookie had, if any) and
/// a fresh cookie (nothing carried over from before the login) with a new CSRF token.
pub async fn log_in(app: &App, session: &Session, user_id: i64) -> PageResult<()> {
    let previous = session
        .get::<String>(SESSION_ID)
        .ok()
        .flatten()
        .map(|id| tokens::hash(&id));
    let ttl = chrono::Duration::from_std(app.config.session_ttl).map_err(internal)?;
    let id = app
        .db
        .transaction(move |conn| {
            if let Some(previous) = previous {
                models::session::end(conn, &previous)?;
            }
            let now = now();
            Ok(models::session::start(conn, user_id, now, now + ttl)?)
        })
        .await?;
    session.clear();
    session.renew();
    session.insert(SESSION_ID, id)?;
    session.insert(CSRF_TOKEN, new_csrf_token())?;
    Ok(())
}

/// Ends this login on the server and drops the cookie.
pub async fn log_out(app: &App, session: &Session) -> PageResult<()> {
    if let Some(id) = session.get::<String>(SESSION_ID).ok().flatten() {
        let id_hash = tokens::hash(&id);
        app.db
            .run(move |conn| Ok(models::session::end(conn, &id_hash)?))
            .await?;
    }
    session.purge();
    Ok(())
}

/// Ends every session of `user_id`, this one included; the cookie keeps no login (only what
/// is flashed afterwards). Returns how many sessions were ended.
pub async fn log_out_everywhere(app: &App, session: &Session, user_id: i64) -> PageResult<usize> {
    let ended = app
        .db
        .run(move |conn| Ok(models::session::end_all(conn, user_id)?))
        .await?;
    session.clear();
    session.renew();
    Ok(ended)
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

/// For the JSON API: the logged-in user when the request carries the cookie of a live session
/// (checked on the server) *and* an `X-CSRF-Token` header equal to the session's token.
///
/// - `Ok(None)`: no live session, or no `X-CSRF-Token` header (so the caller can fall back to
///   an API token; a session alone never authenticates an API request);
/// - `Err(403)`: a live session with a wrong token;
/// - `Ok(Some(user))`: authenticated; the caller still checks the user owns the crate.
///
/// Pages put the token in `<meta name="csrf-token">`.
pub async fn api_session_user(req: &HttpRequest) -> AppResult<Option<User>> {
    let Some(header) = req.headers().get(CSRF_HEADER) else {
        return Ok(None);
    };
    let given = header.to_str().unwrap_or_default().to_owned();
    let Some(user) = login_of(req).await? else {
        return Ok(None);
    };
    if csrf_matches(&req.get_session(), &given) {
        Ok(Some(user))
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
