//! The HTML rendering of [`AppError`]: pages answer errors with an error page, while `/api`
//! keeps cargo's JSON shape. A page that needs a login redirects to it instead.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::session::Layout;
use crate::errors::{AppError, bad_request, internal, no_such_endpoint, not_found};

pub type PageResult<T> = Result<T, PageError>;

pub enum PageError {
    /// Rendered as an HTML error page with the error's status and user-facing detail.
    App(AppError),
    /// The page needs a logged-in user: 303 to the login page, coming back to `next` after.
    LoginRequired { next: String },
}

#[derive(Template)]
#[template(path = "errors/error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    status: u16,
    heading: &'a str,
    detail: &'a str,
}

impl From<AppError> for PageError {
    fn from(error: AppError) -> Self {
        PageError::App(error)
    }
}

impl From<askama::Error> for PageError {
    fn from(error: askama::Error) -> Self {
        PageError::App(internal(error))
    }
}

impl From<actix_session::SessionGetError> for PageError {
    fn from(error: actix_session::SessionGetError) -> Self {
        PageError::App(internal(anyhow::anyhow!(
            "cannot read the session: {error}"
        )))
    }
}

impl From<actix_session::SessionInsertError> for PageError {
    fn from(error: actix_session::SessionInsertError) -> Self {
        PageError::App(internal(anyhow::anyhow!(
            "cannot write the session: {error}"
        )))
    }
}

impl fmt::Debug for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::App(error) => fmt::Debug::fmt(error, f),
            PageError::LoginRequired { next } => write!(f, "login required for {next}"),
        }
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::App(error) => fmt::Display::fmt(error, f),
            PageError::LoginRequired { .. } => f.write_str("log in to see this page"),
        }
    }
}

fn heading(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad request",
        401 | 403 => "Forbidden",
        404 => "Not found",
        409 => "Conflict",
        413 => "Too large",
        422 => "Cannot do that",
        503 => "Try again shortly",
        s if s >= 500 => "Something went wrong",
        _ => "Error",
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::App(error) => error.status(),
            PageError::LoginRequired { .. } => StatusCode::SEE_OTHER,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PageError::LoginRequired { next } => super::see_other(&format!(
                "/login?next={}",
                super::encode(&super::next::safe_next(Some(next)))
            )),
            PageError::App(error) => {
                if let AppError::Internal(cause) = error {
                    tracing::error!(error = format!("{cause:#}"), "page request failed");
                }
                let status = error.status();
                let page = ErrorPage {
                    layout: Layout::default(),
                    status: status.as_u16(),
                    heading: heading(status),
                    detail: error.detail(),
                };
                match page.render() {
                    Ok(body) => HttpResponse::build(status)
                        .content_type("text/html; charset=utf-8")
                        .body(body),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot render the error page");
                        HttpResponse::build(status)
                            .content_type("text/plain; charset=utf-8")
                            .body(error.detail().to_owned())
                    }
                }
            }
        }
    }
}

/// Unknown pages: an HTML 404 (other unknown routes answer in the API's JSON error shape).
pub async fn not_found_page(req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    if super::is_page_request(&req) {
        Err(PageError::App(not_found(format!("there is no page at {}", req.path()))).into())
    } else {
        Err(no_such_endpoint(req.method(), req.path()).into())
    }
}

/// A query string that does not parse, on a page.
pub fn bad_query(error: actix_web::error::QueryPayloadError) -> actix_web::Error {
    PageError::App(bad_request(format!("invalid query string: {error}"))).into()
}
