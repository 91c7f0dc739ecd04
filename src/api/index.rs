//! Cargo's sparse index: `config.json` and one file per crate.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::app::App;
use crate::errors::{AppResult, not_found};
use crate::index_cache::CachedIndex;
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
            "auth-required": app.config.auth_required,
        }))
}

/// `GET /index/{prefix}/{name}`: the crate's index file, with an `ETag`. Served from the
/// in-memory cache when it holds the file (no blocking pool, no database connection); read from
/// the database and cached otherwise.
pub async fn index_file(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = index_path_matches(&path).ok_or_else(|| not_found("not found"))?;
    let canonical = name.replace('-', "_");
    let file = match app.index_cache.get(&canonical) {
        Some(file) => Some(file),
        None => {
            let generation = app.index_cache.generation();
            let key = canonical.clone();
            let found = app
                .db
                .run(move |conn| Ok(IndexFile::by_canonical(conn, &key)?))
                .await?;
            found.map(|(crate_name, file)| {
                let file = Arc::new(CachedIndex {
                    crate_name,
                    etag: file.etag,
                    content: Bytes::from(file.content),
                });
                app.index_cache.insert(&canonical, file.clone(), generation);
                file
            })
        }
    };
    // Index paths are the lowercased name exactly: `foo-bar` does not serve `foo_bar`.
    let file = file
        .filter(|file| file.crate_name.to_ascii_lowercase() == name)
        .ok_or_else(|| not_found(format!("crate `{name}` does not exist")))?;

    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == file.etag || tag.trim() == "*")
        });
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, file.etag.as_str()))
        // Revalidate every time: a publish must be visible at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("text/plain; charset=utf-8");
    Ok(if unchanged {
        response.finish()
    } else {
        response.body(file.content.clone())
    })
}
