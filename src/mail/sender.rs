//! The mail sender: one task per instance that delivers the outbox.
//!
//! It claims due rows in small batches under a lease ([`super::outbox::claim`]), sends each over
//! SMTP, and marks it sent; a failed attempt reschedules the row with exponential backoff up to
//! a cap, so a mail server that is down only delays mail. A rejection the server calls
//! permanent (a 5xx reply) is retried a few times, in case it came from a passing
//! misconfiguration, and then given up. It wakes at once when a transaction of this process
//! has enqueued mail, and polls meanwhile (for mail other instances enqueued and for retries
//! coming due). Delivered rows are pruned after [`SENT_RETENTION`].
//!
//! Without `WHARF_SMTP_URL` nothing is sent: rows are ended as not sent ("mail is off"), so
//! they do not pile up; the audit log has recorded each change anyway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::MailEvent;
use super::outbox::{self, OutboxRow};
use super::settings::{MailSettings, SmtpSettings, SmtpTls};
use crate::db::Database;
use crate::metrics::Metrics;
use crate::models::now;

/// Rows claimed at once. With the send timeout this bounds how long a batch takes, which the
/// lease must outlast.
const BATCH: i64 = 10;
/// A permanent rejection is given up after this many attempts.
const PERMANENT_ATTEMPTS: i32 = 3;
/// Delivered rows are kept this long (to look into a complaint), then deleted.
pub const SENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Rows given up (or not sent because mail is off) are kept this long.
pub const FAILED_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);
const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// The running sender; [`SenderHandle::stop`] ends it after the message in flight.
pub struct SenderHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SenderHandle {
    /// Asks the sender to stop and waits for it: a message being sent is finished and marked,
    /// rows claimed but not yet sent are released for any instance to take.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the mail sender ended abnormally");
        }
    }
}

struct Sender {
    db: Database,
    settings: MailSettings,
    base_url: String,
    metrics: Arc<Metrics>,
    transport: Option<Transport>,
}

/// Starts the sender of this instance. Fails (at start) if the SMTP settings cannot make a
/// transport.
pub fn spawn(
    db: Database,
    settings: MailSettings,
    base_url: String,
    metrics: Arc<Metrics>,
) -> anyhow::Result<SenderHandle> {
    let transport = settings
        .smtp
        .as_ref()
        .map(|smtp| transport(smtp, settings.send_timeout))
        .transpose()?;
    let (stop, stopped) = watch::channel(false);
    let sender = Sender {
        db,
        settings,
        base_url,
        metrics,
        transport,
    };
    let task = tokio::spawn(sender.run(stopped));
    Ok(SenderHandle { stop, task })
}

fn transport(smtp: &SmtpSettings, timeout: Duration) -> anyhow::Result<Transport> {
    let tls_parameters = || {
        TlsParameters::new(smtp.host.clone()).map_err(|e| {
            anyhow::anyhow!("WHARF_SMTP_URL: cannot set up TLS for {}: {e}", smtp.host)
        })
    };
    let tls = match smtp.tls {
        SmtpTls::Wrapper => Tls::Wrapper(tls_parameters()?),
        SmtpTls::StartTlsRequired => Tls::Required(tls_parameters()?),
        SmtpTls::Opportunistic => Tls::Opportunistic(tls_parameters()?),
    };
    let mut builder = Transport::builder_dangerous(smtp.host.clone())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some((user, password)) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    Ok(builder.build())
}

/// Why one attempt failed.
enum Failure {
    /// Try again later.
    Transient(String),
    /// The server refused the message for good (or it cannot be built).
    Permanent(String),
}

