use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use crate::app::App;
use crate::errors::AppResult;
use crate::models::krate::find_crate;
use crate::models::version::pick_max_version;
use crate::models::{Crate, User, Version};
use crate::trustpub::Published;

/// `GET /api/v1/crates/{name}`: the crate and its versions, newest first, each with who
/// published it.
pub async fn info(app: web::Data<App>, path: web::Path<String>) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    let (krate, versions, users) = app
        .db
        .run(move |conn| {
            let krate = find_crate(conn, &name)?;
            let versions = Version::for_crate(conn, krate.id)?;
            let mut users = HashMap::new();
            for id in versions.iter().filter_map(|v| v.published_by_user_id) {
                if let std::collections::hash_map::Entry::Vacant(slot) = users.entry(id) {
                    slot.insert(User::by_id(conn, id)?);
                }
            }
            Ok((krate, versions, users))
        })
        .await?;
    let base = app.config.base_url();
    Ok(HttpResponse::Ok().json(crate_json(base, &krate, versions, &users)))
}

pub fn crate_json(
    base: &str,
    krate: &Crate,
    mut versions: Vec<Version>,
    users: &HashMap<i64, User>,
) -> Value {
    let nums: Vec<_> = versions.iter().map(|v| (v.num.clone(), v.yanked)).collect();
    let max_version = pick_max_version(&nums);
    let newest_version = versions.last().map(|v| v.num.clone());
    versions.sort_by_key(|v| std::cmp::Reverse(v.semver()));
    let versions: Vec<_> = versions
        .iter()
        .map(|v| version_json(base, krate, v, users))
        .collect();
    json!({
        "crate": {
            "id": krate.name,
            "name": krate.name,
            "description": krate.description,
            "homepage": krate.homepage,
            "documentation": krate.documentation,
            "repository": krate.repository,
            "keywords": parse_json_list(&krate.keywords),
            "categories": parse_json_list(&krate.categories),
            "max_version": max_version,
            "newest_version": newest_version,
            "trustpub_only": krate.trustpub_only,
            "created_at": krate.created_at.and_utc(),
            "updated_at": krate.updated_at.and_utc(),
        },
        "versions": versions,
    })
}

fn version_json(base: &str, krate: &Crate, v: &Version, users: &HashMap<i64, User>) -> Value {
    // The typed record, written back as it was stored (`trustpub_data` repeats it, as
    // crates.io names it).
    let published = v.trustpub.as_deref().and_then(Published::parse);
    let trustpub = published.as_ref().map(Published::to_json);
    let published_by = match (
        v.published_by_user_id.and_then(|id| users.get(&id)),
        &published,
    ) {
        (Some(user), _) => json!({
            "kind": "user",
            "id": user.id,
            "login": user.login,
            "name": user.name,
            "avatar": user.avatar_url,
            "url": format!("{base}/users/{}", user.login),
        }),
        (None, Some(tp)) => json!({
            "kind": "trusted_publishing",
            "login": v.published_by,
            "provider": tp.data.kind().as_str(),
        }),
        (None, None) => json!({ "kind": "user", "login": v.published_by }),
    };
    json!({
        "id": v.id,
        "crate": krate.name,
        "num": v.num,
        "dl_path": format!("/api/v1/crates/{}/{}/download", krate.name, v.num),
        "yanked": v.yanked,
        "created_at": v.created_at.and_utc(),
        "license": v.license,
        "description": v.description,
        "crate_size": v.crate_size,
        "checksum": v.checksum,
        "rust_version": v.rust_version,
        "links": v.links,
        "features": serde_json::from_str::<Value>(&v.features).unwrap_or(Value::Null),
        "published_by": published_by,
        "trustpub": trustpub,
        "trustpub_data": trustpub,
    })
}

fn parse_json_list(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!([]))
}
