//! Prometheus metrics, served as Prometheus text (version 0.0.4) at `/metrics` on the separate
//! listener `WHARF_METRICS_BIND`, never on the main one.
//!
//! The registry of metrics is [`Metrics::new`]: every metric is registered there, with its
//! help text. Counters and histograms are updated where things happen (the HTTP middleware
//! [`track_requests`], the exchange handler, the rate limiter); values that are read from
//! state at scrape time are [`Collector`]s registered there too — the database pool is
//! [`PoolCollector`], and a later gauge of the same kind (such as a mail outbox's backlog) is
//! one more collector registered next to it.
//!
//! | metric | labels |
//! | --- | --- |
//! | `wharf_http_requests_total` | `route` (the matched pattern, `unmatched` for none), `method`, `status` |
//! | `wharf_http_request_duration_seconds` (histogram) | `route`, `method` |
//! | `wharf_publishes_total` | `method` (`token`, `trusted_publishing`), `outcome` (`ok`, `refused`, `rate_limited`, `error`) |
//! | `wharf_exchanges_total` | `provider` (`unknown` before the token is verified), `outcome` (`ok`, `refused`, `error`), `reason` |
//! | `wharf_rate_limited_total` | `action` |
//! | `wharf_db_pool_connections`, `wharf_db_pool_idle_connections`, `wharf_db_pool_max_connections` | |
//! | `wharf_mail_sent_total`, `wharf_mail_failures_total` (failed attempts; `outcome`: `retry`, `given_up`) | |
//! | `wharf_mail_outbox_backlog`, `wharf_mail_outbox_oldest_age_seconds` (read at scrape time) | |
//! | `wharf_build_info` | `version` |

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use anyhow::Context;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::db::Database;
use crate::errors::AppError;
use crate::limits::Action;
use crate::trustpub::VerifyError;

/// Latency buckets, in seconds: index reads take milliseconds, publishes up to seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
];

/// The `provider` of an exchange refused before its ID token was verified.
pub const UNKNOWN_PROVIDER: &str = "unknown";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PublishLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    provider: String,
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Why an exchange was refused: a small fixed set of classes (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeReason {
    /// The ID token failed verification: shape, signature, issuer, audience, times, claims.
    InvalidToken,
    /// The issuer's keys could not be fetched (503, "try again").
    IssuerUnavailable,
    /// No trusted publisher config matches the verified identity.
    NoMatch,
    /// The ID token's `jti` was exchanged before.
    Replay,
    /// Over a rate limit (429).
    RateLimited,
}

impl ExchangeReason {
    pub const ALL: [ExchangeReason; 5] = [
        ExchangeReason::InvalidToken,
        ExchangeReason::IssuerUnavailable,
        ExchangeReason::NoMatch,
        ExchangeReason::Replay,
        ExchangeReason::RateLimited,
    ];

    /// The refusals possible before an ID token is verified, whose provider is `unknown`;
    /// their series exist from the start, at 0.
    pub const BEFORE_VERIFICATION: [ExchangeReason; 3] = [
        ExchangeReason::InvalidToken,
        ExchangeReason::IssuerUnavailable,
        ExchangeReason::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeReason::InvalidToken => "invalid_token",
            ExchangeReason::IssuerUnavailable => "issuer_unavailable",
            ExchangeReason::NoMatch => "no_match",
            ExchangeReason::Replay => "replay",
            ExchangeReason::RateLimited => "rate_limited",
        }
    }

    /// The class of a verification failure.
    pub fn of_verify(error: &VerifyError) -> Self {
        match error {
            VerifyError::InvalidToken(_) => ExchangeReason::InvalidToken,
            VerifyError::Unavailable(_) => ExchangeReason::IssuerUnavailable,
        }
    }
}

