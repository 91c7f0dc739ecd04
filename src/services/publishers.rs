//! Trusted publisher configs: creation (validation, the provider's look-ups, the duplicate
//! check and the per-crate limit), listing, removal (which revokes the tokens minted through
//! the config), the crate's exchanged tokens, and "require Trusted Publishing". Shared by the
//! JSON API (`api::trustpub`) and the settings pages, so the rules live in one place. Generic
//! over the [`Provider`]: nothing here names one. Every change is authorised against current
//! ownership, and written to the crate's audit log and mailed to its owners (through the
//! outbox, [`crate::mail`]) in the same transaction.

use chrono::NaiveDateTime;
use serde_json::json;

use crate::app::App;
use crate::db::DbConn;
use crate::errors::{AppError, AppResult, bad_request, forbidden, not_found, service_unavailable};
use crate::mail::{MailEvent, outbox::notify_owners};
use crate::models::audit::{self, Actor};
use crate::models::trustpub_token::{self, ExchangedToken};
use crate::models::{Crate, User, now};
use crate::trustpub::provider::{Cell, FieldError, LookupError, Lookups, Provider};
use crate::trustpub::providers::{ProviderKind, with_provider};

/// At most this many publisher configs (of every provider together) per crate.
pub const MAX_CONFIGS_PER_CRATE: usize = 20;

/// Why a config was not created.
#[derive(Debug)]
pub enum PublisherError {
    /// Fields of the input are not valid: each error belongs next to its field.
    Fields(Vec<FieldError>),
    /// Anything else: not the owner, a duplicate, the limit, the platform unreachable…
    Other(AppError),
}

impl From<AppError> for PublisherError {
    fn from(error: AppError) -> Self {
        PublisherError::Other(error)
    }
}

