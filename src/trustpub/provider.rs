//! What a CI provider is to Wharf: the [`Provider`] trait that each provider implements in its
//! own file (`github.rs`, `gitlab.rs`, `buildkite.rs`), and the small types its methods speak.
//!
//! A provider says everything that differs from one CI platform to the next: its name, its
//! issuer setting, the claims of its ID tokens, how a verified token is matched against its
//! publisher configs (with the precise mismatch messages), what an exchange records
//! ([`Provider::Data`], one variant of [`super::TrustpubData`]), the fields of its configs and
//! their validation, and its config table. Everything else (verification, the exchange, the
//! config API, the settings page, the history page) is written once, generically, and reaches
//! the providers through the registry in [`super::providers`].
//!
//! Matching is pure (unit-tested beside each matcher); only the few table functions touch the
//! database.

use std::fmt::Debug;
use std::future::Future;

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::errors::{MatchError, VerifyError, shorten};
use super::record::Record;
use crate::db::DbConn;

/// Where a provider's trusted issuers are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuerSetting {
    /// The key in `wharf.toml` (`trustpub_github_issuer`); the environment variable is this in
    /// upper case with the `WHARF_` prefix.
    pub key: &'static str,
    /// Used when the setting is absent.
    pub default: &'static str,
    /// `true` when the setting is a comma-separated list of issuers.
    pub many: bool,
}

impl IssuerSetting {
    /// `WHARF_TRUSTPUB_GITHUB_ISSUER`.
    pub fn env_name(&self) -> String {
        format!("WHARF_{}", self.key.to_ascii_uppercase())
    }
}

/// One field of a provider's config: in the API body (`name`), and in the settings form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormField {
    pub name: &'static str,
    pub label: &'static str,
    /// Shown under the field; may be empty.
    pub hint: &'static str,
    pub required: bool,
}

/// A problem with one field of a config, for showing next to that field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Pushes a [`FieldError`] unless `ok`.
pub fn check(errors: &mut Vec<FieldError>, field: &'static str, ok: bool, message: &str) {
    if !ok {
        errors.push(FieldError::new(field, message));
    }
}

/// One cell of a config's row in the settings page's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    /// A file name or path, shown as code.
    Code(String),
    /// An optional restriction that is not set: "any".
    Any,
}

impl Cell {
    /// `Any` for `None` or an empty value.
    pub fn optional(value: Option<&str>) -> Cell {
        match value.filter(|v| !v.is_empty()) {
            Some(v) => Cell::Text(v.to_owned()),
            None => Cell::Any,
        }
    }
}

/// What a provider may look up on the network before a config is stored (GitHub: the
/// owner's numeric ID).
pub struct Lookups<'a> {
    pub http: &'a reqwest::Client,
    pub github_api_url: &'a url::Url,
}

/// Why a look-up before storing a config failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The input names something that does not exist: shown next to the field (400).
    Field(FieldError),
    /// The platform could not be asked: try again (503).
    Unavailable(String),
}

/// A stored config with the name of its crate, as the matcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<C> {
    pub crate_name: String,
    pub config: C,
}

/// A publisher config that accepted a verified identity: the exchanged token may publish new
/// versions of `crate_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub publisher_id: i64,
    pub crate_id: i64,
    pub crate_name: String,
}

