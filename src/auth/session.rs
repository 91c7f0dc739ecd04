//! Who is logged in to the web app: the session (an encrypted cookie) and the login it carries,
//! checked against the database. Shared by the pages (the [`crate::pages::session`] extractors,
//! the login guard, CSRF-checked forms) and the JSON API ([`api_session_user`]).
//!
//! At login the cookie is renewed and given a random session id and a random CSRF token; the
//! server keeps the id's hash, the user and the expiry in `sessions` (see
//! [`crate::models::session`]). The cookie alone never proves a login: everything that trusts it
//! goes through [`login_of`], which looks the session up (joined with its user, once per request
//! however many of them ask). Logging out deletes the row, so a copied cookie stops working;
//! "log out everywhere" deletes all of a user's rows.
//!
//! The JSON API accepts a session only together with its CSRF token in an `X-CSRF-Token` header
//! ([`api_session_user`]).

use std::future::Future;
use std::rc::Rc;

use actix_session::{Session, SessionExt};
use actix_web::{HttpMessage, HttpRequest, web};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::app::App;
use crate::errors::{AppResult, forbidden, internal};
use crate::models::{self, User, now};
use crate::tokens;

/// The random session id (the server stores its hash).
const SESSION_ID: &str = "session_id";
const CSRF_TOKEN: &str = "csrf_token";
/// The API header that carries the CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

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

fn session_write(error: actix_session::SessionInsertError) -> crate::errors::AppError {
    internal(anyhow::anyhow!("cannot write the session: {error}"))
}

/// Logs `user_id` in: a new server-side session (ending the one this cookie had, if any) and
/// a fresh cookie (nothing carried over from before the login) with a new CSRF token.
pub async fn log_in(app: &App, session: &Session, user_id: i64) -> AppResult<()> {
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
    session.insert(SESSION_ID, id).map_err(session_write)?;
    session
        .insert(CSRF_TOKEN, new_csrf_token())
        .map_err(session_write)?;
    Ok(())
}

/// Ends this login on the server and drops the cookie.
pub async fn log_out(app: &App, session: &Session) -> AppResult<()> {
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
pub async fn log_out_everywhere(app: &App, session: &Session, user_id: i64) -> AppResult<usize> {
    let ended = app
        .db
        .run(move |conn| Ok(models::session::end_all(conn, user_id)?))
        .await?;
    session.clear();
    session.renew();
    Ok(ended)
}

/// The session's CSRF token, created if it has none yet.
pub fn csrf_token(session: &Session) -> AppResult<String> {
    if let Some(token) = session
        .get::<String>(CSRF_TOKEN)
        .map_err(|error| internal(anyhow::anyhow!("cannot read the session: {error}")))?
    {
        return Ok(token);
    }
    let token = new_csrf_token();
    session.insert(CSRF_TOKEN, &token).map_err(session_write)?;
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
