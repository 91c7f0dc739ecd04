//! The checks a `.crate` file must pass before it is stored.
//!
//! A `.crate` is exactly one gzip member holding one tar archive whose entries all lie under
//! `{name}-{version}/`, as `cargo package` writes it. The archive is read as a stream, with a
//! hard bound on the bytes decompressed, so a gzip bomb costs at most `max_unpacked` bytes of
//! work and nothing is written anywhere.
//!
//! The rules are strict on purpose: a file that different readers (cargo, GNU tar, mirrors,
//! scanners) could list differently is refused, because what was checked must be what everyone
//! sees. So: nothing after the gzip member (cargo reads only the first member, `tar` reads them
//! all); the tar end-of-archive marker (two zero blocks) and nothing but zero padding after it;
//! ustar or GNU headers only, with numeric fields that parse; regular files and empty
//! directories only; GNU long names, but no PAX extended headers (a PAX `path` and a GNU long
//! name can name one entry differently to different readers).

use std::collections::HashSet;
use std::io::{self, Read};

use flate2::bufread::GzDecoder;
use semver::Version;
use serde::Deserialize;
use tar::EntryType;
use thiserror::Error;

use super::crate_name::CrateName;
use super::{format_size, quote_input};

/// Most entries (files and directories) an archive may have.
pub const MAX_ENTRIES: u64 = 100_000;
/// The largest `Cargo.toml` read.
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;
/// The largest README returned; a bigger one is ignored.
pub const MAX_README_SIZE: u64 = 512 * 1024;
/// The longest GNU long name read (far beyond any path a file system accepts).
pub const MAX_LONG_NAME: u64 = 16 * 1024;
/// The tar block size; the end-of-archive marker is two zero blocks.
const BLOCK: u64 = 512;

/// Why a `.crate` file was refused. `Display` is the message for cargo's user.
#[derive(Debug, Error)]
pub enum TarballError {
    #[error(
        "the crate file is not gzip-compressed; upload the `.crate` file that `cargo package` produces"
    )]
    NotGzip,
    #[error("uncompressed crate size exceeds the limit of {}", format_size(*limit))]
    TooLarge { limit: u64 },
    #[error(
        "the crate file is not a valid gzipped tar archive ({reason}); upload the `.crate` file that `cargo package` produces"
    )]
    Corrupt { reason: String },
    #[error(
        "the crate file has data after the end of its gzip stream (a second gzip member or trailing bytes); a `.crate` must be exactly one gzip member, as `cargo package` writes it"
    )]
    TrailingGzipData,
    #[error(
        "the crate file's tar archive does not end with an end-of-archive marker (two zero blocks); it may be truncated. Upload the `.crate` file that `cargo package` produces"
    )]
    MissingEndMarker,
    #[error(
        "the crate file has data after its tar archive's end-of-archive marker; only zero padding may follow it"
    )]
    DataAfterEndMarker,
    #[error(
        "the crate file's entry `{path}` has neither a ustar nor a GNU tar header; upload the `.crate` file that `cargo package` produces"
    )]
    UnknownHeaderFormat { path: String },
    #[error("the crate file's entry `{path}` has an invalid header: {reason}")]
    InvalidHeader { path: String, reason: String },
    #[error(
        "the crate file has a GNU long-name entry that is {problem}; upload the `.crate` file that `cargo package` produces"
    )]
    BadLongName { problem: &'static str },
    #[error("the crate file has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error(
        "the crate file contains `{path}`, which is a {kind}; only regular files and directories are allowed"
    )]
    UnsupportedEntry { path: String, kind: String },
    #[error(
        "the crate file contains the directory `{path}` with a size of {size} bytes; directories must be empty entries"
    )]
    DirectoryWithData { path: String, size: u64 },
    #[error(
        "the crate file contains the regular file `{path}`, whose name ends in `/` like a directory's"
    )]
    FileNamedLikeDirectory { path: String },
    #[error("the crate file contains the absolute path `{path}`; all paths must be relative")]
    AbsolutePath { path: String },
    #[error("the crate file contains the path `{path}`, which has a `..` component")]
    ParentComponent { path: String },
    #[error("the crate file contains the path `{path}`, which is not under `{prefix}/`")]
    OutsidePrefix { path: String, prefix: String },
    #[error(
        "the crate file contains the path `{path}`, which is not valid UTF-8 or has a backslash or NUL in it"
    )]
    InvalidPath { path: String },
    #[error("the crate file contains `{path}` more than once")]
    DuplicateEntry { path: String },
    #[error("the crate file has no `{prefix}/Cargo.toml`")]
    MissingManifest { prefix: String },
    #[error("the crate file contains `{path}` besides `Cargo.toml`; only one manifest is allowed")]
    ConflictingManifest { path: String },
    #[error(
        "`{prefix}/Cargo.toml` is larger than {}",
        format_size(MAX_MANIFEST_SIZE)
    )]
    ManifestTooLarge { prefix: String },
    #[error("`{prefix}/Cargo.toml` is not a valid manifest: {reason}")]
    InvalidManifest { prefix: String, reason: String },
    #[error(
        "the package name in Cargo.toml (`{manifest}`) differs from the crate name in the publish metadata (`{metadata}`)"
    )]
    NameMismatch { manifest: String, metadata: String },
    #[error(
        "the package version in Cargo.toml (`{manifest}`) differs from the version in the publish metadata (`{metadata}`)"
    )]
    VersionMismatch { manifest: String, metadata: String },
}

/// What was learnt from a `.crate` file that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarballInfo {
    pub manifest_name: String,
    pub manifest_version: Version,
    /// The README named by `readme_path`, if it exists, is at most [`MAX_README_SIZE`] and is
    /// UTF-8.
    pub readme: Option<String>,
    /// Number of regular files.
    pub file_count: u64,
    /// Bytes of the decompressed tar stream.
    pub unpacked_size: u64,
    /// Every entry that was checked, in archive order: exactly what any tar reader lists.
    pub entries: Vec<TarEntry>,
}

