//! Rate limits on publishes and Trusted Publishing exchanges, kept in the database so that they
//! hold across every instance sharing it.
//!
//! Each limit is a fixed window per (action, subject): the subject is a crate, a user or a
//! trusted publisher config, or a client address. One row per (action, subject) in
//! `rate_limits` holds the current window's start and its hits; a request is counted with one
//! atomic upsert (`INSERT … ON CONFLICT DO UPDATE … RETURNING`), which both backends serialise
//! on the row, so two instances never both let the last allowed request through. A window
//! starts at the first request after the previous one ended (so `Retry-After` is exact) and
//! never moves back, whichever instance's clock is behind. A burst at the end of one window
//! and the start of the next may reach twice the limit within one window's length, which is
//! the price of one row per subject.
//!
//! Where the checks sit:
//! - A publish is counted per crate and per publisher (the user of an API token, or the trusted
//!   publisher config a Trusted Publishing token was minted through) inside the publish
//!   transaction, before the file is stored, so a refused or failed publish counts nothing and
//!   leaves nothing. Before the upload is read, once the token is authenticated and
//!   authorised, the counters are read without counting, so a caller over the limit is refused
//!   without sending the crate file — and a bogus token still gets its 403.
//! - An exchange is counted per client address (every attempt counts, whether its ID token
//!   verifies or not) and per matched publisher config after the match, in the exchange
//!   transaction, before the `jti` is claimed: a refused exchange rolls back and leaves the ID
//!   token unused, so the job can retry it after `Retry-After`. A replay still fails, as the
//!   `jti` is claimed by the first exchange that passes, and does not count against the
//!   publisher (a leaked, used ID token cannot spend a publisher's allowance). An attempt that
//!   fails is counted against its address after the rollback, in a transaction of its own.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use ipnet::IpNet;

use crate::auth::Authenticated;
use crate::db::{Database, DbConn};
use crate::errors::{AppError, AppResult};
use crate::metrics::{ExchangeReason, Metrics, UNKNOWN_PROVIDER};
use crate::models::Crate;
use crate::registry::crate_name::CrateName;
use crate::schema::rate_limits;

/// The longest window a limit may have.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// At most `max` requests per `window` (whole seconds, 1 s to 1 day).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub max: u32,
    pub window: Duration,
}

impl Rate {
    /// `N/DURATION` (`30/10m`, `60/1m`), or `0`/`off` for no limit (`None`).
    pub fn parse(value: &str) -> Result<Option<Rate>, String> {
        let value = value.trim();
        if value == "0" || value.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let shape = || {
            format!(
                "`{value}` is not a limit such as 30/10m (at most 30 per 10 minutes), or 0/off for none"
            )
        };
        let (max, window) = value.split_once('/').ok_or_else(shape)?;
        let max: u32 = max.trim().parse().map_err(|_| shape())?;
        if max == 0 {
            return Err(format!(
                "`{value}`: the count must be at least 1 (write 0 or off for no limit)"
            ));
        }
        let window = humantime::parse_duration(window.trim()).map_err(|_| shape())?;
        if window.subsec_nanos() != 0 || window < Duration::from_secs(1) || window > MAX_WINDOW {
            return Err(format!(
                "`{value}`: the window must be whole seconds from 1s to 1d"
            ));
        }
        Ok(Some(Rate { max, window }))
    }

    fn window_millis(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} per {}",
            self.max,
            humantime::format_duration(self.window)
        )
    }
}

/// The limits and where client addresses come from (`WHARF_RATE_LIMIT_*`,
/// `WHARF_TRUSTED_PROXIES`).
#[derive(Clone, Debug, Default)]
pub struct RateLimitConfig {
    pub publishes_per_crate: Option<Rate>,
    pub publishes_per_publisher: Option<Rate>,
    pub exchanges_per_address: Option<Rate>,
    pub exchanges_per_publisher: Option<Rate>,
    /// Proxies whose `X-Forwarded-For` is believed; empty: only the peer address counts.
    pub trusted_proxies: Vec<IpNet>,
}

impl RateLimitConfig {
    pub fn rate(&self, action: Action) -> Option<Rate> {
        match action {
            Action::PublishPerCrate => self.publishes_per_crate,
            Action::PublishPerPublisher => self.publishes_per_publisher,
            Action::ExchangePerAddress => self.exchanges_per_address,
            Action::ExchangePerPublisher => self.exchanges_per_publisher,
        }
    }
}

