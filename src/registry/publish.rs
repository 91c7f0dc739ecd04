//! Cargo's publish request (`PUT /api/v1/crates/new`) and the rules a new version's metadata
//! must satisfy.
//!
//! The body is: a little-endian `u32` length, that many bytes of JSON metadata (cargo's
//! `NewCrate`), a little-endian `u32` length, that many bytes of `.crate` file. Nothing may
//! follow. The handler reads it from the request stream in that order, so that the caller is
//! authorised for the crate the metadata names before the crate file is read; the functions
//! here judge each part as it arrives.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::crate_name::{self, CrateName, NameError};
use super::index::DependencyKind;
use super::{format_size, quote_input};

/// The largest metadata JSON accepted.
pub const MAX_METADATA_SIZE: u64 = 1024 * 1024;
/// Most keywords per crate, and the longest keyword (as on crates.io).
pub const MAX_KEYWORDS: usize = 5;
pub const MAX_KEYWORD_LENGTH: usize = 20;
/// Most categories per crate (as on crates.io).
pub const MAX_CATEGORIES: usize = 5;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_LENGTH: usize = 1000;

const MANIFEST_DOCS: &str = "https://doc.rust-lang.org/cargo/reference/manifest.html";
const WILDCARD_FAQ: &str = "https://doc.rust-lang.org/cargo/faq.html#can-libraries-use--as-a-version-for-their-dependencies";

/// Why a publish request was refused. `Display` is the message for cargo's user.
#[derive(Debug, Error)]
pub enum PublishError {
    #[error(
        "the publish request is truncated: expected {expected} bytes of {part} but only {available} remain; the upload may have been cut off, please retry"
    )]
    Truncated {
        part: &'static str,
        expected: u64,
        available: u64,
    },
    #[error(
        "the publish request has bytes after the crate file; the body must be exactly: metadata length, metadata, crate length, crate"
    )]
    TrailingBytes,
    #[error(
        "the publish metadata is {}, but at most {} is allowed",
        format_size(*size),
        format_size(MAX_METADATA_SIZE)
    )]
    MetadataTooLarge { size: u64 },
    #[error("the publish metadata is not valid JSON for a new crate: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error(
        "the crate file is {}, but the max upload size is {}",
        format_size(*size),
        format_size(*max)
    )]
    CrateTooLarge { size: u64, max: u64 },
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error(
        "invalid version `{version}`: {reason}; versions must follow Semantic Versioning, e.g. `1.2.3` or `1.0.0-beta.1`"
    )]
    InvalidVersion { version: String, reason: String },
    #[error("{}", missing_fields_message(.0))]
    MissingFields(Vec<MetadataField>),
    #[error(
        "the description is {length} characters long, but at most {MAX_DESCRIPTION_LENGTH} are allowed"
    )]
    DescriptionTooLong { length: usize },
    #[error("expected at most {MAX_KEYWORDS} keywords per crate, but got {count}")]
    TooManyKeywords { count: usize },
    #[error(
        "`{keyword}` is an invalid keyword: keywords must have at most {MAX_KEYWORD_LENGTH} characters"
    )]
    KeywordTooLong { keyword: String },
    #[error(
        "`{keyword}` is an invalid keyword: keywords must start with an ASCII letter or digit and contain only ASCII letters, digits, `_`, `-` and `+`"
    )]
    InvalidKeyword { keyword: String },
    #[error("expected at most {MAX_CATEGORIES} categories per crate, but got {count}")]
    TooManyCategories { count: usize },
    #[error("invalid feature `{feature}`: {reason}")]
    InvalidFeature { feature: String, reason: String },
    #[error("invalid dependency `{dependency}`: {source}")]
    InvalidDependencyName {
        dependency: String,
        #[source]
        source: NameError,
    },
    #[error(
        "invalid version requirement `{req}` for dependency `{dependency}`: {reason}; use a requirement such as `1.2` or `>=1.2, <2`"
    )]
    InvalidVersionReq {
        dependency: String,
        req: String,
        reason: String,
    },
    #[error(
        "wildcard (`*`) dependency constraints are not allowed on this registry. Crate with this problem: `{dependency}`. See {WILDCARD_FAQ} for more information"
    )]
    WildcardDependency { dependency: String },
    #[error(
        "invalid `rust-version` `{value}`: expected a Rust version like `1.70` or `1.70.0` (major.minor[.patch], numbers only)"
    )]
    InvalidRustVersion { value: String },
}