/// One entry of an accepted archive, with its path as written (after a GNU long name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub path: String,
    pub kind: TarEntryKind,
    /// Bytes of content (0 for directories).
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarEntryKind {
    File,
    Directory,
}

/// Checks a `.crate` file against the published `name` (exactly as published, e.g. `Foo_bar`)
/// and `version`, decompressing at most `max_unpacked` bytes. `readme_path` is cargo's
/// `readme_file` metadata, relative to the package root.
pub fn verify_tarball(
    tarball: &[u8],
    name: &CrateName,
    version: &Version,
    readme_path: Option<&str>,
    max_unpacked: u64,
) -> Result<TarballInfo, TarballError> {
    verify_with_limits(
        tarball,
        name,
        version,
        readme_path,
        max_unpacked,
        MAX_ENTRIES,
    )
}

fn verify_with_limits(
    tarball: &[u8],
    name: &CrateName,
    version: &Version,
    readme_path: Option<&str>,
    max_unpacked: u64,
    max_entries: u64,
) -> Result<TarballInfo, TarballError> {
    if !tarball.starts_with(&[0x1f, 0x8b]) {
        return Err(TarballError::NotGzip);
    }
    let prefix = format!("{name}-{version}");
    let readme = ReadmeTarget::new(readme_path);
    // `bufread::GzDecoder` reads exactly one member and consumes no input beyond its trailer,
    // so whatever is left of `tarball` afterwards is data after the member.
    let mut reader = LimitedReader {
        inner: GzDecoder::new(tarball),
        remaining: max_unpacked,
        read: 0,
        exceeded: false,
        eof: false,
    };
    let too_large = || TarballError::TooLarge {
        limit: max_unpacked,
    };

    let scanned = scan(&mut reader, &prefix, &readme, max_entries);
    if reader.exceeded {
        return Err(too_large());
    }
    let scanned = scanned?;
    // The tar reader stops at the first zero block, or at the end of the stream when there is
    // none (a missing end marker). Read on to the end of the gzip member, so its checksum is
    // verified and the size bound covers everything: after the first zero block only zeros may
    // follow, at least one more block of them.
    let zeros = if reader.eof {
        0
    } else {
        read_zero_padding(&mut reader)
            .map_err(|err| if reader.exceeded { too_large() } else { err })?
    };
    if !reader.inner.get_ref().is_empty() {
        return Err(TarballError::TrailingGzipData);
    }
    if zeros < BLOCK {
        return Err(TarballError::MissingEndMarker);
    }

    let manifest = scanned
        .manifest
        .ok_or_else(|| TarballError::MissingManifest {
            prefix: quote_input(&prefix),
        })?;
    let (manifest_name, manifest_version) = check_manifest(&manifest, &prefix, name, version)?;
    Ok(TarballInfo {
        manifest_name,
        manifest_version,
        readme: scanned.readme_primary.or(scanned.readme_fallback),
        file_count: scanned.file_count,
        unpacked_size: reader.read,
        entries: scanned.entries,
    })
}

/// Reads the rest of the stream; every byte must be zero. Returns how many there were.
fn read_zero_padding(reader: &mut impl Read) -> Result<u64, TarballError> {
    let mut buf = [0u8; 8192];
    let mut zeros = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(zeros),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(corrupt(&err)),
        };
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(TarballError::DataAfterEndMarker);
        }
        zeros += n as u64;
    }
}

/// A reader that returns an error, and remembers it, once more than `remaining` bytes are
/// available; it also remembers reaching the end of the stream.
struct LimitedReader<R> {
    inner: R,
    remaining: u64,
    read: u64,
    exceeded: bool,
    eof: bool,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                self.eof = true;
                return Ok(0);
            }
            self.exceeded = true;
            return Err(io::Error::other("unpacked size limit exceeded"));
        }
        let max = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.inner.read(&mut buf[..max])?;
        self.eof |= n == 0;
        self.remaining -= n as u64;
        self.read += n as u64;
        Ok(n)
    }
}

/// Where the README may be: the normalised `readme_file`, or, when that points outside the
/// package (cargo copies such a README to the root), its file name at the root.
struct ReadmeTarget {
    primary: Option<String>,
    fallback: Option<String>,
}

impl ReadmeTarget {
    fn new(path: Option<&str>) -> Self {
        let Some(path) = path else {
            return Self {
                primary: None,
                fallback: None,
            };
        };
        let path = path.replace('\\', "/");
        let mut parts: Vec<&str> = Vec::new();
        let mut escaped = false;
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => escaped |= parts.pop().is_none(),
                part => parts.push(part),
            }
        }
        let file_name = path
            .rsplit('/')
            .find(|part| !part.is_empty() && *part != "." && *part != "..")
            .map(str::to_owned);
        if escaped || parts.is_empty() {
            Self {
                primary: None,
                fallback: file_name,
            }
        } else {
            Self {
                primary: Some(parts.join("/")),
                fallback: None,
            }
        }
    }
}

#[derive(Default)]
struct Scanned {
    manifest: Option<Vec<u8>>,
    readme_primary: Option<String>,
    readme_fallback: Option<String>,
    file_count: u64,
    entries: Vec<TarEntry>,
}

fn corrupt(err: &io::Error) -> TarballError {
    TarballError::Corrupt {
        reason: err.to_string(),
    }
}

