//! `/crates/{name}`: the crate, its README, versions, owners and how to depend on it.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::history::{PublishedBy, published_by};
use super::markdown::render_readme;
use super::{Layout, PageContext, PageResult, format_time, render, see_other};
use crate::app::App;
use crate::models::krate::find_crate;
use crate::models::version::pick_max_version;
use crate::models::{Crate, Version, crate_owner};

pub struct VersionRow {
    pub num: String,
    pub yanked: bool,
    pub when: String,
    pub published_by: PublishedBy,
    pub license: String,
}

#[derive(Template)]
#[template(path = "crates/show.html")]
pub struct CratePage {
    layout: Layout,
    name: String,
    description: String,
    repository: Option<String>,
    homepage: Option<String>,
    documentation: Option<String>,
    max_version: String,
    versions: Vec<VersionRow>,
    owners: Vec<String>,
    readme_html: Option<String>,
    index_line: String,
    dependency_line: String,
    is_owner: bool,
    trustpub_only: bool,
    tab: &'static str,
}

/// `GET /crates/{name}`; another spelling of the name redirects to the crate's own.
pub async fn show(
    app: web::Data<App>,
    ctx: PageContext,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let name = path.into_inner();
    let user_id = ctx.user.as_ref().map(|u| u.id);
    let lookup = name.clone();
    let (krate, mut versions, owners, is_owner, readme) = app
        .db
        .run(move |conn| {
            let krate = find_crate(conn, &lookup)?;
            let versions = Version::for_crate(conn, krate.id)?;
            let owners = crate_owner::owners(conn, krate.id)?;
            let is_owner = user_id.is_some_and(|id| owners.iter().any(|o| o.id == id));
            let nums: Vec<_> = versions.iter().map(|v| (v.num.clone(), v.yanked)).collect();
            let max = pick_max_version(&nums);
            let readme = match versions.iter().find(|v| Some(&v.num) == max.as_ref()) {
                Some(v) => Version::readme(conn, v.id)?,
                None => None,
            };
            Ok((krate, versions, owners, is_owner, readme))
        })
        .await?;
    if krate.name != name {
        return Ok(see_other(&format!("/crates/{}", krate.name)));
    }
    let nums: Vec<_> = versions.iter().map(|v| (v.num.clone(), v.yanked)).collect();
    let max_version = pick_max_version(&nums).unwrap_or_default();
    versions.sort_by_key(|v| std::cmp::Reverse(v.semver()));
    let base = app.config.base_url();
    let Crate {
        name,
        description,
        repository,
        homepage,
        documentation,
        trustpub_only,
        ..
    } = krate;
    let page = CratePage {
        layout: ctx.layout,
        index_line: format!("[registries.wharf]\nindex = \"sparse+{base}/index/\""),
        dependency_line: format!(
            "[dependencies]\n{name} = {{ version = \"{max_version}\", registry = \"wharf\" }}"
        ),
        description: description.unwrap_or_default(),
        repository: repository.filter(|u| is_web_link(u)),
        homepage: homepage.filter(|u| is_web_link(u)),
        documentation: documentation.filter(|u| is_web_link(u)),
        max_version,
        versions: versions
            .iter()
            .map(|v| VersionRow {
                num: v.num.clone(),
                yanked: v.yanked,
                when: format_time(&v.created_at),
                published_by: published_by(&v.published_by, v.trustpub.as_deref()),
                license: v.license.clone().unwrap_or_default(),
            })
            .collect(),
        owners: owners.into_iter().map(|o| o.login).collect(),
        readme_html: readme.as_deref().map(render_readme),
        is_owner,
        trustpub_only,
        name,
        tab: "readme",
    };
    render(&page)
}

fn is_web_link(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}