/// A metadata field that a registry may require of every new version
/// (`WHARF_REQUIRED_METADATA`), named by its key under `[package]` in `Cargo.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetadataField {
    Description,
    /// Satisfied by `license` or by `license-file`.
    License,
    Repository,
    Homepage,
    Documentation,
    Readme,
    RustVersion,
}

impl MetadataField {
    pub const ALL: [Self; 7] = [
        Self::Description,
        Self::License,
        Self::Repository,
        Self::Homepage,
        Self::Documentation,
        Self::Readme,
        Self::RustVersion,
    ];

    /// The key under `[package]` in `Cargo.toml`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Description => "description",
            Self::License => "license",
            Self::Repository => "repository",
            Self::Homepage => "homepage",
            Self::Documentation => "documentation",
            Self::Readme => "readme",
            Self::RustVersion => "rust-version",
        }
    }

    /// What to write in `Cargo.toml` to provide the field.
    fn example(self) -> &'static str {
        match self {
            Self::Description => r#"`description = "What the crate does, in one sentence"`"#,
            Self::License => {
                r#"`license = "MIT OR Apache-2.0"` (an SPDX expression) or `license-file = "LICENSE"`"#
            }
            Self::Repository => r#"`repository = "https://git.example.com/team/my-crate"`"#,
            Self::Homepage => r#"`homepage = "https://example.com/my-crate"`"#,
            Self::Documentation => r#"`documentation = "https://docs.example.com/my-crate"`"#,
            Self::Readme => {
                r#"`readme = "README.md"` (a README.md next to Cargo.toml is picked up without it)"#
            }
            Self::RustVersion => r#"`rust-version = "1.70"` (the oldest Rust the crate supports)"#,
        }
    }

    fn is_present(self, metadata: &PublishMetadata) -> bool {
        let given = |field: &Option<String>| field.as_deref().is_some_and(|s| !s.trim().is_empty());
        match self {
            Self::Description => given(&metadata.description),
            Self::License => given(&metadata.license) || given(&metadata.license_file),
            Self::Repository => given(&metadata.repository),
            Self::Homepage => given(&metadata.homepage),
            Self::Documentation => given(&metadata.documentation),
            // cargo sends the README's text; an empty README counts as none.
            Self::Readme => given(&metadata.readme),
            Self::RustVersion => given(&metadata.rust_version),
        }
    }
}

impl fmt::Display for MetadataField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A field name in `WHARF_REQUIRED_METADATA` that is not a [`MetadataField`].
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "unknown metadata field `{name}`; the fields a registry can require are: {} (`license` is satisfied by `license` or `license-file`)",
    MetadataField::ALL.map(MetadataField::key).join(", ")
)]
pub struct UnknownMetadataField {
    pub name: String,
}

impl FromStr for MetadataField {
    type Err = UnknownMetadataField;

    /// A `Cargo.toml` key; case and `_` for `-` are forgiven (`rust_version`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let key = name.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|field| field.key() == key)
            .ok_or_else(|| UnknownMetadataField {
                name: quote_input(name.trim()),
            })
    }
}

/// The metadata fields this registry requires of every new version. The default requires
/// none: cargo's `cargo new` writes neither `description` nor `license`, and a company's
/// private crates often have no licence at all. crates.io requires `description` and `license`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredMetadata(BTreeSet<MetadataField>);

impl RequiredMetadata {
    pub fn new(fields: impl IntoIterator<Item = MetadataField>) -> Self {
        Self(fields.into_iter().collect())
    }

