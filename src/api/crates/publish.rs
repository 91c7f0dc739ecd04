//! `PUT /api/v1/crates/new`: cargo's publish.
//!
//! Nothing expensive happens for a caller who may not publish: the metadata (at most 1 MiB)
//! is read from the request stream first, and one short database call resolves the token and
//! checks it against the crate the metadata names. Only then, holding one of the App's publish
//! slots (so a burst of uploads costs bounded memory and CPU), is the crate file read and
//! verified. The write transaction checks the caller's rights again at commit, as ownership may
//! have changed meanwhile.
//!
//! The order makes a crash at any point harmless: everything about the upload is checked in
//! memory first; then one write transaction inserts the version (the unique index makes a
//! concurrent publish of the same version wait, then fail), stores the `.crate` file, renders
//! the index file and commits. A crash before the commit leaves at most an unreferenced file,
//! which the next publish of that version overwrites; no version exists without its file, and
//! no index line without its version.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{Stream, StreamExt};
use serde_json::json;

use crate::app::App;
use crate::auth::{Authenticated, RawToken, TrustpubAuth, UserAuth};
use crate::db::{DbConn, is_unique_violation};
use crate::errors::{
    AppError, AppResult, bad_request, client, conflict, forbidden, payload_too_large,
};
use crate::limits::Count;
use crate::models::crate_owner::NewCrateOwner;
use crate::models::krate::NewCrate;
use crate::models::pending_config::PendingGrant;
use crate::models::version::{NewVersion, max_version};
use crate::models::{Crate, Version, audit, index_file, now};
use crate::registry::crate_name::CrateName;
use crate::registry::index::{self, IndexDependency};
use crate::registry::publish::{
    MAX_METADATA_SIZE, PublishError, PublishMetadata, ValidatedPublish, crate_length,
    declared_length, parse_metadata,
};
use crate::registry::tarball::verify_tarball;
use crate::schema::crates;
use crate::services::pending;
use crate::storage::{Storage, crate_key, put_blocking};
use crate::tokens::EndpointScope;
use crate::trustpub::Published;

pub async fn publish(
    app: web::Data<App>,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    let raw = RawToken::from_request(&req)?;
    let limits = app.config.limits.clone();
    let required_metadata = app.config.required_metadata.clone();
    let mut body = Body::new(payload, limits.publish_queue_timeout);

    // The metadata names the crate, so the caller can be authorised before anything else.
    // The token is resolved whatever the metadata holds, so that a caller without a valid token
    // learns nothing about the body but its 403.
    let metadata = read_metadata(&mut body).await.and_then(|json| {
        let metadata = parse_metadata(&json).map_err(bad_request)?;
        let validated = metadata.validate(&required_metadata).map_err(bad_request)?;
        Ok((metadata, validated))
    });
    let name = metadata.as_ref().ok().map(|(_, v)| v.name.clone());
    let limiter = app.limiter.clone();
    let raw = app
        .db
        .run(move |conn| {
            let auth = Authenticated::resolve(conn, &raw, now())?;
            if let Some(name) = name {
                authorize_publish(conn, &auth, &name)?;
                limiter.check_publish(conn, &auth, &name, Count::No)?;
            }
            Ok(raw)
        })
        .await?;
    let (metadata, validated) = metadata?;

    // The crate file: its size is known before any of it is read; buffering and verifying it
    // holds a publish slot.
    let crate_len = crate_length(
        body.read_prefix("crate length").await?,
        limits.max_crate_size,
    )
    .map_err(payload_too_large)?;
    let _slot = app.publish_slots.acquire().await?;
    let tarball = body.read_exact(crate_len, "crate file").await?;
    body.expect_end().await?;

    let checked = web::block(move || -> AppResult<Checked> {
        check_upload(metadata, validated, tarball, limits.max_unpacked_size)
    })
    .await??;

    let storage = app.storage.clone();
    let limiter = app.limiter.clone();
    let (crate_name, canonical, version) = app
        .db
        .transaction(move |conn| {
            let now = now();
            let auth = Authenticated::resolve(conn, &raw, now)?;
            limiter.check_publish(conn, &auth, &checked.name, Count::Yes)?;
            record_publish(conn, &auth, &checked, storage.as_ref(), now)?;
            Ok((
                checked.name.as_str().to_owned(),
                checked.name.canonical().to_string(),
                checked.version.to_string(),
            ))
        })
        .await?;
    // Committed: this instance serves the new line from now on (the others within a second).
    app.index_cache.invalidate(&canonical);
    tracing::info!(krate.name = %crate_name, krate.version = %version, "published");

    Ok(HttpResponse::Ok().json(json!({
        "warnings": { "invalid_categories": [], "invalid_badges": [], "other": [] }
    })))
}

