//! Buildkite: the ID token's claims and how they are matched to publisher configs.
//!
//! `buildkite-agent oidc request-token --audience AUD` gives a job an ID token from
//! `https://agent.buildkite.com`, the one issuer of every organization's agents: the
//! organization is therefore never optional. A config names an organization and a pipeline
//! (slugs, compared ignoring ASCII case) and optionally a branch (equal to `build_branch`
//! exactly) and a step key (equal to `step_key` exactly). The organization's and pipeline's
//! UUIDs (`organization_id`, `pipeline_id`, which a token carries when requested with
//! `--claims organization_id,pipeline_id`) are captured on the first successful use; once
//! captured, every later token must carry the same values, so that a deleted and re-created
//! organization or pipeline of the same name cannot inherit trust.
//!
//! Buildkite tokens name no person: `published_by` is `organization/pipeline`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::claims::de;
use super::errors::{MatchError, shorten};
use super::provider::{
    Candidate, Cell, FieldError, FormField, IssuerSetting, Match, Provider, check, exact_mismatch,
    join_parts, normalize_optional, one_of_exact, optional_message, trim_all,
};
use super::record::Record;
use crate::db::{DbConn, lower};
use crate::schema::{crates, trustpub_buildkite_configs};

/// Buildkite's issuer; its build pages are on `https://buildkite.com`.
pub const BUILDKITE_ISSUER: &str = "https://agent.buildkite.com";

/// The claims of a Buildkite ID token that Wharf uses (unknown claims are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildkiteClaims {
    pub iss: String,
    pub aud: String,
    #[serde(default)]
    pub sub: Option<String>,
    pub jti: String,
    #[serde(deserialize_with = "de::numeric_date")]
    pub exp: i64,
    #[serde(deserialize_with = "de::numeric_date")]
    pub iat: i64,
    #[serde(default, deserialize_with = "de::optional_numeric_date")]
    pub nbf: Option<i64>,

    pub organization_slug: String,
    pub pipeline_slug: String,
    #[serde(deserialize_with = "de::id")]
    pub build_number: i64,
    pub build_branch: String,
    /// `null` when the build has no tag.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub build_tag: Option<String>,
    pub build_commit: String,
    /// `null` when the step has no `key`.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub step_key: Option<String>,
    pub job_id: String,
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Only when requested (`--claims organization_id`).
    #[serde(default, deserialize_with = "de::non_empty")]
    pub organization_id: Option<String>,
    /// Only when requested (`--claims pipeline_id`).
    #[serde(default, deserialize_with = "de::non_empty")]
    pub pipeline_id: Option<String>,
    #[serde(default)]
    pub build_source: Option<String>,
    #[serde(default)]
    pub runner_environment: Option<String>,
}

impl BuildkiteClaims {
    /// `organization/pipeline`.
    pub fn pipeline_path(&self) -> String {
        format!("{}/{}", self.organization_slug, self.pipeline_slug)
    }

    /// The build's page: on `https://buildkite.com` for Buildkite's issuer, else under the
    /// issuer (a stand-in such as Wharf's development fake serves its build pages there).
    pub fn build_url(&self) -> String {
        let iss = self.iss.trim_end_matches('/');
        let server = if iss == BUILDKITE_ISSUER {
            "https://buildkite.com"
        } else {
            iss
        };
        format!(
            "{server}/{}/{}/builds/{}",
            self.organization_slug, self.pipeline_slug, self.build_number
        )
    }
}

/// Buildkite, as a [`Provider`].
pub struct Buildkite;

/// What a Buildkite exchange records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildkiteData {
    pub issuer: String,
    pub organization: String,
    pub pipeline: String,
    /// `build_branch`.
    pub branch: String,
    /// `build_tag`, if the build has one.
    pub tag: Option<String>,
    pub step_key: Option<String>,
    pub build_number: i64,
    pub job_id: String,
    /// The build's page.
    pub run_url: String,
    /// `build_commit`.
    pub sha: String,
}

impl Record for BuildkiteData {
    fn source(&self) -> String {
        format!("{}/{}", self.organization, self.pipeline)
    }

    fn details(&self) -> Vec<(&'static str, String)> {
        let mut details = vec![("Pipeline", self.source()), ("Branch", self.branch.clone())];
        details.extend(self.tag.clone().map(|t| ("Tag", t)));
        details.extend(self.step_key.clone().map(|s| ("Step", s)));
        details
    }