/// Every metric, and the registry that encodes them. Built once, shared through the `App`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    publishes: Family<PublishLabels, Counter>,
    exchanges: Family<ExchangeLabels, Counter>,
    rate_limited: Family<ActionLabels, Counter>,
    mail_sent: Counter,
    mail_failures: Family<OutcomeLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The registry of metrics: every metric Wharf exports is registered here.
    pub fn new(db: &Database) -> Self {
        let mut registry = Registry::with_prefix("wharf");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route pattern, method and status",
            requests.clone(),
        );
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival until its response starts, by route and method",
            latency.clone(),
        );
        let publishes = Family::<PublishLabels, Counter>::default();
        registry.register(
            "publishes",
            "Publishes (PUT /api/v1/crates/new), by token kind and outcome",
            publishes.clone(),
        );
        for method in ["token", "trusted_publishing"] {
            for outcome in ["ok", "refused", "rate_limited", "error"] {
                drop(publishes.get_or_create(&PublishLabels { method, outcome }));
            }
        }
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        registry.register(
            "exchanges",
            "Trusted Publishing token exchanges, by CI provider, outcome and refusal reason",
            exchanges.clone(),
        );
        for reason in ExchangeReason::BEFORE_VERIFICATION {
            drop(exchanges.get_or_create(&ExchangeLabels {
                provider: UNKNOWN_PROVIDER.to_owned(),
                outcome: "refused",
                reason: reason.as_str(),
            }));
        }
        let rate_limited = Family::<ActionLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 by a rate limit, by limit",
            rate_limited.clone(),
        );
        for action in Action::ALL {
            drop(rate_limited.get_or_create(&ActionLabels {
                action: action.as_str(),
            }));
        }
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "The running Wharf's version (always 1)",
            build,
        );
        let mail_sent = Counter::default();
        registry.register(
            "mail_sent",
            "Notification mails the SMTP server accepted",
            mail_sent.clone(),
        );
        let mail_failures = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "mail_failures",
            "Failed attempts to send a notification mail, by what followed (retry later, or given up)",
            mail_failures.clone(),
        );
        for outcome in ["retry", "given_up"] {
            drop(mail_failures.get_or_create(&OutcomeLabels { outcome }));
        }
        registry.register_collector(Box::new(PoolCollector { db: db.clone() }));
        registry.register_collector(Box::new(OutboxCollector { db: db.clone() }));
        Self {
            mail_sent,
            mail_failures,
            registry,
            requests,
            latency,
            publishes,
            exchanges,
            rate_limited,
        }
    }

    /// Prometheus text (version 0.0.4).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    fn request(&self, route: &str, method: &str, status: StatusCode, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status: status.as_u16(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(seconds);
    }

    fn publish(&self, method: &'static str, status: StatusCode) {
        let outcome = match status {
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            s if s.is_success() => "ok",
            s if s.is_client_error() => "refused",
            _ => "error",
        };
        self.publishes
            .get_or_create(&PublishLabels { method, outcome })
            .inc();
    }

    pub fn rate_limited(&self, action: Action) {
        self.rate_limited
            .get_or_create(&ActionLabels {
                action: action.as_str(),
            })
            .inc();
    }

    fn exchange(&self, provider: &str, outcome: &'static str, reason: &'static str) {
        self.exchanges
            .get_or_create(&ExchangeLabels {
                provider: provider.to_owned(),
                outcome,
                reason,
            })
            .inc();
    }

    pub fn exchange_ok(&self, provider: &str) {
        self.exchange(provider, "ok", "none");
    }

    pub fn exchange_refused(&self, provider: &str, reason: ExchangeReason) {
        self.exchange(provider, "refused", reason.as_str());
    }

    /// A refusal with `reason` when `error` is the client's (a 429 is `rate_limited`
    /// whatever the site); nothing for a server error, which the caller counts once with
    /// [`Metrics::exchange_error_if_server`] where every error of the exchange passes.
    pub fn exchange_refused_by(&self, provider: &str, error: &AppError, reason: ExchangeReason) {
        match error.status() {
            StatusCode::TOO_MANY_REQUESTS => {
                self.exchange_refused(provider, ExchangeReason::RateLimited);
            }
            status if status.is_client_error() => self.exchange_refused(provider, reason),
            _ => {}
        }
    }

    /// An `error` outcome when `error` is a server error (a bug, or the database down).
    pub fn exchange_error_if_server(&self, provider: &str, error: &AppError) {
        if error.status().is_server_error() {
            self.exchange(provider, "error", "none");
        }
    }

    pub fn mail_sent(&self) {
        self.mail_sent.inc();
    }

    /// A failed attempt to send a mail; `given_up`: it is not tried again.
    pub fn mail_failed(&self, given_up: bool) {
        let outcome = if given_up { "given_up" } else { "retry" };
        self.mail_failures
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Both of the above, for a step outside the exchange transaction.
    pub fn exchange_failed(&self, provider: &str, error: &AppError, reason: ExchangeReason) {
        self.exchange_refused_by(provider, error, reason);
        self.exchange_error_if_server(provider, error);
    }
}

/// The database pool's use, read at each scrape.
struct PoolCollector {
    db: Database,
}

impl std::fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolCollector")
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.db.pool_state();
        for (name, help, value) in [
            (
                "db_pool_connections",
                "Database connections open (in use and idle)",
                state.connections,
            ),
            (
                "db_pool_idle_connections",
                "Database connections open and idle",
                state.idle_connections,
            ),
            (
                "db_pool_max_connections",
                "The most database connections the pool opens (WHARF_DATABASE_POOL_SIZE)",
                state.max_size,
            ),
        ] {
            let gauge = ConstGauge::new(i64::from(value));
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// The mail outbox's backlog, read from the database at each scrape (which runs on the
/// blocking pool): rows not delivered yet, and the age of the oldest. A scrape that cannot
/// read the database leaves both out (the pool gauges still show it).
struct OutboxCollector {
    db: Database,
}

impl std::fmt::Debug for OutboxCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutboxCollector")
    }
}

