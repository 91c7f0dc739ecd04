//! Errors.
//!
//! The rule: `anyhow` outside requests (startup, CLI), `QueryResult`/`thiserror` in models and
//! domain modules, and [`AppResult`] in handlers. An [`AppError`] is either a client error with
//! a message meant for the user (rendered as cargo's `{"errors":[{"detail":…}]}`), or an
//! internal error whose cause is logged once and never sent to the client.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::models::krate::FindCrateError;
use crate::services::owners::OwnersError;
use crate::storage::StorageError;

pub type AppResult<T> = Result<T, AppError>;

pub enum AppError {
    /// Something the client can fix; `detail` is shown as is.
    Client { status: StatusCode, detail: String },
    /// A bug or an outage; logged with its cause chain, answered with a generic 500.
    Internal(anyhow::Error),
    /// Over a rate limit ([`crate::limits`]): 429 with `Retry-After` in whole seconds.
    TooManyRequests { detail: String, retry_after: u64 },
    /// Too busy for now (no publish slot, no database connection): 503 with `Retry-After` in
    /// whole seconds.
    Busy { detail: String, retry_after: u64 },
}

pub fn bad_request(detail: impl fmt::Display) -> AppError {
    client(StatusCode::BAD_REQUEST, detail)
}

pub fn forbidden(detail: impl fmt::Display) -> AppError {
    client(StatusCode::FORBIDDEN, detail)
}

pub fn not_found(detail: impl fmt::Display) -> AppError {
    client(StatusCode::NOT_FOUND, detail)
}

pub fn conflict(detail: impl fmt::Display) -> AppError {
    client(StatusCode::CONFLICT, detail)
}

pub fn payload_too_large(detail: impl fmt::Display) -> AppError {
    client(StatusCode::PAYLOAD_TOO_LARGE, detail)
}

pub fn service_unavailable(detail: impl fmt::Display) -> AppError {
    client(StatusCode::SERVICE_UNAVAILABLE, detail)
}

/// 503 for a moment of overload, telling the client when to try again.
pub fn busy(detail: impl fmt::Display, retry_after: u64) -> AppError {
    AppError::Busy {
        detail: detail.to_string(),
        retry_after,
    }
}

/// An unknown route under `/api`, answered in the API's error shape wherever it is caught.
pub fn no_such_endpoint(method: &actix_web::http::Method, path: &str) -> AppError {
    not_found(format!("no such endpoint: {method} {path}"))
}

pub fn client(status: StatusCode, detail: impl fmt::Display) -> AppError {
    AppError::Client {
        status,
        detail: detail.to_string(),
    }
}

pub fn internal(error: impl Into<anyhow::Error>) -> AppError {
    AppError::Internal(error.into())
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Client { status, .. } => *status,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The text a user sees.
    pub fn detail(&self) -> &str {
        match self {
            AppError::Client { detail, .. }
            | AppError::TooManyRequests { detail, .. }
            | AppError::Busy { detail, .. } => detail,
            AppError::Internal(_) => "internal server error; the error has been logged",
        }
    }
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Client { status, detail } => write!(f, "{status}: {detail}"),
            AppError::Internal(error) => write!(f, "internal error: {error:?}"),
            AppError::TooManyRequests {
                detail,
                retry_after,
            } => write!(f, "429 (retry after {retry_after} s): {detail}"),
            AppError::Busy {
                detail,
                retry_after,
            } => write!(f, "503 (retry after {retry_after} s): {detail}"),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.detail())
    }
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    errors: [ErrorDetail<'a>; 1],
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    detail: &'a str,
}

pub fn error_body(detail: &str) -> ErrorBody<'_> {
    ErrorBody {
        errors: [ErrorDetail { detail }],
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::Internal(error) = self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let mut response = HttpResponse::build(self.status());
        if let AppError::TooManyRequests { retry_after, .. } | AppError::Busy { retry_after, .. } =
            self
        {
            response.insert_header((
                actix_web::http::header::RETRY_AFTER,
                retry_after.to_string(),
            ));
        }
        response.json(error_body(self.detail()))
    }
}

/// A database whose disk is full is the operator's to fix, like a full storage: 507, the cause
/// logged. Whatever the request had written rolls back with its transaction.
impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        match error {
            diesel::result::Error::NotFound => not_found("not found"),
            other if is_database_full(&other.to_string()) => database_full(&other),
            other => AppError::Internal(other.into()),
        }
    }
}

/// Whether a database error's text says its disk is full: SQLite's `SQLITE_FULL` ("database
/// or disk is full"), or PostgreSQL failing to extend or write a file with `ENOSPC` (SQLSTATE
/// 53100, which diesel does not expose; the server's message carries the system's text).
pub fn is_database_full(message: &str) -> bool {
    message.contains("database or disk is full") || message.contains("No space left on device")
}

/// The 507 of a full database; `cause` is logged.
pub fn database_full(cause: &dyn fmt::Display) -> AppError {
    tracing::error!(error = %cause, "the database is full");
    client(
        StatusCode::INSUFFICIENT_STORAGE,
        "the registry's database is full; try again later, and tell the registry's operator",
    )
}

impl From<FindCrateError> for AppError {
    fn from(error: FindCrateError) -> Self {
        match error {
            FindCrateError::NotFound(_) => not_found(error),
            FindCrateError::Database(error) => error.into(),
        }
    }
}