/// The metadata JSON: its length, then at most [`MAX_METADATA_SIZE`] bytes of it. A body that
/// ends before the declared length is truncated, whatever it declared; one that goes on past
/// the limit is too large.
async fn read_metadata<S, E>(body: &mut Body<S>) -> AppResult<Bytes>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: fmt::Display,
{
    let declared = declared_length(body.read_prefix("metadata length").await?);
    if declared > MAX_METADATA_SIZE {
        body.read_exact(MAX_METADATA_SIZE + 1, "metadata")
            .await
            .map_err(|err| match err {
                BodyError::Truncated { available, .. } => BodyError::Truncated {
                    part: "metadata",
                    expected: declared,
                    available,
                },
                other => other,
            })?;
        return Err(bad_request(PublishError::MetadataTooLarge {
            size: declared,
        }));
    }
    Ok(body.read_exact(declared, "metadata").await?)
}

/// Verifies the crate file against the metadata; everything that needs no database.
fn check_upload(
    metadata: PublishMetadata,
    validated: ValidatedPublish,
    tarball: Bytes,
    max_unpacked_size: u64,
) -> AppResult<Checked> {
    let info = verify_tarball(
        &tarball,
        &validated.name,
        &validated.version,
        metadata.readme_file.as_deref(),
        max_unpacked_size,
    )
    .map_err(bad_request)?;
    let deps = index::index_deps(&metadata.deps);
    let (features, features2) = index::split_features(metadata.features);
    Ok(Checked {
        cksum: index::cksum(&tarball),
        name: validated.name,
        version: validated.version,
        description: metadata.description,
        homepage: metadata.homepage,
        documentation: metadata.documentation,
        repository: metadata.repository,
        keywords: serde_json::to_string(&metadata.keywords)?,
        categories: serde_json::to_string(&metadata.categories)?,
        license: metadata.license,
        rust_version: metadata.rust_version,
        links: metadata.links,
        features: serde_json::to_string(&features)?,
        features2: serde_json::to_string(&features2)?,
        deps,
        readme: info.readme,
        tarball,
    })
}

/// The request body, read part by part as the wire format asks for it. An upload that sends
/// nothing for `stall` is cut off, so a slow client cannot hold a publish slot for long.
struct Body<S> {
    stream: S,
    buffer: BytesMut,
    stall: Duration,
}

#[derive(Debug)]
enum BodyError {
    Truncated {
        part: &'static str,
        expected: u64,
        available: u64,
    },
    Trailing,
    Stalled(Duration),
    Read(String),
}

impl From<BodyError> for AppError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::Truncated {
                part,
                expected,
                available,
            } => bad_request(PublishError::Truncated {
                part,
                expected,
                available,
            }),
            BodyError::Trailing => bad_request(PublishError::TrailingBytes),
            BodyError::Stalled(stall) => client(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the upload stalled: no data arrived for {}; retry the publish",
                    humantime::format_duration(stall)
                ),
            ),
            BodyError::Read(reason) => bad_request(format!("cannot read the upload: {reason}")),
        }
    }
}

impl<S, E> Body<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: fmt::Display,
{
    fn new(stream: S, stall: Duration) -> Self {
        Self {
            stream,
            buffer: BytesMut::new(),
            stall,
        }
    }

    /// Appends the next chunk to the buffer; false at the end of the body.
    async fn fill(&mut self) -> Result<bool, BodyError> {
        match tokio::time::timeout(self.stall, self.stream.next()).await {
            Err(_) => Err(BodyError::Stalled(self.stall)),
            Ok(None) => Ok(false),
            Ok(Some(Err(error))) => Err(BodyError::Read(error.to_string())),
            Ok(Some(Ok(chunk))) => {
                self.buffer.extend_from_slice(&chunk);
                Ok(true)
            }
        }
    }

    /// The next `len` bytes; `len` has been checked against a limit by the caller.
    async fn read_exact(&mut self, len: u64, part: &'static str) -> Result<Bytes, BodyError> {
        let want = usize::try_from(len).map_err(|_| BodyError::Truncated {
            part,
            expected: len,
            available: 0,
        })?;
        self.buffer.reserve(want.saturating_sub(self.buffer.len()));
        while self.buffer.len() < want {
            if !self.fill().await? {
                return Err(BodyError::Truncated {
                    part,
                    expected: len,
                    available: self.buffer.len() as u64,
                });
            }
        }
        Ok(self.buffer.split_to(want).freeze())
    }

