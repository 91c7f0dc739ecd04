//! `/`: search and recent publishes; `/search?q=`: crates by name or description.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::history::{PublishedBy, published_by};
use super::{Layout, PageContext, PageResult, format_time, render};
use crate::app::App;
use crate::models::{Crate, Version};

const RECENT: i64 = 15;
const RESULTS: i64 = 50;

pub struct RecentPublish {
    pub name: String,
    pub version: String,
    pub yanked: bool,
    pub published_by: PublishedBy,
    pub when: String,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    layout: Layout,
    recent: Vec<RecentPublish>,
    /// Shown to a logged-in user: how this registry is reached.
    mode: Option<RegistryMode>,
}

/// Whether the registry is private (`WHARF_AUTH_REQUIRED`) and who may log in
/// (`WHARF_GITHUB_ALLOWED_ORGS`).
pub struct RegistryMode {
    private: bool,
    allowed_orgs: String,
    index_url: String,
}

/// `GET /`
pub async fn home(app: web::Data<App>, ctx: PageContext) -> PageResult<HttpResponse> {
    let recent = app
        .db
        .run(|conn| {
            let versions = Version::recent(conn, RECENT)?;
            let mut names: HashMap<i64, String> = HashMap::new();
            let mut recent = Vec::with_capacity(versions.len());
            for v in versions {
                let name = match names.get(&v.crate_id) {
                    Some(name) => name.clone(),
                    None => {
                        let name = Crate::by_id(conn, v.crate_id)?.name;
                        names.insert(v.crate_id, name.clone());
                        name
                    }
                };
                recent.push(RecentPublish {
                    name,
                    version: v.num.clone(),
                    yanked: v.yanked,
                    published_by: published_by(&v.published_by, v.trustpub.as_deref()),
                    when: format_time(&v.created_at),
                });
            }
            Ok(recent)
        })
        .await?;
    let mode = ctx.user.as_ref().map(|_| RegistryMode {
        private: app.config.auth_required,
        allowed_orgs: app.config.github.allowed_orgs.join(", "),
        index_url: format!("sparse+{}/index/", app.config.base_url()),
    });
    render(&HomePage {
        layout: ctx.layout,
        recent,
        mode,
    })
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub struct SearchResult {
    pub name: String,
    pub max_version: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    layout: Layout,
    query: String,
    results: Vec<SearchResult>,
    total: i64,
}

/// `GET /search?q=…`
pub async fn search(
    app: web::Data<App>,
    ctx: PageContext,
    query: web::Query<SearchQuery>,
) -> PageResult<HttpResponse> {
    let query: String = query.into_inner().q.trim().chars().take(100).collect();
    let (results, total) = if query.is_empty() {
        (Vec::new(), 0)
    } else {
        let q = query.clone();
        let (page, total) = app
            .db
            .run(move |conn| Ok(Crate::search(conn, &q, 0, RESULTS)?))
            .await?;
        let results = page
            .into_iter()
            .map(|(krate, max)| SearchResult {
                name: krate.name,
                max_version: max.unwrap_or_default(),
                description: krate.description.unwrap_or_default(),
            })
            .collect();
        (results, total)
    };
    render(&SearchPage {
        layout: ctx.layout,
        query,
        results,
        total,
    })
}