/// The statuses of the owners rules, for the API and the pages alike.
impl From<OwnersError> for AppError {
    fn from(error: OwnersError) -> Self {
        match error {
            OwnersError::CrateNotFound(_) => not_found(error),
            OwnersError::NotYourCrate { .. } => forbidden(error),
            OwnersError::Database(error) => error.into(),
            OwnersError::NoLogins
            | OwnersError::TooManyLogins
            | OwnersError::UnknownUser { .. }
            | OwnersError::AlreadyOwner { .. }
            | OwnersError::NotAnOwner { .. }
            | OwnersError::LastOwner => bad_request(error),
        }
    }
}

/// When to try again after no database connection was free within the pool's wait.
pub const POOL_RETRY_AFTER: u64 = 5;

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        tracing::warn!(error = %error, "database pool exhausted");
        busy(
            "the service is overloaded (no database connection available); try again in a few seconds",
            POOL_RETRY_AFTER,
        )
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        AppError::Internal(anyhow::anyhow!("blocking task failed: {error}"))
    }
}

/// A full disk (or quota) is the operator's to fix, not a bug: the client is told plainly
/// (507) and the cause is logged. Whatever the request had written rolls back with its
/// transaction.
impl From<std::io::Error> for AppError {
    fn from(error: std::io::Error) -> Self {
        use std::io::ErrorKind;
        if matches!(
            error.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded
        ) {
            return StorageError::Full(error).into();
        }
        AppError::Internal(error.into())
    }
}

/// The storage's outages are the operator's to fix, and usually pass: a full storage is 507,
/// one that does not answer (or refuses) is 503, with the cause logged and not shown.
impl From<StorageError> for AppError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Full(cause) => {
                tracing::error!(error = %cause, "the storage is full");
                client(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the registry's storage is full; try again later, and tell the registry's operator",
                )
            }
            StorageError::Unavailable(cause) => {
                tracing::error!(error = %DisplayChain(cause.as_ref()), "the storage is unavailable");
                service_unavailable(
                    "the registry's storage is not available right now; try again in a few minutes, and tell the registry's operator if it goes on",
                )
            }
            other => AppError::Internal(other.into()),
        }
    }
}

/// An error with its causes, `: `-separated.
pub struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl From<anyhow::Error> for AppError {
    fn from(error: anyhow::Error) -> Self {
        AppError::Internal(error)
    }
}

impl From<serde_json::Error> for AppError {
    fn from(error: serde_json::Error) -> Self {
        AppError::Internal(error.into())
    }
}

/// Turns actix's extractor errors (bad JSON, oversized bodies, bad paths) into our error shape.
pub fn json_config_error(error: actix_web::error::JsonPayloadError) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    let app_error = match &error {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => payload_too_large(format!(
            "the request body is larger than the limit of {limit} bytes"
        )),
        JsonPayloadError::ContentType => {
            bad_request("the request body must be JSON (Content-Type: application/json)")
        }
        JsonPayloadError::Deserialize(e) => {
            bad_request(format!("invalid JSON in the request body: {e}"))
        }
        other => bad_request(format!("cannot read the request body: {other}")),
    };
    app_error.into()
}

pub fn query_config_error(error: actix_web::error::QueryPayloadError) -> actix_web::Error {
    bad_request(format!("invalid query string: {error}")).into()
}

pub fn path_config_error(error: actix_web::error::PathError) -> actix_web::Error {
    bad_request(format!("invalid path: {error}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
    fn a_full_database_is_507() {
        use diesel::connection::SimpleConnection;
        use diesel::{Connection, RunQueryDsl};
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        // At most 8 pages: the database is full after a few rows.
        conn.batch_execute("CREATE TABLE t (b BLOB); PRAGMA max_page_count = 8;")
            .unwrap();
        let full = (0..100)
            .find_map(|_| {
                diesel::sql_query("INSERT INTO t VALUES (zeroblob(4000))")
                    .execute(&mut conn)
                    .err()
            })
            .unwrap();
        let error = AppError::from(full);
        assert_eq!(error.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(
            error.detail(),
            "the registry's database is full; try again later, and tell the registry's operator"
        );
        // Other database errors stay internal.
        let other = diesel::sql_query("INSERT INTO missing VALUES (1)")
            .execute(&mut conn)
            .unwrap_err();
        assert!(matches!(AppError::from(other), AppError::Internal(_)));
    }

    #[test]
    #[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
    fn no_free_database_connection_is_503_with_retry_after() {
        use diesel::r2d2::{ConnectionManager, Pool};
        let pool = Pool::builder()
            .max_size(1)
            .connection_timeout(std::time::Duration::from_millis(10))
            .build(ConnectionManager::<diesel::SqliteConnection>::new(
                ":memory:",
            ))
            .unwrap();
        let _held = pool.get().unwrap();
        let error = AppError::from(pool.get().map(|_| ()).unwrap_err());
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(actix_web::http::header::RETRY_AFTER)
                .unwrap()
                .to_str()
                .unwrap(),
            POOL_RETRY_AFTER.to_string()
        );
        assert_eq!(
            error.detail(),
            "the service is overloaded (no database connection available); try again in a few seconds"
        );
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_full_disk_or_quota_is_507_and_other_io_errors_are_500() {
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        for errno in [ENOSPC, EDQUOT] {
            let error = AppError::from(std::io::Error::from_raw_os_error(errno));
            assert_eq!(error.status(), StatusCode::INSUFFICIENT_STORAGE, "{errno}");
            assert_eq!(
                error.detail(),
                "the registry's storage is full; try again later, and tell the registry's operator"
            );
        }
        let error = AppError::from(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
