//! A private registry (`WHARF_AUTH_REQUIRED=true`): one guard in front of every route.
//!
//! Cargo is told by `config.json` (`"auth-required": true`) to send its token with every index,
//! download and API request. The guard lets a request through when it carries a credential:
//!
//! - API and index requests (`/api/…`, `/index/…`): a live API token of any scope or a live
//!   Trusted Publishing token in `Authorization` ([`auth::may_read`], cached for a few seconds),
//!   or a live session (a logged-in browser following a download link). Anything else gets
//!   `401` in the error shape with `WWW-Authenticate: Cargo login_url="…/settings/tokens"`.
//! - Pages: a live session; anonymous visitors are sent to `/login` (and back afterwards).
//!
//! The routes in [`open_route`] stay open: what is needed to log in, to probe the process, for
//! cargo to learn that the registry is private, and the Trusted Publishing exchange (whose ID
//! token is its credential; the revocation carries the token it revokes). Whatever else the
//! router gains is private by default.
//!
//! One exception to the open `config.json`: cargo itself asking for it without a token (its
//! sparse requests carry `cargo-protocol`) gets the 401 and its challenge. That is RFC 3139's
//! probe: cargo asks again at once with its token, and remembers the challenge's `login_url`,
//! which `cargo login` shows ("please paste the token found on … below"). Everyone else (browsers,
//! probes, the credential provider) reads it without a credential.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};

use crate::app::App;
use crate::auth::session::login_of;
use crate::auth::{self, RawToken};
use crate::errors::error_body;
use crate::pages::errors::PageError;
use crate::pages::next::safe_next;

/// Where cargo users get a token, as `WWW-Authenticate` names it.
pub const LOGIN_PATH: &str = "/settings/tokens";

/// What a request needs in a private registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open to anyone.
    Open,
    /// The JSON API or the index: a token (or a session).
    Api,
    /// A page: a session.
    Page,
}

/// The routes open to anyone in a private registry: logging in (the login page, the GitHub
/// round trip and the stylesheet it uses), `/health` and `/ready`, `config.json` (which tells
/// cargo to authenticate), and the Trusted Publishing token endpoint (the exchange's credential
/// is the CI ID token; the revocation authenticates the token it revokes).
pub fn open_route(method: &Method, path: &str) -> bool {
    match path {
        "/health"
        | "/ready"
        | "/index/config.json"
        | "/login"
        | "/login/github"
        | "/login/github/callback"
        | "/static/wharf.css" => *method == Method::GET || *method == Method::HEAD,
        "/api/v1/trusted_publishing/tokens" => {
            matches!(*method, Method::POST | Method::PUT | Method::DELETE)
        }
        _ => false,
    }
}

/// What `method path` needs in a private registry.
pub fn access(method: &Method, path: &str) -> Access {
    if open_route(method, path) {
        Access::Open
    } else if ["/api", "/index"].iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }) {
        Access::Api
    } else {
        Access::Page
    }
}

/// The guard (outside the router, so no route can miss it). In an open registry it does
/// nothing.
pub async fn require_credential(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(app) = req.app_data::<web::Data<App>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if !app.config.auth_required {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let refusal = match access(req.method(), req.path()) {
        Access::Open if anonymous_cargo_probe(&req) => Some(unauthorized(
            app.config.base_url(),
            &format!(
                "this registry is private: cargo needs a token for it (create one at {}{LOGIN_PATH})",
                app.config.base_url()
            ),
        )),
        Access::Open => None,
        Access::Api => api_refusal(&app, &req).await,
        Access::Page => page_refusal(&req).await,
    };
    match refusal {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(response) => Ok(req.into_response(response).map_into_right_body()),
    }
}

/// Cargo asking for `config.json` without a token (see the module's documentation).
fn anonymous_cargo_probe(req: &ServiceRequest) -> bool {
    req.path() == CONFIG_JSON
        && req.headers().contains_key("cargo-protocol")
        && !req.headers().contains_key(header::AUTHORIZATION)
}

const CONFIG_JSON: &str = "/index/config.json";

/// `None` when the API or index request carries a credential, else the 401 (or the error that
/// kept it from being checked).
async fn api_refusal(app: &App, req: &ServiceRequest) -> Option<HttpResponse> {
    let base = app.config.base_url();
    if req.headers().contains_key(header::AUTHORIZATION) {
        let valid = match RawToken::from_request(req.request()) {
            Ok(raw) => auth::may_read(app, &raw).await,
            Err(_) => Ok(false),
        };
        return match valid {
            Ok(true) => None,
            Ok(false) => Some(unauthorized(
                base,
                &format!(
                    "this registry is private, and the token sent is invalid, revoked or expired; create a new one at {base}{LOGIN_PATH} (Trusted Publishing: exchange a new ID token)"
                ),
            )),
            Err(error) => Some(error.error_response()),
        };
    }
    match login_of(req.request()).await {
        Ok(Some(_)) => None,
        Ok(None) => Some(unauthorized(
            base,
            &format!(
                "this registry is private: send an API token in the Authorization header (cargo: `cargo login --registry <name>` with a token from {base}{LOGIN_PATH})"
            ),
        )),
        Err(error) => Some(error.error_response()),
    }
}

/// `None` for a logged-in visitor, else the redirect to `/login` (back here afterwards).
async fn page_refusal(req: &ServiceRequest) -> Option<HttpResponse> {
    match login_of(req.request()).await {
        Ok(Some(_)) => None,
        Ok(None) => {
            let next = if req.method() == Method::GET || req.method() == Method::HEAD {
                safe_next(req.uri().path_and_query().map(|p| p.as_str()))
            } else {
                "/".to_owned()
            };
            Some(PageError::LoginRequired { next }.error_response())
        }
        Err(error) => Some(PageError::App(error).error_response()),
    }
}

/// `401` in the error shape, with the challenge cargo reads (RFC 3139).
fn unauthorized(base: &str, detail: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, www_authenticate(base)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(error_body(detail))
}

/// `Cargo login_url="<public URL>/settings/tokens"`.
pub fn www_authenticate(base: &str) -> String {
    format!("Cargo login_url=\"{base}{LOGIN_PATH}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allow_list_is_open_and_everything_else_is_classified_by_prefix() {
        let get = Method::GET;
        for path in [
            "/health",
            "/ready",
            "/index/config.json",
            "/login",
            "/login/github",
            "/login/github/callback",
            "/static/wharf.css",
        ] {
            assert_eq!(access(&get, path), Access::Open, "{path}");
            assert_eq!(access(&Method::HEAD, path), Access::Open, "{path}");
            assert_ne!(access(&Method::POST, path), Access::Open, "POST {path}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            assert_eq!(
                access(&method, "/api/v1/trusted_publishing/tokens"),
                Access::Open
            );
        }
        for path in [
            "/index/se/rd/serde",
            "/index/config.json/x",
            "/index",
            "/api",
            "/api/v1/crates",
            "/api/v1/crates/x/1.0.0/download",
            "/api/v1/trusted_publishing/tokens/x",
            "/api/v1/trusted_publishing/github_configs",
        ] {
            assert_eq!(access(&get, path), Access::Api, "{path}");
        }
        for path in [
            "/",
            "/me",
            "/search",
            "/crates/x",
            "/static/other.css",
            "/login/other",
            "/healthz",
            "/apix",
            "/indexes",
            "/logout",
        ] {
            assert_eq!(access(&get, path), Access::Page, "{path}");
        }
        assert_eq!(
            access(&get, "/api/v1/trusted_publishing/tokens"),
            Access::Api,
            "the token endpoint has no GET"
        );
    }
}