impl Sender {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let wake = self.db.outbox_wake();
        let mut last_prune: Option<Instant> = None;
        loop {
            if *stopped.borrow() {
                break;
            }
            if let Err(error) = self.drain(&stopped).await {
                tracing::warn!(error = %format!("{error:#}"), "the mail sender could not read the outbox");
            }
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
                last_prune = Some(Instant::now());
                self.prune().await;
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = stopped.changed() => {}
            }
        }
    }

    /// Sends every due row, batch by batch, until none is left or the sender is stopped.
    async fn drain(&self, stopped: &watch::Receiver<bool>) -> anyhow::Result<()> {
        loop {
            let lease_id = format!("{:032x}", rand::rng().random::<u128>());
            let now = now();
            let lease_until = now + chrono::Duration::from_std(self.settings.lease)?;
            let claim_id = lease_id.clone();
            let batch = self
                .db
                .transaction(move |conn| {
                    Ok(outbox::claim(conn, &claim_id, now, lease_until, BATCH)?)
                })
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.detail()))?;
            if batch.is_empty() {
                return Ok(());
            }
            for row in batch {
                if *stopped.borrow() {
                    // Claimed but not sent: any instance may take it at once.
                    self.finish(row.id, &lease_id, Outcome::Release).await;
                    continue;
                }
                let outcome = self.deliver(&row).await;
                self.finish(
                    row.id,
                    &lease_id,
                    outcome.into_outcome(&row, &self.settings),
                )
                .await;
            }
        }
    }

    async fn deliver(&self, row: &OutboxRow) -> Delivery {
        let Some(transport) = &self.transport else {
            return Delivery::Off;
        };
        let message = match self.message(row) {
            Ok(message) => message,
            Err(error) => return Delivery::Failed(Failure::Permanent(error)),
        };
        let sent = tokio::time::timeout(
            self.settings.send_timeout + Duration::from_secs(5),
            transport.send(message),
        )
        .await;
        match sent {
            Ok(Ok(_)) => Delivery::Sent,
            Ok(Err(error)) => {
                let text = error.to_string();
                tracing::warn!(
                    outbox.id = row.id,
                    krate.name = %row.crate_name,
                    smtp.status = ?error.status().map(|code| code.to_string()),
                    smtp.permanent = error.is_permanent(),
                    "mail not delivered; it will be retried"
                );
                if error.is_permanent() {
                    Delivery::Failed(Failure::Permanent(text))
                } else {
                    Delivery::Failed(Failure::Transient(text))
                }
            }
            Err(_) => {
                tracing::warn!(outbox.id = row.id, "the SMTP server did not answer in time");
                Delivery::Failed(Failure::Transient(
                    "the SMTP server did not answer in time".to_owned(),
                ))
            }
        }
    }

    fn message(&self, row: &OutboxRow) -> Result<Message, String> {
        let event: MailEvent = serde_json::from_str(&row.event)
            .map_err(|e| format!("the stored event cannot be read: {e}"))?;
        let rendered = event.render(&row.crate_name, &self.base_url);
        let to: Mailbox = row
            .recipient
            .parse()
            .map_err(|e| format!("the recipient is not a valid address: {e}"))?;
        Message::builder()
            .from(self.settings.from.clone())
            .to(to)
            .subject(rendered.subject)
            .header(ContentType::TEXT_PLAIN)
            .header(AutoSubmitted)
            .body(rendered.body)
            .map_err(|e| format!("the message cannot be built: {e}"))
    }

    async fn finish(&self, id: i64, lease_id: &str, outcome: Outcome) {
        match &outcome {
            Outcome::Sent => self.metrics.mail_sent(),
            Outcome::Retry { .. } => self.metrics.mail_failed(false),
            Outcome::GiveUp { .. } => self.metrics.mail_failed(true),
            Outcome::Off | Outcome::Release => {}
        }
        let lease_id = lease_id.to_owned();
        let result = self
            .db
            .transaction(move |conn| {
                let now = now();
                let held = match outcome {
                    Outcome::Sent => outbox::mark_sent(conn, id, &lease_id, now)?,
                    Outcome::Retry {
                        attempts,
                        after,
                        error,
                    } => {
                        let next = now + chrono::Duration::from_std(after).unwrap_or_default();
                        outbox::reschedule(conn, id, &lease_id, attempts, next, &error)?
                    }
                    Outcome::GiveUp { attempts, error } => {
                        outbox::give_up(conn, id, &lease_id, attempts, now, &error)?
                    }
                    Outcome::Off => outbox::give_up(
                        conn,
                        id,
                        &lease_id,
                        0,
                        now,
                        "not sent: mail is off (WHARF_SMTP_URL is not set)",
                    )?,
                    Outcome::Release => outbox::release(conn, id, &lease_id)?,
                };
                Ok(held)
            })
            .await;
        match result {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                outbox.id = id,
                "the lease of a mail ran out before it was marked"
            ),
            // The row stays leased; once the lease runs out it is sent again (at least once).
            Err(error) => {
                tracing::error!(outbox.id = id, error = %error.detail(), "cannot mark a mail")
            }
        }
    }

    async fn prune(&self) {
        let now = now();
        let sent_before = now - chrono::Duration::from_std(SENT_RETENTION).unwrap_or_default();
        let failed_before = now - chrono::Duration::from_std(FAILED_RETENTION).unwrap_or_default();
        let result = self
            .db
            .transaction(move |conn| Ok(outbox::prune(conn, sent_before, failed_before)?))
            .await;
        match result {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "old mail outbox rows deleted"),
            Err(error) => tracing::warn!(error = %error.detail(), "cannot prune the mail outbox"),
        }
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): vacation responders and the like do not answer.
#[derive(Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// What one attempt came to.
enum Delivery {
    Sent,
    Failed(Failure),
    /// No SMTP server is configured.
    Off,
}

/// What is written back for a row.
enum Outcome {
    Sent,
    Retry {
        attempts: i32,
        after: Duration,
        error: String,
    },
    GiveUp {
        attempts: i32,
        error: String,
    },
    Off,
    Release,
}

impl Delivery {
    fn into_outcome(self, row: &OutboxRow, settings: &MailSettings) -> Outcome {
        let attempts = row.attempts.saturating_add(1);
        match self {
            Delivery::Sent => Outcome::Sent,
            Delivery::Off => Outcome::Off,
            Delivery::Failed(Failure::Permanent(error)) if attempts >= PERMANENT_ATTEMPTS => {
                Outcome::GiveUp { attempts, error }
            }
            Delivery::Failed(Failure::Permanent(error) | Failure::Transient(error)) => {
                Outcome::Retry {
                    attempts,
                    after: settings.backoff(u32::try_from(attempts).unwrap_or(u32::MAX)),
                    error,
                }
            }
        }
    }
}