/// For the JSON API: field errors joined into one message (`field: message; …`), status 400.
impl From<PublisherError> for AppError {
    fn from(error: PublisherError) -> Self {
        match error {
            PublisherError::Fields(errors) => bad_request(
                errors
                    .iter()
                    .map(FieldError::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            PublisherError::Other(error) => error,
        }
    }
}

/// Whether a crate of this name (compared as crate names are) exists.
pub async fn crate_exists(app: &App, name: String) -> AppResult<bool> {
    let canonical = crate::models::krate::canonical_name(name.trim());
    app.db
        .run(move |conn| Ok(Crate::by_canonical(conn, &canonical)?.is_some()))
        .await
}

/// The crate, after checking that `user` owns it now.
fn owned_crate(conn: &mut DbConn, user: &User, name: &str) -> AppResult<Crate> {
    let krate = Crate::by_name(conn, name)?
        .ok_or_else(|| not_found(format!("crate `{name}` does not exist")))?;
    if !Crate::is_owner(conn, krate.id, user.id)? {
        return Err(forbidden(format!(
            "you are not an owner of crate `{}`",
            krate.name
        )));
    }
    Ok(krate)
}

/// Records, in the caller's transaction, that `config` of `P` was added to `krate` by `user`:
/// the audit row `trustpub_{kind}_add` (with `pending_id` when it was the pending publisher of
/// that API id) and the mail to the crate's owners.
pub(super) fn record_added<P: Provider>(
    conn: &mut DbConn,
    krate: &Crate,
    user: &User,
    config: &P::Config,
    pending_id: Option<i64>,
    now: NaiveDateTime,
) -> AppResult<()> {
    let actor = Actor::user(user);
    let mut detail = P::config_json(config, &krate.name);
    if let Some(id) = pending_id {
        detail["pending_id"] = json!(id);
    }
    audit::record(
        conn,
        krate.id,
        &actor,
        &format!("trustpub_{}_add", P::KIND),
        detail,
        now,
    )?;
    let event = MailEvent::PublisherAdded {
        by: user.login.clone(),
        provider: P::LABEL.to_owned(),
        config: P::describe(config),
        pending: pending_id.is_some(),
    };
    notify_owners(conn, krate, &actor, &event, None, now)?;
    Ok(())
}

/// The crate a new config is for, after checking that `user` owns it now and that it has room
/// for one more; with its current configs of `P`, for the duplicate check.
fn crate_for_new_config<P: Provider>(
    conn: &mut DbConn,
    user: &User,
    name: &str,
) -> AppResult<(Crate, Vec<P::Config>)> {
    let krate = owned_crate(conn, user, name)?;
    // Simultaneous adds count and compare one after another.
    Crate::lock(conn, krate.id)?;
    let mut count = 0;
    for kind in ProviderKind::ALL {
        count += with_provider!(*kind, Q => Q::for_crate(conn, krate.id)?.len());
    }
    if count >= MAX_CONFIGS_PER_CRATE {
        return Err(bad_request(format!(
            "crate `{}` has {MAX_CONFIGS_PER_CRATE} trusted publisher configs already, the most allowed; remove one first",
            krate.name
        )));
    }
    let existing = P::for_crate(conn, krate.id)?;
    Ok((krate, existing))
}

/// Creates a config of `P` for the crate `crate_name`, which `user` must own.
pub async fn create<P: Provider>(
    app: &App,
    user: User,
    crate_name: String,
    input: P::Input,
) -> Result<(Crate, P::Config), PublisherError> {
    let crate_error = crate_name
        .trim()
        .is_empty()
        .then(|| FieldError::new("crate", "name the crate"));
    let input = match (P::normalize(input), crate_error) {
        (Ok(input), None) => input,
        (Ok(_), Some(error)) => return Err(PublisherError::Fields(vec![error])),
        (Err(mut errors), error) => {
            errors.splice(0..0, error);
            return Err(PublisherError::Fields(errors));
        }
    };
    let crate_name = crate_name.trim().to_owned();
    // Check ownership before asking the platform anything.
    let (name, owner_check) = (crate_name.clone(), user.clone());
    app.db
        .run(move |conn| owned_crate(conn, &owner_check, &name).map(drop))
        .await?;
    let lookups = Lookups {
        http: &app.http,
        github_api_url: &app.config.github.api_url,
    };
    let input = P::look_up(&lookups, input).await.map_err(|e| match e {
        LookupError::Field(error) => PublisherError::Fields(vec![error]),
        LookupError::Unavailable(message) => PublisherError::Other(service_unavailable(message)),
    })?;
    let created = app
        .db
        .transaction(move |conn| {
            let (krate, existing) = crate_for_new_config::<P>(conn, &user, &crate_name)?;
            if existing.iter().any(|c| P::is_duplicate(c, &input)) {
                return Err(bad_request(format!(
                    "this {} trusted publisher config exists already for this crate",
                    short_label::<P>()
                )));
            }
            let now = now();
            let config = P::insert(conn, krate.id, &input, user.id, now)?;
            record_added::<P>(conn, &krate, &user, &config, None, now)?;
            Ok((krate, config))
        })
        .await?;
    Ok(created)
}

/// `GitHub` of `GitHub Actions`: the platform's name in messages.
fn short_label<P: Provider>() -> &'static str {
    P::LABEL.split(' ').next().unwrap_or(P::LABEL)
}

/// Removes a config of a crate `user` owns, and revokes at once every unexpired token minted
/// through it (for that crate: a token minted for several crates keeps the others); returns
/// how many tokens were revoked. An unknown id, or one of a crate the user does not own, is
/// "not found" either way, so ids of other crates' configs are not revealed.
pub async fn delete<P: Provider>(app: &App, user: User, id: i64) -> AppResult<usize> {
    app.db
        .transaction(move |conn| {
            let missing = || not_found(format!("no trusted publisher config with id {id}"));
            let config = P::by_id(conn, id)?.ok_or_else(missing)?;
            let krate = Crate::by_id(conn, P::config_crate_id(&config))?;
            if !Crate::is_owner(conn, krate.id, user.id)? {
                return Err(missing());
            }
            P::delete(conn, id)?;
            let now = now();
            let kind = ProviderKind::from_kind(P::KIND).ok_or_else(missing)?;
            let revoked = trustpub_token::revoke_minted_through(conn, kind, id, &user.login, now)?;
            let mut detail = P::config_json(&config, &krate.name);
            detail["revoked_tokens"] = json!(revoked);
            audit::record(
                conn,
                krate.id,
                &Actor::user(&user),
                &format!("trustpub_{}_remove", P::KIND),
                detail,
                now,
            )?;
            let event = MailEvent::PublisherRemoved {
                by: user.login.clone(),
                provider: P::LABEL.to_owned(),
                config: P::describe(&config),
                revoked_tokens: revoked,
            };
            notify_owners(conn, &krate, &Actor::user(&user), &event, None, now)?;
            Ok(revoked)
        })
        .await
        // Revoked tokens stop reading a private registry here at once.
        .inspect(|_| app.token_cache.clear())
}

/// The name of the crate of the config `id` of `P`, if there is one (to check an API token's
/// crate scopes before anything else).
pub async fn config_crate_name<P: Provider>(app: &App, id: i64) -> AppResult<Option<String>> {
    app.db
        .run(move |conn| {
            Ok(match P::by_id(conn, id)? {
                Some(config) => Some(Crate::by_id(conn, P::config_crate_id(&config))?.name),
                None => None,
            })
        })
        .await
}

/// How many unexpired tokens removing the config `id` of `kind` would revoke.
pub async fn tokens_minted_through(app: &App, kind: ProviderKind, id: i64) -> AppResult<i64> {
    app.db
        .run(move |conn| {
            Ok(trustpub_token::live_count_minted_through(
                conn,
                kind,
                id,
                now(),
            )?)
        })
        .await
}

/// The unexpired tokens that may still publish a crate `user` owns.
pub async fn exchanged_tokens(
    app: &App,
    user: User,
    crate_name: String,
) -> AppResult<Vec<ExchangedToken>> {
    app.db
        .run(move |conn| {
            let krate = owned_crate(conn, &user, &crate_name)?;
            Ok(trustpub_token::live_for_crate(conn, krate.id, now())?)
        })
        .await
}

/// Revokes the exchanged token `token_id` for a crate `user` owns: it can no longer publish
/// that crate (a token minted for several crates keeps the others, whose owners did not
/// revoke it). Returns the crate and the token as it was. A token that cannot publish the
/// crate now (unknown, expired, revoked already, or minted for other crates) is "not found".
pub async fn revoke_exchanged_token(
    app: &App,
    user: User,
    crate_name: String,
    token_id: i64,
) -> AppResult<(Crate, ExchangedToken)> {
    app.db
        .transaction(move |conn| {
            let krate = owned_crate(conn, &user, &crate_name)?;
            let now = now();
            let token = trustpub_token::live_for_crate(conn, krate.id, now)?
                .into_iter()
                .find(|t| t.id == token_id)
                .ok_or_else(|| {
                    not_found(format!(
                        "crate `{}` has no unexpired publish token {token_id} to revoke",
                        krate.name
                    ))
                })?;
            trustpub_token::revoke_for_crate(conn, token.id, krate.id, &user.login, now)?;
            audit::record(
                conn,
                krate.id,
                &Actor::user(&user),
                "trustpub_token_revoke",
                json!({
                    "token_id": token.id,
                    "actor": token.actor,
                    "workflow": token.workflow(),
                    "run_url": token.run_url(),
                    "expires_at": token.expires_at.and_utc(),
                }),
                now,
            )?;
            let event = MailEvent::TokenRevoked {
                by: user.login.clone(),
                token_actor: token.actor.clone(),
                workflow: token.workflow(),
                run_url: token.run_url().map(str::to_owned),
            };
            notify_owners(conn, &krate, &Actor::user(&user), &event, None, now)?;
            Ok((krate, token))
        })
        .await
        .inspect(|_| app.token_cache.clear())
}

/// The configs of `P` of a crate `user` owns.
pub async fn list<P: Provider>(
    app: &App,
    user: User,
    crate_name: String,
) -> AppResult<(Crate, Vec<P::Config>)> {
    app.db
        .run(move |conn| {
            let krate = owned_crate(conn, &user, &crate_name)?;
            let configs = P::for_crate(conn, krate.id)?;
            Ok((krate, configs))
        })
        .await
}

/// A config of any provider, as the settings page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSummary {
    pub kind: ProviderKind,
    pub id: i64,
    /// One per [`ProviderKind::columns`].
    pub cells: Vec<Cell>,
    /// One line: `octo-org/widget, workflow release.yml`.
    pub description: String,
    pub created_at: chrono::NaiveDateTime,
}

