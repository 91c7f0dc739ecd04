//! Cargo's index format: one JSON object per published version, one per line, in the file at
//! [`CrateName::index_path`](super::crate_name::CrateName::index_path).
//!
//! Field names and omission rules follow cargo's `IndexPackage`/`RegistryDependency`
//! (`cargo-util-schemas/src/index.rs`) and what crates.io writes: `features2` only when
//! non-empty, `v` is 2 exactly then, `links` and `target` are `null` when absent, `registry` and
//! `package` are omitted when absent, `pubtime` is `YYYY-MM-DDTHH:MM:SSZ`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::crate_name::CrateName;
use super::publish::{PublishDependency, PublishMetadata};

/// Features as cargo writes them: feature name → the features and dependencies it enables.
pub type FeatureMap = BTreeMap<String, Vec<String>>;

/// The kind of a dependency, written in lowercase in both the publish JSON and the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyKind {
    #[default]
    Normal,
    Build,
    Dev,
}

impl DependencyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Build => "build",
            Self::Dev => "dev",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "normal" => Some(Self::Normal),
            "build" => Some(Self::Build),
            "dev" => Some(Self::Dev),
            _ => None,
        }
    }
}

impl fmt::Display for DependencyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DependencyKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let kind = String::deserialize(deserializer)?;
        Self::parse(&kind).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "invalid dependency kind `{}`: expected `normal`, `build` or `dev`",
                super::quote_input(&kind)
            ))
        })
    }
}

/// One dependency of an index line (cargo's `RegistryDependency`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDependency {
    /// The name the dependency has in the depending crate's code: the rename if there is one.
    pub name: String,
    pub req: String,
    pub features: Vec<String>,
    pub optional: bool,
    pub default_features: bool,
    pub target: Option<String>,
    pub kind: DependencyKind,
    /// The index URL of the registry the dependency comes from; `None` means this registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The real crate name when the dependency is renamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

/// One line of an index file (cargo's `IndexPackage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexLine {
    pub name: String,
    pub vers: semver::Version,
    pub deps: Vec<IndexDependency>,
    /// SHA-256 of the `.crate` file, lowercase hex.
    pub cksum: String,
    pub features: FeatureMap,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features2: FeatureMap,
    pub yanked: bool,
    #[serde(default)]
    pub links: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rust_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "pubtime")]
    pub pubtime: Option<DateTime<Utc>>,
    /// 1, or 2 when `features2` is used.
    pub v: u32,
}

impl IndexLine {
    /// The line for a freshly published version. `metadata` must have passed
    /// [`PublishMetadata::validate`], which produced `name` and `version`.
    pub fn for_publish(
        name: &CrateName,
        version: &semver::Version,
        metadata: &PublishMetadata,
        cksum: String,
        pubtime: DateTime<Utc>,
    ) -> Self {
        let (features, features2) = split_features(metadata.features.clone());
        let v = if features2.is_empty() { 1 } else { 2 };
        Self {
            name: name.as_str().to_owned(),
            vers: version.clone(),
            deps: index_deps(&metadata.deps),
            cksum,
            features,
            features2,
            yanked: false,
            links: metadata.links.clone(),
            rust_version: metadata.rust_version.clone(),
            pubtime: Some(pubtime),
            v,
        }
    }

    /// The line as one line of JSON, without the trailing newline.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and maps with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Maps the dependencies of the publish JSON to index dependencies, sorted by name then kind so
/// the output is stable.
///
/// A renamed dependency (`explicit_name_in_toml`) is listed under its rename, with the real
/// crate in `package`. `registry` passes through: `None` means this registry.
pub fn index_deps(deps: &[PublishDependency]) -> Vec<IndexDependency> {
    let mut out: Vec<IndexDependency> = deps
        .iter()
        .map(|dep| {
            let (name, package) = match &dep.explicit_name_in_toml {
                Some(rename) => (rename.clone(), Some(dep.name.clone())),
                None => (dep.name.clone(), None),
            };
            IndexDependency {
                name,
                req: dep.version_req.clone(),
                features: dep.features.clone(),
                optional: dep.optional,
                default_features: dep.default_features,
                target: dep.target.clone(),
                kind: dep.kind,
                registry: dep.registry.clone(),
                package,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.name, a.kind, &a.target, &a.req).cmp(&(&b.name, b.kind, &b.target, &b.req))
    });
    out
}

/// Splits features as crates.io does: a feature whose values use the newer syntax (`dep:x` or
/// `x?/y`) goes to `features2`, which cargo older than 1.60 cannot parse; the rest to `features`.
pub fn split_features(features: FeatureMap) -> (FeatureMap, FeatureMap) {
    features.into_iter().partition(|(_, values)| {
        !values
            .iter()
            .any(|value| value.starts_with("dep:") || value.contains("?/"))
    })
}

/// The checksum cargo verifies after download: SHA-256 of the `.crate` file in lowercase hex.
pub fn cksum(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The body of an index file: one JSON object per line, each line ending in `\n`.
pub fn render_index_file(lines: &[IndexLine]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line.to_json());
        out.push('\n');
    }
    out
}