/// A CI provider. Implemented by a unit struct per provider and listed once in
/// [`super::providers`].
pub trait Provider: 'static {
    /// The stable lower-case name in the API (`{kind}_configs`), the database and the records.
    const KIND: &'static str;
    /// The platform's name for people: `GitHub Actions`.
    const LABEL: &'static str;
    /// Where its trusted issuers are configured, and the default.
    const ISSUER: IssuerSetting;
    /// Prefix of the settings form's element ids (`gh` → `gh-owner`).
    const FORM_ID: &'static str;
    /// The config's fields besides `crate`, in form order.
    const FIELDS: &'static [FormField];
    /// The column headings of the settings page's list (see [`Provider::row`]).
    const COLUMNS: &'static [&'static str];

    /// The claims of its ID tokens that Wharf uses (unknown claims are ignored).
    /// Serialized only to keep them with a token minted through a pending config, so that
    /// [`Provider::record_use`] can run when the config becomes an ordinary one.
    type Claims: DeserializeOwned + Serialize + Debug + Clone + PartialEq + Eq + Send + 'static;
    /// What an exchange records, one variant of [`super::TrustpubData`].
    type Data: Record + Serialize + DeserializeOwned + Debug + Clone + PartialEq + Eq + Send;
    /// A config as stored.
    type Config: Debug + Clone + Send + 'static;
    /// A config as submitted (the API body's object without `crate`, or the form). A pending
    /// config keeps it as JSON, as [`Provider::normalize`] and [`Provider::look_up`] left it,
    /// so its JSON must say everything [`Provider::insert`] needs.
    type Input: DeserializeOwned + Serialize + Debug + Clone + Send + 'static;

    // Verification.

    /// Refuses claims from contexts that are never trusted (GitHub: `pull_request_target`).
    /// Called by the verifier after the signature and the standard claims are checked.
    fn check(_claims: &Self::Claims) -> Result<(), VerifyError> {
        Ok(())
    }

    /// `published_by`: the person who started the run, or what the platform names
    /// instead.
    fn published_by(claims: &Self::Claims) -> String;

    /// What the token's job is, for messages: "repository `o/r`".
    fn subject(claims: &Self::Claims) -> String;

    /// What an exchange with these claims records.
    fn data(claims: &Self::Claims) -> Self::Data;

    // Matching.

    /// The configs among `candidates` that accept these claims; when none does, an error that
    /// names the repository (or project, pipeline) and each field that differed, with what
    /// the configs expect. Pure: `candidates` may be every config, or only those the table
    /// look-up found.
    fn match_configs(
        claims: &Self::Claims,
        candidates: &[Candidate<Self::Config>],
    ) -> Result<Vec<Match>, MatchError>;

    // Config fields.

    /// Trims and checks an input; every field error at once.
    fn normalize(input: Self::Input) -> Result<Self::Input, Vec<FieldError>>;

    /// Looks up what the config needs from the platform before it is stored. Most providers
    /// need nothing.
    fn look_up(
        _lookups: &Lookups<'_>,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Input, LookupError>> + Send {
        std::future::ready(Ok(input))
    }

    /// True when `existing` already says what `input` says.
    fn is_duplicate(existing: &Self::Config, input: &Self::Input) -> bool;

    /// A pending config (for a crate that does not exist yet) as the matcher and the lists
    /// see it: `input` as stored, with crate id 0 and nothing captured on first use yet. The
    /// only place a provider meets pending configs; they are kept, listed and turned into
    /// ordinary ones by `services::pending`.
    fn pending_config(
        id: i64,
        input: &Self::Input,
        created_by: i64,
        created_at: NaiveDateTime,
    ) -> Self::Config;

    fn config_id(config: &Self::Config) -> i64;
    fn config_crate_id(config: &Self::Config) -> i64;
    fn config_created_at(config: &Self::Config) -> NaiveDateTime;

    /// The config in the API (`{kind}_config`).
    fn config_json(config: &Self::Config, crate_name: &str) -> serde_json::Value;

    /// One line for messages and the removal page: `octo-org/widget, workflow release.yml`.
    fn describe(config: &Self::Config) -> String;

    /// The config's row in the settings page's list, one cell per [`Provider::COLUMNS`].
    fn row(config: &Self::Config) -> Vec<Cell>;

    // The config table.

    /// The configs that may match these claims (a prefilter; the matcher decides).
    fn candidates(
        conn: &mut DbConn,
        claims: &Self::Claims,
    ) -> QueryResult<Vec<Candidate<Self::Config>>>;

    /// After a successful match: records what is captured on first use (GitLab's namespace
    /// ID). Never overwrites a value already recorded.
    fn record_use(_conn: &mut DbConn, _config_id: i64, _claims: &Self::Claims) -> QueryResult<()> {
        Ok(())
    }

    fn for_crate(conn: &mut DbConn, crate_id: i64) -> QueryResult<Vec<Self::Config>>;
    fn by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<Self::Config>>;
    fn insert(
        conn: &mut DbConn,
        crate_id: i64,
        input: &Self::Input,
        created_by: i64,
        now: NaiveDateTime,
    ) -> QueryResult<Self::Config>;
    fn delete(conn: &mut DbConn, id: i64) -> QueryResult<()>;
}

