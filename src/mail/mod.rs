//! Notification mail to crate owners, through an outbox.
//!
//! Every change an owner must hear of (a trusted publisher added or removed, "require Trusted
//! Publishing" changed, an owner added or removed, a version published through Trusted
//! Publishing, an exchanged token revoked) calls [`outbox::notify_owners`] inside the
//! transaction that makes the change: one row per owner with an email address goes into
//! `mail_outbox`, and an owner without one gets an audit-log row saying the mail was skipped.
//! The change and its mail commit together or not at all.
//!
//! - [`event`]: the typed events ([`MailEvent`], stored as JSON) and their plain-text rendering.
//! - [`outbox`]: the table's model: enqueue, claim with a lease, mark sent or retry, prune.
//! - [`sender`]: the task each instance runs: claims due rows, sends them over SMTP
//!   (`lettre`), retries with capped exponential backoff; woken at once after a commit that
//!   enqueued mail, and polling meanwhile.
//! - [`settings`]: `WHARF_SMTP_URL` and `WHARF_MAIL_FROM`, checked at start.
//!
//! Delivery is at least once: a row is marked sent right after the server accepted it, under
//! a lease no other instance can take meanwhile. Only an instance that dies (or loses the
//! database) between the server's acceptance and that mark leaves a row whose lease expires
//! and which is sent again.

pub mod event;
pub mod outbox;
pub mod sender;
pub mod settings;

pub use event::MailEvent;
pub use settings::{MailSettings, SmtpSettings};
