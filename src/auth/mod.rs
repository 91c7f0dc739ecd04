//! Who is calling: between the web layer (`api`, `pages`) that asks and the models and services
//! below that answer. For the API, the token in `Authorization` (raw, or with a `Bearer `
//! prefix), resolved to a user's API token or a Trusted Publishing token, and the checks
//! handlers make against it; every check is made at the time of the request against current
//! ownership. For the web app (and the API's session access), the login a session cookie
//! carries: [`session`].

pub mod cache;
pub mod session;

use std::collections::BTreeMap;

use actix_web::HttpRequest;
use actix_web::http::{StatusCode, header};
use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::db::DbConn;
use crate::errors::{AppError, AppResult, forbidden, internal};
use crate::models::audit::Actor;
use crate::models::pending_config::{self, PendingGrant};
use crate::models::trustpub_token::{self, CrateGrant};
use crate::models::{ApiToken, Crate, User, now};
use crate::services::owners;
use crate::tokens::{self, EndpointScope};
use crate::trustpub::{Published, TrustpubData};

/// The raw token from the request, if any. Never logged.
pub struct RawToken(String);

impl RawToken {
    pub fn from_request(req: &HttpRequest) -> AppResult<RawToken> {
        let value = req
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or_else(|| forbidden("this action requires authentication: send an API token in the Authorization header"))?;
        let value = value
            .to_str()
            .map_err(|_| forbidden("the Authorization header is not valid text"))?
            .trim();
        let token = match value.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => value[7..].trim(),
            _ => value,
        };
        if token.is_empty() {
            return Err(forbidden(
                "this action requires authentication: the Authorization header is empty",
            ));
        }
        Ok(RawToken(token.to_owned()))
    }

    pub fn is_trustpub(&self) -> bool {
        self.0.starts_with(tokens::TRUSTPUB_TOKEN_PREFIX)
    }

    pub fn hash(&self) -> String {
        tokens::hash(&self.0)
    }
}

/// A caller holding a user's API token.
#[derive(Debug)]
pub struct UserAuth {
    pub user: User,
    pub token: ApiToken,
}

/// A caller holding a token minted by the Trusted Publishing exchange.
#[derive(Debug)]
pub struct TrustpubAuth {
    pub token_id: i64,
    /// The crates whose publisher configs matched at exchange time, by crate id, with the
    /// revocation (if any) that took the crate away from the token since.
    pub crates: BTreeMap<i64, CrateGrant>,
    /// The pending configs (for crates that did not exist yet) that matched at exchange time
    /// and are still there: the token may publish the first version of each one's crate.
    pub pending: Vec<PendingGrant>,
    /// The CI identity (actor, repository, workflow, run…), recorded on every publish.
    pub publisher: Box<TrustpubData>,
    pub actor: String,
    pub expires_at: NaiveDateTime,
}

impl TrustpubAuth {
    /// Refuses unless the token may publish the crate `crate_id` (named `name`) now.
    pub fn check_crate(&self, crate_id: i64, name: &str) -> AppResult<()> {
        match self.crates.get(&crate_id) {
            Some(CrateGrant { revoked: None, .. }) => Ok(()),
            Some(CrateGrant {
                revoked: Some(revocation),
                ..
            }) => Err(forbidden(format!(
                "this Trusted Publishing token may no longer publish `{name}`: {revocation}. Exchange a fresh ID token from a workflow that is still a trusted publisher of `{name}`"
            ))),
            None => Err(forbidden(format!(
                "this Trusted Publishing token is not valid for crate `{name}`: no trusted publisher config of `{name}` matched the workflow that requested it"
            ))),
        }
    }

    /// The pending config this token may create the crate `canonical` through, if any.
    pub fn pending_for(&self, canonical: &str) -> Option<&PendingGrant> {
        self.pending
            .iter()
            .find(|grant| grant.pending.canonical_name == canonical)
    }

    /// What a publish of the crate `crate_id` records: the CI identity and the config that
    /// matched.
    pub fn publisher_for(&self, crate_id: i64) -> Published {
        Published {
            data: (*self.publisher).clone(),
            config_id: self.crates.get(&crate_id).map(|grant| grant.config_id),
        }
    }
}

#[derive(Debug)]
pub enum Authenticated {
    User(Box<UserAuth>),
    Trustpub(TrustpubAuth),
}

const TRUSTPUB_ONLY_PUBLISH: &str = "this token was minted by Trusted Publishing and can only publish new versions of the crates whose publisher configs matched; it cannot be used for this action";

impl Authenticated {
    /// Resolves the token. Unknown, revoked and expired tokens are refused alike.
    pub fn resolve(conn: &mut DbConn, raw: &RawToken, now: NaiveDateTime) -> AppResult<Self> {
        if raw.is_trustpub() {
            return resolve_trustpub(conn, &raw.hash(), now).map(Authenticated::Trustpub);
        }
        let token = ApiToken::by_hash(conn, &raw.hash())?
            .filter(|t| t.is_live(now))
            .ok_or_else(|| {
                forbidden("the API token is invalid, revoked or expired; create a new one")
            })?;
        let user = User::by_id(conn, token.user_id)?;
        ApiToken::touch(conn, token.id, now)?;
        Ok(Authenticated::User(Box::new(UserAuth { user, token })))
    }

