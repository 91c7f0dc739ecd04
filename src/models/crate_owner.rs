use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::User;
use crate::db::DbConn;
use crate::schema::{crate_owners, crates, users};

#[derive(Insertable, Debug)]
#[diesel(table_name = crate_owners)]
pub struct NewCrateOwner {
    pub crate_id: i64,
    pub user_id: i64,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
}

impl NewCrateOwner {
    pub fn insert(&self, conn: &mut DbConn) -> QueryResult<()> {
        diesel::insert_into(crate_owners::table)
            .values(self)
            .execute(conn)?;
        Ok(())
    }
}

/// The owners of a crate, by login.
pub fn owners(conn: &mut DbConn, crate_id: i64) -> QueryResult<Vec<User>> {
    crate_owners::table
        .inner_join(users::table.on(users::id.eq(crate_owners::user_id)))
        .filter(crate_owners::crate_id.eq(crate_id))
        .order(users::login.asc())
        .select(User::as_select())
        .load(conn)
}

pub fn remove(conn: &mut DbConn, crate_id: i64, user_id: i64) -> QueryResult<bool> {
    let deleted = diesel::delete(
        crate_owners::table
            .filter(crate_owners::crate_id.eq(crate_id))
            .filter(crate_owners::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(deleted == 1)
}

/// The crates a user owns, by name.
pub fn crates_of(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<super::Crate>> {
    crate_owners::table
        .inner_join(crates::table.on(crates::id.eq(crate_owners::crate_id)))
        .filter(crate_owners::user_id.eq(user_id))
        .order(crates::name.asc())
        .select(super::Crate::as_select())
        .load(conn)
}