/// Walks the archive header by header (`raw`: the tar crate applies no extension headers of
/// its own), so that every header is judged here, by the rules in the module doc.
fn scan<R: Read>(
    reader: &mut R,
    prefix: &str,
    readme: &ReadmeTarget,
    max_entries: u64,
) -> Result<Scanned, TarballError> {
    let mut archive = tar::Archive::new(reader);
    let mut scanned = Scanned::default();
    let mut seen_files = HashSet::new();
    let mut entry_count = 0u64;
    let mut long_name: Option<Vec<u8>> = None;

    for entry in archive.entries().map_err(|e| corrupt(&e))?.raw(true) {
        let mut entry = entry.map_err(|e| corrupt(&e))?;
        entry_count += 1;
        if entry_count > max_entries {
            return Err(TarballError::TooManyEntries { limit: max_entries });
        }

        let header = entry.header();
        let raw_path = match &long_name {
            Some(name) => name.clone(),
            None => header.path_bytes().into_owned(),
        };
        let lossy = || quote_input(&String::from_utf8_lossy(&raw_path));
        if header.as_gnu().is_none() && header.as_ustar().is_none() {
            return Err(TarballError::UnknownHeaderFormat { path: lossy() });
        }
        let size = check_numeric_fields(header).map_err(|reason| TarballError::InvalidHeader {
            path: lossy(),
            reason,
        })?;
        let kind = header.entry_type();

        if kind == EntryType::GNULongName {
            if long_name.is_some() {
                return Err(TarballError::BadLongName {
                    problem: "followed by another long-name entry",
                });
            }
            long_name = Some(read_long_name(&mut entry, size)?);
            continue;
        }
        long_name = None;

        let Ok(path) = String::from_utf8(raw_path.clone()) else {
            return Err(TarballError::InvalidPath { path: lossy() });
        };
        let entry_kind = match kind {
            EntryType::Regular => TarEntryKind::File,
            EntryType::Directory => TarEntryKind::Directory,
            other => {
                return Err(TarballError::UnsupportedEntry {
                    path: quote_input(&path),
                    kind: kind_name(other),
                });
            }
        };
        let relative = relative_path(&path, prefix)?;
        if entry_kind == TarEntryKind::Directory {
            if size != 0 {
                return Err(TarballError::DirectoryWithData {
                    path: quote_input(&path),
                    size,
                });
            }
            scanned.entries.push(TarEntry {
                path,
                kind: entry_kind,
                size,
            });
            continue;
        }
        if path.ends_with('/') {
            return Err(TarballError::FileNamedLikeDirectory {
                path: quote_input(&path),
            });
        }

        scanned.file_count += 1;
        if !seen_files.insert(relative.clone()) {
            return Err(TarballError::DuplicateEntry {
                path: quote_input(&path),
            });
        }

        if relative == "Cargo.toml" {
            if size > MAX_MANIFEST_SIZE {
                return Err(TarballError::ManifestTooLarge {
                    prefix: quote_input(prefix),
                });
            }
            scanned.manifest =
                Some(read_bounded(&mut entry, MAX_MANIFEST_SIZE)?.ok_or_else(|| {
                    TarballError::ManifestTooLarge {
                        prefix: quote_input(prefix),
                    }
                })?);
        } else if relative.eq_ignore_ascii_case("Cargo.toml") {
            // On a case-insensitive file system this would replace the manifest we checked.
            return Err(TarballError::ConflictingManifest {
                path: quote_input(&path),
            });
        }

        let is_primary = readme.primary.as_deref() == Some(relative.as_str());
        let is_fallback = readme.fallback.as_deref() == Some(relative.as_str());
        if is_primary || is_fallback {
            let text = if size > MAX_README_SIZE {
                None
            } else {
                read_bounded(&mut entry, MAX_README_SIZE)?
                    .and_then(|bytes| String::from_utf8(bytes).ok())
            };
            if is_primary {
                scanned.readme_primary = text;
            } else {
                scanned.readme_fallback = text;
            }
        }
        scanned.entries.push(TarEntry {
            path,
            kind: entry_kind,
            size,
        });
    }
    if long_name.is_some() {
        return Err(TarballError::BadLongName {
            problem: "not followed by the entry it names",
        });
    }
    Ok(scanned)
}

/// The numeric fields every reader parses when it lists an entry must parse here too, as
/// octal (the base-256 form is for values no crate needs, and readers range-check it
/// differently); returns the size, which is required. A mode, owner or time left blank (spaces
/// and NULs, as some writers leave them) reads as 0, as GNU tar reads it.
fn check_numeric_fields(header: &tar::Header) -> Result<u64, String> {
    let field = |name: &str, err: io::Error| format!("its {name} field is not a number ({err})");
    let fields = header.as_old();
    for (name, raw) in [
        ("mode", &fields.mode[..]),
        ("uid", &fields.uid[..]),
        ("gid", &fields.gid[..]),
        ("size", &fields.size[..]),
        ("mtime", &fields.mtime[..]),
    ] {
        if raw[0] & 0x80 != 0 {
            return Err(format!("its {name} field is not an octal number"));
        }
    }
    let blank = |raw: &[u8]| raw.iter().all(|b| *b == 0 || *b == b' ');
    if !blank(&fields.mode) {
        header.mode().map_err(|e| field("mode", e))?;
    }
    if !blank(&fields.uid) {
        header.uid().map_err(|e| field("uid", e))?;
    }
    if !blank(&fields.gid) {
        header.gid().map_err(|e| field("gid", e))?;
    }
    if !blank(&fields.mtime) {
        header.mtime().map_err(|e| field("mtime", e))?;
    }
    header.entry_size().map_err(|e| field("size", e))
}