    /// A length prefix (four bytes).
    async fn read_prefix(&mut self, part: &'static str) -> Result<[u8; 4], BodyError> {
        let bytes = self.read_exact(4, part).await?;
        let mut prefix = [0u8; 4];
        prefix.copy_from_slice(&bytes);
        Ok(prefix)
    }

    /// Nothing may follow the crate file; refused at the first extra byte, without reading on.
    async fn expect_end(&mut self) -> Result<(), BodyError> {
        while self.buffer.is_empty() {
            if !self.fill().await? {
                return Ok(());
            }
        }
        Err(BodyError::Trailing)
    }
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
    /// The crate file as received (not copied).
    tarball: Bytes,
}

/// What a caller may publish under a name.
enum Publishable<'a> {
    /// A new version of this crate.
    Existing(Box<Crate>),
    /// The first version of a new crate, which this user will own.
    New(&'a UserAuth),
    /// The first version of a new crate through a pending publisher, whose creator will own it.
    NewPending(&'a PendingGrant),
}

/// Whether `auth` may publish a version of `name` now: owners with a `publish-update` token
/// (unless the crate requires Trusted Publishing), Trusted Publishing tokens for the crates
/// they were minted for, and anyone with a `publish-new` token for a new crate. Checked before
/// the crate file is read, and again in the transaction that records the version.
fn authorize_publish<'a>(
    conn: &mut DbConn,
    auth: &'a Authenticated,
    name: &CrateName,
) -> AppResult<Publishable<'a>> {
    let canonical = name.canonical();
    let existing = Crate::by_canonical(conn, &canonical)?;
    let name = name.as_str();
    match existing {
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
                    if !tp.crates.contains_key(&krate.id)
                        && tp.pending_for(&krate.canonical_name).is_some()
                    {
                        return Err(forbidden(format!(
                            "crate `{}` exists now: it was created after this token was minted through a pending publisher for it, so that pending publisher is void and this token cannot publish it. Ask an owner of `{}` to add this workflow as a trusted publisher",
                            krate.name, krate.name
                        )));
                    }
                    tp.check_crate(krate.id, name)?
                }
            }
            Ok(Publishable::Existing(Box::new(krate)))
        }
        None => {
            let user = match auth {
                Authenticated::User(user) => user,
                Authenticated::Trustpub(tp) => {
                    return match tp.pending_for(&canonical) {
                        Some(grant) => Ok(Publishable::NewPending(grant)),
                        None => Err(forbidden(format!(
                            "crate `{name}` does not exist yet, and this Trusted Publishing token was not minted through a pending publisher for it. Add a pending publisher for `{name}` (in your settings, or through the config API), or publish the first version with an API token"
                        ))),
                    };
                }
            };
            user.check_scope(EndpointScope::PublishNew, Some(name))?;
            Ok(Publishable::New(user))
        }
    }
}

fn record_publish(
    conn: &mut DbConn,
    auth: &Authenticated,
    c: &Checked,
    storage: &dyn Storage,
    now: chrono::NaiveDateTime,
) -> AppResult<()> {
    let name = c.name.as_str();
    // Through a pending publisher: the ordinary config it became, recorded on the version.
    let mut pending_config_id = None;
    let krate = match authorize_publish(conn, auth, &c.name)? {
        Publishable::Existing(krate) => {
            update_crate_metadata(conn, &krate, c, now)?;
            *krate
        }
        Publishable::NewPending(grant) => {
            let krate = insert_crate(conn, c, now).map_err(|e| match e {
                NewCrateError::Exists => conflict(format!(
                    "crate `{name}` was created by another publish at the same moment, so the pending publisher this token was minted through is void; nothing was published. Ask an owner of `{name}` to add this workflow as a trusted publisher"
                )),
                NewCrateError::Other(e) => e,
            })?;
            NewCrateOwner {
                crate_id: krate.id,
                user_id: grant.pending.created_by,
                created_at: now,
                created_by: None,
            }
            .insert(conn)?;
            Crate::set_max_version(conn, krate.id, Some(&c.version.to_string()))?;
            pending_config_id = Some(pending::convert(conn, grant, &krate, now)?);
            krate
        }
        Publishable::New(user) => {
            let krate = insert_crate(conn, c, now).map_err(|e| match e {
                NewCrateError::Exists => conflict(format!(
                    "crate `{name}` was created by another publish at the same moment; try again"
                )),
                NewCrateError::Other(e) => e,
            })?;
            NewCrateOwner {
                crate_id: krate.id,
                user_id: user.user.id,
                created_at: now,
                created_by: None,
            }
            .insert(conn)?;
            Crate::set_max_version(conn, krate.id, Some(&c.version.to_string()))?;
            krate
        }
    };
    record_version(conn, auth, c, storage, krate, pending_config_id, now)
}

