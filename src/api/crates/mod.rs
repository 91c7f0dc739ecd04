//! `/api/v1/crates/…`: cargo's web API for crates.

pub mod download;
pub mod info;
pub mod owners;
pub mod publish;
pub mod search;
pub mod update;
pub mod yank;

use crate::db::DbConn;
use crate::errors::{AppResult, not_found};
use crate::models::Crate;

/// The crate named `name` (any spelling), or a 404 that says so.
pub fn find_crate(conn: &mut DbConn, name: &str) -> AppResult<Crate> {
    Crate::by_name(conn, name)?.ok_or_else(|| not_found(format!("crate `{name}` does not exist")))
}