/// The path a GNU long-name entry gives the next entry: its content, which must end with one
/// NUL (readers disagree on where a name without one ends).
fn read_long_name(entry: &mut impl Read, size: u64) -> Result<Vec<u8>, TarballError> {
    if size > MAX_LONG_NAME {
        return Err(TarballError::BadLongName {
            problem: "longer than 16 KiB",
        });
    }
    let mut name = read_bounded(entry, MAX_LONG_NAME)?.ok_or(TarballError::BadLongName {
        problem: "longer than 16 KiB",
    })?;
    if name.pop() != Some(0) {
        return Err(TarballError::BadLongName {
            problem: "not terminated by a NUL byte",
        });
    }
    Ok(name)
}

/// Reads at most `limit` bytes; `None` if there is more.
fn read_bounded(reader: &mut impl Read, limit: u64) -> Result<Option<Vec<u8>>, TarballError> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt(&e))?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// The entry's path relative to the package root (`""` for the root itself), after checking
/// that it is relative, has no `..`, and lies under `prefix/`.
fn relative_path(path: &str, prefix: &str) -> Result<String, TarballError> {
    if path.contains('\\') || path.contains('\0') {
        return Err(TarballError::InvalidPath {
            path: quote_input(path),
        });
    }
    if path.starts_with('/') {
        return Err(TarballError::AbsolutePath {
            path: quote_input(path),
        });
    }
    let components: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if components.contains(&"..") {
        return Err(TarballError::ParentComponent {
            path: quote_input(path),
        });
    }
    match components.split_first() {
        Some((first, rest)) if *first == prefix => Ok(rest.join("/")),
        _ => Err(TarballError::OutsidePrefix {
            path: quote_input(path),
            prefix: quote_input(prefix),
        }),
    }
}

fn kind_name(kind: EntryType) -> String {
    match kind {
        EntryType::Symlink => "symbolic link".to_owned(),
        EntryType::Link => "hard link".to_owned(),
        EntryType::Char => "character device".to_owned(),
        EntryType::Block => "block device".to_owned(),
        EntryType::Fifo => "FIFO".to_owned(),
        EntryType::Continuous => "contiguous file".to_owned(),
        EntryType::GNUSparse => "sparse file".to_owned(),
        EntryType::XGlobalHeader => "global PAX header".to_owned(),
        EntryType::XHeader => "PAX extended header".to_owned(),
        EntryType::GNULongLink => "GNU long link name".to_owned(),
        other => format!(
            "entry of unsupported type {:?}",
            char::from(other.as_byte())
        ),
    }
}

#[derive(Deserialize)]
struct ManifestDoc {
    package: Option<ManifestPackage>,
    project: Option<ManifestPackage>,
}

#[derive(Deserialize)]
struct ManifestPackage {
    name: Option<toml::Value>,
    version: Option<toml::Value>,
}

