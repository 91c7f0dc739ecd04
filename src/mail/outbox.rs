//! The `mail_outbox` table: rows written with the change they report ([`notify_owners`]),
//! claimed by one sender at a time under a lease ([`claim`]), then marked sent, rescheduled or
//! given up, and pruned once ended.
//!
//! Claiming reads the due rows' ids, then one conditional `UPDATE` sets the lease only on those
//! that are still unsent and not leased (or whose lease ran out), and the rows claimed are then read back by the
//! claim's random lease id. On PostgreSQL a concurrent claim of the same row waits for the
//! first, re-checks the condition on the updated row and skips it; on SQLite writes take
//! turns. So two instances never hold the same row at once, and a row whose sender died is
//! taken over once its lease has run out.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use lettre::Address;
use serde_json::json;

use super::MailEvent;
use crate::db::{DbConn, note_outbox_write};
use crate::models::audit::{self, Actor};
use crate::models::{Crate, User, crate_owner};
use crate::schema::mail_outbox;

/// A row claimed for sending.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = mail_outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub crate_name: String,
    pub recipient: String,
    pub event: String,
    pub attempts: i32,
}

/// The address mail for `user` goes to, if they have a valid one.
pub fn address_of(user: &User) -> Option<Address> {
    user.email.as_deref().and_then(|e| e.trim().parse().ok())
}

/// Tells the owners of `krate` of `event`, in the caller's transaction: a row per owner with
/// an email address, and for an owner without one an audit-log row saying the mail was
/// skipped. `also` is a user who is no longer an owner but must hear of it (one just removed).
pub fn notify_owners(
    conn: &mut DbConn,
    krate: &Crate,
    actor: &Actor,
    event: &MailEvent,
    also: Option<&User>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let mut recipients = crate_owner::owners(conn, krate.id)?;
    if let Some(user) = also
        && !recipients.iter().any(|o| o.id == user.id)
    {
        recipients.push(user.clone());
    }
    let stored = serde_json::to_string(event)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let mut queued = false;
    for user in recipients {
        match address_of(&user) {
            Some(address) => {
                diesel::insert_into(mail_outbox::table)
                    .values((
                        mail_outbox::crate_name.eq(&krate.name),
                        mail_outbox::recipient_user_id.eq(user.id),
                        mail_outbox::recipient.eq(address.to_string()),
                        mail_outbox::event.eq(&stored),
                        mail_outbox::created_at.eq(now),
                        mail_outbox::attempts.eq(0),
                        mail_outbox::next_attempt_at.eq(now),
                    ))
                    .execute(conn)?;
                queued = true;
            }
            None => {
                let reason = if user.email.is_some() {
                    "the email address is not valid"
                } else {
                    "no email address"
                };
                audit::record(
                    conn,
                    krate.id,
                    actor,
                    "mail_skipped",
                    json!({ "login": user.login, "reason": reason, "event": event.kind() }),
                    now,
                )?;
            }
        }
    }
    if queued {
        note_outbox_write();
    }
    Ok(())
}

/// Rows not ended yet whose lease is free.
#[diesel::dsl::auto_type(no_type_alias)]
fn claimable(now: NaiveDateTime) -> _ {
    mail_outbox::sent_at
        .is_null()
        .and(mail_outbox::failed_at.is_null())
        .and(
            mail_outbox::lease_until
                .is_null()
                .or(mail_outbox::lease_until.lt(now)),
        )
}

