//! Pending publishers: a trusted publisher config for a crate that does not exist yet, so
//! that its very first version can come from CI. Shared by the config API, the exchange, the
//! publish and the `/settings/pending-publishers` page; generic over the [`Provider`] (a
//! provider only turns a stored input into a config it can match:
//! [`Provider::pending_config`]).
//!
//! The rules: anyone who may create crates may add up to [`MAX_PENDING_PER_USER`] of them;
//! each expires after `WHARF_PENDING_PUBLISHER_TTL`. An ID token that matches one is exchanged
//! for a token that may publish the first version of exactly that crate; that publish creates
//! the crate with the config's creator as its owner and turns the creator's pending configs for
//! the name into ordinary ones, in the publish's transaction, with audit rows. A pending config
//! never reserves the name: once a crate of that name exists (by any path, including another
//! user's pending config used first) it is *void*, and an exchange against it says so.
//!
//! In the API a pending config's id is the negative of its row's id, so that the ids of
//! `{kind}_configs` never collide: ordinary configs have positive ids.

use chrono::NaiveDateTime;
use serde_json::{Value, json};

use super::publishers::{PublisherError, record_added};
use crate::app::App;
use crate::db::DbConn;
use crate::errors::{AppResult, bad_request, internal, not_found, service_unavailable};
use crate::models::pending_config::{
    self, NewPendingConfig, PendingConfig, PendingGrant, PendingWithState,
};
use crate::models::{Crate, User, now};
use crate::registry::crate_name::CrateName;
use crate::trustpub::provider::{Candidate, Cell, FieldError, LookupError, Lookups, Provider};
use crate::trustpub::providers::{ProviderKind, with_provider};

/// At most this many unexpired pending configs (of every provider together) per user.
pub const MAX_PENDING_PER_USER: usize = 10;

/// The id of a pending config in the API and in matches: the negative of its row's id.
pub fn api_id(row_id: i64) -> i64 {
    -row_id
}

/// The row id of a pending config from its API id, if `id` is one (negative).
pub fn row_id(api_id: i64) -> Option<i64> {
    (api_id < 0).then(|| api_id.saturating_neg())
}

/// The stored input of a pending config of `P`.
fn input_of<P: Provider>(pending: &PendingConfig) -> AppResult<P::Input> {
    serde_json::from_str(&pending.config).map_err(internal)
}

/// The pending config as `P`'s matcher and lists see it.
fn config_of<P: Provider>(pending: &PendingConfig) -> AppResult<P::Config> {
    Ok(P::pending_config(
        api_id(pending.id),
        &input_of::<P>(pending)?,
        pending.created_by,
        pending.created_at,
    ))
}

/// A pending config as the API and the page show it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingView {
    pub kind: ProviderKind,
    /// The row's id (the page's forms use it; the API shows [`api_id`]).
    pub id: i64,
    pub crate_name: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    /// A crate of this name exists now: the config can no longer be used.
    pub void: bool,
    /// `{kind}_config` in the API: the provider's fields with `"pending": true`, `"expires_at"`
    /// and `"void"`.
    pub json: Value,
    /// One per [`ProviderKind::columns`].
    pub cells: Vec<Cell>,
    pub description: String,
}

fn view(state: &PendingWithState) -> AppResult<Option<PendingView>> {
    let pending = &state.pending;
    let Some(kind) = ProviderKind::from_kind(&pending.provider) else {
        // A provider that is no longer registered: nothing can match it.
        return Ok(None);
    };
    with_provider!(kind, P => {
        let config = config_of::<P>(pending)?;
        let mut json = P::config_json(&config, &pending.crate_name);
        json["pending"] = json!(true);
        json["expires_at"] = json!(pending.expires_at.and_utc());
        json["void"] = json!(state.void);
        Ok(Some(PendingView {
            kind,
            id: pending.id,
            crate_name: pending.crate_name.clone(),
            created_at: pending.created_at,
            expires_at: pending.expires_at,
            void: state.void,
            json,
            cells: P::row(&config),
            description: P::describe(&config),
        }))
    })
}

fn views(states: &[PendingWithState]) -> AppResult<Vec<PendingView>> {
    let mut views = Vec::new();
    for state in states {
        views.extend(view(state)?);
    }
    Ok(views)
}

/// The crate name of a new pending config: valid for a new crate, and not one that exists.
fn new_crate_name(name: &str) -> Result<CrateName, FieldError> {
    CrateName::parse(name.trim()).map_err(|e| FieldError::new("crate", e.to_string()))
}