    /// A user's token that carries `scope` and whose crate scopes (if any) allow `crate_name`.
    /// Trusted Publishing tokens are refused: they only publish.
    pub fn user_with_scope(
        &self,
        scope: EndpointScope,
        crate_name: Option<&str>,
    ) -> AppResult<&UserAuth> {
        let auth = match self {
            Authenticated::User(auth) => auth,
            Authenticated::Trustpub(_) => return Err(forbidden(TRUSTPUB_ONLY_PUBLISH)),
        };
        auth.check_scope(scope, crate_name)?;
        Ok(auth)
    }

    pub fn actor(&self) -> Actor {
        match self {
            Authenticated::User(auth) => Actor::user(&auth.user),
            Authenticated::Trustpub(auth) => Actor {
                name: auth.actor.clone(),
                user_id: None,
            },
        }
    }
}

impl UserAuth {
    pub fn check_scope(&self, scope: EndpointScope, crate_name: Option<&str>) -> AppResult<()> {
        if let Some(scopes) = self.token.endpoint_scopes()
            && !scopes.contains(&scope)
        {
            return Err(forbidden(format!(
                "this token does not have the `{scope}` scope needed for this action; create a token that has it"
            )));
        }
        if let (Some(patterns), Some(name)) = (self.token.crate_scopes(), crate_name)
            && !patterns.iter().any(|p| p.matches(name))
        {
            return Err(forbidden(format!(
                "this token's crate scopes do not include `{name}`; create a token whose crate scopes match it"
            )));
        }
        Ok(())
    }

    /// Refuses unless the user owns the crate now.
    pub fn require_owner(&self, conn: &mut DbConn, krate: &Crate) -> AppResult<()> {
        Ok(owners::require_owner(conn, &self.user, krate)?)
    }
}

/// For a private registry (`WHARF_AUTH_REQUIRED`): true when the token may read, that is, it is a
/// live API token (of any scope) or a live Trusted Publishing token. Answered from
/// [`App::token_cache`] when the database said so less than [`cache::TOKEN_CACHE_TTL`] ago (and
/// the token has not expired since), so that the hot index path costs no query; otherwise one
/// short database call, whose positive answer is remembered.
pub async fn may_read(app: &App, raw: &RawToken) -> AppResult<bool> {
    let digest: cache::TokenDigest = Sha256::digest(raw.0.as_bytes()).into();
    if app.token_cache.is_live(&digest, now()) {
        return Ok(true);
    }
    let trustpub = raw.is_trustpub();
    let key = hex::encode(digest);
    let generation = app.token_cache.generation();
    let live = app
        .db
        .run(move |conn| {
            let now = now();
            if trustpub {
                return match resolve_trustpub(conn, &key, now) {
                    Ok(token) => Ok(Some(Some(token.expires_at))),
                    // Revoked for every crate (or expired just now): not a credential.
                    Err(AppError::Client { status, .. }) if status == StatusCode::FORBIDDEN => {
                        Ok(None)
                    }
                    Err(error) => Err(error),
                };
            }
            let Some(token) = ApiToken::by_hash(conn, &key)?.filter(|t| t.is_live(now)) else {
                return Ok(None);
            };
            // "Last used" to the minute: reads do not write on every cache refresh.
            if token
                .last_used_at
                .is_none_or(|used| now - used > chrono::TimeDelta::minutes(1))
            {
                ApiToken::touch(conn, token.id, now)?;
            }
            Ok(Some(token.expires_at))
        })
        .await?;
    Ok(match live {
        Some(expires_at) => {
            app.token_cache.remember(digest, expires_at, generation);
            true
        }
        None => false,
    })
}

/// Resolves a `wharf_tp_` token; expired and deleted tokens are refused alike, and so is a
/// token revoked for every crate it was minted for.
fn resolve_trustpub(
    conn: &mut DbConn,
    token_hash: &str,
    now: NaiveDateTime,
) -> AppResult<TrustpubAuth> {
    let token = trustpub_token::live_by_hash(conn, token_hash, now)
        .map_err(|e| match e {
            trustpub_token::LiveTokenError::Query(e) => AppError::from(e),
            record => internal(record),
        })?
        .ok_or_else(|| {
            forbidden("the Trusted Publishing token is invalid, revoked or expired; exchange a new ID token for a fresh one")
        })?;
    let pending = pending_config::grants_of_token(conn, token.id, now)?;
    if pending.is_empty() && token.crates.is_empty() {
        return Err(forbidden(
            "this Trusted Publishing token may no longer publish any crate: it was minted through a pending publisher, which publishes the first version of its crate only and has been used, removed or has expired since. Exchange a fresh ID token: once the crate exists, its trusted publishers decide",
        ));
    }
    if pending.is_empty() && !token.crates.values().any(|grant| grant.revoked.is_none()) {
        let why = token
            .crates
            .values()
            .filter_map(|grant| grant.revoked.as_ref())
            .max_by_key(|revocation| revocation.at)
            .map(|revocation| format!(": {revocation}"))
            .unwrap_or_default();
        return Err(forbidden(format!(
            "this Trusted Publishing token may no longer publish any crate{why}. Exchange a fresh ID token from a workflow that is still a trusted publisher"
        )));
    }
    Ok(TrustpubAuth {
        token_id: token.id,
        crates: token.crates,
        pending,
        publisher: Box::new(token.publisher),
        actor: token.actor,
        expires_at: token.expires_at,
    })
}