impl Collector for OutboxCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let backlog = self
            .db
            .blocking(|conn| Ok(crate::mail::outbox::backlog(conn)?));
        let (rows, oldest) = match backlog {
            Ok(backlog) => backlog,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot read the mail outbox backlog");
                return Ok(());
            }
        };
        let age = oldest.map_or(0, |oldest| {
            (crate::models::now() - oldest).num_seconds().max(0)
        });
        for (name, help, value) in [
            (
                "mail_outbox_backlog",
                "Notification mails written to the outbox and not delivered yet",
                rows,
            ),
            (
                "mail_outbox_oldest_age_seconds",
                "Age of the oldest notification mail not delivered yet (0 when none waits)",
                age,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// The publish route, whose requests also count in `wharf_publishes_total`.
const PUBLISH_ROUTE: &str = "/api/v1/crates/new";

/// Middleware: counts every request by its matched route pattern (never the raw path, so a
/// scan of random URLs adds no series), method and status, and observes its latency.
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<crate::app::App>>()
        .map(|app| app.metrics.clone());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let publish_method = (route == PUBLISH_ROUTE).then(|| {
        // The kind of token, by its prefix, as `auth` tells them apart; none counts as `token`.
        let trustpub = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let value = value.trim();
                let token = value
                    .get(..7)
                    .filter(|prefix| prefix.eq_ignore_ascii_case("bearer "))
                    .map_or(value, |_| value[7..].trim());
                token.starts_with(crate::tokens::TRUSTPUB_TOKEN_PREFIX)
            });
        if trustpub {
            "trusted_publishing"
        } else {
            "token"
        }
    });
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        metrics.request(&route, &method, status, started.elapsed().as_secs_f64());
        if let Some(publish_method) = publish_method {
            metrics.publish(publish_method, status);
        }
    }
    result
}

/// The metrics listener: `/metrics` and nothing else (404), on its own small server.
pub fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
) -> anyhow::Result<actix_web::dev::Server> {
    let metrics = web::Data::from(metrics);
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(metrics.clone())
            .route("/metrics", web::get().to(scrape))
            .route("/metrics", web::head().to(scrape))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)
    .context("cannot serve metrics")?
    .run();
    Ok(server)
}

async fn scrape(metrics: web::Data<Metrics>) -> HttpResponse {
    match web::block(move || metrics.encode()).await {
        Ok(Ok(text)) => HttpResponse::Ok()
            .content_type(prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
            .body(text),
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot encode the metrics");
            HttpResponse::InternalServerError().finish()
        }
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The value of one series in Prometheus text, for the tests of this module.
#[cfg(test)]
fn sample_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn every_reason_class_has_a_distinct_label() {
        let mut names: Vec<_> = ExchangeReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ExchangeReason::ALL.len());
        assert_eq!(
            ExchangeReason::of_verify(&VerifyError::Unavailable("x".into())),
            ExchangeReason::IssuerUnavailable
        );
        assert_eq!(
            ExchangeReason::of_verify(&VerifyError::InvalidToken("x".into())),
            ExchangeReason::InvalidToken
        );
    }

    #[test]
    fn publishes_are_classified_by_status() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&crate::config::DatabaseConfig {
            url: crate::config::Secret::new(format!(
                "sqlite://{}",
                dir.path().join("m.db").display()
            )),
            pool_size: 1,
        })
        .unwrap();
        let metrics = Metrics::new(&db);
        metrics.publish("token", StatusCode::OK);
        metrics.publish("token", StatusCode::TOO_MANY_REQUESTS);
        metrics.publish("trusted_publishing", StatusCode::FORBIDDEN);
        metrics.publish("trusted_publishing", StatusCode::SERVICE_UNAVAILABLE);
        let text = metrics.encode().unwrap();
        let value = |series: &str| sample_value(&text, series);
        assert_eq!(
            value(r#"wharf_publishes_total{method="token",outcome="ok"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(r#"wharf_publishes_total{method="token",outcome="rate_limited"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(r#"wharf_publishes_total{method="trusted_publishing",outcome="refused"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(r#"wharf_publishes_total{method="trusted_publishing",outcome="error"}"#),
            Some(1.0)
        );
        let build = format!(
            r#"wharf_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(value(&build), Some(1.0));
        assert_eq!(value("wharf_db_pool_max_connections"), Some(1.0));
    }
}