/// What is limited, per what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    PublishPerCrate,
    PublishPerPublisher,
    ExchangePerAddress,
    ExchangePerPublisher,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::PublishPerCrate,
        Action::PublishPerPublisher,
        Action::ExchangePerAddress,
        Action::ExchangePerPublisher,
    ];

    /// The name in the database and in the `wharf_rate_limited_total` metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::PublishPerCrate => "publish_per_crate",
            Action::PublishPerPublisher => "publish_per_publisher",
            Action::ExchangePerAddress => "exchange_per_address",
            Action::ExchangePerPublisher => "exchange_per_publisher",
        }
    }

    /// The setting that configures it.
    pub fn setting(self) -> &'static str {
        match self {
            Action::PublishPerCrate => "WHARF_RATE_LIMIT_PUBLISHES_PER_CRATE",
            Action::PublishPerPublisher => "WHARF_RATE_LIMIT_PUBLISHES_PER_PUBLISHER",
            Action::ExchangePerAddress => "WHARF_RATE_LIMIT_EXCHANGES_PER_ADDRESS",
            Action::ExchangePerPublisher => "WHARF_RATE_LIMIT_EXCHANGES_PER_PUBLISHER",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Action::PublishPerCrate | Action::PublishPerPublisher => "publishes",
            Action::ExchangePerAddress | Action::ExchangePerPublisher => {
                "Trusted Publishing token exchanges"
            }
        }
    }
}

/// A subject of a limit: what is stored (`key`) and how the refusal names it (`label`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    key: String,
    label: String,
}

impl Subject {
    fn new(key: String, label: String) -> Self {
        Self { key, label }
    }

    /// A crate, by its canonical name (case and `-`/`_` folded).
    pub fn krate(name: &CrateName) -> Self {
        Self::new(
            name.canonical().to_string(),
            format!("of crate `{}`", name.as_str()),
        )
    }

    /// A trusted publisher config, by provider and id.
    pub fn publisher_config(provider: &str, config_id: i64) -> Self {
        Self::new(
            format!("{provider}-config:{config_id}"),
            format!("through trusted publisher config {config_id} ({provider})"),
        )
    }

    pub fn user(user_id: i64, login: &str) -> Self {
        Self::new(format!("user:{user_id}"), format!("by user `{login}`"))
    }

    /// A client address; IPv6 by its /64, which one client usually holds whole.
    pub fn address(address: IpAddr) -> Self {
        let key = match address {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), 64)
                .map(|net| net.trunc().to_string())
                .unwrap_or_else(|_| v6.to_string()),
        };
        let label = format!("from address {key}");
        Self::new(key, label)
    }
}

/// Checks and counts requests against the configured limits; shared by every handler.
#[derive(Clone)]
pub struct RateLimiter {
    config: Arc<RateLimitConfig>,
    metrics: Arc<Metrics>,
}

