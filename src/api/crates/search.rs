use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::errors::{AppResult, bad_request};
use crate::models::Crate;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    per_page: Option<i64>,
    page: Option<i64>,
}

const MAX_PER_PAGE: i64 = 100;

/// `GET /api/v1/crates?q=…&per_page=…&page=…`
pub async fn search(
    app: web::Data<App>,
    query: web::Query<SearchQuery>,
) -> AppResult<HttpResponse> {
    let SearchQuery { q, per_page, page } = query.into_inner();
    let per_page = per_page.unwrap_or(10);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(bad_request(format!(
            "per_page must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    let page = page.unwrap_or(1);
    if !(1..=10_000).contains(&page) {
        return Err(bad_request("page must be between 1 and 10000"));
    }
    if q.len() > 256 {
        return Err(bad_request(
            "the search query is longer than 256 characters",
        ));
    }
    let (found, total) = app
        .db
        .run(move |conn| Ok(Crate::search(conn, &q, (page - 1) * per_page, per_page)?))
        .await?;
    let crates: Vec<_> = found
        .into_iter()
        .map(|(krate, max_version)| {
            json!({
                "id": krate.name,
                "name": krate.name,
                "max_version": max_version,
                "newest_version": max_version,
                "description": krate.description,
                "updated_at": krate.updated_at.and_utc(),
                "created_at": krate.created_at.and_utc(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "crates": crates, "meta": { "total": total } })))
}