    /// A comma-separated list of field names (`description,license`); empty items are skipped,
    /// so an empty list requires nothing.
    pub fn parse_list(list: &str) -> Result<Self, UnknownMetadataField> {
        list.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn fields(&self) -> impl Iterator<Item = MetadataField> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Names the missing fields and shows the `Cargo.toml` lines that provide them.
fn missing_fields_message(missing: &[MetadataField]) -> String {
    let names = missing.iter().map(|field| field.key()).collect::<Vec<_>>();
    let examples = missing
        .iter()
        .map(|field| field.example())
        .collect::<Vec<_>>();
    format!(
        "missing or empty metadata fields: {}. This registry requires {}; add to the `[package]` section of Cargo.toml: {}. See {MANIFEST_DOCS} for more information on configuring these fields",
        names.join(", "),
        if missing.len() == 1 { "it" } else { "them" },
        examples.join("; "),
    )
}

/// A length prefix of the body (little-endian `u32`). A metadata length over
/// [`MAX_METADATA_SIZE`] is refused once more than that many bytes of it have arrived, so that
/// a short body is reported as truncated rather than as a huge one.
pub fn declared_length(prefix: [u8; 4]) -> u64 {
    u64::from(u32::from_le_bytes(prefix))
}

/// Parses the metadata JSON (not yet validated: see [`PublishMetadata::validate`]).
pub fn parse_metadata(json: &[u8]) -> Result<PublishMetadata, PublishError> {
    serde_json::from_slice(json).map_err(PublishError::InvalidJson)
}

/// The crate file's length from the four bytes after the metadata; refuses, before any of it
/// is read, a crate file over `max_crate_size` bytes.
pub fn crate_length(prefix: [u8; 4], max_crate_size: u64) -> Result<u64, PublishError> {
    let size = declared_length(prefix);
    if size > max_crate_size {
        return Err(PublishError::CrateTooLarge {
            size,
            max: max_crate_size,
        });
    }
    Ok(size)
}

/// Cargo's `NewCrate`: the metadata JSON of a publish request, field for field. Unknown fields
/// are ignored so newer cargo versions keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishMetadata {
    pub name: String,
    pub vers: String,
    #[serde(default)]
    pub deps: Vec<PublishDependency>,
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub authors: Vec<String>,
    pub description: Option<String>,
    pub documentation: Option<String>,
    pub homepage: Option<String>,
    /// The README's text, as cargo read it.
    pub readme: Option<String>,
    /// The README's path relative to the package root.
    pub readme_file: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    pub license: Option<String>,
    pub license_file: Option<String>,
    pub repository: Option<String>,
    #[serde(default)]
    pub badges: BTreeMap<String, BTreeMap<String, String>>,
    pub links: Option<String>,
    pub rust_version: Option<String>,
}

/// Cargo's `NewCrateDependency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishDependency {
    #[serde(default)]
    pub optional: bool,
    #[serde(default = "default_true")]
    pub default_features: bool,
    /// The real name of the dependency's package.
    pub name: String,
    #[serde(default)]
    pub features: Vec<String>,
    pub version_req: String,
    pub target: Option<String>,
    #[serde(default)]
    pub kind: DependencyKind,
    /// The index URL of the dependency's registry; `None` means this registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The name used in `Cargo.toml` when the dependency is renamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_name_in_toml: Option<String>,
}

fn default_true() -> bool {
    true
}

/// The typed values that [`PublishMetadata::validate`] vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedPublish {
    pub name: CrateName,
    pub version: Version,
}

impl PublishMetadata {
    /// Applies the registry's rules to the metadata, with the fields this registry requires,
    /// and returns the typed name and version. The first rule broken is reported.
    pub fn validate(&self, required: &RequiredMetadata) -> Result<ValidatedPublish, PublishError> {
        let name = CrateName::parse(&self.name)?;
        let version = Version::parse(&self.vers).map_err(|err| PublishError::InvalidVersion {
            version: quote_input(&self.vers),
            reason: err.to_string(),
        })?;
        self.check_required_fields(required)?;
        self.check_description()?;
        self.check_keywords()?;
        if self.categories.len() > MAX_CATEGORIES {
            return Err(PublishError::TooManyCategories {
                count: self.categories.len(),
            });
        }
        self.check_features()?;
        for dep in &self.deps {
            check_dependency(dep)?;
        }
        if let Some(rust_version) = &self.rust_version
            && !is_rust_version(rust_version)
        {
            return Err(PublishError::InvalidRustVersion {
                value: quote_input(rust_version),
            });
        }
        Ok(ValidatedPublish { name, version })
    }

