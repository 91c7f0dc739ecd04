//! `GET /health` (the process is up) and `GET /ready` (it can serve: the database and the
//! storage answer). A load balancer sends traffic to ready instances; an orchestrator restarts
//! unhealthy ones, and must not restart an instance only because the database is down.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use diesel::RunQueryDsl;
use serde_json::json;

use crate::app::App;
use crate::errors::{AppResult, DisplayChain, service_unavailable};

/// How long each of `/ready`'s checks may take.
pub const READY_DEADLINE: Duration = Duration::from_secs(3);

/// `GET /health`: answers 200 while the process serves requests; touches nothing else.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 when a cheap query of the database and the storage's probe (see
/// [`crate::storage::Storage::check`]) both succeed within [`READY_DEADLINE`], checked at
/// once; else 503 naming what is down (the cause goes to the log, not to the client).
pub async fn ready(app: web::Data<App>) -> AppResult<HttpResponse> {
    let database = async {
        let query = app.db.run(|conn| {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        });
        match tokio::time::timeout(READY_DEADLINE, query).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(?error, "not ready: the database does not answer");
                false
            }
            Err(_) => {
                tracing::warn!("not ready: the database does not answer in time");
                false
            }
        }
    };
    let storage = async {
        match tokio::time::timeout(READY_DEADLINE, app.storage.check()).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(error = %DisplayChain(&error), "not ready: the crate storage does not answer");
                false
            }
            Err(_) => {
                tracing::warn!("not ready: the crate storage does not answer in time");
                false
            }
        }
    };
    let (database, storage) = futures_util::join!(database, storage);
    let down: Vec<&str> = [(database, "the database"), (storage, "the crate storage")]
        .into_iter()
        .filter(|(up, _)| !up)
        .map(|(_, what)| what)
        .collect();
    if down.is_empty() {
        return Ok(HttpResponse::Ok().json(json!({ "status": "ready" })));
    }
    Err(service_unavailable(format!(
        "not ready: {} cannot be reached; the cause is in this instance's log",
        down.join(" and ")
    )))
}
