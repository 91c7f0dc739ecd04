//! Building and running the server. [`Application::build`] binds the listener first and
//! exposes the port, so tests start the real server on port 0 exactly as production does.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App as ActixApp, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::app::App;
use crate::config::Config;
use crate::errors::{json_config_error, path_config_error, query_config_error};
use crate::router;
use crate::telemetry::RequestSpan;

/// Largest JSON body of any API call other than publish.
const JSON_LIMIT: usize = 64 * 1024;

pub struct Application {
    port: u16,
    server: Server,
    app: web::Data<App>,
}

impl Application {
    pub fn build(mut config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind)
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let port = listener.local_addr()?.port();
        config.set_bound_port(port)?;
        let app = web::Data::new(App::build(config)?);
        let server = run(listener, app.clone())?;
        Ok(Self { port, server, app })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn app(&self) -> web::Data<App> {
        self.app.clone()
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests (up to 30 s). Meanwhile
    /// expired Trusted Publishing tokens and used `jti`s are deleted every few minutes (on
    /// every instance; the deletes are idempotent).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let cleaner = tokio::spawn(clean_up_periodically(self.app.clone()));
        let result = self.server.await;
        cleaner.abort();
        result
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

fn run(listener: TcpListener, app: web::Data<App>) -> anyhow::Result<Server> {
    let server = HttpServer::new(move || {
        ActixApp::new()
            .wrap(TracingLogger::<RequestSpan>::new())
            .app_data(app.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(JSON_LIMIT)
                    .error_handler(|e, _| json_config_error(e)),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| query_config_error(e)))
            .app_data(web::PathConfig::default().error_handler(|e, _| path_config_error(e)))
            .configure(router::configure)
    })
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}

const CLEAN_UP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

async fn clean_up_periodically(app: web::Data<App>) {
    let mut interval = tokio::time::interval(CLEAN_UP_INTERVAL);
    loop {
        interval.tick().await;
        let result = app
            .db
            .run(|conn| {
                Ok(crate::models::trustpub_token::clean_up(
                    conn,
                    crate::models::now(),
                )?)
            })
            .await;
        match result {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "expired trusted publishing tokens and jtis deleted"),
            Err(error) => tracing::warn!(?error, "clean-up of expired tokens failed"),
        }
    }
}
