use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::api::trustpub::manager;
use crate::app::App;
use crate::errors::{AppResult, bad_request};
use crate::services::publishers;

#[derive(Deserialize)]
pub struct UpdateBody {
    #[serde(rename = "crate")]
    krate: CrateChanges,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrateChanges {
    trustpub_only: Option<bool>,
}

/// `PATCH /api/v1/crates/{name}` with `{"crate":{"trustpub_only":true|false}}`.
pub async fn update(
    app: web::Data<App>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    let value = body.into_inner().krate.trustpub_only.ok_or_else(|| {
        bad_request("nothing to change: send {\"crate\":{\"trustpub_only\":true|false}}")
    })?;
    let user = manager(&app, &req, Some(name.clone())).await?;
    let krate = publishers::set_trustpub_only(&app, user, name, value).await?;
    Ok(HttpResponse::Ok().json(json!({
        "crate": { "id": krate.name, "name": krate.name, "trustpub_only": krate.trustpub_only }
    })))
}
