//! The server-rendered web app: one module per page, each with its `#[derive(Template)]` struct
//! next to its handler; templates in `templates/` mirror the modules.
//!
//! Conventions every page follows:
//! - handlers return [`PageResult`], whose errors render as HTML pages (the `/api` keeps cargo's
//!   JSON error shape);
//! - every POST takes a [`session::CsrfForm`], which refuses a form without the session's CSRF
//!   token (403) before the handler runs;
//! - a valid form is acted on and answered with a 303 redirect and a flash message; an invalid
//!   one is rendered again with status 422 and each error next to its field;
//! - pages work without JavaScript, and nothing secret is ever rendered (a new API token is
//!   shown exactly once, in the response to the form that created it).

pub mod crate_page;
pub mod crate_settings;
pub mod errors;
pub mod history;
pub mod home;
pub mod login;
pub mod markdown;
pub mod me;
pub mod next;
pub mod pending_publishers;
pub mod session;
pub mod static_files;
pub mod tokens;
pub mod user;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use chrono::NaiveDateTime;

pub use errors::{PageError, PageResult};
pub use session::{CsrfForm, CurrentUser, Layout, PageContext};

/// True for requests the web app answers (everything outside the JSON API and the index).
pub fn is_page_request(req: &HttpRequest) -> bool {
    let path = req.path();
    !(path.starts_with("/api/") || path == "/api" || path.starts_with("/index/"))
}

/// Renders a page with status 200.
pub fn render(page: &impl Template) -> PageResult<HttpResponse> {
    render_with_status(StatusCode::OK, page)
}

/// Renders a page with `status` (422 for a form with errors).
pub fn render_with_status(status: StatusCode, page: &impl Template) -> PageResult<HttpResponse> {
    let body = page.render()?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// A page that must not be kept in any cache (it shows a secret once, or private data).
pub fn no_store(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 303 See Other: the answer to a successful form.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// `2026-11-26 14:03 UTC`
pub fn format_time(time: &NaiveDateTime) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Percent-encodes one path segment or query value.
pub fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
