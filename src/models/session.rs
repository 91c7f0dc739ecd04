//! Logins kept on the server. The session cookie carries a random id; only its SHA-256 is
//! stored, with the user and a fixed expiry. Logging out deletes the row, so a copied cookie
//! stops working on every instance sharing the database; "log out everywhere" deletes all of
//! a user's rows; expired rows are refused, then deleted by the periodic clean-up.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::models::User;
use crate::schema::{sessions, users};
use crate::tokens;

/// Starts a session for `user_id` that ends at `expires_at`; returns the id for the cookie
/// (256 random bits).
pub fn start(
    conn: &mut DbConn,
    user_id: i64,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<String> {
    let (id, id_hash) = tokens::generate("");
    diesel::insert_into(sessions::table)
        .values((
            sessions::id_hash.eq(&id_hash),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(id)
}

/// The user of a live session: one indexed look-up joined with the user.
pub fn user_of(conn: &mut DbConn, id_hash: &str, now: NaiveDateTime) -> QueryResult<Option<User>> {
    sessions::table
        .inner_join(users::table)
        .filter(sessions::id_hash.eq(id_hash))
        .filter(sessions::expires_at.gt(now))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Ends one session (logging out); ending one that is gone already is not an error.
pub fn end(conn: &mut DbConn, id_hash: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(id_hash)).execute(conn)
}

/// Ends every session of `user_id` ("log out everywhere"); returns how many there were.
pub fn end_all(conn: &mut DbConn, user_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

/// How many live sessions `user_id` has.
pub fn count_live(conn: &mut DbConn, user_id: i64, now: NaiveDateTime) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(conn)
}

/// Deletes expired sessions; returns how many.
pub fn clean_up(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)
}