    fn check_required_fields(&self, required: &RequiredMetadata) -> Result<(), PublishError> {
        let missing: Vec<_> = required
            .fields()
            .filter(|field| !field.is_present(self))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PublishError::MissingFields(missing))
        }
    }

    fn check_description(&self) -> Result<(), PublishError> {
        let length = self
            .description
            .as_deref()
            .map_or(0, |description| description.chars().count());
        if length > MAX_DESCRIPTION_LENGTH {
            return Err(PublishError::DescriptionTooLong { length });
        }
        Ok(())
    }

    fn check_keywords(&self) -> Result<(), PublishError> {
        if self.keywords.len() > MAX_KEYWORDS {
            return Err(PublishError::TooManyKeywords {
                count: self.keywords.len(),
            });
        }
        for keyword in &self.keywords {
            if keyword.chars().count() > MAX_KEYWORD_LENGTH {
                return Err(PublishError::KeywordTooLong {
                    keyword: quote_input(keyword),
                });
            }
            let mut chars = keyword.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'));
            if !valid {
                return Err(PublishError::InvalidKeyword {
                    keyword: quote_input(keyword),
                });
            }
        }
        Ok(())
    }

    fn check_features(&self) -> Result<(), PublishError> {
        for (feature, values) in &self.features {
            check_feature_name(feature).map_err(|reason| PublishError::InvalidFeature {
                feature: quote_input(feature),
                reason,
            })?;
            for value in values {
                check_feature_value(value).map_err(|reason| PublishError::InvalidFeature {
                    feature: quote_input(feature),
                    reason,
                })?;
            }
        }
        Ok(())
    }
}

fn check_dependency(dep: &PublishDependency) -> Result<(), PublishError> {
    crate_name::validate_dependency_name(&dep.name).map_err(|source| {
        PublishError::InvalidDependencyName {
            dependency: quote_input(&dep.name),
            source,
        }
    })?;
    if let Some(rename) = &dep.explicit_name_in_toml {
        crate_name::validate_dependency_rename(rename).map_err(|source| {
            PublishError::InvalidDependencyName {
                dependency: quote_input(rename),
                source,
            }
        })?;
    }
    let req =
        VersionReq::parse(&dep.version_req).map_err(|err| PublishError::InvalidVersionReq {
            dependency: quote_input(&dep.name),
            req: quote_input(&dep.version_req),
            reason: err.to_string(),
        })?;
    if req == VersionReq::STAR && dep.kind != DependencyKind::Dev {
        return Err(PublishError::WildcardDependency {
            dependency: quote_input(&dep.name),
        });
    }
    for feature in &dep.features {
        check_feature_value(feature).map_err(|reason| PublishError::InvalidFeature {
            feature: quote_input(feature),
            reason: format!("{reason} (in the features of dependency `{}`)", dep.name),
        })?;
    }
    Ok(())
}

/// Cargo's rule for feature names: the first character is a letter, a digit or `_`; the others
/// are letters, digits, `_`, `-`, `+` or `.`.
fn check_feature_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("feature names cannot be empty".to_owned());
    };
    if !(first.is_alphanumeric() || first == '_') {
        return Err(format!(
            "the first character `{}` is not allowed; feature names must start with a letter, a digit or `_`",
            first.escape_debug()
        ));
    }
    if let Some(c) = chars.find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))) {
        return Err(format!(
            "the character `{}` is not allowed; feature names may contain only letters, digits, `_`, `-`, `+` and `.`",
            c.escape_debug()
        ));
    }
    Ok(())
}