/// Creates a pending config of `P` for the crate `crate_name`, which must not exist yet. The
/// caller must be allowed to create crates (checked by the caller: a session, or an API token
/// with `publish-new` whose crate scopes allow the name).
pub async fn create<P: Provider>(
    app: &App,
    user: User,
    crate_name: String,
    input: P::Input,
) -> Result<PendingView, PublisherError> {
    let name = new_crate_name(&crate_name);
    let input = match (P::normalize(input), name) {
        (Ok(input), Ok(name)) => (input, name),
        (Ok(_), Err(error)) => return Err(PublisherError::Fields(vec![error])),
        (Err(mut errors), name) => {
            errors.splice(0..0, name.err());
            return Err(PublisherError::Fields(errors));
        }
    };
    let (input, name) = input;
    let lookups = Lookups {
        http: &app.http,
        github_api_url: &app.config.github.api_url,
    };
    let input = P::look_up(&lookups, input).await.map_err(|e| match e {
        LookupError::Field(error) => PublisherError::Fields(vec![error]),
        LookupError::Unavailable(message) => PublisherError::Other(service_unavailable(message)),
    })?;
    let ttl = chrono::Duration::from_std(app.config.trustpub.pending_ttl).map_err(internal)?;
    let stored = serde_json::to_string(&input).map_err(internal)?;
    let created = app
        .db
        .transaction(move |conn| {
            let now = now();
            let canonical = name.canonical();
            if let Some(krate) = Crate::by_canonical(conn, &canonical)? {
                return Err(bad_request(format!(
                    "crate `{}` exists already, so it cannot get a pending publisher; its owners add trusted publishers to it",
                    krate.name
                )));
            }
            // Simultaneous adds of one user count and compare one after another.
            User::lock(conn, user.id)?;
            let mine = pending_config::unexpired_of_user(conn, user.id, now)?;
            if mine.len() >= MAX_PENDING_PER_USER {
                return Err(bad_request(format!(
                    "you have {MAX_PENDING_PER_USER} pending publishers already, the most allowed; remove one first"
                )));
            }
            for other in mine.iter().map(|s| &s.pending) {
                if other.provider == P::KIND
                    && other.canonical_name == canonical
                    && P::is_duplicate(&config_of::<P>(other)?, &input)
                {
                    return Err(bad_request(format!(
                        "you have this pending {} publisher for `{}` already",
                        P::LABEL,
                        other.crate_name
                    )));
                }
            }
            let pending = NewPendingConfig {
                provider: P::KIND,
                crate_name: name.as_str(),
                canonical_name: &canonical,
                config: &stored,
                created_by: user.id,
                created_at: now,
                expires_at: now + ttl,
            }
            .insert(conn)?;
            view(&PendingWithState {
                pending,
                void: false,
            })?
            .ok_or_else(|| internal(anyhow::anyhow!("a pending config of an unregistered provider")))
        })
        .await?;
    tracing::info!(krate.name = %created.crate_name, provider = P::KIND, "pending publisher added");
    Ok(created)
}

/// The unexpired pending configs of `user`, of every provider, oldest first.
pub async fn list(app: &App, user: User) -> AppResult<Vec<PendingView>> {
    app.db
        .run(move |conn| views(&pending_config::unexpired_of_user(conn, user.id, now())?))
        .await
}

/// The unexpired pending configs of `P` that `user` made for the crate name `crate_name`.
pub async fn list_for_name<P: Provider>(
    app: &App,
    user: User,
    crate_name: String,
) -> AppResult<Vec<PendingView>> {
    let canonical = crate::models::krate::canonical_name(crate_name.trim());
    let all = list(app, user).await?;
    Ok(all
        .into_iter()
        .filter(|v| {
            v.kind.as_str() == P::KIND
                && crate::models::krate::canonical_name(&v.crate_name) == canonical
        })
        .collect())
}

/// Removes a pending config of `user` (by row id); a token minted through it can no longer
/// publish. `kind`, when given, must be its provider. Another user's or an unknown id is "not
/// found" either way.
pub async fn delete(
    app: &App,
    user: User,
    kind: Option<ProviderKind>,
    id: i64,
) -> AppResult<PendingView> {
    app.db
        .transaction(move |conn| {
            let missing = || {
                not_found(format!(
                    "no pending publisher with id {}",
                    kind.map_or(id, |_| api_id(id))
                ))
            };
            let pending = pending_config::unexpired_by_id(conn, id, now())?
                .filter(|p| p.created_by == user.id)
                .filter(|p| kind.is_none_or(|k| k.as_str() == p.provider))
                .ok_or_else(missing)?;
            let state = PendingWithState {
                void: Crate::by_canonical(conn, &pending.canonical_name)?.is_some(),
                pending,
            };
            pending_config::delete(conn, state.pending.id)?;
            view(&state)?.ok_or_else(missing)
        })
        .await
}

