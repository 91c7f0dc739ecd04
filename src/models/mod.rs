//! Database models: a `Queryable + Selectable` struct per table, a `New…` insertable, and
//! query functions that take `&mut DbConn` and return `QueryResult`.

pub mod audit;
pub mod crate_owner;
pub mod index_file;
pub mod krate;
pub mod pending_config;
pub mod session;
pub mod token;
pub mod trustpub_token;
pub mod user;
pub mod version;

pub use audit::AuditEntry;
pub use krate::Crate;
pub use token::ApiToken;
pub use user::User;
pub use version::Version;

/// The current time, as stored (UTC, microseconds, no zone).
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    // Both backends keep microseconds; truncate so a value reads back equal.
    now - chrono::Duration::nanoseconds(i64::from(now.and_utc().timestamp_subsec_nanos() % 1000))
}
