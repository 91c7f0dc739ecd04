use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::{DbConn, lower};
use crate::schema::users;

#[derive(Queryable, Selectable, Identifiable, Debug, Clone)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub login: String,
    pub github_id: Option<i64>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
    pub is_admin: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub login: &'a str,
    pub github_id: Option<i64>,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub avatar_url: Option<&'a str>,
    pub is_admin: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl NewUser<'_> {
    pub fn insert(&self, conn: &mut DbConn) -> QueryResult<User> {
        diesel::insert_into(users::table)
            .values(self)
            .execute(conn)?;
        User::by_login(conn, self.login)?.ok_or(diesel::result::Error::NotFound)
    }
}

impl User {
    /// Locks the user's row until the transaction ends (PostgreSQL `FOR NO KEY UPDATE`, which
    /// leaves foreign-key checks of other transactions alone), so that
    /// transactions which check what the user has before adding to it (the pending-publisher
    /// limit, duplicates) take turns. SQLite's write transactions take turns anyway.
    pub fn lock(conn: &mut DbConn, id: i64) -> QueryResult<()> {
        if let DbConn::Pg(pg) = conn {
            users::table
                .find(id)
                .select(users::id)
                .for_no_key_update()
                .first::<i64>(pg)?;
        }
        Ok(())
    }

    /// Logins are compared ignoring ASCII case, as on GitHub. Only ASCII: under Unicode rules
    /// a login written with a look-alike (`\u{212A}`, the Kelvin sign, lower-cases to `k`)
    /// would name another user. Logins are ASCII, so SQL `lower()` folds exactly ASCII here.
    pub fn by_login(conn: &mut DbConn, login: &str) -> QueryResult<Option<User>> {
        users::table
            .filter(lower(users::login).eq(login.to_ascii_lowercase()))
            .select(User::as_select())
            .first(conn)
            .optional()
    }

    pub fn by_id(conn: &mut DbConn, id: i64) -> QueryResult<User> {
        users::table.find(id).select(User::as_select()).first(conn)
    }

    pub fn by_github_id(conn: &mut DbConn, github_id: i64) -> QueryResult<Option<User>> {
        users::table
            .filter(users::github_id.eq(github_id))
            .select(User::as_select())
            .first(conn)
            .optional()
    }
}

/// A login as GitHub allows it: letters, digits and single hyphens, at most 39 characters.
pub fn valid_login(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= 39
        && login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !login.starts_with('-')
        && !login.ends_with('-')
        && !login.contains("--")
}
