//! `HEAD` for every `GET` route (RFC 9110 §9.3.2): the same status and headers, no body.
//!
//! One middleware instead of a `HEAD` route next to each `GET`: a `HEAD` request is routed as
//! `GET`, and the answer keeps its headers and the size of the body it would have sent (so
//! `Content-Length` is the GET's) but drops the body itself, unread. actix-http sends no body
//! bytes for a `HEAD` request either; dropping it here also saves reading it. Routes without a
//! `GET` answer `HEAD` exactly as they answer `GET` (404, or the login redirect).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Bytes;

/// The body of a `HEAD` answer: the size of the `GET` body, and no bytes.
pub struct Bodiless(BodySize);

impl MessageBody for Bodiless {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        self.0
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}

/// Routes `HEAD` as `GET` and answers without the body. Anything else passes through.
pub async fn head_as_get<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, Bodiless>>, actix_web::Error> {
    if req.method() != Method::HEAD {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    req.head_mut().method = Method::GET;
    // An error from further in is answered by actix-http as for GET, and for a HEAD request
    // actix-http writes the headers only.
    let response = next.call(req).await?;
    Ok(response
        .map_body(|_, body| Bodiless(body.size()))
        .map_into_right_body())
}
