//! Request bodies are taken exactly as sent. Wharf is built without actix-web's `compress-*`
//! features (nothing here compresses responses, and zstd and brotli were about an eighth of a
//! release build's CPU time), so an encoded body would reach a handler still encoded and fail
//! there with a misleading message. No registry client compresses its requests (cargo does not);
//! a request that declares a `Content-Encoding` other than `identity` is refused up front with
//! 415 and a message saying so.

use actix_web::ResponseError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_ENCODING;
use actix_web::middleware::Next;

use crate::errors::client;
use crate::pages;
use crate::registry::quote_input;

/// Answers 415 to a request whose body is encoded; anything else passes through.
pub async fn refuse_encoded_bodies<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(encoding) = declared_encoding(&req) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let error = client(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "this server does not take compressed request bodies (Content-Encoding: {encoding}); send the body uncompressed"
        ),
    );
    let response = if pages::is_page_request(req.request()) {
        pages::PageError::App(error).error_response()
    } else {
        error.error_response()
    };
    Ok(req.into_response(response).map_into_right_body())
}

/// The request's `Content-Encoding` unless it is absent, empty or only `identity`.
fn declared_encoding(req: &ServiceRequest) -> Option<String> {
    let values: Vec<_> = req.headers().get_all(CONTENT_ENCODING).collect();
    let encoded = values.iter().any(|value| match value.to_str() {
        Ok(text) => text
            .split(',')
            .map(str::trim)
            .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity")),
        Err(_) => true,
    });
    encoded.then(|| {
        let text = values
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        quote_input(&text)
    })
}
