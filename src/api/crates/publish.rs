//! `PUT /api/v1/crates/new`: cargo's publish.
//!
//! The order makes a crash at any point harmless: everything about the upload is checked in
//! memory first; then one write transaction inserts the version (the unique index makes a
//! concurrent publish of the same version wait, then fail), stores the `.crate` file, renders
//! the index file and commits. A crash before the commit leaves at most an unreferenced file,
//! which the next publish of that version overwrites; no version exists without its file, and
//! no index line without its version.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;

use crate::app::App;
use crate::auth::{Authenticated, RawToken};
use crate::db::{DbConn, is_unique_violation};
use crate::errors::{AppError, AppResult, bad_request, conflict, forbidden, payload_too_large};
use crate::models::crate_owner::NewCrateOwner;
use crate::models::krate::NewCrate;
use crate::models::trustpub_token::publisher_for_crate;
use crate::models::version::{NewVersion, pick_max_version};
use crate::models::{Crate, Version, audit, index_file, now};
use crate::registry::crate_name::CrateName;
use crate::registry::index::{self, IndexDependency};
use crate::registry::publish::{PublishError, PublishRequest};
use crate::registry::tarball::verify_tarball;
use crate::schema::crates;
use crate::storage::crate_key;
use crate::tokens::EndpointScope;

/// Room for the JSON metadata and the two length prefixes on top of the crate itself.
const METADATA_ALLOWANCE: u64 = 1024 * 1024 + 8;

pub async fn publish(
    app: web::Data<App>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> AppResult<HttpResponse> {
    let raw = RawToken::from_request(&req)?;
    let limits = app.config.limits.clone();
    let required_metadata = app.config.required_metadata.clone();

    // Read the body, refusing it as soon as it is larger than any acceptable upload.
    let max_body = limits.max_crate_size + METADATA_ALLOWANCE;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| bad_request(format!("cannot read the upload: {e}")))?;
        if (body.len() + chunk.len()) as u64 > max_body {
            return Err(payload_too_large(format!(
                "the upload is larger than this registry's limit of {} for a .crate file",
                bytesize::ByteSize::b(limits.max_crate_size)
            )));
        }
        body.extend_from_slice(&chunk);
    }

    // Check everything about the upload before touching the database or storage.
    let checked = web::block(move || -> AppResult<Checked> {
        let request = PublishRequest::parse(&body, limits.max_crate_size).map_err(|e| match e {
            PublishError::CrateTooLarge { .. } => payload_too_large(e),
            other => bad_request(other),
        })?;
        let metadata = request
            .metadata
            .validate(&required_metadata)
            .map_err(bad_request)?;
        let readme_path = request.metadata.readme_file.clone();
        let tarball = request.tarball;
        let info = verify_tarball(
            &tarball,
            &metadata.name,
            &metadata.version,
            readme_path.as_deref(),
            limits.max_unpacked_size,
        )
        .map_err(bad_request)?;
        let deps = index::index_deps(&request.metadata.deps);
        let (features, features2) = index::split_features(request.metadata.features.clone());
        Ok(Checked {
            cksum: index::cksum(&tarball),
            name: metadata.name,
            version: metadata.version,
            description: request.metadata.description.clone(),
            homepage: request.metadata.homepage.clone(),
            documentation: request.metadata.documentation.clone(),
            repository: request.metadata.repository.clone(),
            keywords: serde_json::to_string(&request.metadata.keywords)?,
            categories: serde_json::to_string(&request.metadata.categories)?,
            license: request.metadata.license.clone(),
            rust_version: request.metadata.rust_version.clone(),
            links: request.metadata.links.clone(),
            features: serde_json::to_string(&features)?,
            features2: serde_json::to_string(&features2)?,
            deps,
            readme: info.readme,
            tarball,
        })
    })
    .await??;

    let storage = app.storage.clone();
    let (crate_name, version) = app
        .db
        .transaction(move |conn| {
            let now = now();
            let auth = Authenticated::resolve(conn, &raw, now)?;
            record_publish(conn, &auth, &checked, storage.as_ref(), now)?;
            Ok((
                checked.name.as_str().to_owned(),
                checked.version.to_string(),
            ))
        })
        .await?;
    tracing::info!(krate.name = %crate_name, krate.version = %version, "published");

    Ok(HttpResponse::Ok().json(json!({
        "warnings": { "invalid_categories": [], "invalid_badges": [], "other": [] }
    })))
}