    fn run_label(&self) -> String {
        format!("build {}", self.build_number)
    }

    fn run_url(&self) -> &str {
        &self.run_url
    }

    fn sha(&self) -> &str {
        &self.sha
    }

    fn summary(&self) -> String {
        match &self.step_key {
            Some(step) => format!("{} ({step})", self.source()),
            None => self.source(),
        }
    }
}

/// A Buildkite publisher config, as stored.
#[derive(Queryable, Selectable, Identifiable, Debug, Clone, PartialEq, Eq)]
#[diesel(table_name = trustpub_buildkite_configs)]
pub struct BuildkiteConfig {
    pub id: i64,
    pub crate_id: i64,
    pub organization: String,
    /// Captured on the first successful use of a token that carries it.
    pub organization_id: Option<String>,
    pub pipeline: String,
    /// Captured on the first successful use of a token that carries it.
    pub pipeline_id: Option<String>,
    pub branch: Option<String>,
    pub step_key: Option<String>,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
}

/// A Buildkite publisher config as submitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct BuildkiteInput {
    pub organization: String,
    pub pipeline: String,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub step_key: Option<String>,
}

#[derive(Insertable, Debug)]
#[diesel(table_name = trustpub_buildkite_configs)]
struct NewBuildkiteConfig<'a> {
    crate_id: i64,
    organization: &'a str,
    pipeline: &'a str,
    branch: Option<&'a str>,
    step_key: Option<&'a str>,
    created_at: NaiveDateTime,
    created_by: Option<i64>,
}

enum Mismatch {
    /// The recorded ID.
    OrganizationId(String),
    PipelineId(String),
    Branch(String),
    StepKey(String),
}