/// The pending configs of `P` that an ID token is matched against: `live` ones (unexpired,
/// no crate of the name) and `void` ones (a crate of the name exists), each with its API id.
pub struct PendingCandidates<C> {
    pub live: Vec<Candidate<C>>,
    pub void: Vec<Candidate<C>>,
}

pub fn candidates<P: Provider>(
    conn: &mut DbConn,
    now: NaiveDateTime,
) -> AppResult<PendingCandidates<P::Config>> {
    let mut candidates = PendingCandidates {
        live: Vec::new(),
        void: Vec::new(),
    };
    for state in pending_config::unexpired_of_provider(conn, P::KIND, now)? {
        let candidate = Candidate {
            crate_name: state.pending.crate_name.clone(),
            config: config_of::<P>(&state.pending)?,
        };
        if state.void {
            candidates.void.push(candidate);
        } else {
            candidates.live.push(candidate);
        }
    }
    Ok(candidates)
}

/// Refuses an exchange whose ID token matches pending configs of more than one user for the
/// same crate name (`row_ids`: the matched pending configs). Anyone may add a pending config
/// naming any repository; were the first one simply taken, a stranger's pending config naming
/// your repository could make your own first publish create the crate with the stranger as
/// its owner. Fail closed instead: nobody's is used until the others are removed.
pub fn check_unambiguous(conn: &mut DbConn, row_ids: &[i64], now: NaiveDateTime) -> AppResult<()> {
    let mut creators: Vec<(String, String, i64)> = Vec::new();
    for id in row_ids {
        if let Some(p) = pending_config::unexpired_by_id(conn, *id, now)? {
            creators.push((p.canonical_name, p.crate_name, p.created_by));
        }
    }
    for (canonical, name, creator) in &creators {
        if creators
            .iter()
            .any(|(c, _, other)| c == canonical && other != creator)
        {
            return Err(bad_request(format!(
                "This ID token matches pending publishers for `{name}` added by different users, so none of them is used: whoever publishes first would own the crate. The users who did not mean to trust this workflow should remove their pending publishers for `{name}`"
            )));
        }
    }
    Ok(())
}

/// The message for an ID token that matches only void pending configs.
pub fn void_message(subject: &str, crate_names: &[String]) -> String {
    let names = crate_names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "The pending publisher for {names} matches {subject}, but it is void: a crate of that name was created since (by another publish, or through another pending publisher that was used first). A pending publisher never reserves a name; ask an owner of the crate to add this workflow as a trusted publisher"
    )
}

/// The first publish of a crate through the pending config of `grant`: the crate `krate` was
/// just created in this transaction. Makes its creator an owner's config: every unexpired
/// pending config of the creator for the name becomes an ordinary config of the crate (with
/// an audit row each, and what the provider captures on first use taken from the exchange's
/// claims for the one used), and those rows are deleted. Returns the id of the ordinary config
/// that the used one became.
pub fn convert(
    conn: &mut DbConn,
    grant: &PendingGrant,
    krate: &Crate,
    now: NaiveDateTime,
) -> AppResult<i64> {
    let creator = User::by_id(conn, grant.pending.created_by)?;
    let mine = pending_config::unexpired_of_user(conn, creator.id, now)?;
    let mut used = None;
    for state in mine
        .iter()
        .filter(|s| s.pending.canonical_name == grant.pending.canonical_name)
    {
        let pending = &state.pending;
        let Some(kind) = ProviderKind::from_kind(&pending.provider) else {
            continue;
        };
        let is_used = pending.id == grant.pending.id;
        let config_id = with_provider!(kind, P => {
            let input = input_of::<P>(pending)?;
            let config = P::insert(conn, krate.id, &input, creator.id, now)?;
            let id = P::config_id(&config);
            if is_used {
                let claims: <P as Provider>::Claims =
                    serde_json::from_str(&grant.claims).map_err(internal)?;
                P::record_use(conn, id, &claims)?;
            }
            record_added::<P>(conn, krate, &creator, &config, Some(api_id(pending.id)), now)?;
            id
        });
        pending_config::delete(conn, pending.id)?;
        if is_used {
            used = Some(config_id);
        }
    }
    used.ok_or_else(|| {
        internal(anyhow::anyhow!(
            "the pending config a token was minted through was not found in its creator's list"
        ))
    })
}