// Helpers the matchers share.

/// Compares a configured value that must equal the claim ignoring ASCII case when set. No
/// configured value (or an empty one) accepts any value and none. Only ASCII: under
/// Unicode rules `\u{212A}8s` (a Kelvin sign) would equal `k8s`, so a look-alike name could
/// pass for the configured one. Returns the expected value on a mismatch.
pub fn environment_mismatch(configured: Option<&str>, claimed: Option<&str>) -> Option<String> {
    let expected = configured.filter(|e| !e.is_empty())?;
    match claimed {
        Some(claimed) if claimed.eq_ignore_ascii_case(expected) => None,
        _ => Some(expected.to_owned()),
    }
}

/// Compares a configured value that must equal the claim exactly when set; returns the
/// expected value on a mismatch.
pub fn exact_mismatch(configured: Option<&str>, claimed: Option<&str>) -> Option<String> {
    let expected = configured.filter(|e| !e.is_empty())?;
    (claimed != Some(expected)).then(|| expected.to_owned())
}

/// Formats distinct expected values as "`a`", "`a` or `b`" … (duplicates ignoring ASCII case
/// removed).
pub fn one_of(values: &[String]) -> String {
    let mut distinct: Vec<&String> = Vec::new();
    for value in values {
        if !distinct.iter().any(|d| d.eq_ignore_ascii_case(value)) {
            distinct.push(value);
        }
    }
    distinct
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Formats distinct expected values exactly as "`a`", "`a` or `b`" (duplicates removed).
pub fn one_of_exact(values: &[String]) -> String {
    let mut distinct: Vec<&String> = Vec::new();
    for value in values {
        if !distinct.contains(&value) {
            distinct.push(value);
        }
    }
    distinct
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Distinct values as "456" or "456, 789".
pub fn list_ids<T: ToString + PartialEq>(ids: &[T]) -> String {
    let mut distinct: Vec<&T> = Vec::new();
    for id in ids {
        if !distinct.contains(&id) {
            distinct.push(id);
        }
    }
    distinct
        .iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// "the config expects" or, for several distinct values, "the configs expect".
pub fn configs_expect(distinct: &str) -> &'static str {
    if distinct.contains(" or ") {
        "the configs expect"
    } else {
        "the config expects"
    }
}

/// The part of a mismatch message for an optional claim that a config restricts: `what` is
/// the claim's name for people (`environment`, `branch`).
pub fn optional_message(what: &str, claimed: Option<&str>, distinct: String) -> String {
    let config = configs_expect(&distinct);
    match claimed {
        Some(value) => format!(
            "the token has {what} `{}`, but {config} {distinct}",
            shorten(value)
        ),
        None => format!("the token has no {what}, but {config} {distinct}"),
    }
}

/// The environment part of a mismatch message.
pub fn environment_message(claimed: Option<&str>, expected: &[String]) -> String {
    optional_message("environment", claimed, one_of(expected))
}

/// Joins the parts of a mismatch message into one sentence list ending with a full stop.
pub fn join_parts(prefix: String, parts: Vec<String>) -> String {
    let mut message = prefix;
    message.push_str(&parts.join("; "));
    if !message.ends_with('.') {
        message.push('.');
    }
    message
}

/// Trims every field in place.
pub fn trim_all(fields: &mut [&mut String]) {
    for field in fields {
        let trimmed = field.trim();
        if trimmed.len() != field.len() {
            **field = trimmed.to_owned();
        }
    }
}

/// An optional field: trimmed, and empty means absent.
pub fn normalize_optional(value: Option<String>) -> Option<String> {
    value.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty())
}

/// Two optional values that are the same ignoring ASCII case.
pub fn eq_optional_ignore_case(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (None, None) => true,
        _ => false,
    }
}