/// Every config of a crate `user` owns, provider by provider in the registry's order.
pub async fn summaries(
    app: &App,
    user: User,
    crate_name: String,
) -> AppResult<(Crate, Vec<ConfigSummary>)> {
    app.db
        .run(move |conn| {
            let krate = owned_crate(conn, &user, &crate_name)?;
            let mut summaries = Vec::new();
            for kind in ProviderKind::ALL {
                with_provider!(*kind, P => {
                    for config in P::for_crate(conn, krate.id)? {
                        summaries.push(ConfigSummary {
                            kind: *kind,
                            id: P::config_id(&config),
                            cells: P::row(&config),
                            description: P::describe(&config),
                            created_at: P::config_created_at(&config),
                        });
                    }
                });
            }
            Ok((krate, summaries))
        })
        .await
}

/// Turns "require Trusted Publishing" on or off; returns the updated crate.
pub async fn set_trustpub_only(
    app: &App,
    user: User,
    crate_name: String,
    value: bool,
) -> AppResult<Crate> {
    app.db
        .transaction(move |conn| {
            let krate = owned_crate(conn, &user, &crate_name)?;
            if krate.trustpub_only != value {
                Crate::set_trustpub_only(conn, krate.id, value)?;
                audit::record(
                    conn,
                    krate.id,
                    &Actor::user(&user),
                    "trustpub_only",
                    json!({ "trustpub_only": value }),
                    now(),
                )?;
                let event = MailEvent::TrustpubOnlyChanged {
                    by: user.login.clone(),
                    enabled: value,
                };
                notify_owners(conn, &krate, &Actor::user(&user), &event, None, now())?;
            }
            Ok(Crate::by_id(conn, krate.id)?)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_become_one_api_message() {
        let error: AppError = PublisherError::Fields(vec![
            FieldError::new("crate", "name the crate"),
            FieldError::new("project", "a GitLab project path"),
        ])
        .into();
        assert_eq!(
            error.detail(),
            "crate: name the crate; project: a GitLab project path"
        );
        assert_eq!(error.status().as_u16(), 400);
    }
}
