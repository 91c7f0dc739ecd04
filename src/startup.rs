//! Building and running the server. [`Application::build`] binds the listener first and
//! exposes the port, so tests start the real server on port 0 exactly as production does.

use std::net::TcpListener;

use std::path::Path;

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App as ActixApp, HttpServer, web};
use anyhow::{Context, bail};
use base64::Engine as _;
use tracing_actix_web::TracingLogger;

use crate::app::App;
use crate::config::Config;
use crate::errors::{json_config_error, path_config_error, query_config_error};
use crate::telemetry::RequestSpan;
use crate::{content_encoding, head, pages, router};

/// Largest JSON body of any API call other than publish.
const JSON_LIMIT: usize = 64 * 1024;

pub struct Application {
    port: u16,
    server: Server,
    app: web::Data<App>,
    /// The metrics listener's port and server, with `WHARF_METRICS_BIND`.
    metrics: Option<(u16, Server)>,
}

impl Application {
    pub fn build(mut config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind)
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let port = listener.local_addr()?.port();
        config.set_bound_port(port)?;
        let session_key = load_session_key(&config)?;
        let metrics_listener = match config.metrics_bind {
            Some(bind) => Some(
                TcpListener::bind(bind)
                    .with_context(|| format!("cannot listen on {bind} (WHARF_METRICS_BIND)"))?,
            ),
            None => None,
        };
        let app = web::Data::new(App::build(config)?);
        let server = run(listener, app.clone(), session_key)?;
        let metrics = match metrics_listener {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                Some((port, crate::metrics::serve(listener, app.metrics.clone())?))
            }
            None => None,
        };
        Ok(Self {
            port,
            server,
            app,
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The metrics listener's port, when `WHARF_METRICS_BIND` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    pub fn app(&self) -> web::Data<App> {
        self.app.clone()
    }

    /// Serves until SIGINT/SIGTERM, then drains in-flight requests (up to 30 s). Meanwhile
    /// expired Trusted Publishing tokens, used `jti`s, expired sessions and ended rate-limit
    /// windows are deleted every few minutes (on every instance; the deletes are idempotent).
    /// The metrics listener, if any, serves alongside and stops after the main server. The
    /// mail sender delivers the outbox meanwhile, and stops after the server has drained
    /// (finishing the message it is sending).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let cleaner = tokio::spawn(clean_up_periodically(self.app.clone()));
        let mail = crate::mail::sender::spawn(
            self.app.db.clone(),
            self.app.config.mail.clone(),
            self.app.config.base_url().to_owned(),
            self.app.metrics.clone(),
        )
        .map_err(std::io::Error::other)?;
        // Without the cache there is nothing to keep in step.
        let watcher = if self.app.config.limits.index_cache_size > 0 {
            Some(crate::index_cache::watcher::spawn(
                self.app.index_cache.clone(),
                self.app.db.clone(),
            )?)
        } else {
            None
        };
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let result = self.server.await;
        cleaner.abort();
        mail.stop().await;
        // Stops the watcher's thread (within a fraction of a second).
        drop(watcher);
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            drop(task.await);
        }
        result
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// The Content-Security-Policy of every response: no script at all, styles and images from
/// this site (avatars from https hosts), forms only to this site, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sent on every response when the public URL is https: browsers then use https only.
const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

