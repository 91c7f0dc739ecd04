use actix_web::{HttpResponse, web};
use diesel::RunQueryDsl;
use serde_json::json;

use crate::app::App;
use crate::errors::AppResult;

/// `GET /health`: answers 200 when the database answers.
pub async fn health(app: web::Data<App>) -> AppResult<HttpResponse> {
    app.db
        .run(|conn| {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}
