//! The per-crate audit log: who did what, when. Written in the same transaction as the change.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;

use crate::db::DbConn;
use crate::models::User;
use crate::schema::crate_audit_log;

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = crate_audit_log)]
pub struct AuditEntry {
    pub id: i64,
    pub crate_id: i64,
    pub actor: String,
    pub actor_user_id: Option<i64>,
    pub action: String,
    /// JSON object with the details of the action.
    pub detail: String,
    pub created_at: NaiveDateTime,
}

/// Who acted: a user, or a CI job through Trusted Publishing.
#[derive(Clone, Debug)]
pub struct Actor {
    pub name: String,
    pub user_id: Option<i64>,
}

impl Actor {
    /// A user acting themselves (in the web app, or with one of their API tokens).
    pub fn user(user: &User) -> Actor {
        Actor {
            name: user.login.clone(),
            user_id: Some(user.id),
        }
    }
}

pub fn record(
    conn: &mut DbConn,
    crate_id: i64,
    actor: &Actor,
    action: &str,
    detail: Value,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(crate_audit_log::table)
        .values((
            crate_audit_log::crate_id.eq(crate_id),
            crate_audit_log::actor.eq(&actor.name),
            crate_audit_log::actor_user_id.eq(actor.user_id),
            crate_audit_log::action.eq(action),
            crate_audit_log::detail.eq(detail.to_string()),
            crate_audit_log::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The crate's log, newest first.
pub fn for_crate(conn: &mut DbConn, crate_id: i64, limit: i64) -> QueryResult<Vec<AuditEntry>> {
    crate_audit_log::table
        .filter(crate_audit_log::crate_id.eq(crate_id))
        .order((
            crate_audit_log::created_at.desc(),
            crate_audit_log::id.desc(),
        ))
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)
}
