use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::find_crate;
use crate::app::App;
use crate::errors::{AppResult, internal, not_found};
use crate::models::Version;
use crate::storage::crate_key;

/// `GET /api/v1/crates/{name}/{version}/download`: the `.crate` file.
pub async fn download(
    app: web::Data<App>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (name, num) = path.into_inner();
    let (file_name, key) = app
        .db
        .run(move |conn| {
            let krate = find_crate(conn, &name)?;
            let version = Version::find(conn, krate.id, &num)?.ok_or_else(|| {
                not_found(format!("crate `{}` has no version `{num}`", krate.name))
            })?;
            Ok((
                format!("{}-{}.crate", krate.name, version.num),
                crate_key(&krate.canonical_name, &krate.name, &version.num),
            ))
        })
        .await?;
    // Read the file without holding a database connection.
    let storage = app.storage.clone();
    let bytes = web::block(move || -> AppResult<Vec<u8>> {
        storage.get(&key)?.ok_or_else(|| {
            internal(anyhow::anyhow!(
                "a published crate file is missing from storage ({key})"
            ))
        })
    })
    .await??;
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(bytes))
}