fn check_manifest(
    bytes: &[u8],
    prefix: &str,
    name: &CrateName,
    version: &Version,
) -> Result<(String, Version), TarballError> {
    let invalid = |reason: String| TarballError::InvalidManifest {
        prefix: quote_input(prefix),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("it is not UTF-8".to_owned()))?;
    let doc: ManifestDoc = toml::from_str(text).map_err(|err| invalid(err.message().to_owned()))?;
    let package = doc
        .package
        .or(doc.project)
        .ok_or_else(|| invalid("it has no `[package]` section".to_owned()))?;

    let manifest_name = match package.name {
        Some(toml::Value::String(s)) => s,
        Some(_) => return Err(invalid("`package.name` is not a string".to_owned())),
        None => return Err(invalid("`package.name` is missing".to_owned())),
    };
    let manifest_version = match package.version {
        Some(toml::Value::String(s)) => s,
        Some(_) => return Err(invalid("`package.version` is not a string".to_owned())),
        None => return Err(invalid("`package.version` is missing".to_owned())),
    };

    if manifest_name != name.as_str() {
        return Err(TarballError::NameMismatch {
            manifest: quote_input(&manifest_name),
            metadata: name.to_string(),
        });
    }
    let mismatch = || TarballError::VersionMismatch {
        manifest: quote_input(&manifest_version),
        metadata: version.to_string(),
    };
    let parsed = Version::parse(&manifest_version).map_err(|_| mismatch())?;
    if parsed != *version {
        return Err(mismatch());
    }
    Ok((manifest_name, parsed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::registry::test_support::{
        TestEntry, edit_header, good_crate, good_entries, gzip, manifest, tar_bytes, tar_gz,
        without_end_marker,
    };

    const LIMIT: u64 = 10 * 1024 * 1024;

    fn name() -> CrateName {
        CrateName::parse("Foo_bar").unwrap()
    }

    fn version() -> Version {
        Version::parse("1.2.3").unwrap()
    }

    fn verify(tarball: &[u8]) -> Result<TarballInfo, TarballError> {
        verify_tarball(tarball, &name(), &version(), Some("README.md"), LIMIT)
    }

    fn with_extra(entry: TestEntry) -> Vec<u8> {
        let mut entries = good_entries("Foo_bar", "1.2.3");
        entries.push(entry);
        tar_gz(&entries)
    }

    #[test]
    fn a_good_crate_is_accepted_and_described() {
        let info = verify(&good_crate("Foo_bar", "1.2.3")).unwrap();

        assert_eq!(info.manifest_name, "Foo_bar");
        assert_eq!(info.manifest_version, version());
        assert_eq!(info.readme.as_deref(), Some("# Hello\n"));
        assert_eq!(info.file_count, 4);
        assert!(info.unpacked_size > 0);
        let listed: Vec<(&str, TarEntryKind, u64)> = info
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind, e.size))
            .collect();
        let manifest_len = manifest("Foo_bar", "1.2.3").len() as u64;
        assert_eq!(
            listed,
            [
                ("Foo_bar-1.2.3/", TarEntryKind::Directory, 0),
                ("Foo_bar-1.2.3/Cargo.toml", TarEntryKind::File, manifest_len),
                (
                    "Foo_bar-1.2.3/Cargo.toml.orig",
                    TarEntryKind::File,
                    manifest_len
                ),
                ("Foo_bar-1.2.3/README.md", TarEntryKind::File, 8),
                ("Foo_bar-1.2.3/src/", TarEntryKind::Directory, 0),
                ("Foo_bar-1.2.3/src/lib.rs", TarEntryKind::File, 14),
            ]
        );
    }

    #[test]
    fn prerelease_and_build_metadata_versions_are_matched_exactly() {
        let version = Version::parse("1.0.0-beta.1+build.5").unwrap();
        let tarball = good_crate("Foo_bar", "1.0.0-beta.1+build.5");

        let info = verify_tarball(&tarball, &name(), &version, None, LIMIT).unwrap();

        assert_eq!(info.manifest_version, version);
        assert_eq!(info.readme, None);
    }

    #[test]
    fn long_paths_written_with_gnu_long_name_headers_are_fine() {
        let long = format!("Foo_bar-1.2.3/src/{}/mod.rs", "deep".repeat(40));
        let info = verify(&with_extra(TestEntry::file(long.clone(), "// deep\n"))).unwrap();
        assert_eq!(info.file_count, 5);
        assert_eq!(
            info.entries.len(),
            7,
            "the long-name entry is not an entry of its own"
        );
        assert_eq!(info.entries[6].path, long);
    }

    #[test]
    fn paths_outside_the_package_directory_are_refused() {
        let err = verify(&with_extra(TestEntry::file("other-1.2.3/x.rs", "x"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the crate file contains the path `other-1.2.3/x.rs`, which is not under `Foo_bar-1.2.3/`"
        );
    }

    #[test]
    fn the_prefix_must_use_the_name_exactly_as_published() {
        for prefix in [
            "foo_bar-1.2.3",
            "Foo-bar-1.2.3",
            "Foo_bar-1.2.4",
            "Foo_bar-1.2.3x",
        ] {
            let err = verify(&with_extra(TestEntry::file(format!("{prefix}/a"), "x"))).unwrap_err();
            assert!(
                matches!(err, TarballError::OutsidePrefix { .. }),
                "{prefix}: {err}"
            );
        }
    }

    #[test]
    fn files_at_the_archive_root_are_refused() {
        let err = verify(&with_extra(TestEntry::file("Cargo.toml", "x"))).unwrap_err();
        assert!(matches!(err, TarballError::OutsidePrefix { .. }));
    }

    #[test]
    fn dot_dot_escapes_are_refused() {
        for path in [
            "Foo_bar-1.2.3/../evil",
            "../Foo_bar-1.2.3/evil",
            "Foo_bar-1.2.3/src/../../evil",
            "Foo_bar-1.2.3/..",
        ] {
            let err = verify(&with_extra(TestEntry::file(path, "x"))).unwrap_err();
            assert!(
                matches!(err, TarballError::ParentComponent { .. }),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn absolute_paths_are_refused() {
        let err = verify(&with_extra(TestEntry::file("/etc/passwd", "x"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the crate file contains the absolute path `/etc/passwd`; all paths must be relative"
        );
        let err = verify(&with_extra(TestEntry::file("/Foo_bar-1.2.3/x", "x"))).unwrap_err();
        assert!(matches!(err, TarballError::AbsolutePath { .. }));
    }

    #[test]
    fn backslashes_in_paths_are_refused() {
        let err = verify(&with_extra(TestEntry::file("Foo_bar-1.2.3\\..\\evil", "x"))).unwrap_err();
        assert!(matches!(err, TarballError::InvalidPath { .. }));
    }

    #[test]
    fn symlink_entries_are_refused() {
        let err = verify(&with_extra(TestEntry::Symlink(
            "Foo_bar-1.2.3/link".into(),
            "/etc/passwd".into(),
        )))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the crate file contains `Foo_bar-1.2.3/link`, which is a symbolic link; only regular files and directories are allowed"
        );
    }

    #[test]
    fn hardlink_entries_are_refused() {
        let err = verify(&with_extra(TestEntry::Hardlink(
            "Foo_bar-1.2.3/link".into(),
            "Foo_bar-1.2.3/Cargo.toml".into(),
        )))
        .unwrap_err();
        assert!(err.to_string().contains("which is a hard link"), "{err}");
    }

    #[test]
    fn devices_and_fifos_are_refused() {
        for (kind, word) in [
            (EntryType::Char, "character device"),
            (EntryType::Block, "block device"),
            (EntryType::Fifo, "FIFO"),
        ] {
            let err = verify(&with_extra(TestEntry::Other(
                "Foo_bar-1.2.3/dev".into(),
                kind,
                vec![],
            )))
            .unwrap_err();
            assert!(err.to_string().contains(word), "{err}");
        }
    }

    #[test]
    fn a_name_mismatch_in_cargo_toml_is_refused_with_both_names() {
        let mut entries = good_entries("Foo_bar", "1.2.3");
        entries[1] = TestEntry::file("Foo_bar-1.2.3/Cargo.toml", manifest("foo-bar", "1.2.3"));

        let err = verify(&tar_gz(&entries)).unwrap_err();

        assert_eq!(
            err.to_string(),
            "the package name in Cargo.toml (`foo-bar`) differs from the crate name in the publish metadata (`Foo_bar`)"
        );
    }

    #[test]
    fn a_version_mismatch_in_cargo_toml_is_refused_with_both_versions() {
        let mut entries = good_entries("Foo_bar", "1.2.3");
        entries[1] = TestEntry::file("Foo_bar-1.2.3/Cargo.toml", manifest("Foo_bar", "1.2.4"));

        let err = verify(&tar_gz(&entries)).unwrap_err();

        assert_eq!(
            err.to_string(),
            "the package version in Cargo.toml (`1.2.4`) differs from the version in the publish metadata (`1.2.3`)"
        );
    }

    #[test]
    fn a_missing_cargo_toml_is_refused() {
        let mut entries = good_entries("Foo_bar", "1.2.3");
        entries.remove(1);

        let err = verify(&tar_gz(&entries)).unwrap_err();

        assert_eq!(
            err.to_string(),
            "the crate file has no `Foo_bar-1.2.3/Cargo.toml`"
        );
    }

    #[test]
    fn a_cargo_toml_in_a_subdirectory_does_not_count() {
        let entries = vec![TestEntry::file(
            "Foo_bar-1.2.3/sub/Cargo.toml",
            manifest("Foo_bar", "1.2.3"),
        )];
        assert!(matches!(
            verify(&tar_gz(&entries)).unwrap_err(),
            TarballError::MissingManifest { .. }
        ));
    }

    #[test]
    fn a_second_manifest_differing_only_in_case_is_refused() {
        let err = verify(&with_extra(TestEntry::file(
            "Foo_bar-1.2.3/cargo.toml",
            manifest("Foo_bar", "9.9.9"),
        )))
        .unwrap_err();
        assert!(matches!(err, TarballError::ConflictingManifest { .. }));
    }

    #[test]
    fn duplicate_files_are_refused() {
        let err = verify(&with_extra(TestEntry::file(
            "Foo_bar-1.2.3/./Cargo.toml",
            manifest("Foo_bar", "1.2.3"),
        )))
        .unwrap_err();
        assert!(matches!(err, TarballError::DuplicateEntry { .. }), "{err}");
    }

    #[test]
    fn an_invalid_cargo_toml_is_refused() {
        for (content, expected) in [
            ("[package\nname = ", "is not a valid manifest"),
            ("[dependencies]\n", "no `[package]` section"),
            (
                "[package]\nversion = \"1.2.3\"\n",
                "`package.name` is missing",
            ),
            (
                "[package]\nname = \"Foo_bar\"\n",
                "`package.version` is missing",
            ),
            (
                "[package]\nname = \"Foo_bar\"\nversion = 1\n",
                "`package.version` is not a string",
            ),
            (
                "[package]\nname = \"Foo_bar\"\nname = \"Other\"\nversion = \"1.2.3\"\n",
                "is not a valid manifest",
            ),
        ] {
            let mut entries = good_entries("Foo_bar", "1.2.3");
            entries[1] = TestEntry::file("Foo_bar-1.2.3/Cargo.toml", content);
            let err = verify(&tar_gz(&entries)).unwrap_err();
            assert!(
                matches!(err, TarballError::InvalidManifest { .. }),
                "{content}: {err}"
            );
            assert!(err.to_string().contains(expected), "{err}");
        }
        let mut entries = good_entries("Foo_bar", "1.2.3");
        entries[1] = TestEntry::file("Foo_bar-1.2.3/Cargo.toml", b"\xff\xfe".as_slice());
        assert!(matches!(
            verify(&tar_gz(&entries)).unwrap_err(),
            TarballError::InvalidManifest { .. }
        ));
    }

    #[test]
    fn an_oversized_cargo_toml_is_refused() {
        let mut content = manifest("Foo_bar", "1.2.3");
        content.push_str(&format!("# {}\n", "x".repeat(5 * 1024 * 1024)));
        let mut entries = good_entries("Foo_bar", "1.2.3");
        entries[1] = TestEntry::file("Foo_bar-1.2.3/Cargo.toml", content);

        let err = verify(&tar_gz(&entries)).unwrap_err();

        assert!(
            matches!(err, TarballError::ManifestTooLarge { .. }),
            "{err}"
        );
    }

    #[test]
    fn data_that_is_not_gzip_is_refused() {
        let err = verify(&tar_bytes(&good_entries("Foo_bar", "1.2.3"))).unwrap_err();
        assert!(matches!(err, TarballError::NotGzip));
        assert!(matches!(verify(b"").unwrap_err(), TarballError::NotGzip));
    }

    #[test]
    fn gzip_that_is_not_a_tar_archive_is_refused() {
        let err = verify(&gzip(&[0x42; 2000])).unwrap_err();
        assert!(matches!(err, TarballError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn an_empty_archive_is_refused_for_lack_of_a_manifest() {
        let err = verify(&gzip(&[0u8; 1024])).unwrap_err();
        assert!(matches!(err, TarballError::MissingManifest { .. }), "{err}");
        let err = verify(&gzip(&[])).unwrap_err();
        assert!(matches!(err, TarballError::MissingEndMarker), "{err}");
    }

    #[test]
    fn garbage_after_the_gzip_magic_is_refused() {
        let mut garbage = vec![0x1f, 0x8b];
        garbage.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        assert!(verify(&garbage).is_err());
    }

    #[test]
    fn a_truncated_crate_file_is_refused() {
        let tarball = good_crate("Foo_bar", "1.2.3");
        for cut in [3, 10, tarball.len() / 2, tarball.len() - 4] {
            assert!(verify(&tarball[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_corrupted_gzip_checksum_is_refused() {
        let mut tarball = good_crate("Foo_bar", "1.2.3");
        let crc = tarball.len() - 8;
        tarball[crc] ^= 0xff;
        let err = verify(&tarball).unwrap_err();
        assert!(matches!(err, TarballError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn a_gzip_bomb_beyond_the_limit_is_refused() {
        let mut entries = good_entries("Foo_bar", "1.2.3");
        entries.push(TestEntry::file(
            "Foo_bar-1.2.3/zeros.bin",
            vec![0u8; 4 * 1024 * 1024],
        ));
        let tarball = tar_gz(&entries);
        assert!(tarball.len() < 64 * 1024);

        let err = verify_tarball(&tarball, &name(), &version(), None, 1024 * 1024).unwrap_err();

        assert!(matches!(err, TarballError::TooLarge { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "uncompressed crate size exceeds the limit of 1.0 MiB"
        );
    }

    #[test]
    fn zeros_after_the_tar_end_count_toward_the_limit() {
        let mut tar = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        tar.extend(vec![0u8; 2 * 1024 * 1024]);
        let err = verify_tarball(&gzip(&tar), &name(), &version(), None, 1024 * 1024).unwrap_err();
        assert!(matches!(err, TarballError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn an_archive_exactly_at_the_limit_is_accepted() {
        let tar = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        let limit = tar.len() as u64;
        let info = verify_tarball(&gzip(&tar), &name(), &version(), None, limit).unwrap();
        assert_eq!(info.unpacked_size, limit);
        assert!(verify_tarball(&gzip(&tar), &name(), &version(), None, limit - 1).is_err());
    }

    #[test]
    fn absurd_entry_counts_are_refused() {
        let mut entries = good_entries("Foo_bar", "1.2.3");
        for i in 0..20 {
            entries.push(TestEntry::Dir(format!("Foo_bar-1.2.3/d{i}/")));
        }
        let tarball = tar_gz(&entries);

        let err = verify_with_limits(&tarball, &name(), &version(), None, LIMIT, 20).unwrap_err();

        assert!(
            matches!(err, TarballError::TooManyEntries { limit: 20 }),
            "{err}"
        );
        assert_eq!(err.to_string(), "the crate file has more than 20 entries");
        assert!(verify_with_limits(&tarball, &name(), &version(), None, LIMIT, 26).is_ok());
        assert_eq!(MAX_ENTRIES, 100_000);
    }

    #[test]
    fn the_readme_path_is_normalised() {
        let mut entries = good_entries("Foo_bar", "1.2.3");
        entries.push(TestEntry::file("Foo_bar-1.2.3/docs/INTRO.md", "intro"));
        let tarball = tar_gz(&entries);
        let readme = |path: &str| {
            verify_tarball(&tarball, &name(), &version(), Some(path), LIMIT)
                .unwrap()
                .readme
        };

        assert_eq!(readme("./README.md").as_deref(), Some("# Hello\n"));
        assert_eq!(readme("docs/INTRO.md").as_deref(), Some("intro"));
        assert_eq!(readme("./docs//INTRO.md").as_deref(), Some("intro"));
        assert_eq!(readme("docs\\INTRO.md").as_deref(), Some("intro"));
        assert_eq!(readme("src/../README.md").as_deref(), Some("# Hello\n"));
        assert_eq!(readme("../README.md").as_deref(), Some("# Hello\n"));
        assert_eq!(readme("MISSING.md"), None);
        assert_eq!(readme(""), None);
    }

    #[test]
    fn an_oversized_or_binary_readme_is_ignored() {
        let big = with_extra(TestEntry::file(
            "Foo_bar-1.2.3/BIG.md",
            vec![b'a'; 512 * 1024 + 1],
        ));
        let info = verify_tarball(&big, &name(), &version(), Some("BIG.md"), LIMIT).unwrap();
        assert_eq!(info.readme, None);

        let exact = with_extra(TestEntry::file(
            "Foo_bar-1.2.3/BIG.md",
            vec![b'a'; 512 * 1024],
        ));
        let info = verify_tarball(&exact, &name(), &version(), Some("BIG.md"), LIMIT).unwrap();
        assert_eq!(info.readme.map(|r| r.len()), Some(512 * 1024));

        let binary = with_extra(TestEntry::file("Foo_bar-1.2.3/BIN.md", b"\xff\xfe\x00"));
        let info = verify_tarball(&binary, &name(), &version(), Some("BIN.md"), LIMIT).unwrap();
        assert_eq!(info.readme, None);
    }

    #[test]
    fn a_second_gzip_member_smuggling_a_symlink_and_a_second_lib_rs_is_refused() {
        // cargo reads only the first member; `tar`, mirrors and scanners read both.
        let first = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        let second = tar_bytes(&[
            TestEntry::Symlink("Foo_bar-1.2.3/evil".into(), "/etc/passwd".into()),
            TestEntry::file("Foo_bar-1.2.3/src/lib.rs", "pub fn evil() {}\n"),
        ]);
        for first in [without_end_marker(first.clone()), first] {
            let mut smuggled = gzip(&first);
            smuggled.extend(gzip(&second));

            let err = verify(&smuggled).unwrap_err();

            assert_eq!(
                err.to_string(),
                "the crate file has data after the end of its gzip stream (a second gzip member or trailing bytes); a `.crate` must be exactly one gzip member, as `cargo package` writes it"
            );
        }
    }

    #[test]
    fn bytes_after_the_gzip_stream_are_refused() {
        for trailer in [&b"trailing"[..], &[0u8; 16][..], &[0u8; 1][..]] {
            let mut tarball = good_crate("Foo_bar", "1.2.3");
            tarball.extend_from_slice(trailer);
            let err = verify(&tarball).unwrap_err();
            assert!(
                err.to_string()
                    .contains("data after the end of its gzip stream"),
                "{trailer:?}: {err}"
            );
        }
    }

    #[test]
    fn an_archive_without_its_end_of_archive_marker_is_refused() {
        let tar = without_end_marker(tar_bytes(&good_entries("Foo_bar", "1.2.3")));
        let mut one_zero_block = tar.clone();
        one_zero_block.extend([0u8; 512]);
        for tar in [tar, one_zero_block] {
            let err = verify(&gzip(&tar)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "the crate file's tar archive does not end with an end-of-archive marker (two zero blocks); it may be truncated. Upload the `.crate` file that `cargo package` produces"
            );
        }
    }

    #[test]
    fn data_after_the_end_of_archive_marker_is_refused() {
        // `tar --ignore-zeros` and some scanners read on past the marker.
        let mut hidden = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        hidden.extend(tar_bytes(&[TestEntry::file(
            "Foo_bar-1.2.3/src/lib.rs",
            "pub fn evil() {}\n",
        )]));
        let mut stray_byte = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        stray_byte.extend([0u8; 4096]);
        stray_byte.push(1);
        for tar in [hidden, stray_byte] {
            let err = verify(&gzip(&tar)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "the crate file has data after its tar archive's end-of-archive marker; only zero padding may follow it"
            );
        }
    }

    #[test]
    fn zero_padding_after_the_end_of_archive_marker_is_accepted() {
        // GNU tar pads archives to records of 10 KiB.
        let mut tar = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        tar.resize(10240, 0);
        let info = verify(&gzip(&tar)).unwrap();
        assert_eq!(info.unpacked_size, 10240);
    }

    #[test]
    fn pax_extended_headers_are_refused() {
        // A PAX `path` and a GNU long name can name one entry differently to different readers.
        let mut entries = good_entries("Foo_bar", "1.2.3");
        entries.push(TestEntry::Other(
            "Foo_bar-1.2.3/PaxHeaders/x".into(),
            EntryType::XHeader,
            b"34 path=Foo_bar-1.2.3/src/other.rs\n".to_vec(),
        ));
        entries.push(TestEntry::file("Foo_bar-1.2.3/src/shown.rs", "x"));
        let err = verify(&tar_gz(&entries)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the crate file contains `Foo_bar-1.2.3/PaxHeaders/x`, which is a PAX extended header; only regular files and directories are allowed"
        );
    }

    #[test]
    fn headers_without_ustar_or_gnu_magic_are_refused() {
        let mut tar = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        // The third entry (Cargo.toml.orig) becomes an old V7 header.
        let offset = 512 + 512 + manifest("Foo_bar", "1.2.3").len().div_ceil(512) * 512;
        edit_header(&mut tar, offset, |block| block[257..265].fill(0));
        let err = verify(&gzip(&tar)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the crate file's entry `Foo_bar-1.2.3/Cargo.toml.orig` has neither a ustar nor a GNU tar header; upload the `.crate` file that `cargo package` produces"
        );
    }

    #[test]
    fn header_fields_that_are_not_numbers_are_refused() {
        let mut tar = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        // The mode of the root directory entry.
        edit_header(&mut tar, 0, |block| {
            block[100..108].copy_from_slice(b"zzzzzzz\0")
        });
        let err = verify(&gzip(&tar)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the crate file's entry `Foo_bar-1.2.3/` has an invalid header"),
            "{err}"
        );
    }

    #[test]
    fn base_256_numeric_fields_are_refused() {
        // Found by the differential property test: the `tar` crate read a negative base-256
        // uid that GNU tar refuses.
        let mut tar = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        edit_header(&mut tar, 0, |block| block[108] = 0xff);
        let err = verify(&gzip(&tar)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the crate file's entry `Foo_bar-1.2.3/` has an invalid header: its uid field is not an octal number"
        );
    }

    #[test]
    fn blank_mode_owner_and_time_fields_read_as_zero() {
        let mut tar = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        edit_header(&mut tar, 0, |block| {
            block[100..108].fill(0);
            block[108..116].fill(0);
            block[116..124].fill(b' ');
            block[136..148].fill(0);
        });
        assert!(verify(&gzip(&tar)).is_ok());
    }

    #[test]
    fn directories_with_contents_are_refused() {
        // Readers disagree on whether a directory's size is skipped or read as the next header.
        let err = verify(&with_extra(TestEntry::Other(
            "Foo_bar-1.2.3/dir/".into(),
            EntryType::Directory,
            vec![0u8; 600],
        )))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the crate file contains the directory `Foo_bar-1.2.3/dir/` with a size of 600 bytes; directories must be empty entries"
        );
    }

    #[test]
    fn a_regular_file_named_like_a_directory_is_refused() {
        // GNU tar reads such an entry as a directory.
        let err = verify(&with_extra(TestEntry::file("Foo_bar-1.2.3/lib/", "x"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the crate file contains the regular file `Foo_bar-1.2.3/lib/`, whose name ends in `/` like a directory's"
        );
    }

    #[test]
    fn a_long_name_must_be_followed_by_the_entry_it_names() {
        let long = |name: &str| {
            TestEntry::Other(
                "././@LongLink".into(),
                EntryType::GNULongName,
                format!("{name}\0").into_bytes(),
            )
        };
        let dangling = verify(&with_extra(long("Foo_bar-1.2.3/src/x.rs"))).unwrap_err();
        let twice = {
            let mut entries = good_entries("Foo_bar", "1.2.3");
            entries.push(long("Foo_bar-1.2.3/src/a.rs"));
            entries.push(long("Foo_bar-1.2.3/src/b.rs"));
            entries.push(TestEntry::file("Foo_bar-1.2.3/short", "x"));
            verify(&tar_gz(&entries)).unwrap_err()
        };
        for err in [dangling, twice] {
            assert!(err.to_string().contains("GNU long-name entry"), "{err}");
        }
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let good = good_crate("Foo_bar", "1.2.3");
        let tar = tar_bytes(&good_entries("Foo_bar", "1.2.3"));
        for i in (0..tar.len()).step_by(37) {
            let mut mutated = tar.clone();
            mutated[i] ^= 0x5a;
            let _ = verify(&gzip(&mutated));
            let _ = verify(&gzip(&tar[..i]));
        }
        for i in (0..good.len()).step_by(3) {
            let mut mutated = good.clone();
            mutated[i] = mutated[i].wrapping_add(1);
            let _ = verify(&mutated);
        }
    }
}