impl Provider for Buildkite {
    const KIND: &'static str = "buildkite";
    const LABEL: &'static str = "Buildkite";
    const ISSUER: IssuerSetting = IssuerSetting {
        key: "trustpub_buildkite_issuer",
        default: BUILDKITE_ISSUER,
        many: false,
    };
    const FORM_ID: &'static str = "bk";
    const FIELDS: &'static [FormField] = &[
        FormField {
            name: "organization",
            label: "Organization",
            hint: "The organization's slug, as in buildkite.com/ORGANIZATION.",
            required: true,
        },
        FormField {
            name: "pipeline",
            label: "Pipeline",
            hint: "The pipeline's slug, as in buildkite.com/ORGANIZATION/PIPELINE.",
            required: true,
        },
        FormField {
            name: "branch",
            label: "Branch (optional)",
            hint: "If set, only builds of this branch may publish.",
            required: false,
        },
        FormField {
            name: "step_key",
            label: "Step key (optional)",
            hint: "If set, only the step with this key may publish.",
            required: false,
        },
    ];
    const COLUMNS: &'static [&'static str] = &["Pipeline", "Branch", "Step key"];

    type Claims = BuildkiteClaims;
    type Data = BuildkiteData;
    type Config = BuildkiteConfig;
    type Input = BuildkiteInput;

    fn published_by(claims: &BuildkiteClaims) -> String {
        claims.pipeline_path()
    }

    fn subject(claims: &BuildkiteClaims) -> String {
        format!("Buildkite pipeline `{}`", shorten(&claims.pipeline_path()))
    }

    fn data(claims: &BuildkiteClaims) -> BuildkiteData {
        BuildkiteData {
            issuer: claims.iss.clone(),
            organization: claims.organization_slug.clone(),
            pipeline: claims.pipeline_slug.clone(),
            branch: claims.build_branch.clone(),
            tag: claims.build_tag.clone(),
            step_key: claims.step_key.clone(),
            build_number: claims.build_number,
            job_id: claims.job_id.clone(),
            run_url: claims.build_url(),
            sha: claims.build_commit.clone(),
        }
    }

    fn match_configs(
        claims: &BuildkiteClaims,
        candidates: &[Candidate<BuildkiteConfig>],
    ) -> Result<Vec<Match>, MatchError> {
        match_publishers(claims, candidates)
    }

    fn normalize(mut input: BuildkiteInput) -> Result<BuildkiteInput, Vec<FieldError>> {
        trim_all(&mut [&mut input.organization, &mut input.pipeline]);
        input.branch = normalize_optional(input.branch);
        input.step_key = normalize_optional(input.step_key);
        let mut errors = Vec::new();
        check(
            &mut errors,
            "organization",
            valid_slug(&input.organization),
            "a Buildkite organization slug: letters, digits and `-`, at most 100 characters",
        );
        check(
            &mut errors,
            "pipeline",
            valid_slug(&input.pipeline),
            "a Buildkite pipeline slug: letters, digits and `-`, at most 100 characters",
        );
        if let Some(branch) = &input.branch {
            check(
                &mut errors,
                "branch",
                branch.len() <= 255 && !branch.chars().any(|c| c.is_control() || c == ' '),
                "a branch name of at most 255 characters, without spaces or control characters (leave it empty to allow any branch)",
            );
        }
        if let Some(step_key) = &input.step_key {
            check(
                &mut errors,
                "step_key",
                step_key.len() <= 255 && !step_key.chars().any(|c| c.is_control() || c == ' '),
                "a step key of at most 255 characters, without spaces or control characters (leave it empty to allow any step)",
            );
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(errors)
        }
    }

    fn is_duplicate(c: &BuildkiteConfig, input: &BuildkiteInput) -> bool {
        c.organization.eq_ignore_ascii_case(&input.organization)
            && c.pipeline.eq_ignore_ascii_case(&input.pipeline)
            && c.branch == input.branch
            && c.step_key == input.step_key
    }

    fn pending_config(
        id: i64,
        input: &BuildkiteInput,
        created_by: i64,
        created_at: NaiveDateTime,
    ) -> BuildkiteConfig {
        BuildkiteConfig {
            id,
            crate_id: 0,
            organization: input.organization.clone(),
            organization_id: None,
            pipeline: input.pipeline.clone(),
            pipeline_id: None,
            branch: input.branch.clone(),
            step_key: input.step_key.clone(),
            created_at,
            created_by: Some(created_by),
        }
    }

    fn config_id(config: &BuildkiteConfig) -> i64 {
        config.id
    }

    fn config_crate_id(config: &BuildkiteConfig) -> i64 {
        config.crate_id
    }

    fn config_created_at(config: &BuildkiteConfig) -> NaiveDateTime {
        config.created_at
    }

    fn config_json(c: &BuildkiteConfig, crate_name: &str) -> serde_json::Value {
        json!({
            "id": c.id,
            "crate": crate_name,
            "organization": c.organization,
            "organization_id": c.organization_id,
            "pipeline": c.pipeline,
            "pipeline_id": c.pipeline_id,
            "branch": c.branch,
            "step_key": c.step_key,
            "created_at": c.created_at.and_utc(),
        })
    }

    fn describe(c: &BuildkiteConfig) -> String {
        let branch = c
            .branch
            .as_deref()
            .map(|b| format!(", branch {b}"))
            .unwrap_or_default();
        let step = c
            .step_key
            .as_deref()
            .map(|s| format!(", step {s}"))
            .unwrap_or_default();
        format!("{}/{}{branch}{step}", c.organization, c.pipeline)
    }

    fn row(c: &BuildkiteConfig) -> Vec<Cell> {
        vec![
            Cell::Text(format!("{}/{}", c.organization, c.pipeline)),
            Cell::optional(c.branch.as_deref()),
            match c.step_key.as_deref() {
                Some(step) => Cell::Code(step.to_owned()),
                None => Cell::Any,
            },
        ]
    }

    /// The configs of the claims' pipeline (organization and pipeline ignoring ASCII case). A
    /// prefilter only: slugs are ASCII (checked when a config is created); the matcher decides.
    fn candidates(
        conn: &mut DbConn,
        claims: &BuildkiteClaims,
    ) -> QueryResult<Vec<Candidate<BuildkiteConfig>>> {
        let rows: Vec<(BuildkiteConfig, String)> = trustpub_buildkite_configs::table
            .inner_join(crates::table)
            .filter(
                lower(trustpub_buildkite_configs::organization)
                    .eq(claims.organization_slug.to_ascii_lowercase()),
            )
            .filter(
                lower(trustpub_buildkite_configs::pipeline)
                    .eq(claims.pipeline_slug.to_ascii_lowercase()),
            )
            .select((BuildkiteConfig::as_select(), crates::name))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .map(|(config, crate_name)| Candidate { crate_name, config })
            .collect())
    }

    /// Records the organization and pipeline IDs the token carries, where none is recorded yet.
    fn record_use(conn: &mut DbConn, config_id: i64, claims: &BuildkiteClaims) -> QueryResult<()> {
        if let Some(id) = &claims.organization_id {
            diesel::update(
                trustpub_buildkite_configs::table
                    .find(config_id)
                    .filter(trustpub_buildkite_configs::organization_id.is_null()),
            )
            .set(trustpub_buildkite_configs::organization_id.eq(id))
            .execute(conn)?;
        }
        if let Some(id) = &claims.pipeline_id {
            diesel::update(
                trustpub_buildkite_configs::table
                    .find(config_id)
                    .filter(trustpub_buildkite_configs::pipeline_id.is_null()),
            )
            .set(trustpub_buildkite_configs::pipeline_id.eq(id))
            .execute(conn)?;
        }
        Ok(())
    }

    fn for_crate(conn: &mut DbConn, crate_id: i64) -> QueryResult<Vec<BuildkiteConfig>> {
        trustpub_buildkite_configs::table
            .filter(trustpub_buildkite_configs::crate_id.eq(crate_id))
            .order(trustpub_buildkite_configs::id.asc())
            .select(BuildkiteConfig::as_select())
            .load(conn)
    }

    fn by_id(conn: &mut DbConn, id: i64) -> QueryResult<Option<BuildkiteConfig>> {
        trustpub_buildkite_configs::table
            .find(id)
            .select(BuildkiteConfig::as_select())
            .first(conn)
            .optional()
    }

    fn insert(
        conn: &mut DbConn,
        crate_id: i64,
        input: &BuildkiteInput,
        created_by: i64,
        now: NaiveDateTime,
    ) -> QueryResult<BuildkiteConfig> {
        diesel::insert_into(trustpub_buildkite_configs::table)
            .values(NewBuildkiteConfig {
                crate_id,
                organization: &input.organization,
                pipeline: &input.pipeline,
                branch: input.branch.as_deref(),
                step_key: input.step_key.as_deref(),
                created_at: now,
                created_by: Some(created_by),
            })
            .execute(conn)?;
        trustpub_buildkite_configs::table
            .filter(trustpub_buildkite_configs::crate_id.eq(crate_id))
            .order(trustpub_buildkite_configs::id.desc())
            .select(BuildkiteConfig::as_select())
            .first(conn)
    }

    fn delete(conn: &mut DbConn, id: i64) -> QueryResult<()> {
        diesel::delete(trustpub_buildkite_configs::table.find(id)).execute(conn)?;
        Ok(())
    }
}