/// Whether a check counts the request, or only refuses one that would be over the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    Yes,
    /// Read the counter without changing it (an early refusal before expensive work).
    No,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            config: Arc::new(config),
            metrics,
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// A publish of `name` by `auth`: per crate, and per user or trusted publisher config.
    pub fn check_publish(
        &self,
        conn: &mut DbConn,
        auth: &Authenticated,
        name: &CrateName,
        count: Count,
    ) -> AppResult<()> {
        let now = Utc::now();
        self.check(
            conn,
            Action::PublishPerCrate,
            &Subject::krate(name),
            count,
            now,
        )?;
        if self.config.publishes_per_publisher.is_none() {
            return Ok(());
        }
        let publisher = match auth {
            Authenticated::User(user) => Subject::user(user.user.id, &user.user.login),
            Authenticated::Trustpub(tp) => {
                let provider = tp.publisher.kind().as_str();
                let canonical = name.canonical();
                match Crate::by_canonical(conn, &canonical)? {
                    Some(krate) => match tp.crates.get(&krate.id) {
                        Some(grant) => Subject::publisher_config(provider, grant.config_id),
                        // Not a crate this token may publish: authorisation refuses it anyway.
                        None => return Ok(()),
                    },
                    // The first publish through a pending config counts against it (by its
                    // API id, which is negative and so never an ordinary config's).
                    None => match tp.pending_for(&canonical) {
                        Some(grant) => Subject::publisher_config(
                            provider,
                            crate::services::pending::api_id(grant.pending.id),
                        ),
                        None => return Ok(()),
                    },
                }
            }
        };
        self.check(conn, Action::PublishPerPublisher, &publisher, count, now)
    }

    /// An exchange through the matched publisher configs of `provider`, counted in the
    /// exchange transaction. A refusal counts in `wharf_exchanges_total` as well.
    pub fn check_exchange_publishers(
        &self,
        conn: &mut DbConn,
        provider: &str,
        config_ids: impl IntoIterator<Item = i64>,
    ) -> AppResult<()> {
        let now = Utc::now();
        for config_id in config_ids {
            let subject = Subject::publisher_config(provider, config_id);
            self.check(
                conn,
                Action::ExchangePerPublisher,
                &subject,
                Count::Yes,
                now,
            )
            .inspect_err(|e| {
                self.metrics
                    .exchange_refused_by(provider, e, ExchangeReason::RateLimited)
            })?;
        }
        Ok(())
    }

    /// The client address an exchange attempt counts against, when that limit is on.
    pub fn exchange_address(&self, req: &HttpRequest) -> Option<Subject> {
        self.config.exchanges_per_address.as_ref()?;
        client_address(req, &self.config.trusted_proxies).map(Subject::address)
    }

    /// An exchange attempt from `address`, counted in the exchange's own transaction (one
    /// write less on the way to a minted token): 429 when over the limit, which counts in
    /// `wharf_exchanges_total` as well.
    pub fn check_exchange_address(
        &self,
        conn: &mut DbConn,
        address: Option<&Subject>,
    ) -> AppResult<()> {
        let Some(subject) = address else {
            return Ok(());
        };
        self.check(
            conn,
            Action::ExchangePerAddress,
            subject,
            Count::Yes,
            Utc::now(),
        )
        .inspect_err(|e| {
            self.metrics
                .exchange_failed(UNKNOWN_PROVIDER, e, ExchangeReason::RateLimited)
        })
    }

    /// An exchange attempt from `address` that failed before or inside its transaction (whose
    /// rollback took its count back), counted in a transaction of its own. The answer is 429
    /// when this attempt is over the limit; `metrics` says whether a refusal also counts in
    /// `wharf_exchanges_total` (not when the failure was counted there already).
    pub async fn count_failed_exchange(
        &self,
        db: &Database,
        address: Option<Subject>,
        metrics: bool,
    ) -> AppResult<()> {
        let Some(subject) = address else {
            return Ok(());
        };
        let limiter = self.clone();
        // A write: as a transaction, so that on SQLite it takes its turn with the other writers
        // of this process instead of polling the database lock with SQLite's busy handler
        // (grouped with the exchanges, which it follows).
        db.grouped_transaction(move |conn| {
            counts_need_no_flush(conn)?;
            if metrics {
                limiter.check_exchange_address(conn, Some(&subject))
            } else {
                limiter.check(
                    conn,
                    Action::ExchangePerAddress,
                    &subject,
                    Count::Yes,
                    Utc::now(),
                )
            }
        })
        .await
    }

    /// One check of `action` for `subject` at `now`: 429 when over the limit.
    pub fn check(
        &self,
        conn: &mut DbConn,
        action: Action,
        subject: &Subject,
        count: Count,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let Some(rate) = self.config.rate(action) else {
            return Ok(());
        };
        let window = rate.window_millis();
        let now_ms = now.timestamp_millis();
        let counter = match count {
            Count::Yes => Some(hit(conn, action, &subject.key, now_ms, window)?),
            Count::No => current(conn, action, &subject.key)?,
        };
        let Some(counter) = counter else {
            return Ok(());
        };
        let ends = counter.window_start.saturating_add(window);
        let used = if now_ms < ends { counter.hits } else { 0 };
        let allowed = i64::from(rate.max);
        let over = match count {
            Count::Yes => used > allowed,
            Count::No => used >= allowed,
        };
        if !over {
            return Ok(());
        }
        self.metrics.rate_limited(action);
        // Whole seconds, rounded up: a client that waits that long finds the window over.
        let retry_after = u64::try_from((ends - now_ms + 999) / 1000)
            .unwrap_or(1)
            .max(1);
        Err(AppError::TooManyRequests {
            detail: format!(
                "too many {what} {subject}: at most {rate} are allowed ({setting}); try again in {retry_after} seconds",
                what = action.what(),
                subject = subject.label,
                setting = action.setting(),
            ),
            retry_after,
        })
    }
}