/// Claims up to `limit` due rows for `lease_id` until `lease_until`, oldest first. Call in a
/// write transaction.
pub fn claim(
    conn: &mut DbConn,
    lease_id: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let due = mail_outbox::table
        .filter(claimable(now))
        .filter(mail_outbox::next_attempt_at.le(now))
        .order(mail_outbox::id)
        .limit(limit)
        .select(mail_outbox::id)
        .load::<i64>(conn)?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let claimed = diesel::update(
        mail_outbox::table
            .filter(mail_outbox::id.eq_any(due))
            // Checked again on the row as it is when updated: a concurrent claim took it.
            .filter(claimable(now)),
    )
    .set((
        mail_outbox::lease_owner.eq(lease_id),
        mail_outbox::lease_until.eq(lease_until),
    ))
    .execute(conn)?;
    if claimed == 0 {
        return Ok(Vec::new());
    }
    mail_outbox::table
        .filter(mail_outbox::lease_owner.eq(lease_id))
        .filter(mail_outbox::sent_at.is_null())
        .order(mail_outbox::id)
        .select(OutboxRow::as_select())
        .load(conn)
}

/// The row `id`, if `lease_id` still holds it.
#[diesel::dsl::auto_type(no_type_alias)]
fn held<'a>(id: i64, lease_id: &'a str) -> _ {
    mail_outbox::id
        .eq(id)
        .and(mail_outbox::lease_owner.eq(lease_id))
}

/// Marks the row sent; false if the lease was lost meanwhile.
pub fn mark_sent(
    conn: &mut DbConn,
    id: i64,
    lease_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let rows = diesel::update(mail_outbox::table.filter(held(id, lease_id)))
        .set((
            mail_outbox::sent_at.eq(now),
            mail_outbox::lease_owner.eq(None::<String>),
            mail_outbox::lease_until.eq(None::<NaiveDateTime>),
            mail_outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(rows == 1)
}

/// Counts a failed attempt and frees the row until `next_attempt_at`.
pub fn reschedule(
    conn: &mut DbConn,
    id: i64,
    lease_id: &str,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    error: &str,
) -> QueryResult<bool> {
    let rows = diesel::update(mail_outbox::table.filter(held(id, lease_id)))
        .set((
            mail_outbox::attempts.eq(attempts),
            mail_outbox::next_attempt_at.eq(next_attempt_at),
            mail_outbox::lease_owner.eq(None::<String>),
            mail_outbox::lease_until.eq(None::<NaiveDateTime>),
            mail_outbox::last_error.eq(error),
        ))
        .execute(conn)?;
    Ok(rows == 1)
}

/// Gives the row up: it is not sent again.
pub fn give_up(
    conn: &mut DbConn,
    id: i64,
    lease_id: &str,
    attempts: i32,
    now: NaiveDateTime,
    error: &str,
) -> QueryResult<bool> {
    let rows = diesel::update(mail_outbox::table.filter(held(id, lease_id)))
        .set((
            mail_outbox::attempts.eq(attempts),
            mail_outbox::failed_at.eq(now),
            mail_outbox::lease_owner.eq(None::<String>),
            mail_outbox::lease_until.eq(None::<NaiveDateTime>),
            mail_outbox::last_error.eq(error),
        ))
        .execute(conn)?;
    Ok(rows == 1)
}

/// Frees a claimed row that was not attempted (the sender is stopping).
pub fn release(conn: &mut DbConn, id: i64, lease_id: &str) -> QueryResult<bool> {
    let rows = diesel::update(mail_outbox::table.filter(held(id, lease_id)))
        .set((
            mail_outbox::lease_owner.eq(None::<String>),
            mail_outbox::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(rows == 1)
}

/// Rows still to deliver, and when the oldest of them was written.
pub fn backlog(conn: &mut DbConn) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    mail_outbox::table
        .filter(mail_outbox::sent_at.is_null())
        .filter(mail_outbox::failed_at.is_null())
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(mail_outbox::created_at),
        ))
        .first(conn)
}

/// Deletes rows sent before `sent_before` and rows given up before `failed_before`.
pub fn prune(
    conn: &mut DbConn,
    sent_before: NaiveDateTime,
    failed_before: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        mail_outbox::table.filter(
            mail_outbox::sent_at
                .lt(sent_before)
                .or(mail_outbox::failed_at.lt(failed_before)),
        ),
    )
    .execute(conn)
}
