//! Cargo's sparse index: `config.json` and one file per crate.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::app::App;
use crate::errors::{AppResult, not_found};
use crate::models::index_file::IndexFile;
use crate::registry::crate_name::index_path_matches;

/// `GET /index/config.json`
pub async fn config_json(app: web::Data<App>) -> HttpResponse {
    let base = app.config.base_url();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(json!({
            "dl": format!("{base}/api/v1/crates"),
            "api": base,
            "auth-required": false,
        }))
}

/// `GET /index/{prefix}/{name}`: the crate's index file, with an `ETag`.
pub async fn index_file(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = index_path_matches(&path).ok_or_else(|| not_found("not found"))?;
    let canonical = name.replace('-', "_");
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // A revalidation (cargo's usual request) reads only the ETag; the file is read when sent.
    let found = app
        .db
        .run(move |conn| {
            let Some((crate_name, etag)) = IndexFile::etag_by_canonical(conn, &canonical)? else {
                return Ok(None);
            };
            let unchanged = if_none_match.as_deref().is_some_and(|v| {
                v.split(',')
                    .any(|tag| tag.trim() == etag || tag.trim() == "*")
            });
            if unchanged {
                return Ok(Some((crate_name, etag, None)));
            }
            // The ETag sent is the one of the content sent, even if a publish came between.
            Ok(IndexFile::by_canonical(conn, &canonical)?
                .map(|(crate_name, file)| (crate_name, file.etag, Some(file.content))))
        })
        .await?;
    // Index paths are the lowercased name exactly: `foo-bar` does not serve `foo_bar`.
    let (_, etag, content) = found
        .filter(|(crate_name, _, _)| crate_name.to_ascii_lowercase() == name)
        .ok_or_else(|| not_found(format!("crate `{name}` does not exist")))?;

    let mut response = match content {
        Some(_) => HttpResponse::Ok(),
        None => HttpResponse::NotModified(),
    };
    response
        .insert_header((header::ETAG, etag))
        // Revalidate every time: a publish must be visible at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("text/plain; charset=utf-8");
    Ok(match content {
        Some(content) => response.body(content),
        None => response.finish(),
    })
}
