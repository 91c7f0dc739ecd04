//! Crate owners: who may change them, adding and removing them (each change audit-logged and
//! mailed to the owners, the removed one included), and
//! the rule that a crate keeps at least one owner. Called by `PUT`/`DELETE
//! /api/v1/crates/{name}/owners` and the crate settings page.

use chrono::NaiveDateTime;
use serde_json::json;

use crate::db::{DbConn, is_unique_violation};
use crate::mail::{MailEvent, outbox::notify_owners};
use crate::models::audit::{self, Actor};
use crate::models::crate_owner::{self, NewCrateOwner};
use crate::models::krate::{FindCrateError, find_crate};
use crate::models::{Crate, User};

/// The most logins one request may name.
pub const MAX_LOGINS_PER_REQUEST: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum OwnersError {
    #[error("crate `{0}` does not exist")]
    CrateNotFound(String),
    /// The acting user does not own the crate.
    #[error("you are not an owner of crate `{krate}`")]
    NotYourCrate { krate: String },
    #[error("list at least one user login")]
    NoLogins,
    #[error("at most {MAX_LOGINS_PER_REQUEST} logins per request")]
    TooManyLogins,
    #[error(
        "could not find user with login `{login}`; they must log in to this registry once first"
    )]
    UnknownUser { login: String },
    #[error("`{login}` is already an owner of crate `{krate}`")]
    AlreadyOwner { login: String, krate: String },
    #[error("`{login}` is not an owner of crate `{krate}`")]
    NotAnOwner { login: String, krate: String },
    #[error("cannot remove all owners of a crate; add another owner first")]
    LastOwner,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

impl From<FindCrateError> for OwnersError {
    fn from(error: FindCrateError) -> Self {
        match error {
            FindCrateError::NotFound(name) => OwnersError::CrateNotFound(name),
            FindCrateError::Database(error) => OwnersError::Database(error),
        }
    }
}

/// Refuses unless `user` owns `krate` now.
pub fn require_owner(conn: &mut DbConn, user: &User, krate: &Crate) -> Result<(), OwnersError> {
    if Crate::is_owner(conn, krate.id, user.id)? {
        Ok(())
    } else {
        Err(OwnersError::NotYourCrate {
            krate: krate.name.clone(),
        })
    }
}

/// The crate named `name` (any spelling), if `user` owns it now.
pub fn owned_crate(conn: &mut DbConn, user: &User, name: &str) -> Result<Crate, OwnersError> {
    let krate = find_crate(conn, name)?;
    require_owner(conn, user, &krate)?;
    Ok(krate)
}

/// Checks the number of logins a request names (before anything is looked up).
pub fn check_logins(logins: &[String]) -> Result<(), OwnersError> {
    if logins.is_empty() {
        Err(OwnersError::NoLogins)
    } else if logins.len() > MAX_LOGINS_PER_REQUEST {
        Err(OwnersError::TooManyLogins)
    } else {
        Ok(())
    }
}

/// The users `logins` name, each once however often (and in whatever ASCII case) it is named:
/// a repeated login must not insert twice or log twice.
fn users_named(conn: &mut DbConn, logins: &[String]) -> Result<Vec<User>, OwnersError> {
    let mut users: Vec<User> = Vec::new();
    for login in logins {
        let user = User::by_login(conn, login)?.ok_or_else(|| OwnersError::UnknownUser {
            login: login.clone(),
        })?;
        if !users.iter().any(|u| u.id == user.id) {
            users.push(user);
        }
    }
    Ok(users)
}

/// `by` (who must own `krate`) makes the users `logins` name owners of it. Returns them, as
/// their logins are spelt. Call inside a transaction: an error leaves nothing half done only if
/// the caller rolls back.
pub fn add(
    conn: &mut DbConn,
    by: &User,
    krate: &Crate,
    logins: &[String],
    now: NaiveDateTime,
) -> Result<Vec<String>, OwnersError> {
    require_owner(conn, by, krate)?;
    check_logins(logins)?;
    let current = crate_owner::owners(conn, krate.id)?;
    let mut added = Vec::new();
    for target in users_named(conn, logins)? {
        let already = || OwnersError::AlreadyOwner {
            login: target.login.clone(),
            krate: krate.name.clone(),
        };
        if current.iter().any(|o| o.id == target.id) {
            return Err(already());
        }
        NewCrateOwner {
            crate_id: krate.id,
            user_id: target.id,
            created_at: now,
            created_by: Some(by.id),
        }
        .insert(conn)
        // Added by a concurrent request since `current` was read.
        .map_err(|e| {
            if is_unique_violation(&e) {
                already()
            } else {
                e.into()
            }
        })?;
        audit::record(
            conn,
            krate.id,
            &Actor::user(by),
            "owner_add",
            json!({ "login": target.login }),
            now,
        )?;
        let event = MailEvent::OwnerAdded {
            by: by.login.clone(),
            login: target.login.clone(),
        };
        notify_owners(conn, krate, &Actor::user(by), &event, None, now)?;
        added.push(target.login);
    }
    Ok(added)
}

/// `by` (who must own `krate`) removes the users `logins` name from its owners; at least one
/// owner stays. Returns the removed logins, as they are spelt. Call inside a transaction.
pub fn remove(
    conn: &mut DbConn,
    by: &User,
    krate: &Crate,
    logins: &[String],
    now: NaiveDateTime,
) -> Result<Vec<String>, OwnersError> {
    require_owner(conn, by, krate)?;
    check_logins(logins)?;
    let current = crate_owner::owners(conn, krate.id)?;
    let mut removed = Vec::new();
    for target in users_named(conn, logins)? {
        if !current.iter().any(|o| o.id == target.id) {
            return Err(OwnersError::NotAnOwner {
                login: target.login,
                krate: krate.name.clone(),
            });
        }
        crate_owner::remove(conn, krate.id, target.id)?;
        audit::record(
            conn,
            krate.id,
            &Actor::user(by),
            "owner_remove",
            json!({ "login": target.login }),
            now,
        )?;
        let event = MailEvent::OwnerRemoved {
            by: by.login.clone(),
            login: target.login.clone(),
        };
        notify_owners(conn, krate, &Actor::user(by), &event, Some(&target), now)?;
        removed.push(target.login);
    }
    if crate_owner::owners(conn, krate.id)?.is_empty() {
        return Err(OwnersError::LastOwner);
    }
    Ok(removed)
}