/// An upload that passed every check that needs no database.
struct Checked {
    name: CrateName,
    version: semver::Version,
    cksum: String,
    description: Option<String>,
    homepage: Option<String>,
    documentation: Option<String>,
    repository: Option<String>,
    keywords: String,
    categories: String,
    license: Option<String>,
    rust_version: Option<String>,
    links: Option<String>,
    features: String,
    features2: String,
    deps: Vec<IndexDependency>,
    readme: Option<String>,
    tarball: Vec<u8>,
}

fn record_publish(
    conn: &mut DbConn,
    auth: &Authenticated,
    c: &Checked,
    storage: &dyn crate::storage::Storage,
    now: chrono::NaiveDateTime,
) -> AppResult<()> {
    let name = c.name.as_str();
    let existing = Crate::by_canonical(conn, c.name.canonical().as_ref())?;

    // Who may publish: owners with a `publish-update` token, Trusted Publishing tokens for
    // the crates they were minted for, and anyone with a `publish-new` token for a new crate.
    let krate = match existing {
        Some(krate) => {
            if krate.name != name {
                return Err(bad_request(format!(
                    "crate `{}` already exists; names that differ only by case or `-`/`_` are the same crate. Publish it as `{}`",
                    krate.name, krate.name
                )));
            }
            match auth {
                Authenticated::User(user) => {
                    user.check_scope(EndpointScope::PublishUpdate, Some(name))?;
                    user.require_owner(conn, &krate)?;
                    if krate.trustpub_only {
                        return Err(forbidden(format!(
                            "crate `{name}` requires Trusted Publishing: publish it from a CI workflow configured as a trusted publisher, or ask an owner to turn off \"require Trusted Publishing\""
                        )));
                    }
                }
                Authenticated::Trustpub(tp) => {
                    if !tp.crate_ids.contains(&krate.id) {
                        return Err(forbidden(format!(
                            "this Trusted Publishing token is not valid for crate `{name}`: no trusted publisher config of `{name}` matched the workflow that requested it"
                        )));
                    }
                }
            }
            update_crate_metadata(conn, &krate, c, now)?;
            krate
        }
        None => {
            let user = match auth {
                Authenticated::User(user) => user,
                Authenticated::Trustpub(_) => {
                    return Err(forbidden(format!(
                        "crate `{name}` does not exist yet; Trusted Publishing can only publish new versions of existing crates. Publish the first version with an API token"
                    )));
                }
            };
            user.check_scope(EndpointScope::PublishNew, Some(name))?;
            let krate = NewCrate {
                name,
                canonical_name: c.name.canonical().as_ref(),
                description: c.description.as_deref(),
                homepage: c.homepage.as_deref(),
                documentation: c.documentation.as_deref(),
                repository: c.repository.as_deref(),
                keywords: c.keywords.clone(),
                categories: c.categories.clone(),
                created_at: now,
                updated_at: now,
            }
            .insert(conn)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    conflict(format!("crate `{name}` was created by another publish at the same moment; try again"))
                } else {
                    e.into()
                }
            })?;
            NewCrateOwner {
                crate_id: krate.id,
                user_id: user.user.id,
                created_at: now,
                created_by: None,
            }
            .insert(conn)?;
            krate
        }
    };

    check_dependencies(conn, &c.deps)?;

    let num = c.version.to_string();
    let mut no_build = c.version.clone();
    no_build.build = semver::BuildMetadata::EMPTY;
    let num_no_build = no_build.to_string();
    let already = || {
        conflict(format!(
            "crate version `{name}@{num}` is already uploaded; versions cannot be replaced, publish a new version"
        ))
    };
    if let Some(v) = Version::find_no_build(conn, krate.id, &num_no_build)? {
        return Err(if v.num == num {
            already()
        } else {
            conflict(format!(
                "crate version `{name}@{}` is already uploaded, and versions that differ only by build metadata are the same version",
                v.num
            ))
        });
    }

    let (published_by, published_by_user_id, trustpub) = match auth {
        Authenticated::User(user) => (user.user.login.clone(), Some(user.user.id), None),
        Authenticated::Trustpub(tp) => (
            tp.actor.clone(),
            None,
            Some(publisher_for_crate(&tp.publisher, krate.id).to_string()),
        ),
    };
    let deps = serde_json::to_string(&c.deps)?;
    let version = NewVersion {
        crate_id: krate.id,
        num: &num,
        num_no_build: &num_no_build,
        checksum: &c.cksum,
        crate_size: i64::try_from(c.tarball.len()).unwrap_or(i64::MAX),
        license: c.license.as_deref(),
        description: c.description.as_deref(),
        rust_version: c.rust_version.as_deref(),
        links: c.links.as_deref(),
        features: &c.features,
        features2: &c.features2,
        deps: &deps,
        readme: c.readme.as_deref(),
        published_by: &published_by,
        published_by_user_id,
        trustpub: trustpub.as_deref(),
        created_at: now,
    }
    .insert(conn)
    .map_err(|e| {
        if is_unique_violation(&e) {
            already()
        } else {
            AppError::from(e)
        }
    })?;

    storage.put(
        &crate_key(&krate.canonical_name, &krate.name, &version.num),
        &c.tarball,
    )?;
    index_file::rebuild(conn, krate.id, &krate.name, now)?;
    let mut detail = json!({ "version": version.num, "checksum": version.checksum });
    if let Authenticated::Trustpub(tp) = auth {
        detail["trustpub"] = publisher_for_crate(&tp.publisher, krate.id);
    }
    audit::record(conn, krate.id, &auth.actor(), "publish", detail, now)?;
    Ok(())
}

