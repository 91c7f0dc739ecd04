//! `WHARF_SMTP_URL` and `WHARF_MAIL_FROM`, read once at start; a bad value stops the start with
//! a message that says what to set.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use lettre::message::Mailbox;
use lettre::transport::smtp::client::TlsParameters;
use url::Url;

use crate::config::Secret;

/// How notification mail is sent.
#[derive(Clone)]
pub struct MailSettings {
    /// `None` (`WHARF_SMTP_URL` unset): no mail is sent; the audit log still records every
    /// change.
    pub smtp: Option<SmtpSettings>,
    /// The `From:` of every message (`WHARF_MAIL_FROM`).
    pub from: Mailbox,
    /// The first retry waits this long; each further one twice as long, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often a sender looks for due rows when nothing woke it.
    pub poll_interval: Duration,
    /// How long a claimed row stays with the sender that claimed it.
    pub lease: Duration,
    /// How long one SMTP delivery may take.
    pub send_timeout: Duration,
}

/// How TLS is used towards the SMTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    Wrapper,
    /// `smtp://` with credentials: STARTTLS, refusing to go on without it.
    StartTlsRequired,
    /// `smtp://` without credentials: STARTTLS when the server offers it.
    Opportunistic,
}

#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// User name and password from the URL, percent-decoded.
    pub credentials: Option<(String, Secret)>,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(user, _)| user),
            )
            .finish()
    }
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp", &self.smtp)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl MailSettings {
    /// From the two settings; `public_url` gives the default sender's domain.
    pub fn parse(
        smtp_url: Option<&str>,
        mail_from: Option<&str>,
        public_url: &Url,
    ) -> anyhow::Result<Self> {
        let smtp = smtp_url
            .filter(|url| !url.trim().is_empty())
            .map(parse_smtp_url)
            .transpose()?;
        let from = match mail_from {
            Some(from) => from.trim().parse::<Mailbox>().with_context(|| {
                format!(
                    "WHARF_MAIL_FROM: `{from}` is not an email address such as wharf@crates.example.com or `Wharf <wharf@crates.example.com>`"
                )
            })?,
            None => {
                let host = public_url
                    .host_str()
                    .context("WHARF_PUBLIC_URL has no host")?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                format!("wharf@{host}").parse::<Mailbox>().with_context(|| {
                    format!(
                        "the default sender wharf@{host} (from WHARF_PUBLIC_URL) is not a valid address; set WHARF_MAIL_FROM"
                    )
                })?
            }
        };
        Ok(MailSettings {
            smtp,
            from,
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(60 * 60),
            poll_interval: Duration::from_secs(10),
            lease: Duration::from_secs(5 * 60),
            send_timeout: Duration::from_secs(20),
        })
    }

    /// How long to wait before attempt `attempts + 1`, after `attempts` failed ones.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.retry_base
            .checked_mul(factor)
            .unwrap_or(self.retry_cap)
            .min(self.retry_cap)
    }
}

const SMTP_URL_HELP: &str = "use smtp://host:port or smtps://user:password@host:port";

/// `smtp://host[:port]`, `smtp://user:pass@host[:port]` (STARTTLS required), or
/// `smtps://[user:pass@]host[:port]`.
pub fn parse_smtp_url(value: &str) -> anyhow::Result<SmtpSettings> {
    let url = Url::parse(value.trim())
        .map_err(|_| anyhow::anyhow!("WHARF_SMTP_URL is not a URL; {SMTP_URL_HELP}"))?;
    let implicit_tls = match url.scheme() {
        "smtps" => true,
        "smtp" => false,
        other => bail!("WHARF_SMTP_URL: the scheme `{other}` is not supported; {SMTP_URL_HELP}"),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .with_context(|| format!("WHARF_SMTP_URL names no host; {SMTP_URL_HELP}"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        bail!("WHARF_SMTP_URL takes no path, query or fragment; {SMTP_URL_HELP}");
    }
    let credentials = if url.username().is_empty() {
        if url.password().is_some() {
            bail!("WHARF_SMTP_URL has a password but no user name; {SMTP_URL_HELP}");
        }
        None
    } else {
        let decode = |part: &str| {
            percent_decode(part)
                .with_context(|| "WHARF_SMTP_URL: the user name or password is not valid UTF-8")
        };
        let user = decode(url.username())?;
        let password = decode(url.password().unwrap_or_default())?;
        Some((user, Secret::new(password)))
    };
    let tls = if implicit_tls {
        SmtpTls::Wrapper
    } else if credentials.is_some() {
        SmtpTls::StartTlsRequired
    } else {
        SmtpTls::Opportunistic
    };
    // A relay on this machine (a sidecar, a test server) rarely speaks TLS, and nothing
    // crosses a network: STARTTLS when offered is enough there.
    let tls = if tls == SmtpTls::StartTlsRequired && is_loopback_host(&host) {
        SmtpTls::Opportunistic
    } else {
        tls
    };
    // The name TLS checks the server's certificate against: refused now rather than at the
    // first mail.
    if let Err(error) = TlsParameters::new(host.clone()) {
        bail!(
            "WHARF_SMTP_URL: `{host}` cannot be checked against a TLS certificate ({error}); {SMTP_URL_HELP}"
        );
    }
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 25 });
    Ok(SmtpSettings {
        host,
        port,
        tls,
        credentials,
    })
}

