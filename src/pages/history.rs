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
use crate::trustpub::{Published, TrustpubData};

/// Who published a version (or did an action).
pub struct PublishedBy {
    /// The user's login, or the CI actor.
    pub login: String,
    /// Set for Trusted Publishing.
    pub ci: Option<CiRun>,
}

/// The CI run behind a Trusted Publishing publish, from its typed record.
pub struct CiRun {
    /// "GitHub Actions", "GitLab CI"…: the record's provider.
    pub provider_label: &'static str,
    /// What the provider says about the run: ("Repository", "octo-org/widget") …
    pub details: Vec<(&'static str, String)>,
    /// "run 4242", "job 302", "build 42".
    pub run_label: String,
    /// Only http(s) links.
    pub run_url: Option<String>,
    pub sha: String,
    pub short_sha: String,
}

impl CiRun {
    pub fn new(data: &TrustpubData) -> CiRun {
        let record = data.record();
        CiRun {
            provider_label: data.kind().label(),
            details: record.details(),
            run_label: record.run_label(),
            run_url: data.safe_run_url().map(str::to_owned),
            sha: record.sha().to_owned(),
            short_sha: data.short_sha(),
        }
    }

    /// From a stored record (a version's `trustpub` column, an audit entry's detail).
    pub fn from_stored(stored: &str) -> Option<CiRun> {
        Published::parse(stored).map(|p| CiRun::new(&p.data))
    }

    /// The class of a detail's `<dd>`: `repository`, `workflow`, `ci-config`.
    pub fn class(term: &str) -> String {
        term.to_ascii_lowercase().replace(' ', "-")
    }
}

/// Who published, from a version's `published_by` and `trustpub` columns.
pub fn published_by(login: &str, trustpub: Option<&str>) -> PublishedBy {
    PublishedBy {
        login: login.to_owned(),
        ci: trustpub.and_then(CiRun::from_stored),
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
        .and_then(|t| serde_json::from_value::<Published>(t.clone()).ok())
        .map(|p| CiRun::new(&p.data))
        .or_else(|| {
            if action != "Published" {
                return None;
            }
            CiRun::from_stored(versions.get(&version)?.trustpub.as_deref()?)
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