/// Lets the current transaction, which only counts, commit without waiting for the disk on
/// PostgreSQL (`SET LOCAL synchronous_commit = off`), so that the counter rows it locked are
/// free again at once instead of after the flush. A count lost in a database crash only lets
/// one more attempt through. Nothing on SQLite, where the commit is the write-ahead log's
/// append (`synchronous = NORMAL`) and counter rows are not locked apart from the database.
pub fn counts_need_no_flush(conn: &mut DbConn) -> QueryResult<()> {
    if let DbConn::Pg(pg) = conn {
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(pg)?;
    }
    Ok(())
}

#[derive(QueryableByName, Debug)]
struct Counter {
    #[diesel(sql_type = BigInt)]
    hits: i64,
    /// Milliseconds since the Unix epoch.
    #[diesel(sql_type = BigInt)]
    window_start: i64,
}

/// Counts one hit at `now_ms`: within the stored window (which starts at its first hit) the
/// hits go up by one; once the window is over, a new one starts here with one hit. A clock
/// behind the one that started the window counts in it, so windows never move back.
fn hit(
    conn: &mut DbConn,
    action: Action,
    subject: &str,
    now_ms: i64,
    window: i64,
) -> QueryResult<Counter> {
    let expires_at = DateTime::<Utc>::from_timestamp_millis(now_ms.saturating_add(window))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
        .naive_utc();
    macro_rules! upsert {
        ($conn:expr, $sql:expr) => {
            diesel::sql_query($sql)
                .bind::<Text, _>(action.as_str())
                .bind::<Text, _>(subject)
                .bind::<BigInt, _>(now_ms)
                .bind::<Timestamp, _>(expires_at)
                .bind::<BigInt, _>(window)
                .get_result::<Counter>($conn)
        };
    }
    // The right-hand sides read the row as it was before the update, on both backends.
    match conn {
        DbConn::Pg(conn) => upsert!(
            conn,
            "INSERT INTO rate_limits (action, subject, window_start, hits, expires_at) \
             VALUES ($1, $2, $3, 1, $4) \
             ON CONFLICT (action, subject) DO UPDATE SET \
             hits = CASE WHEN excluded.window_start < rate_limits.window_start + $5 \
                    THEN rate_limits.hits + 1 ELSE 1 END, \
             window_start = CASE WHEN excluded.window_start < rate_limits.window_start + $5 \
                    THEN rate_limits.window_start ELSE excluded.window_start END, \
             expires_at = CASE WHEN excluded.window_start < rate_limits.window_start + $5 \
                    THEN rate_limits.expires_at ELSE excluded.expires_at END \
             RETURNING hits, window_start"
        ),
        DbConn::Sqlite(conn) => upsert!(
            conn,
            "INSERT INTO rate_limits (action, subject, window_start, hits, expires_at) \
             VALUES (?1, ?2, ?3, 1, ?4) \
             ON CONFLICT (action, subject) DO UPDATE SET \
             hits = CASE WHEN excluded.window_start < rate_limits.window_start + ?5 \
                    THEN rate_limits.hits + 1 ELSE 1 END, \
             window_start = CASE WHEN excluded.window_start < rate_limits.window_start + ?5 \
                    THEN rate_limits.window_start ELSE excluded.window_start END, \
             expires_at = CASE WHEN excluded.window_start < rate_limits.window_start + ?5 \
                    THEN rate_limits.expires_at ELSE excluded.expires_at END \
             RETURNING hits, window_start"
        ),
    }
}

/// The counter as it stands, without counting.
fn current(conn: &mut DbConn, action: Action, subject: &str) -> QueryResult<Option<Counter>> {
    rate_limits::table
        .filter(rate_limits::action.eq(action.as_str()))
        .filter(rate_limits::subject.eq(subject))
        .select((rate_limits::hits, rate_limits::window_start))
        .first::<(i64, i64)>(conn)
        .optional()
        .map(|row| row.map(|(hits, window_start)| Counter { hits, window_start }))
}