/// `localhost` or a loopback IP address. (`smtp:` is not a scheme the URL parser knows, so it
/// leaves the host as text.)
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn percent_decode(text: &str) -> anyhow::Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])?;
            out.push(u8::from_str_radix(hex, 16)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> Url {
        Url::parse("https://crates.example.com").expect("url")
    }

    #[test]
    fn smtp_urls_select_tls_port_and_credentials() -> anyhow::Result<()> {
        let plain = parse_smtp_url("smtp://mail.example.com")?;
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls),
            ("mail.example.com", 25, SmtpTls::Opportunistic)
        );
        assert!(plain.credentials.is_none());

        let submission = parse_smtp_url("smtp://bot:s%40cret@mail.example.com:587")?;
        assert_eq!(submission.port, 587);
        assert_eq!(submission.tls, SmtpTls::StartTlsRequired);
        let (user, password) = submission.credentials.expect("credentials");
        assert_eq!((user.as_str(), password.expose()), ("bot", "s@cret"));

        let implicit = parse_smtp_url("smtps://bot:pw@mail.example.com")?;
        assert_eq!((implicit.port, implicit.tls), (465, SmtpTls::Wrapper));

        for local in ["smtp://user:pw@127.0.0.1:2525", "smtp://user:pw@[::1]:2525"] {
            assert_eq!(
                parse_smtp_url(local)?.tls,
                SmtpTls::Opportunistic,
                "{local}"
            );
        }
        Ok(())
    }

    #[test]
    fn bad_smtp_urls_are_refused_saying_what_to_write() {
        for (url, wanted) in [
            ("mail.example.com", "is not a URL"),
            (
                "http://mail.example.com",
                "the scheme `http` is not supported",
            ),
            ("smtp://mail.example.com/path", "takes no path"),
            ("smtp://:pw@mail.example.com", "no user name"),
        ] {
            let message = format!("{:#}", parse_smtp_url(url).expect_err(url));
            assert!(message.contains(wanted), "{url}: {message}");
            assert!(message.contains("smtp://host:port"), "{url}: {message}");
        }
    }

    #[test]
    fn the_default_sender_is_wharf_at_the_public_host() -> anyhow::Result<()> {
        let settings = MailSettings::parse(None, None, &public())?;
        assert_eq!(settings.from.to_string(), "wharf@crates.example.com");
        assert!(settings.smtp.is_none());
        let local = MailSettings::parse(None, None, &Url::parse("http://127.0.0.1:8080")?)?;
        assert_eq!(local.from.email.domain(), "127.0.0.1");
        let named = MailSettings::parse(None, Some("Wharf <noreply@example.org>"), &public())?;
        assert_eq!(named.from.email.to_string(), "noreply@example.org");
        let bad = MailSettings::parse(None, Some("not an address"), &public());
        assert!(format!("{:#}", bad.expect_err("refused")).contains("WHARF_MAIL_FROM"));
        Ok(())
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() -> anyhow::Result<()> {
        let settings = MailSettings::parse(None, None, &public())?;
        let waits: Vec<u64> = (1..=9).map(|n| settings.backoff(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(settings.backoff(u32::MAX).as_secs(), 3600);
        Ok(())
    }
}
