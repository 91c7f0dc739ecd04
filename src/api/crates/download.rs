use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, HttpResponseBuilder, web};

use crate::app::App;
use crate::errors::{AppResult, internal, not_found};
use crate::index_cache::downloads::{CachedDownload, DownloadCache};
use crate::models::Version;
use crate::models::krate::find_crate;
use crate::storage::crate_key;

/// `GET /api/v1/crates/{name}/{version}/download`: the `.crate` file, from memory when it is
/// a small one downloaded before (see [`crate::index_cache::downloads`]), else streamed from
/// storage as it is read (a large file is never buffered whole), or a redirect to a presigned
/// URL of the object store when `WHARF_S3_PRESIGNED_DOWNLOADS` is set.
pub async fn download(
    app: web::Data<App>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (name, num) = path.into_inner();
    let cache_key = DownloadCache::key(&name, &num);
    if let Some(hit) = app.download_cache.get(&cache_key) {
        return Ok(crate_file(&hit.file_name).body(hit.bytes.clone()));
    }
    let (file_name, key, size) = app
        .db
        .run(move |conn| {
            let krate = find_crate(conn, &name)?;
            let version = Version::find(conn, krate.id, &num)?.ok_or_else(|| {
                not_found(format!("crate `{}` has no version `{num}`", krate.name))
            })?;
            Ok((
                format!("{}-{}.crate", krate.name, version.num),
                crate_key(&krate.canonical_name, &krate.name, &version.num),
                version.crate_size,
            ))
        })
        .await?;
    // The storage is read without holding a database connection.
    if let Some(url) = app.storage.download_url(&key).await? {
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, url.as_str()))
            // The URL expires; the redirect must not outlive it in a cache.
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    }
    let object = app.storage.open(&key).await?.ok_or_else(|| {
        internal(anyhow::anyhow!(
            "a published crate file is missing from storage ({key}); `wharf admin check` lists every such problem"
        ))
    })?;
    if i64::try_from(object.size).ok() != Some(size) {
        return Err(internal(anyhow::anyhow!(
            "the stored crate file {key} has {} bytes, but {size} were published; `wharf admin check` lists every such problem",
            object.size
        )));
    }
    if app.download_cache.would_keep(object.size) {
        let bytes = Bytes::from(object.read_all().await?);
        if i64::try_from(bytes.len()).ok() != Some(size) {
            return Err(internal(anyhow::anyhow!(
                "the stored crate file {key} gave {} bytes, but {size} were published; `wharf admin check` lists every such problem",
                bytes.len()
            )));
        }
        let file = Arc::new(CachedDownload { file_name, bytes });
        app.download_cache.insert(cache_key, file.clone());
        return Ok(crate_file(&file.file_name).body(file.bytes.clone()));
    }
    Ok(crate_file(&file_name).body(SizedStream::new(object.size, object.stream)))
}

/// The headers of a `.crate` answer.
fn crate_file(file_name: &str) -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/gzip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"));
    response
}