/// Checks an optional environment name.
pub fn check_environment(errors: &mut Vec<FieldError>, environment: Option<&str>) {
    if let Some(env) = environment {
        check(
            errors,
            "environment",
            env.len() <= 255 && !env.chars().any(char::is_control),
            "an environment name of at most 255 characters, without control characters (leave it empty to allow any environment)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Letters that fold to ASCII ones under Unicode rules but are other characters.
    const LOOK_ALIKES: [(&str, &str); 6] = [
        ("k", "\u{212A}"), // KELVIN SIGN: lower-cases to `k`
        ("s", "\u{17F}"),  // LATIN SMALL LETTER LONG S: upper-cases to `S`
        ("i", "\u{131}"),  // LATIN SMALL LETTER DOTLESS I: upper-cases to `I`
        ("i", "\u{130}"),  // LATIN CAPITAL LETTER I WITH DOT ABOVE: lower-cases to `i̇`
        ("a", "\u{212B}"), // ANGSTROM SIGN: lower-cases to `å`, not `a`
        ("w", "\u{2126}"), // OHM SIGN: lower-cases to `ω`, not `w`
    ];

    #[test]
    fn environments_fold_ascii_case_only() {
        // (configured, claimed, accepted)
        let mut cases: Vec<(String, String, bool)> = vec![
            ("k8s".into(), "K8S".into(), true),
            ("Release".into(), "release".into(), true),
            ("prod-é".into(), "prod-é".into(), true),
            // Unicode case pairs are not folded: ASCII only.
            ("prod-é".into(), "PROD-É".into(), false),
            ("\u{e5}".into(), "\u{212B}".into(), false),
            ("\u{3c9}".into(), "\u{2126}".into(), false),
        ];
        for (ascii, look_alike) in LOOK_ALIKES {
            let configured = format!("{ascii}8s-release");
            let claimed = configured.replacen(ascii, look_alike, 1);
            cases.push((configured.clone(), claimed.clone(), false));
            cases.push((configured.to_ascii_uppercase(), claimed, false));
        }
        for (configured, claimed, accepted) in cases {
            assert_eq!(
                environment_mismatch(Some(&configured), Some(&claimed)).is_none(),
                accepted,
                "configured {configured:?}, claimed {claimed:?}"
            );
        }
    }

    #[test]
    fn exact_values_are_compared_exactly() {
        // (configured, claimed, accepted)
        let cases = [
            (None, None, true),
            (None, Some("main"), true),
            (Some(""), Some("main"), true),
            (Some("main"), Some("main"), true),
            (Some("main"), Some("Main"), false),
            (Some("main"), None, false),
            (Some("main"), Some("main "), false),
        ];
        for (configured, claimed, accepted) in cases {
            assert_eq!(
                exact_mismatch(configured, claimed).is_none(),
                accepted,
                "{configured:?} {claimed:?}"
            );
        }
    }

    #[test]
    fn expected_values_are_listed_once_per_ascii_case() {
        let values = ["k8s".to_owned(), "K8S".to_owned(), "\u{212A}8s".to_owned()];
        assert_eq!(one_of(&values), "`k8s` or `\u{212A}8s`");
        assert_eq!(one_of_exact(&values), "`k8s` or `K8S` or `\u{212A}8s`");
        assert_eq!(list_ids(&[4, 5, 4]), "4, 5");
    }

    #[test]
    fn duplicate_optional_values_fold_ascii_case_only() {
        let cases = [
            (Some("k8s"), Some("K8S"), true),
            (None, None, true),
            (Some("k8s"), None, false),
            (Some("k8s"), Some("\u{212A}8s"), false), // KELVIN SIGN
            (Some("staging"), Some("\u{17F}taging"), false), // LONG S
            (Some("prod-é"), Some("PROD-É"), false),
        ];
        for (a, b, same) in cases {
            assert_eq!(eq_optional_ignore_case(a, b), same, "{a:?} {b:?}");
        }
    }
}