/// A value in a feature's list: another feature, `dep:name`, `name/feature` or `name?/feature`.
fn check_feature_value(value: &str) -> Result<(), String> {
    if let Some(dep) = value.strip_prefix("dep:") {
        return crate_name::validate_dependency_rename(dep)
            .map_err(|_| format!("`{}` does not name a dependency", quote_input(value)));
    }
    if let Some((dep, feature)) = value.split_once('/') {
        let dep = dep.strip_suffix('?').unwrap_or(dep);
        crate_name::validate_dependency_rename(dep)
            .map_err(|_| format!("`{}` does not name a dependency", quote_input(value)))?;
        return check_feature_name(feature);
    }
    check_feature_name(value)
}

/// `rust-version` is `major`, `major.minor` or `major.minor.patch`, numbers without leading zeros.
fn is_rust_version(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    (1..=3).contains(&parts.len())
        && parts.iter().all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part.len() == 1 || !part.starts_with('0'))
                && part.parse::<u64>().is_ok()
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::registry::test_support::metadata_json;

    const MAX: u64 = 10 * 1024 * 1024;

    fn metadata(value: Value) -> PublishMetadata {
        serde_json::from_value(value).unwrap()
    }

    fn validate(value: Value) -> Result<ValidatedPublish, PublishError> {
        metadata(value).validate(&RequiredMetadata::default())
    }

    fn validate_requiring(
        value: Value,
        required: &[MetadataField],
    ) -> Result<ValidatedPublish, PublishError> {
        metadata(value).validate(&RequiredMetadata::new(required.iter().copied()))
    }

    fn good() -> Value {
        metadata_json("Foo_bar", "1.2.3")
    }

    fn with_dep(dep: Value) -> Value {
        let mut value = good();
        value["deps"] = json!([dep]);
        value
    }

    fn dep(name: &str, req: &str, kind: &str) -> Value {
        json!({
            "optional": false,
            "default_features": true,
            "name": name,
            "features": [],
            "version_req": req,
            "target": null,
            "kind": kind,
        })
    }

    // --- wire format (the stream reading itself is tested with the handler) ---

    #[test]
    fn lengths_are_little_endian() {
        assert_eq!(declared_length([0x10, 0x02, 0, 0]), 0x210);
        assert_eq!(declared_length([0xff; 4]), u64::from(u32::MAX));
    }

    #[test]
    fn metadata_over_one_mebibyte_is_named_with_the_limit() {
        let err = PublishError::MetadataTooLarge {
            size: 2 * 1024 * 1024,
        };
        assert_eq!(
            err.to_string(),
            "the publish metadata is 2.0 MiB, but at most 1.0 MiB is allowed"
        );
    }

    #[test]
    fn a_crate_over_the_limit_is_refused_and_the_limit_named() {
        let err = crate_length(2048u32.to_le_bytes(), 1024).unwrap_err();
        assert!(matches!(err, PublishError::CrateTooLarge { .. }));
        assert_eq!(
            err.to_string(),
            "the crate file is 2.0 KiB, but the max upload size is 1.0 KiB"
        );
        let err = crate_length((11 * 1024 * 1024u32).to_le_bytes(), MAX).unwrap_err();
        assert!(err.to_string().contains("max upload size is 10.0 MiB"));
        assert_eq!(crate_length(1024u32.to_le_bytes(), 1024).unwrap(), 1024);
    }

    #[test]
    fn invalid_json_is_refused_with_serdes_explanation() {
        let err = parse_metadata(b"{not json").unwrap_err();

        assert!(matches!(err, PublishError::InvalidJson(_)));
        let msg = err.to_string();
        assert!(
            msg.starts_with("the publish metadata is not valid JSON for a new crate: key must be a string at line 1 column 2"),
            "{msg}"
        );
    }

    #[test]
    fn json_missing_required_keys_is_refused() {
        let err = parse_metadata(br#"{"name":"foo"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `vers`"), "{err}");
    }

    #[test]
    fn garbage_metadata_is_refused_without_panicking() {
        for json in [
            &b""[..],
            &b"\xff\xff\xff\xff"[..],
            &[0u8; 8][..],
            &[0xffu8; 64][..],
        ] {
            assert!(parse_metadata(json).is_err());
        }
    }

    #[test]
    fn the_metadata_mirrors_cargos_new_crate_json() {
        let json = json!({
            "name": "foo",
            "vers": "0.1.0",
            "deps": [{
                "optional": true,
                "default_features": false,
                "name": "serde",
                "features": ["derive"],
                "version_req": "^1.0",
                "target": "cfg(unix)",
                "kind": "normal",
                "registry": "https://github.com/rust-lang/crates.io-index",
                "explicit_name_in_toml": "serde1",
                "artifact": null,
                "bindep_target": null,
                "lib": false,
            }],
            "features": {"default": ["serde1"]},
            "authors": ["A <a@example.com>"],
            "description": "d",
            "documentation": "https://docs.rs/foo",
            "homepage": null,
            "readme": "# Foo",
            "readme_file": "README.md",
            "keywords": ["k"],
            "categories": ["c"],
            "license": "MIT",
            "license_file": null,
            "repository": "https://example.com/foo",
            "badges": {"maintenance": {"status": "actively-developed"}},
            "links": null,
            "rust_version": "1.70",
            "some_future_field": 42,
        });

        let parsed = metadata(json);

        assert_eq!(
            parsed.deps[0].explicit_name_in_toml.as_deref(),
            Some("serde1")
        );
        assert_eq!(parsed.deps[0].kind, DependencyKind::Normal);
        assert_eq!(parsed.readme_file.as_deref(), Some("README.md"));
        assert_eq!(parsed.badges["maintenance"]["status"], "actively-developed");
        assert_eq!(parsed.rust_version.as_deref(), Some("1.70"));
        assert!(parsed.validate(&RequiredMetadata::default()).is_ok());
    }

    // --- validation ---

    #[test]
    fn good_metadata_yields_a_typed_name_and_version() {
        let validated = validate(good()).unwrap();
        assert_eq!(validated.name.as_str(), "Foo_bar");
        assert_eq!(validated.version, Version::new(1, 2, 3));
    }

    #[test]
    fn invalid_crate_names_are_refused() {
        let mut value = good();
        value["name"] = json!("1abc");
        let err = validate(value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid crate name `1abc`: crate names must start with an ASCII letter"
        );

        let mut value = good();
        value["name"] = json!("std");
        assert!(
            validate(value)
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
    }

    #[test]
    fn invalid_semver_is_refused() {
        for vers in ["1.0", "v1.0.0", "1.0.0.0", "", "01.0.0"] {
            let mut value = good();
            value["vers"] = json!(vers);
            let err = validate(value).unwrap_err();
            assert!(matches!(err, PublishError::InvalidVersion { .. }), "{vers}");
            assert!(err.to_string().contains("Semantic Versioning"));
        }
    }

    #[test]
    fn nothing_is_required_by_default() {
        let mut value = good();
        for field in [
            "description",
            "license",
            "license_file",
            "repository",
            "homepage",
            "documentation",
            "readme",
            "rust_version",
        ] {
            value[field] = Value::Null;
        }
        assert!(validate(value).is_ok());
    }

    #[test]
    fn missing_required_fields_are_named_with_the_cargo_toml_lines_to_add() {
        let mut value = good();
        value["description"] = Value::Null;
        value["license"] = json!("  ");
        let err = validate_requiring(value, &[MetadataField::Description, MetadataField::License])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing or empty metadata fields: description, license. This registry requires them; add to the `[package]` section of Cargo.toml: `description = \"What the crate does, in one sentence\"`; `license = \"MIT OR Apache-2.0\"` (an SPDX expression) or `license-file = \"LICENSE\"`. See https://doc.rust-lang.org/cargo/reference/manifest.html for more information on configuring these fields"
        );
    }

    #[test]
    fn each_required_field_is_checked_against_its_own_key() {
        let cases = [
            (MetadataField::Description, "description", json!("d")),
            (MetadataField::License, "license", json!("MIT")),
            (
                MetadataField::Repository,
                "repository",
                json!("https://example.com/r"),
            ),
            (
                MetadataField::Homepage,
                "homepage",
                json!("https://example.com"),
            ),
            (
                MetadataField::Documentation,
                "documentation",
                json!("https://docs.example.com"),
            ),
            (MetadataField::Readme, "readme", json!("# Hello")),
            (MetadataField::RustVersion, "rust_version", json!("1.70")),
        ];
        for (field, json_key, present) in cases {
            let mut value = good();
            value["license_file"] = Value::Null;
            value[json_key] = present;
            assert!(
                validate_requiring(value.clone(), &[field]).is_ok(),
                "{field}"
            );
            for absent in [Value::Null, json!(""), json!(" \n")] {
                value[json_key] = absent;
                let err = validate_requiring(value.clone(), &[field]).unwrap_err();
                assert!(
                    matches!(&err, PublishError::MissingFields(missing) if missing == &[field]),
                    "{field}: {err}"
                );
                let message = err.to_string();
                assert!(
                    message.starts_with(&format!(
                        "missing or empty metadata fields: {}. This registry requires it;",
                        field.key()
                    )),
                    "{message}"
                );
                assert!(
                    message.contains(&format!("`{} = \"", field.key())),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn a_license_file_stands_in_for_a_license() {
        let mut value = good();
        value["license"] = Value::Null;
        value["license_file"] = json!("LICENSE");
        assert!(validate_requiring(value, &[MetadataField::License]).is_ok());
    }

    #[test]
    fn required_fields_are_read_from_a_comma_list_of_cargo_toml_keys() {
        let parsed = RequiredMetadata::parse_list(" description, License,rust_version,,").unwrap();
        assert_eq!(
            parsed.fields().collect::<Vec<_>>(),
            [
                MetadataField::Description,
                MetadataField::License,
                MetadataField::RustVersion
            ]
        );
        assert!(RequiredMetadata::parse_list("").unwrap().is_empty());
        assert!(RequiredMetadata::parse_list(" , ").unwrap().is_empty());
        for key in MetadataField::ALL.map(MetadataField::key) {
            assert!(RequiredMetadata::parse_list(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn unknown_required_fields_are_refused_with_the_known_ones() {
        let err = RequiredMetadata::parse_list("description,licence").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown metadata field `licence`; the fields a registry can require are: description, license, repository, homepage, documentation, readme, rust-version (`license` is satisfied by `license` or `license-file`)"
        );
        assert!(RequiredMetadata::parse_list("license-file").is_err());
    }

    #[test]
    fn descriptions_over_1000_characters_are_refused() {
        let mut value = good();
        value["description"] = json!("é".repeat(1000));
        assert!(validate(value).is_ok());

        let mut value = good();
        value["description"] = json!("d".repeat(1001));
        let err = validate(value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the description is 1001 characters long, but at most 1000 are allowed"
        );
    }

    #[test]
    fn more_than_five_keywords_are_refused() {
        let mut value = good();
        value["keywords"] = json!(["a", "b", "c", "d", "e", "f"]);
        let err = validate(value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected at most 5 keywords per crate, but got 6"
        );
    }

    #[test]
    fn keywords_over_20_characters_are_refused() {
        let mut value = good();
        value["keywords"] = json!(["a".repeat(20)]);
        assert!(validate(value).is_ok());

        let mut value = good();
        value["keywords"] = json!(["a".repeat(21)]);
        assert!(matches!(
            validate(value).unwrap_err(),
            PublishError::KeywordTooLong { .. }
        ));
    }

    #[test]
    fn keywords_with_bad_characters_are_refused() {
        for keyword in ["", "-leading", "with space", "dot.ted", "ünï", "_x"] {
            let mut value = good();
            value["keywords"] = json!([keyword]);
            let err = validate(value).unwrap_err();
            assert!(
                matches!(err, PublishError::InvalidKeyword { .. }),
                "{keyword}: {err}"
            );
        }
        let mut value = good();
        value["keywords"] = json!(["c++", "no_std", "web-dev", "x86"]);
        assert!(validate(value).is_ok());
    }

    #[test]
    fn more_than_five_categories_are_refused() {
        let mut value = good();
        value["categories"] = json!(["a", "b", "c", "d", "e", "f"]);
        assert!(matches!(
            validate(value).unwrap_err(),
            PublishError::TooManyCategories { count: 6 }
        ));
    }

    #[test]
    fn feature_names_follow_cargos_rules() {
        for name in ["default", "std", "_private", "1x", "a-b+c.d", "serde_json"] {
            let mut value = good();
            value["features"] = json!({ name: [] });
            assert!(validate(value).is_ok(), "{name}");
        }
        for name in ["", "-a", "+a", ".a", "a b", "a/b", "a:b", "dep:x"] {
            let mut value = good();
            value["features"] = json!({ name: [] });
            let err = validate(value).unwrap_err();
            assert!(
                matches!(err, PublishError::InvalidFeature { .. }),
                "{name:?}: {err}"
            );
        }
    }

    #[test]
    fn feature_values_may_name_features_and_dependencies() {
        let mut value = good();
        value["features"] = json!({
            "default": ["std"],
            "std": ["serde/std", "dep:serde", "log?/std"],
        });
        assert!(validate(value).is_ok());

        for bad in ["dep:", "/std", "serde/", "a b", "serde/x y"] {
            let mut value = good();
            value["features"] = json!({ "x": [bad] });
            let err = validate(value).unwrap_err();
            assert!(
                matches!(err, PublishError::InvalidFeature { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn invalid_dependency_names_are_refused() {
        let err = validate(with_dep(dep("bad name", "^1", "normal"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid dependency `bad name`: invalid crate name `bad name`: the character ` ` is not allowed; crate names may contain only ASCII letters, digits, `-` and `_`"
        );

        let mut renamed = dep("serde", "^1", "normal");
        renamed["explicit_name_in_toml"] = json!("se.rde");
        assert!(matches!(
            validate(with_dep(renamed)).unwrap_err(),
            PublishError::InvalidDependencyName { .. }
        ));
    }

    #[test]
    fn unparseable_version_requirements_are_refused() {
        let err = validate(with_dep(dep("serde", "not a req", "normal"))).unwrap_err();
        assert!(matches!(err, PublishError::InvalidVersionReq { .. }));
        assert!(
            err.to_string()
                .starts_with("invalid version requirement `not a req` for dependency `serde`: ")
        );
    }

    #[test]
    fn wildcard_requirements_are_refused_on_normal_and_build_dependencies() {
        for kind in ["normal", "build"] {
            let err = validate(with_dep(dep("serde", "*", kind))).unwrap_err();
            assert_eq!(
                err.to_string(),
                "wildcard (`*`) dependency constraints are not allowed on this registry. Crate with this problem: `serde`. See https://doc.rust-lang.org/cargo/faq.html#can-libraries-use--as-a-version-for-their-dependencies for more information"
            );
        }
    }

    #[test]
    fn wildcard_requirements_are_allowed_on_dev_dependencies() {
        assert!(validate(with_dep(dep("serde", "*", "dev"))).is_ok());
    }

    #[test]
    fn unknown_dependency_kinds_are_refused() {
        let mut value = with_dep(dep("serde", "^1", "weird"));
        value["deps"][0]["kind"] = json!("weird");
        let json = serde_json::to_vec(&value).unwrap();

        let err = parse_metadata(&json).unwrap_err();

        let msg = err.to_string();
        assert!(
            msg.contains("invalid dependency kind `weird`: expected `normal`, `build` or `dev`"),
            "{msg}"
        );
    }

    #[test]
    fn invalid_dependency_features_are_refused() {
        let mut bad = dep("serde", "^1", "normal");
        bad["features"] = json!(["de rive"]);
        assert!(matches!(
            validate(with_dep(bad)).unwrap_err(),
            PublishError::InvalidFeature { .. }
        ));
    }

    #[test]
    fn rust_version_must_be_a_partial_version() {
        for ok in ["1", "1.70", "1.70.0", "0.9"] {
            let mut value = good();
            value["rust_version"] = json!(ok);
            assert!(validate(value).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1.70.0.1",
            "^1.70",
            "1.70-beta",
            "1.x",
            "v1.70",
            "01.70",
            "1..0",
        ] {
            let mut value = good();
            value["rust_version"] = json!(bad);
            let err = validate(value).unwrap_err();
            assert!(
                matches!(err, PublishError::InvalidRustVersion { .. }),
                "{bad}: {err}"
            );
        }
    }
}
