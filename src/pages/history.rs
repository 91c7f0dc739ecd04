//! `/crates/{name}/history`: the public publish history. Every publish, yank and unyank, with
//! who did it: a user, or a CI job through Trusted Publishing (provider, repository, workflow,
//! environment, run, commit).

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::Value;

use super::{Layout, PageContext, PageResult, format_time, render};
use crate::app::App;
use crate::models::krate::find_crate;
use crate::models::{Crate, Version, audit};

/// Who published a version (or did an action).
pub struct PublishedBy {
    /// The user's login, or the CI actor.
    pub login: String,
    /// Set for Trusted Publishing.
    pub ci: Option<CiRun>,
}

/// The CI run behind a Trusted Publishing publish, read defensively from the stored JSON:
/// missing or oddly typed keys leave fields empty rather than failing the page.
pub struct CiRun {
    /// "GitHub Actions" or "GitLab CI".
    pub provider_label: String,
    pub repository: Option<String>,
    pub workflow: Option<String>,
    pub environment: Option<String>,
    pub run_id: Option<String>,
    /// Only http(s) links.
    pub run_url: Option<String>,
    pub sha: Option<String>,
}

impl CiRun {
    pub fn from_json(value: &Value) -> Option<CiRun> {
        let object = value.as_object()?;
        let text = |keys: &[&str]| -> Option<String> {
            keys.iter().find_map(|key| match object.get(*key)? {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let provider = text(&["provider"]).unwrap_or_default().to_ascii_lowercase();
        let provider_label = if provider.contains("gitlab") {
            "GitLab CI"
        } else if provider.contains("github") {
            "GitHub Actions"
        } else {
            "Trusted Publishing"
        };
        let run_url = text(&["run_url", "job_url", "url"])
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
        Some(CiRun {
            provider_label: provider_label.to_owned(),
            repository: text(&["repository", "project_path", "project"]),
            workflow: text(&[
                "workflow",
                "workflow_filename",
                "workflow_filepath",
                "ci_config_path",
            ]),
            environment: text(&["environment"]),
            run_id: text(&["run_id", "job_id"]),
            run_url,
            sha: text(&["sha", "commit"]),
        })
    }

    /// The first 12 characters of the commit.
    pub fn short_sha(&self) -> String {
        self.sha
            .as_deref()
            .map(|s| s.chars().take(12).collect())
            .unwrap_or_default()
    }

    pub fn run_label(&self) -> String {
        match (&self.run_id, self.provider_label.as_str()) {
            (Some(id), "GitLab CI") => format!("job {id}"),
            (Some(id), _) => format!("run {id}"),
            (None, _) => "the run".to_owned(),
        }
    }
}

/// Who published, from a version's `published_by` and `trustpub` columns.
pub fn published_by(login: &str, trustpub: Option<&str>) -> PublishedBy {
    let ci = trustpub
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| CiRun::from_json(&v));
    PublishedBy {
        login: login.to_owned(),
        ci,
    }
}

pub struct HistoryRow {
    /// "Published", "Yanked" or "Unyanked".
    pub action: &'static str,
    pub version: String,
    pub when: String,
    pub by: PublishedBy,
}

#[derive(Template)]
#[template(path = "crates/history.html")]
pub struct HistoryPage {
    layout: Layout,
    name: String,
    is_owner: bool,
    rows: Vec<HistoryRow>,
    tab: &'static str,
}

const HISTORY_LIMIT: i64 = 1000;

/// `GET /crates/{name}/history` — public.
pub async fn history(
    app: web::Data<App>,
    ctx: PageContext,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let name = path.into_inner();
    let user_id = ctx.user.as_ref().map(|u| u.id);
    let (krate, is_owner, rows) = app
        .db
        .run(move |conn| {
            let krate = find_crate(conn, &name)?;
            let is_owner = match user_id {
                Some(id) => Crate::is_owner(conn, krate.id, id)?,
                None => false,
            };
            let versions: HashMap<String, Version> = Version::for_crate(conn, krate.id)?
                .into_iter()
                .map(|v| (v.num.clone(), v))
                .collect();
            let rows = audit::for_crate(conn, krate.id, HISTORY_LIMIT)?
                .into_iter()
                .filter_map(|entry| history_row(&entry, &versions))
                .collect::<Vec<_>>();
            Ok((krate, is_owner, rows))
        })
        .await?;
    render(&HistoryPage {
        layout: ctx.layout,
        name: krate.name,
        is_owner,
        rows,
        tab: "history",
    })
}

fn history_row(
    entry: &audit::AuditEntry,
    versions: &HashMap<String, Version>,
) -> Option<HistoryRow> {
    let action = match entry.action.as_str() {
        "publish" => "Published",
        "yank" => "Yanked",
        "unyank" => "Unyanked",
        _ => return None,
    };
    let detail: Value = serde_json::from_str(&entry.detail).unwrap_or(Value::Null);
    let version = detail
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    // A publish by Trusted Publishing: the details are in the entry, and on the version.
    let ci = detail
        .get("trustpub")
        .and_then(CiRun::from_json)
        .or_else(|| {
            if action != "Published" {
                return None;
            }
            let stored = versions.get(&version)?.trustpub.as_deref()?;
            CiRun::from_json(&serde_json::from_str(stored).ok()?)
        });
    Some(HistoryRow {
        action,
        version,
        when: format_time(&entry.created_at),
        by: PublishedBy {
            login: entry.actor.clone(),
            ci,
        },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ci_details_are_read_defensively() {
        let run = CiRun::from_json(&json!({
            "provider": "github", "repository": "o/r", "workflow": "release.yml",
            "run_id": 42, "run_url": "javascript:alert(1)", "sha": "0123456789abcdef0123"
        }));
        let Some(run) = run else {
            panic!("a JSON object gives a run");
        };
        assert_eq!(run.provider_label, "GitHub Actions");
        assert_eq!(run.run_id.as_deref(), Some("42"));
        assert_eq!(run.run_url, None);
        assert_eq!(run.short_sha(), "0123456789ab");
        assert!(CiRun::from_json(&json!("nope")).is_none());
        let empty = CiRun::from_json(&json!({}));
        assert!(empty.is_some_and(|r| r.repository.is_none()));
    }
}