/// `pubtime` in the exact form cargo parses: `%Y-%m-%dT%H:%M:%SZ`, always padded, UTC.
mod pubtime {
    use chrono::{DateTime, NaiveDateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    const FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

    pub fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(time) => serializer.collect_str(&time.format(FORMAT)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        NaiveDateTime::parse_from_str(&text, FORMAT)
            .map(|naive| Some(naive.and_utc()))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use chrono::TimeZone;
    use serde_json::{Value, json};

    use super::*;
    use crate::registry::test_support::metadata_json;

    fn dep(name: &str, req: &str) -> PublishDependency {
        serde_json::from_value(json!({
            "optional": false,
            "default_features": true,
            "name": name,
            "features": [],
            "version_req": req,
            "target": null,
            "kind": "normal",
        }))
        .unwrap()
    }

    fn sample_line() -> IndexLine {
        IndexLine {
            name: "Foo_bar".into(),
            vers: semver::Version::new(1, 2, 3),
            deps: vec![],
            cksum: cksum(b"hello"),
            features: BTreeMap::new(),
            features2: BTreeMap::new(),
            yanked: false,
            links: None,
            rust_version: None,
            pubtime: None,
            v: 1,
        }
    }

    #[test]
    fn cksum_is_lowercase_sha256_hex() {
        assert_eq!(
            cksum(b"hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn a_minimal_line_has_cargos_fields_and_omits_the_optional_ones() {
        let value: Value = serde_json::from_str(&sample_line().to_json()).unwrap();
        assert_eq!(
            value,
            json!({
                "name": "Foo_bar",
                "vers": "1.2.3",
                "deps": [],
                "cksum": cksum(b"hello"),
                "features": {},
                "yanked": false,
                "links": null,
                "v": 1,
            })
        );
    }

    #[test]
    fn a_full_line_serializes_every_field_cargo_reads() {
        let mut features = BTreeMap::new();
        features.insert("default".to_owned(), vec!["std".to_owned()]);
        features.insert("std".to_owned(), vec![]);
        features.insert("serde".to_owned(), vec!["dep:serde".to_owned()]);
        let mut renamed = dep("serde", "^1.0");
        renamed.explicit_name_in_toml = Some("serde1".into());
        renamed.optional = true;
        renamed.registry = Some("https://github.com/rust-lang/crates.io-index".into());
        let mut metadata: PublishMetadata =
            serde_json::from_value(metadata_json("Foo_bar", "1.2.3")).unwrap();
        metadata.features = features;
        metadata.deps = vec![renamed];
        metadata.links = Some("foo".into());
        metadata.rust_version = Some("1.70".into());
        let name = CrateName::parse("Foo_bar").unwrap();
        let time = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();

        let line = IndexLine::for_publish(
            &name,
            &semver::Version::new(1, 2, 3),
            &metadata,
            "ab".repeat(32),
            time,
        );
        let value: Value = serde_json::from_str(&line.to_json()).unwrap();

        assert_eq!(
            value,
            json!({
                "name": "Foo_bar",
                "vers": "1.2.3",
                "deps": [{
                    "name": "serde1",
                    "req": "^1.0",
                    "features": [],
                    "optional": true,
                    "default_features": true,
                    "target": null,
                    "kind": "normal",
                    "registry": "https://github.com/rust-lang/crates.io-index",
                    "package": "serde",
                }],
                "cksum": "ab".repeat(32),
                "features": {"default": ["std"], "std": []},
                "features2": {"serde": ["dep:serde"]},
                "yanked": false,
                "links": "foo",
                "rust_version": "1.70",
                "pubtime": "2024-01-02T03:04:05Z",
                "v": 2,
            })
        );
    }

    #[test]
    fn lines_parse_back_to_the_same_value() {
        let mut line = sample_line();
        line.pubtime = Some(Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 59).unwrap());
        line.deps = index_deps(&[dep("a", "^1")]);
        line.features2.insert("x".into(), vec!["a?/std".into()]);
        line.v = 2;
        line.yanked = true;

        let back: IndexLine = serde_json::from_str(&line.to_json()).unwrap();

        assert_eq!(back, line);
    }

    #[test]
    fn pubtime_is_second_precision_utc_with_z() {
        let mut line = sample_line();
        let time = Utc
            .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
            .unwrap()
            .checked_add_signed(chrono::Duration::milliseconds(789))
            .unwrap();
        line.pubtime = Some(time);
        let value: Value = serde_json::from_str(&line.to_json()).unwrap();
        assert_eq!(value["pubtime"], "2024-01-02T03:04:05Z");
    }

    #[test]
    fn a_renamed_dependency_is_listed_under_its_rename_with_the_package() {
        let mut renamed = dep("serde", "^1");
        renamed.explicit_name_in_toml = Some("serde_one".into());

        let deps = index_deps(&[renamed]);

        assert_eq!(deps[0].name, "serde_one");
        assert_eq!(deps[0].package.as_deref(), Some("serde"));
    }

    #[test]
    fn an_unrenamed_dependency_has_no_package_field() {
        let deps = index_deps(&[dep("serde", "^1")]);
        assert_eq!(deps[0].name, "serde");
        assert_eq!(deps[0].package, None);
        let value = serde_json::to_value(&deps[0]).unwrap();
        assert!(value.get("package").is_none());
        assert!(value.get("registry").is_none());
        assert_eq!(value["target"], Value::Null);
    }

    #[test]
    fn the_registry_of_a_dependency_passes_through_unchanged() {
        let same = dep("a", "^1");
        let mut other = dep("b", "^1");
        other.registry = Some("https://github.com/rust-lang/crates.io-index".into());

        let deps = index_deps(&[other, same]);

        assert_eq!(deps[0].name, "a");
        assert_eq!(deps[0].registry, None);
        assert_eq!(
            deps[1].registry.as_deref(),
            Some("https://github.com/rust-lang/crates.io-index")
        );
    }

    #[test]
    fn dependency_kinds_and_targets_are_kept() {
        let mut build = dep("cc", "^1");
        build.kind = DependencyKind::Build;
        let mut dev = dep("proptest", "^1");
        dev.kind = DependencyKind::Dev;
        dev.target = Some("cfg(unix)".into());
        dev.features = vec!["std".into()];
        dev.default_features = false;

        let deps = index_deps(&[dev, build]);
        let value = serde_json::to_value(&deps).unwrap();

        assert_eq!(value[0]["name"], "cc");
        assert_eq!(value[0]["kind"], "build");
        assert_eq!(value[1]["kind"], "dev");
        assert_eq!(value[1]["target"], "cfg(unix)");
        assert_eq!(value[1]["features"], json!(["std"]));
        assert_eq!(value[1]["default_features"], false);
    }

    #[test]
    fn features_using_dep_or_weak_syntax_go_to_features2() {
        let mut features = BTreeMap::new();
        features.insert("default".to_owned(), vec!["std".to_owned()]);
        features.insert("std".to_owned(), vec!["serde/std".to_owned()]);
        features.insert("ns".to_owned(), vec!["dep:serde".to_owned()]);
        features.insert("weak".to_owned(), vec!["serde?/derive".to_owned()]);

        let (plain, extended) = split_features(features);

        assert_eq!(
            plain.keys().collect::<Vec<_>>(),
            vec!["default", "std"],
            "{plain:?}"
        );
        assert_eq!(extended.keys().collect::<Vec<_>>(), vec!["ns", "weak"]);
    }

    #[test]
    fn index_files_have_one_terminated_line_per_version() {
        let mut second = sample_line();
        second.vers = semver::Version::new(1, 2, 4);

        let body = render_index_file(&[sample_line(), second]);

        assert!(body.ends_with('\n'));
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 2);
        for line in lines {
            let parsed: IndexLine = serde_json::from_str(line).unwrap();
            assert_eq!(parsed.name, "Foo_bar");
        }
        assert_eq!(render_index_file(&[]), "");
    }

    #[test]
    fn lines_written_by_crates_io_are_readable() {
        let line = r#"{"name":"serde","vers":"1.0.0","deps":[{"name":"serde_derive","req":"^1.0","features":[],"optional":true,"default_features":true,"target":null,"kind":"normal"}],"cksum":"abcd","features":{"derive":["serde_derive"]},"yanked":false,"links":null}"#;
        let parsed: IndexLine =
            serde_json::from_str(&line.replace(r#""links":null}"#, r#""links":null,"v":1}"#))
                .unwrap();
        assert_eq!(parsed.deps[0].kind, DependencyKind::Normal);
        assert_eq!(parsed.pubtime, None);
    }

    #[test]
    fn unknown_dependency_kinds_do_not_deserialize() {
        let err = serde_json::from_str::<DependencyKind>("\"weird\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected `normal`, `build` or `dev`")
        );
    }
}
