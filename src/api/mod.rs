//! The JSON API (cargo's web API and Wharf's own), one module per resource.

pub mod crates;
pub mod health;
pub mod index;
pub mod trustpub;

use actix_web::{HttpRequest, HttpResponse};

use crate::errors::{AppError, no_such_endpoint};

/// Unknown routes under `/api` answer in the API's error shape.
pub async fn not_found_handler(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(no_such_endpoint(req.method(), req.path()))
}
