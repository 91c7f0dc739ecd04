//! Builders for publish bodies and `.crate` files, for tests. Hostile archives are written with raw
//! tar headers, because `tar::Builder` refuses to create them.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use tar::{EntryType, Header};

/// One entry of a test archive.
pub(crate) enum TestEntry {
    File(String, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    Hardlink(String, String),
    /// Any other entry type, with a body.
    Other(String, EntryType, Vec<u8>),
}

impl TestEntry {
    pub(crate) fn file(path: impl Into<String>, data: impl AsRef<[u8]>) -> Self {
        Self::File(path.into(), data.as_ref().to_vec())
    }
}

/// Metadata JSON as cargo sends it for a minimal crate that passes validation.
pub(crate) fn metadata_json(name: &str, vers: &str) -> Value {
    json!({
        "name": name,
        "vers": vers,
        "deps": [],
        "features": {},
        "authors": [],
        "description": "A test crate",
        "documentation": null,
        "homepage": null,
        "readme": null,
        "readme_file": null,
        "keywords": [],
        "categories": [],
        "license": "MIT OR Apache-2.0",
        "license_file": null,
        "repository": null,
        "badges": {},
        "links": null,
        "rust_version": null,
    })
}

/// The publish wire format: u32 LE length, JSON, u32 LE length, crate.
pub(crate) fn wire_body(json: &[u8], krate: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u32::try_from(json.len()).unwrap().to_le_bytes());
    body.extend_from_slice(json);
    body.extend_from_slice(&u32::try_from(krate.len()).unwrap().to_le_bytes());
    body.extend_from_slice(krate);
    body
}

/// A normalised `Cargo.toml` like the one `cargo package` writes.
pub(crate) fn manifest(name: &str, version: &str) -> String {
    format!(
        "[package]\nedition = \"2021\"\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"A test crate\"\nlicense = \"MIT\"\nreadme = \"README.md\"\n\n[dependencies.serde]\nversion = \"1\"\n"
    )
}

/// The entries of a well-formed crate.
pub(crate) fn good_entries(name: &str, version: &str) -> Vec<TestEntry> {
    let prefix = format!("{name}-{version}");
    vec![
        TestEntry::Dir(format!("{prefix}/")),
        TestEntry::file(format!("{prefix}/Cargo.toml"), manifest(name, version)),
        TestEntry::file(format!("{prefix}/Cargo.toml.orig"), manifest(name, version)),
        TestEntry::file(format!("{prefix}/README.md"), "# Hello\n"),
        TestEntry::Dir(format!("{prefix}/src/")),
        TestEntry::file(format!("{prefix}/src/lib.rs"), "pub fn f() {}\n"),
    ]
}

/// A well-formed `.crate` file.
pub(crate) fn good_crate(name: &str, version: &str) -> Vec<u8> {
    tar_gz(&good_entries(name, version))
}

pub(crate) fn tar_gz(entries: &[TestEntry]) -> Vec<u8> {
    gzip(&tar_bytes(entries))
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An uncompressed tar archive. Paths of up to 100 bytes are written verbatim into the header
/// (so `../x` and `/x` survive); longer ones go through `tar::Builder`, which emits a GNU
/// long-name entry.
pub(crate) fn tar_bytes(entries: &[TestEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let (path, kind, data, link): (&str, EntryType, &[u8], Option<&str>) = match entry {
            TestEntry::File(path, data) => (path, EntryType::Regular, data, None),
            TestEntry::Dir(path) => (path, EntryType::Directory, &[], None),
            TestEntry::Symlink(path, target) => (path, EntryType::Symlink, &[], Some(target)),
            TestEntry::Hardlink(path, target) => (path, EntryType::Link, &[], Some(target)),
            TestEntry::Other(path, kind, data) => (path, *kind, data, None),
        };
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(0);
        if let Some(link) = link {
            let raw = header.as_gnu_mut().unwrap();
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        if path.len() <= 100 {
            let raw = header.as_gnu_mut().unwrap();
            raw.name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, data).unwrap();
        } else {
            builder.append_data(&mut header, path, data).unwrap();
        }
    }
    builder.into_inner().unwrap()
}

/// Rewrites the header block at `offset` of an uncompressed tar with `edit`, then fixes its
/// checksum, so the edited header is well-formed apart from what `edit` did.
pub(crate) fn edit_header(tar: &mut [u8], offset: usize, edit: impl FnOnce(&mut [u8])) {
    let block = &mut tar[offset..offset + 512];
    edit(block);
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// The tar without its end-of-archive marker (every trailing zero block removed).
pub(crate) fn without_end_marker(mut tar: Vec<u8>) -> Vec<u8> {
    while tar.len() >= 512 && tar[tar.len() - 512..].iter().all(|b| *b == 0) {
        tar.truncate(tar.len() - 512);
    }
    tar
}