/// Why a new crate's row was not inserted.
enum NewCrateError {
    /// A crate of the same name was created meanwhile (by a concurrent publish).
    Exists,
    Other(AppError),
}

fn insert_crate(
    conn: &mut DbConn,
    c: &Checked,
    now: chrono::NaiveDateTime,
) -> Result<Crate, NewCrateError> {
    NewCrate {
        name: c.name.as_str(),
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
            NewCrateError::Exists
        } else {
            NewCrateError::Other(e.into())
        }
    })
}

/// The version of `krate` (existing, or created just now): its row, its file, its index line
/// and its audit row.
fn record_version(
    conn: &mut DbConn,
    auth: &Authenticated,
    c: &Checked,
    storage: &dyn Storage,
    krate: Crate,
    pending_config_id: Option<i64>,
    now: chrono::NaiveDateTime,
) -> AppResult<()> {
    let name = c.name.as_str();
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
            Some(serde_json::to_string(&published_through(
                tp,
                krate.id,
                pending_config_id,
            ))?),
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

    // Only now, with the version row inserted (a concurrent publish of the same version waits
    // on it), is the file stored; a failure rolls the row back.
    put_blocking(
        storage,
        &crate_key(&krate.canonical_name, &krate.name, &version.num),
        c.tarball.clone(),
    )?;
    index_file::append(conn, &krate, &version, now)?;
    let mut detail = json!({ "version": version.num, "checksum": version.checksum });
    if let Authenticated::Trustpub(tp) = auth {
        detail["trustpub"] = published_through(tp, krate.id, pending_config_id).to_json();
    }
    audit::record(conn, krate.id, &auth.actor(), "publish", detail, now)?;
    if let Authenticated::Trustpub(tp) = auth {
        let event = crate::mail::MailEvent::trusted_publish(&tp.actor, &version.num, &tp.publisher);
        crate::mail::outbox::notify_owners(conn, &krate, &auth.actor(), &event, None, now)?;
    }
    Ok(())
}