fn run(listener: TcpListener, app: web::Data<App>, session_key: Key) -> anyhow::Result<Server> {
    let https = app.config.is_https();
    // The cookie expires with the session; the server checks the session's own expiry.
    let session_ttl = actix_web::cookie::time::Duration::seconds(
        i64::try_from(app.config.session_ttl.as_secs()).context("WHARF_SESSION_TTL is too long")?,
    );
    let server = HttpServer::new(move || {
        let sessions =
            SessionMiddleware::builder(CookieSessionStore::default(), session_key.clone())
                .cookie_name("wharf_session".to_owned())
                .cookie_secure(https)
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_path("/".to_owned())
                .cookie_content_security(CookieContentSecurity::Private)
                .session_lifecycle(PersistentSession::default().session_ttl(session_ttl))
                .build();
        let mut headers = DefaultHeaders::new()
            .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
            .add(("X-Content-Type-Options", "nosniff"))
            .add(("Referrer-Policy", "same-origin"))
            .add(("X-Frame-Options", "DENY"));
        if https {
            headers = headers.add(("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY));
        }
        ActixApp::new()
            .wrap(from_fn(content_encoding::refuse_encoded_bodies))
            .wrap(from_fn(crate::private::require_credential))
            .wrap(from_fn(head::head_as_get))
            .wrap(sessions)
            .wrap(headers)
            .wrap(TracingLogger::<RequestSpan>::new())
            .wrap(from_fn(crate::metrics::track_requests))
            .app_data(app.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(JSON_LIMIT)
                    .error_handler(|e, _| json_config_error(e)),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, req| {
                if pages::is_page_request(req) {
                    pages::errors::bad_query(e)
                } else {
                    query_config_error(e)
                }
            }))
            .app_data(web::PathConfig::default().error_handler(|e, _| path_config_error(e)))
            .configure(router::configure)
    })
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}

const CLEAN_UP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// One periodic clean-up: what it deletes (for the log) and the query that deletes it.
type CleanUp = (
    &'static str,
    fn(&mut crate::db::DbConn, chrono::NaiveDateTime) -> diesel::QueryResult<usize>,
);

const CLEAN_UPS: [CleanUp; 4] = [
    (
        "expired trusted publishing tokens and jtis",
        crate::models::trustpub_token::clean_up,
    ),
    ("expired sessions", crate::models::session::clean_up),
    (
        "expired pending publishers",
        crate::models::pending_config::clean_up,
    ),
    ("ended rate-limit windows", crate::limits::clean_up),
];

async fn clean_up_periodically(app: web::Data<App>) {
    let mut interval = tokio::time::interval(CLEAN_UP_INTERVAL);
    loop {
        interval.tick().await;
        for (what, clean_up) in CLEAN_UPS {
            let result = app
                .db
                .run(move |conn| Ok(clean_up(conn, crate::models::now())?))
                .await;
            match result {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "{what} deleted"),
                Err(error) => tracing::warn!(?error, "clean-up of {what} failed"),
            }
        }
    }
}

/// The shortest session key accepted (the cookie key derives signing and encryption keys).
pub const MIN_SESSION_KEY_BYTES: usize = 64;
const SESSION_KEY_FILE: &str = "session.key";

/// The key for session cookies: `WHARF_SESSION_KEY` (hex or base64, at least 64 bytes), or one
/// generated on the first start and kept in `$WHARF_DATA_DIR/session.key` (mode 0600).
pub fn load_session_key(config: &Config) -> anyhow::Result<Key> {
    let bytes = match &config.session_key {
        Some(secret) => decode_session_key(secret.expose())?,
        None => session_key_from_file(&config.data_dir)?,
    };
    Ok(Key::from(&bytes))
}

fn decode_session_key(text: &str) -> anyhow::Result<Vec<u8>> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .or_else(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .ok()
        })
        .context(
            "WHARF_SESSION_KEY must be hex or base64 (generate one with `openssl rand -hex 64`)",
        )?;
    if bytes.len() < MIN_SESSION_KEY_BYTES {
        bail!(
            "WHARF_SESSION_KEY must hold at least {MIN_SESSION_KEY_BYTES} bytes, it has {} (generate one with `openssl rand -hex 64`)",
            bytes.len()
        );
    }
    Ok(bytes)
}

fn session_key_from_file(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(SESSION_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return decode_session_key(&text)
                .with_context(|| format!("in the session key file {}", path.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", path.display()));
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    let mut bytes = vec![0u8; MIN_SESSION_KEY_BYTES];
    rand::Rng::fill(&mut rand::rng(), bytes.as_mut_slice());
    write_private_file(&path, &hex::encode(&bytes))?;
    tracing::info!(path = %path.display(), "generated a session key");
    Ok(bytes)
}

/// Creates `path` (which must not exist) readable and writable by the owner only.
fn write_private_file(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_must_be_long_enough() {
        assert!(decode_session_key(&"ab".repeat(63)).is_err());
        assert!(decode_session_key(&"ab".repeat(64)).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
        assert!(decode_session_key(&b64).is_ok());
        assert!(decode_session_key("not a key").is_err());
    }

    #[test]
    fn a_generated_session_key_is_kept_private_and_reused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = session_key_from_file(dir.path())?;
        let second = session_key_from_file(dir.path())?;
        assert_eq!(first, second);
        assert_eq!(first.len(), MIN_SESSION_KEY_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(SESSION_KEY_FILE))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        Ok(())
    }
}