/// Deletes counters whose window has ended; run by the periodic clean-up. Returns how many.
pub fn clean_up(conn: &mut DbConn, now: chrono::NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(rate_limits::table.filter(rate_limits::expires_at.le(now))).execute(conn)
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy (each proxy appends the address it was
/// reached from, so everything left of the first untrusted entry may be made up). When every
/// entry is a trusted proxy, the left-most one; an entry that does not parse ends the walk at
/// the last good one.
pub fn client_address(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(req.peer_addr()?.ip());
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    Some(client_of(peer, &forwarded, trusted_proxies))
}

fn client_of(peer: IpAddr, forwarded: &[&str], trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        if !trusted(&client) {
            break;
        }
        match parse_forwarded(entry) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// An IPv4 address written as IPv6 (`::ffff:1.2.3.4`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_clear_errors() {
        let rate = |max, secs| {
            Ok(Some(Rate {
                max,
                window: Duration::from_secs(secs),
            }))
        };
        assert_eq!(Rate::parse("30/10m"), rate(30, 600));
        assert_eq!(Rate::parse(" 60 / 1m "), rate(60, 60));
        assert_eq!(Rate::parse("5/2s"), rate(5, 2));
        assert_eq!(Rate::parse("1/1day"), rate(1, 86_400));
        assert_eq!(Rate::parse("0"), Ok(None));
        assert_eq!(Rate::parse("off"), Ok(None));
        assert_eq!(Rate::parse("OFF"), Ok(None));
        for bad in ["30", "x/1m", "30/", "30/soon", "-1/1m", "30/1m/2", ""] {
            let error = Rate::parse(bad).unwrap_err();
            assert!(error.contains("such as 30/10m"), "{bad}: {error}");
        }
        assert!(Rate::parse("0/1m").unwrap_err().contains("at least 1"));
        for bad in ["1/500ms", "1/1500ms", "1/2d", "1/0s"] {
            let error = Rate::parse(bad).unwrap_err();
            assert!(
                error.contains("whole seconds from 1s to 1d"),
                "{bad}: {error}"
            );
        }
        assert_eq!(
            Rate::parse("30/10m").unwrap().unwrap().to_string(),
            "30 per 10m"
        );
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = nets(&["10.0.0.0/8", "fd00::/8"]);
        let cases: &[(&str, &[&str], &[IpNet], &str)] = &[
            // No trusted proxies: the peer, whatever the header says.
            ("203.0.113.9", &["198.51.100.1"], &[], "203.0.113.9"),
            // An untrusted peer's header is ignored.
            ("203.0.113.9", &["198.51.100.1"], &proxies, "203.0.113.9"),
            // A trusted proxy: the entry it appended.
            ("10.0.0.2", &["198.51.100.1"], &proxies, "198.51.100.1"),
            // The right-most untrusted entry; what the client made up to its left is ignored.
            (
                "10.0.0.2",
                &["1.1.1.1", "198.51.100.1", "10.0.0.7"],
                &proxies,
                "198.51.100.1",
            ),
            // Every entry a proxy: the left-most.
            ("10.0.0.2", &["10.0.0.9", "10.0.0.7"], &proxies, "10.0.0.9"),
            // Garbage stops the walk at the last good address.
            (
                "10.0.0.2",
                &["1.1.1.1", "nonsense", "10.0.0.7"],
                &proxies,
                "10.0.0.7",
            ),
            // Ports, brackets and mapped addresses.
            (
                "10.0.0.2",
                &[" 198.51.100.1:4711"],
                &proxies,
                "198.51.100.1",
            ),
            ("fd00::1", &["[2001:db8::5]:443"], &proxies, "2001:db8::5"),
            (
                "::ffff:10.0.0.2",
                &["::ffff:198.51.100.1"],
                &proxies,
                "198.51.100.1",
            ),
            // A trusted proxy without the header: the proxy itself.
            ("10.0.0.2", &[], &proxies, "10.0.0.2"),
        ];
        for (peer, forwarded, trusted, expected) in cases {
            assert_eq!(
                client_of(canonical(ip(peer)), forwarded, trusted),
                ip(expected),
                "peer {peer}, X-Forwarded-For {forwarded:?}"
            );
        }
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(
            Subject::address(ip("2001:db8:1:2:aaaa::1")),
            Subject::address(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            Subject::address(ip("2001:db8:1:2::1")),
            Subject::address(ip("2001:db8:1:3::1"))
        );
        assert_eq!(Subject::address(ip("192.0.2.1")).key, "192.0.2.1");
    }
}