/// A Buildkite slug: ASCII letters, digits and `-` (Buildkite writes them in lower case).
fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 100
        && slug.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A recorded ID that the token must carry unchanged.
fn pinned_mismatch(recorded: Option<&str>, claimed: Option<&str>) -> Option<String> {
    let recorded = recorded?;
    (claimed != Some(recorded)).then(|| recorded.to_owned())
}

/// The part of the message for a pinned ID: `what` is `organization`, `claim` its claim name.
fn pinned_message(what: &str, claim: &str, claimed: Option<&str>, recorded: &[String]) -> String {
    let recorded = one_of_exact(recorded);
    match claimed {
        Some(id) => format!(
            "the {what} ID `{}` differs from the one recorded when the config was first used \
             ({recorded}); the {what} may have been deleted and re-created. Remove and re-add \
             the config",
            shorten(id)
        ),
        None => format!(
            "the token carries no `{claim}`, but the config recorded {recorded} when it was \
             first used; request the token with `buildkite-agent oidc request-token --claims \
             organization_id,pipeline_id`"
        ),
    }
}

/// The configs among `candidates` that accept these claims.
///
/// `candidates` may be all configs or only those of the claims' pipeline: organization and
/// pipeline are compared here anyway. A config without recorded IDs matches any; the exchange
/// then records the token's ([`Provider::record_use`]).
pub fn match_publishers(
    claims: &BuildkiteClaims,
    candidates: &[Candidate<BuildkiteConfig>],
) -> Result<Vec<Match>, MatchError> {
    let pipeline = shorten(&claims.pipeline_path());
    let candidates: Vec<&Candidate<BuildkiteConfig>> = candidates
        .iter()
        .filter(|c| {
            c.config
                .organization
                .eq_ignore_ascii_case(&claims.organization_slug)
                && c.config
                    .pipeline
                    .eq_ignore_ascii_case(&claims.pipeline_slug)
        })
        .collect();
    if candidates.is_empty() {
        return Err(MatchError::NoConfig(format!(
            "No Trusted Publishing config exists for Buildkite pipeline `{pipeline}`; an owner \
             of the crate can add one in the crate's settings."
        )));
    }

    let mut matches = Vec::new();
    let mut mismatches = Vec::new();
    for candidate in candidates {
        let config = &candidate.config;
        let mismatch = if let Some(id) = pinned_mismatch(
            config.organization_id.as_deref(),
            claims.organization_id.as_deref(),
        ) {
            Some(Mismatch::OrganizationId(id))
        } else if let Some(id) =
            pinned_mismatch(config.pipeline_id.as_deref(), claims.pipeline_id.as_deref())
        {
            Some(Mismatch::PipelineId(id))
        } else if let Some(branch) =
            exact_mismatch(config.branch.as_deref(), Some(&claims.build_branch))
        {
            Some(Mismatch::Branch(branch))
        } else {
            exact_mismatch(config.step_key.as_deref(), claims.step_key.as_deref())
                .map(Mismatch::StepKey)
        };
        match mismatch {
            None => matches.push(Match {
                publisher_id: config.id,
                crate_id: config.crate_id,
                crate_name: candidate.crate_name.clone(),
            }),
            Some(mismatch) => mismatches.push(mismatch),
        }
    }
    if !matches.is_empty() {
        return Ok(matches);
    }

    let (mut organization_ids, mut pipeline_ids, mut branches, mut steps) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for mismatch in mismatches {
        match mismatch {
            Mismatch::OrganizationId(id) => organization_ids.push(id),
            Mismatch::PipelineId(id) => pipeline_ids.push(id),
            Mismatch::Branch(b) => branches.push(b),
            Mismatch::StepKey(s) => steps.push(s),
        }
    }
    let mut parts = Vec::new();
    if !branches.is_empty() {
        parts.push(optional_message(
            "branch",
            Some(&claims.build_branch),
            one_of_exact(&branches),
        ));
    }
    if !steps.is_empty() {
        parts.push(optional_message(
            "step key",
            claims.step_key.as_deref(),
            one_of_exact(&steps),
        ));
    }
    if !organization_ids.is_empty() {
        parts.push(pinned_message(
            "organization",
            "organization_id",
            claims.organization_id.as_deref(),
            &organization_ids,
        ));
    }
    if !pipeline_ids.is_empty() {
        parts.push(pinned_message(
            "pipeline",
            "pipeline_id",
            claims.pipeline_id.as_deref(),
            &pipeline_ids,
        ));
    }
    Err(MatchError::Mismatch(join_parts(
        format!("No Trusted Publishing config matches Buildkite pipeline `{pipeline}`: "),
        parts,
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const ORG_ID: &str = "0b5e6a1c-7d2f-4e4a-9c3b-2f1e0d9c8b7a";
    const PIPELINE_ID: &str = "3c9d7e2a-1b4f-4a6e-8d5c-7e6f5a4b3c2d";

    /// The claims of step `publish` of build 42 of `acme/widget` on `main`, with `overrides`
    /// merged in (a `null` removes a claim).
    fn claims(overrides: Value) -> BuildkiteClaims {
        let mut claims = json!({
            "iss": BUILDKITE_ISSUER,
            "aud": "wharf.test",
            "jti": "jti",
            "exp": 0,
            "iat": 0,
            "organization_slug": "acme",
            "pipeline_slug": "widget",
            "build_number": 42,
            "build_branch": "main",
            "build_tag": null,
            "build_commit": "0123456789abcdef0123456789abcdef01234567",
            "step_key": "publish",
            "job_id": "01934f2e-5b6a-4c7d-8e9f-0a1b2c3d4e5f",
            "agent_id": "01934f2e-6c7d-4e8f-9a0b-1c2d3e4f5a6b",
            "build_source": "webhook",
            "runner_environment": "buildkite-hosted",
        });
        if let (Some(claims), Value::Object(overrides)) = (claims.as_object_mut(), overrides) {
            for (key, value) in overrides {
                if value.is_null() {
                    claims.remove(&key);
                } else {
                    claims.insert(key, value);
                }
            }
        }
        match serde_json::from_value(claims) {
            Ok(claims) => claims,
            Err(e) => panic!("test claims: {e}"),
        }
    }

    fn config(
        id: i64,
        crate_name: &str,
        change: impl FnOnce(&mut BuildkiteConfig),
    ) -> Candidate<BuildkiteConfig> {
        let mut config = BuildkiteConfig {
            id,
            crate_id: id * 10,
            organization: "acme".to_owned(),
            organization_id: None,
            pipeline: "widget".to_owned(),
            pipeline_id: None,
            branch: None,
            step_key: None,
            created_at: NaiveDateTime::default(),
            created_by: None,
        };
        change(&mut config);
        Candidate {
            crate_name: crate_name.to_owned(),
            config,
        }
    }

    fn same(_: &mut BuildkiteConfig) {}

    fn pinned(c: &mut BuildkiteConfig) {
        c.organization_id = Some(ORG_ID.to_owned());
        c.pipeline_id = Some(PIPELINE_ID.to_owned());
    }

    fn outcome(
        claims: &BuildkiteClaims,
        configs: &[Candidate<BuildkiteConfig>],
    ) -> Result<Vec<String>, String> {
        match_publishers(claims, configs)
            .map(|m| m.into_iter().map(|m| m.crate_name).collect())
            .map_err(|e| e.to_string())
    }

    /// (what, claim overrides, configs, the crates that match or the whole message)
    type Case = (
        &'static str,
        Value,
        Vec<Candidate<BuildkiteConfig>>,
        Result<Vec<String>, String>,
    );

    #[test]
    fn tokens_are_matched_against_configs() {
        let ok = |names: &[&str]| Ok(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
        let err = |message: &str| Err::<Vec<String>, String>(message.to_owned());
        let ids = json!({ "organization_id": ORG_ID, "pipeline_id": PIPELINE_ID });
        // (what, claim overrides, configs, expected crates or the whole message)
        let cases: Vec<Case> = vec![
            (
                "organization and pipeline",
                json!({}),
                vec![config(1, "widget", same)],
                ok(&["widget"]),
            ),
            (
                "slugs ignoring ASCII case",
                json!({ "organization_slug": "ACME", "pipeline_slug": "Widget" }),
                vec![config(1, "widget", same)],
                ok(&["widget"]),
            ),
            (
                "the configured branch and step key",
                json!({}),
                vec![config(1, "widget", |c| {
                    c.branch = Some("main".to_owned());
                    c.step_key = Some("publish".to_owned());
                })],
                ok(&["widget"]),
            ),
            (
                "pinned IDs that still hold",
                ids.clone(),
                vec![config(1, "widget", pinned)],
                ok(&["widget"]),
            ),
            (
                "unpinned IDs accept a token without them, and several crates match",
                json!({}),
                vec![config(1, "widget", same), config(2, "widget-derive", same)],
                ok(&["widget", "widget-derive"]),
            ),
            (
                "another organization",
                json!({ "organization_slug": "mallory" }),
                vec![config(1, "widget", same)],
                err(
                    "No Trusted Publishing config exists for Buildkite pipeline `mallory/widget`; an owner of the crate can add one in the crate's settings.",
                ),
            ),
            (
                "the same pipeline slug in another organization",
                json!({ "organization_slug": "acme-evil", "organization_id": "99999999-0000-0000-0000-000000000000" }),
                vec![config(1, "widget", pinned)],
                err(
                    "No Trusted Publishing config exists for Buildkite pipeline `acme-evil/widget`; an owner of the crate can add one in the crate's settings.",
                ),
            ),
            (
                "slugs fold ASCII case only",
                json!({ "organization_slug": "a\u{212A}me" }),
                vec![config(1, "widget", |c| c.organization = "akme".to_owned())],
                err(
                    "No Trusted Publishing config exists for Buildkite pipeline `a\u{212A}me/widget`; an owner of the crate can add one in the crate's settings.",
                ),
            ),
            (
                "an organization ID that changed",
                json!({ "organization_id": "99999999-0000-0000-0000-000000000000", "pipeline_id": PIPELINE_ID }),
                vec![config(1, "widget", pinned)],
                err(&format!(
                    "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the organization ID `99999999-0000-0000-0000-000000000000` differs from the one recorded when the config was first used (`{ORG_ID}`); the organization may have been deleted and re-created. Remove and re-add the config."
                )),
            ),
            (
                "a pipeline ID that changed",
                json!({ "organization_id": ORG_ID, "pipeline_id": "88888888-0000-0000-0000-000000000000" }),
                vec![config(1, "widget", pinned)],
                err(&format!(
                    "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the pipeline ID `88888888-0000-0000-0000-000000000000` differs from the one recorded when the config was first used (`{PIPELINE_ID}`); the pipeline may have been deleted and re-created. Remove and re-add the config."
                )),
            ),
            (
                "pinned IDs missing from the token",
                json!({}),
                vec![config(1, "widget", pinned)],
                err(&format!(
                    "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the token carries no `organization_id`, but the config recorded `{ORG_ID}` when it was first used; request the token with `buildkite-agent oidc request-token --claims organization_id,pipeline_id`."
                )),
            ),
            (
                "another branch",
                json!({ "build_branch": "feature/x" }),
                vec![config(1, "widget", |c| c.branch = Some("main".to_owned()))],
                err(
                    "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the token has branch `feature/x`, but the config expects `main`.",
                ),
            ),
            (
                "branches are compared exactly",
                json!({ "build_branch": "Main" }),
                vec![config(1, "widget", |c| c.branch = Some("main".to_owned()))],
                err(
                    "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the token has branch `Main`, but the config expects `main`.",
                ),
            ),
            (
                "another step key",
                json!({ "step_key": "test" }),
                vec![config(1, "widget", |c| {
                    c.step_key = Some("publish".to_owned())
                })],
                err(
                    "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the token has step key `test`, but the config expects `publish`.",
                ),
            ),
            (
                "no step key where configs want one, and another branch",
                json!({ "step_key": null }),
                vec![
                    config(1, "widget", |c| c.step_key = Some("publish".to_owned())),
                    config(2, "widget-derive", |c| {
                        c.step_key = Some("release".to_owned())
                    }),
                    config(3, "widget-macros", |c| {
                        c.branch = Some("release".to_owned())
                    }),
                ],
                err(
                    "No Trusted Publishing config matches Buildkite pipeline `acme/widget`: the token has branch `main`, but the config expects `release`; the token has no step key, but the configs expect `publish` or `release`.",
                ),
            ),
        ];
        for (what, overrides, configs, expected) in cases {
            assert_eq!(outcome(&claims(overrides), &configs), expected, "{what}");
        }
    }

    #[test]
    fn the_record_links_to_the_build() {
        let data = Buildkite::data(&claims(json!({})));
        assert_eq!(data.run_url, "https://buildkite.com/acme/widget/builds/42");
        assert_eq!(data.sha, "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(data.run_label(), "build 42");
        let fake = Buildkite::data(&claims(json!({ "iss": "http://127.0.0.1:4000/buildkite" })));
        assert_eq!(
            fake.run_url,
            "http://127.0.0.1:4000/buildkite/acme/widget/builds/42"
        );
        assert_eq!(Buildkite::published_by(&claims(json!({}))), "acme/widget");
        let json =
            serde_json::to_value(super::super::TrustpubData::Buildkite(data)).unwrap_or_default();
        assert_eq!(json["provider"], "buildkite");
        assert_eq!(json["step_key"], "publish");
        assert_eq!(json["build_number"], 42);
    }

    #[test]
    fn config_fields_are_trimmed_and_checked() {
        let input =
            |org: &str, pipeline: &str, branch: Option<&str>, step: Option<&str>| BuildkiteInput {
                organization: org.into(),
                pipeline: pipeline.into(),
                branch: branch.map(Into::into),
                step_key: step.map(Into::into),
            };
        let ok = Buildkite::normalize(input(" acme ", "widget", Some(" "), Some(" publish ")));
        assert_eq!(
            ok.map_err(|e| format!("{e:?}")),
            Ok(input("acme", "widget", None, Some("publish")))
        );
        let fields: Vec<_> =
            Buildkite::normalize(input("ac me", "a/b", Some("x\u{7}"), Some("a b")))
                .err()
                .unwrap_or_default()
                .iter()
                .map(|e| e.field)
                .collect();
        assert_eq!(fields, ["organization", "pipeline", "branch", "step_key"]);
        assert!(Buildkite::normalize(input("", "widget", None, None)).is_err());
    }
}