/// Dependencies on this registry (no `registry` URL) must name crates that exist here.
fn check_dependencies(conn: &mut DbConn, deps: &[IndexDependency]) -> AppResult<()> {
    for dep in deps.iter().filter(|d| d.registry.is_none()) {
        let real_name = dep.package.as_deref().unwrap_or(&dep.name);
        if Crate::by_name(conn, real_name)?.is_none() {
            return Err(bad_request(format!(
                "no known crate named `{real_name}` on this registry (a dependency of the crate being published); publish it first, or point the dependency at the registry it comes from"
            )));
        }
    }
    Ok(())
}

/// The crate's description, links and keywords follow its highest version.
fn update_crate_metadata(
    conn: &mut DbConn,
    krate: &Crate,
    c: &Checked,
    now: chrono::NaiveDateTime,
) -> AppResult<()> {
    use diesel::prelude::*;
    let mut nums: Vec<(String, bool)> = Version::for_crate(conn, krate.id)?
        .into_iter()
        .map(|v| (v.num, v.yanked))
        .collect();
    nums.push((c.version.to_string(), false));
    let is_max = pick_max_version(&nums).is_some_and(|max| max == c.version.to_string());
    if is_max {
        diesel::update(crates::table.find(krate.id))
            .set((
                crates::description.eq(c.description.as_deref()),
                crates::homepage.eq(c.homepage.as_deref()),
                crates::documentation.eq(c.documentation.as_deref()),
                crates::repository.eq(c.repository.as_deref()),
                crates::keywords.eq(&c.keywords),
                crates::categories.eq(&c.categories),
                crates::updated_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        Crate::touch(conn, krate.id, now)?;
    }
    Ok(())
}