/// What a Trusted Publishing publish records: through the config that matched, or the one the
/// pending config it was minted through has just become.
fn published_through(
    tp: &TrustpubAuth,
    crate_id: i64,
    pending_config_id: Option<i64>,
) -> Published {
    let mut published = tp.publisher_for(crate_id);
    if pending_config_id.is_some() {
        published.config_id = pending_config_id;
    }
    published
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

/// The crate's description, links and keywords follow its highest version. Whether the new
/// version is the highest is judged against `crates.max_version` alone, without reading the
/// crate's other versions (only a crate that has none recorded yet is read once).
fn update_crate_metadata(
    conn: &mut DbConn,
    krate: &Crate,
    c: &Checked,
    now: chrono::NaiveDateTime,
) -> AppResult<()> {
    use diesel::prelude::*;
    let current = match &krate.max_version {
        Some(current) => Some(current.clone()),
        None => max_version(conn, krate.id)?,
    };
    // The highest non-yanked version, or the highest of all when every one is yanked: the
    // new version (not yanked) is the highest unless a higher one is not yanked.
    let is_max = match current.as_deref() {
        None => true,
        Some(num) => match semver::Version::parse(num) {
            Ok(mut version) if version > c.version => {
                // Found through the unique index on the number without build metadata.
                version.build = semver::BuildMetadata::EMPTY;
                Version::find_no_build(conn, krate.id, &version.to_string())?
                    .is_some_and(|v| v.yanked)
            }
            _ => true,
        },
    };
    if is_max {
        diesel::update(crates::table.find(krate.id))
            .set((
                crates::description.eq(c.description.as_deref()),
                crates::homepage.eq(c.homepage.as_deref()),
                crates::documentation.eq(c.documentation.as_deref()),
                crates::repository.eq(c.repository.as_deref()),
                crates::keywords.eq(&c.keywords),
                crates::categories.eq(&c.categories),
                crates::max_version.eq(c.version.to_string()),
                crates::updated_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        diesel::update(crates::table.find(krate.id))
            .set((crates::max_version.eq(current), crates::updated_at.eq(now)))
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::convert::Infallible;

    use futures_util::stream;

    use super::*;
    use crate::registry::test_support::wire_body;

    const STALL: Duration = Duration::from_secs(5);

    fn chunked(body: &[u8], size: usize) -> Body<impl Stream<Item = Result<Bytes, Infallible>>> {
        let chunks: Vec<Result<Bytes, Infallible>> = body
            .chunks(size.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::new(stream::iter(chunks), STALL)
    }

    /// The handler's reading sequence, without the authorisation in between.
    async fn read_all<S, E>(body: &mut Body<S>) -> AppResult<(Bytes, Bytes)>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let json = read_metadata(body).await?;
        let len = crate_length(body.read_prefix("crate length").await?, 1024 * 1024)
            .map_err(payload_too_large)?;
        let tarball = body.read_exact(len, "crate file").await?;
        body.expect_end().await?;
        Ok((json, tarball))
    }

    #[tokio::test]
    async fn a_body_is_split_into_metadata_and_crate_however_it_is_chunked() {
        let body = wire_body(br#"{"name":"x"}"#, b"crate bytes");
        for size in [1, 3, 7, body.len()] {
            let (json, tarball) = read_all(&mut chunked(&body, size)).await.unwrap();
            assert_eq!(&json[..], br#"{"name":"x"}"#);
            assert_eq!(&tarball[..], b"crate bytes");
        }
    }

    #[tokio::test]
    async fn truncated_bodies_are_refused_at_every_point() {
        let body = wire_body(br#"{"name":"x"}"#, b"crate bytes");
        for cut in 0..body.len() {
            let err = read_all(&mut chunked(&body[..cut], 5)).await.unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert!(err.detail().contains("truncated"), "cut at {cut}: {err}");
        }
        let mut cut = body.clone();
        cut.truncate(cut.len() - 4);
        let err = read_all(&mut chunked(&cut, 4)).await.unwrap_err();
        assert_eq!(
            err.detail(),
            "the publish request is truncated: expected 11 bytes of crate file but only 7 remain; the upload may have been cut off, please retry"
        );
    }

    #[tokio::test]
    async fn bytes_after_the_crate_file_are_refused() {
        let mut body = wire_body(b"{}", b"crate");
        body.push(0);
        let err = read_all(&mut chunked(&body, 3)).await.unwrap_err();
        assert_eq!(
            err.detail(),
            "the publish request has bytes after the crate file; the body must be exactly: metadata length, metadata, crate length, crate"
        );
    }

    #[tokio::test]
    async fn metadata_over_one_mebibyte_is_refused_and_a_short_body_is_truncated() {
        let mut body = (2 * 1024 * 1024u32).to_le_bytes().to_vec();
        body.extend_from_slice(b"{}");
        let err = read_all(&mut chunked(&body, 4096)).await.unwrap_err();
        assert_eq!(
            err.detail(),
            "the publish request is truncated: expected 2097152 bytes of metadata but only 2 remain; the upload may have been cut off, please retry"
        );

        body.resize(4 + 2 * 1024 * 1024, b' ');
        let err = read_all(&mut chunked(&body, 64 * 1024)).await.unwrap_err();
        assert_eq!(
            err.detail(),
            "the publish metadata is 2.0 MiB, but at most 1.0 MiB is allowed"
        );
    }

    #[tokio::test]
    async fn a_crate_file_over_the_limit_is_refused_before_it_is_read() {
        let mut body = wire_body(b"{}", b"");
        body.truncate(body.len() - 4);
        body.extend_from_slice(&(2 * 1024 * 1024u32).to_le_bytes());
        let err = read_all(&mut chunked(&body, 64)).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn an_upload_that_sends_nothing_is_cut_off() {
        let mut body = Body::new(
            stream::pending::<Result<Bytes, Infallible>>(),
            Duration::from_millis(50),
        );
        let err = AppError::from(body.read_exact(4, "metadata length").await.unwrap_err());
        assert_eq!(err.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            err.detail(),
            "the upload stalled: no data arrived for 50ms; retry the publish"
        );
    }

    #[tokio::test]
    async fn read_errors_are_reported() {
        let chunks = vec![Ok(Bytes::from_static(b"\x02\0")), Err("connection reset")];
        let mut body = Body::new(stream::iter(chunks), STALL);
        let err = AppError::from(body.read_prefix("metadata length").await.unwrap_err());
        assert_eq!(err.detail(), "cannot read the upload: connection reset");
    }
}
