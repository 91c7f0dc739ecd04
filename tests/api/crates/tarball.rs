//! What a `.crate` must be: exactly one gzip member holding one tar archive that every reader
//! lists alike. GNU tar is the independent second reader: whatever the verifier accepted, GNU
//! tar lists exactly the entries the verifier checked.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use wharf::registry::crate_name::CrateName;
use wharf::registry::tarball::verify_tarball;
use wharf::storage::crate_key;

use crate::support::crates::publish_body;
use crate::support::gnu_tar::{Listed, Listing, list_gzipped};
use crate::support::{CrateBuilder, TestApp, detail};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// Writes `files` under `root/{name}-{version}/`.
fn write_tree(root: &Path, krate: &CrateBuilder, files: &[(&str, Vec<u8>)]) -> anyhow::Result<()> {
    let package = root.join(format!("{}-{}", krate.name, krate.version));
    for (path, contents) in files {
        let path = package.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        std::fs::write(path, contents)?;
    }
    Ok(())
}

/// A `.crate` written by GNU tar itself (directories, 10 KiB records) in `format`.
fn gnu_tar_crate(krate: &CrateBuilder, format: &str) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let deep = format!("src/{}/mod.rs", ["nested"; 12].join("/"));
    write_tree(
        dir.path(),
        krate,
        &[
            ("Cargo.toml", krate.manifest().into_bytes()),
            ("src/lib.rs", b"pub mod nested;\n".to_vec()),
            (&deep, b"// deep\n".to_vec()),
            ("data/blocks.bin", vec![7u8; 1500]),
            ("empty.txt", Vec::new()),
        ],
    )?;
    let output = Command::new("tar")
        .arg(format!("--format={format}"))
        .args(["--owner=0", "--group=0", "--numeric-owner", "-czf", "-"])
        .arg("-C")
        .arg(dir.path())
        .arg(format!("{}-{}", krate.name, krate.version))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "GNU tar --format={format} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}

/// A `.crate` written by the real `cargo package`.
fn cargo_package_crate(krate: &CrateBuilder) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let package = dir.path().join("pkg");
    std::fs::create_dir_all(package.join("src/very/long/module/path/to/exceed/one/hundred"))?;
    std::fs::write(
        package.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{}\"\nversion = \"{}\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"fixture\"\nreadme = \"README.md\"\n",
            krate.name, krate.version
        ),
    )?;
    std::fs::write(package.join("README.md"), "# Fixture\n")?;
    std::fs::write(package.join("src/lib.rs"), "pub fn f() {}\n")?;
    std::fs::write(
        package.join("src/very/long/module/path/to/exceed/one/hundred/characters_in_a_tar_header_name_field.rs"),
        "// long\n",
    )?;
    let output = Command::new(env!("CARGO"))
        .args([
            "package",
            "--offline",
            "--no-verify",
            "--allow-dirty",
            "--quiet",
        ])
        .current_dir(&package)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .env("CARGO_HOME", dir.path().join("cargo-home"))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "cargo package failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(std::fs::read(dir.path().join(format!(
        "target/package/{}-{}.crate",
        krate.name, krate.version
    )))?)
}

#[tokio::test]
async fn every_accepted_fixture_is_listed_by_gnu_tar_exactly_as_the_verifier_checked_it()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let long_path = format!("src/{}/deep.rs", "long-directory-name".repeat(8));
    let rich = CrateBuilder::new("rich", "1.0.0-beta.1")
        .readme("# Rich\n")
        .file(&long_path, b"// a GNU long name\n")
        .file("src/\u{fc}n\u{ef}c\u{f6}d\u{e9}.rs", b"// non-ASCII name\n")
        .file("empty.txt", b"")
        .file("data/two-blocks.bin", &[9u8; 1000]);
    let fixtures: Vec<(&str, CrateBuilder, Vec<u8>)> = vec![
        {
            let krate = CrateBuilder::new("plain", "1.0.0");
            let tarball = krate.tarball();
            ("tar crate, GNU headers", krate, tarball)
        },
        {
            let tarball = rich.tarball();
            ("long, non-ASCII and empty files", rich.clone(), tarball)
        },
        {
            let krate = CrateBuilder::new("gnu-format", "2.0.0");
            let tarball = gnu_tar_crate(&krate, "gnu")?;
            ("GNU tar --format=gnu", krate, tarball)
        },
        {
            let krate = CrateBuilder::new("ustar-format", "2.0.0");
            let tarball = gnu_tar_crate(&krate, "ustar")?;
            ("GNU tar --format=ustar (prefix field)", krate, tarball)
        },
        {
            let krate = CrateBuilder::new("packaged", "0.3.1");
            let tarball = cargo_package_crate(&krate)?;
            ("cargo package", krate, tarball)
        },
    ];

    for (what, krate, tarball) in fixtures {
        let response = app
            .publish_body(&token, publish_body(&krate.metadata(), &tarball))
            .await;
        let status = response.status();
        assert_eq!(status, 200, "{what}: {}", response.text().await?);

        let downloaded = app
            .client
            .get(app.url(&format!(
                "/api/v1/crates/{}/{}/download",
                krate.name, krate.version
            )))
            .send()
            .await?
            .bytes()
            .await?;
        let name = CrateName::parse(&krate.name)?;
        let stored = app
            .stored(&crate_key(&name.canonical(), &krate.name, &krate.version))
            .await?
            .expect("the crate file is stored");
        assert_eq!(stored, tarball, "{what}: stored as uploaded");
        assert_eq!(&downloaded[..], &stored[..], "{what}: served as stored");

        let checked = verify_tarball(
            &stored,
            &name,
            &semver::Version::parse(&krate.version)?,
            None,
            app.config().limits.max_unpacked_size,
        )?;
        let expected: Vec<Listed> = checked.entries.iter().map(Listed::from).collect();
        match list_gzipped(&stored)? {
            Listing::Clean(listed) => assert_eq!(listed, expected, "{what}"),
            other => panic!("{what}: GNU tar complained about an accepted crate: {other:?}"),
        }
        assert!(
            expected.iter().any(|e| e.path.ends_with(b"/Cargo.toml")),
            "{what}: the listing is the real one"
        );
    }
    Ok(())
}

#[tokio::test]
async fn smuggled_gzip_members_and_trailing_bytes_are_refused_by_the_server() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let krate = CrateBuilder::new("smuggler", "1.0.0");
    // The first member: the real crate without its end-of-archive marker. The second: what
    // every reader but cargo sees too.
    let mut first = gunzip(&krate.tarball());
    first.truncate(first.len() - 1024);
    let mut second = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    second.append_link(&mut header, "smuggler-1.0.0/evil", "/etc/passwd")?;
    let mut header = tar::Header::new_gnu();
    header.set_size(17);
    header.set_mode(0o644);
    second.append_data(
        &mut header,
        "smuggler-1.0.0/src/lib.rs",
        &b"pub fn evil() {}\n"[..],
    )?;
    let mut smuggled = gzip(&first);
    smuggled.extend(gzip(&second.into_inner()?));
    let mut trailing = krate.tarball();
    trailing.extend_from_slice(b"hidden");

    let Listing::Clean(seen) = list_gzipped(&smuggled)? else {
        panic!("GNU tar should read the smuggled file whole");
    };
    assert!(
        seen.iter()
            .any(|e| e.kind == 'l' && e.path.starts_with(b"smuggler-1.0.0/evil ->")),
        "GNU tar sees the smuggled symlink: {seen:?}"
    );

    for (what, tarball) in [("a second member", smuggled), ("trailing bytes", trailing)] {
        let response = app
            .publish_body(&token, publish_body(&krate.metadata(), &tarball))
            .await;
        assert_eq!(response.status(), 400, "{what}");
        assert_eq!(
            detail(&response.json().await?),
            "the crate file has data after the end of its gzip stream (a second gzip member or trailing bytes); a `.crate` must be exactly one gzip member, as `cargo package` writes it",
            "{what}"
        );
    }
    let (status, _) = app.get_json("/api/v1/crates/smuggler").await;
    assert_eq!(status, 404, "nothing was stored");
    Ok(())
}

// ---- Mutations: the verifier never panics, and never accepts what GNU tar lists otherwise.

const NAME: &str = "Foo_bar";
const VERSION: &str = "1.2.3";
const PREFIX: &str = "Foo_bar-1.2.3";

/// A well-formed crate as `tar::Builder` writes it: directories, files, and a long path (a GNU
/// long name, or with `ustar` headers the prefix field).
fn base_tar(ustar: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: String, kind: tar::EntryType, data: &[u8]| {
        let mut header = if ustar {
            tar::Header::new_ustar()
        } else {
            tar::Header::new_gnu()
        };
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_mtime(1_700_000_000);
        builder
            .append_data(&mut header, path, data)
            .expect("append");
    };
    let manifest = format!("[package]\nname = \"{NAME}\"\nversion = \"{VERSION}\"\n");
    add(format!("{PREFIX}/"), tar::EntryType::Directory, b"");
    add(
        format!("{PREFIX}/Cargo.toml"),
        tar::EntryType::Regular,
        manifest.as_bytes(),
    );
    add(
        format!("{PREFIX}/README.md"),
        tar::EntryType::Regular,
        b"# Hello\n",
    );
    add(format!("{PREFIX}/src/"), tar::EntryType::Directory, b"");
    add(
        format!("{PREFIX}/src/lib.rs"),
        tar::EntryType::Regular,
        &[b'x'; 700],
    );
    add(
        format!(
            "{PREFIX}/src/{}/mod.rs",
            "long".repeat(if ustar { 25 } else { 30 })
        ),
        tar::EntryType::Regular,
        b"// long\n",
    );
    builder.into_inner().expect("tar")
}

#[test]
fn the_mutated_bases_exercise_gnu_long_names_and_the_ustar_prefix_field() {
    let gnu = base_tar(false);
    assert!(
        header_offsets(&gnu).iter().any(|at| gnu[at + 156] == b'L'),
        "a GNU long-name entry"
    );
    let ustar = base_tar(true);
    assert!(
        header_offsets(&ustar)
            .iter()
            .all(|at| &ustar[at + 257..at + 265] == b"ustar\x0000" && ustar[at + 156] != b'L'),
        "ustar headers only"
    );
    assert!(
        header_offsets(&ustar).iter().any(|at| ustar[at + 345] != 0),
        "a path split into prefix and name"
    );
}

/// Offsets of the header blocks of a tar, as far as its octal sizes can be followed.
fn header_offsets(tar: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|b| *b != 0) {
        offsets.push(at);
        let size_field = String::from_utf8_lossy(&tar[at + 124..at + 136]);
        let Ok(size) = usize::from_str_radix(size_field.trim_matches(['\0', ' ']), 8) else {
            break;
        };
        at += 512 + size.div_ceil(512) * 512;
    }
    offsets
}

fn fix_checksum(block: &mut [u8]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// A raw header block (with a valid checksum) followed by `data` padded to whole blocks.
fn raw_entry(kind: u8, name: &[u8], data: &[u8], magic: &[u8; 8]) -> Vec<u8> {
    let mut block = vec![0u8; 512];
    let name = &name[..name.len().min(100)];
    block[..name.len()].copy_from_slice(name);
    block[100..108].copy_from_slice(b"0000644\0");
    block[108..116].copy_from_slice(b"0000000\0");
    block[116..124].copy_from_slice(b"0000000\0");
    block[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    block[136..148].copy_from_slice(b"00000000000\0");
    block[156] = kind;
    block[257..265].copy_from_slice(magic);
    fix_checksum(&mut block);
    block.extend_from_slice(data);
    block.resize(512 + data.len().div_ceil(512) * 512, 0);
    block
}

#[derive(Debug, Clone)]
enum TarMutation {
    FlipByte(Index, u8),
    /// Sets a byte of a header and fixes its checksum, so the header is still read.
    SetHeaderByte(Index, usize, u8),
    Truncate(Index),
    Append(Vec<u8>),
    AppendZeros(usize),
    Insert {
        at: Index,
        kind: u8,
        name: Vec<u8>,
        data: Vec<u8>,
        magic: [u8; 8],
    },
}

#[derive(Debug, Clone)]
enum GzMutation {
    FlipByte(Index, u8),
    Truncate(Index),
    Append(Vec<u8>),
    AppendMember(Vec<u8>),
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        Just(0u8),
        Just(b' '),
        Just(b'/'),
        Just(b'.'),
        Just(0x80),
        Just(0xff),
        (b'0'..=b'7'),
        prop::sample::select(b"0125LKxgS7VDN\\".to_vec()),
    ]
}

fn entry_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            format!("{PREFIX}/src/lib.rs"),
            format!("{PREFIX}/Cargo.toml"),
            format!("{PREFIX}/cargo.toml"),
            format!("{PREFIX}/src/"),
            format!("{PREFIX}/new.rs"),
            format!("{PREFIX}/./src/lib.rs"),
            format!("{PREFIX}/../escape"),
            "/etc/passwd".to_owned(),
            "other-1.0.0/x".to_owned(),
            "././@LongLink".to_owned(),
            "PaxHeaders.0/x".to_owned(),
        ])
        .prop_map(String::into_bytes),
        prop::collection::vec(prop::sample::select(b"ab/._-\\\0\xc3\xa9".to_vec()), 0..12)
            .prop_map(|tail| {
                let mut name = format!("{PREFIX}/").into_bytes();
                name.extend(tail);
                name
            }),
    ]
}

fn entry_data(name: Vec<u8>) -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let long_name = {
        let mut data = format!("{PREFIX}/src/{}.rs", "n".repeat(120)).into_bytes();
        data.push(0);
        data
    };
    let pax = format!("34 path={PREFIX}/src/other.rs\n").into_bytes();
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..700),
        Just(long_name),
        Just(pax),
        Just(b"x\0".to_vec()),
    ]
    .prop_map(move |data| (name.clone(), data))
}

fn tar_mutation() -> impl Strategy<Value = TarMutation> {
    let magic = prop::sample::select(vec![*b"ustar  \0", *b"ustar\x0000", *b"\0\0\0\0\0\0\0\0"]);
    prop_oneof![
        (any::<Index>(), 1u8..).prop_map(|(at, xor)| TarMutation::FlipByte(at, xor)),
        (
            any::<Index>(),
            (0usize..512).prop_filter("not the checksum", |o| !(148..156).contains(o)),
            interesting_byte()
        )
            .prop_map(|(header, offset, value)| TarMutation::SetHeaderByte(header, offset, value)),
        any::<Index>().prop_map(TarMutation::Truncate),
        prop::collection::vec(any::<u8>(), 1..600).prop_map(TarMutation::Append),
        (1usize..12_000).prop_map(TarMutation::AppendZeros),
        (
            any::<Index>(),
            interesting_byte(),
            entry_name().prop_flat_map(entry_data),
            magic
        )
            .prop_map(|(at, kind, (name, data), magic)| TarMutation::Insert {
                at,
                kind,
                name,
                data,
                magic
            }),
    ]
}

fn gz_mutation() -> impl Strategy<Value = GzMutation> {
    prop_oneof![
        (any::<Index>(), 1u8..).prop_map(|(at, xor)| GzMutation::FlipByte(at, xor)),
        any::<Index>().prop_map(GzMutation::Truncate),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(GzMutation::Append),
        prop_oneof![
            Just(raw_entry(
                b'2',
                format!("{PREFIX}/evil").as_bytes(),
                b"",
                b"ustar  \0"
            )),
            prop::collection::vec(any::<u8>(), 0..600),
        ]
        .prop_map(GzMutation::AppendMember),
    ]
}

fn mutate_tar(mut tar: Vec<u8>, mutation: &TarMutation) -> Vec<u8> {
    match mutation {
        TarMutation::FlipByte(at, xor) => {
            let at = at.index(tar.len());
            tar[at] ^= xor;
        }
        TarMutation::SetHeaderByte(header, offset, value) => {
            let offsets = header_offsets(&tar);
            if !offsets.is_empty() {
                let at = offsets[header.index(offsets.len())];
                tar[at + offset] = *value;
                fix_checksum(&mut tar[at..at + 512]);
            }
        }
        TarMutation::Truncate(at) => tar.truncate(at.index(tar.len())),
        TarMutation::Append(bytes) => tar.extend_from_slice(bytes),
        TarMutation::AppendZeros(n) => tar.resize(tar.len() + n, 0),
        TarMutation::Insert {
            at,
            kind,
            name,
            data,
            magic,
        } => {
            let mut offsets = header_offsets(&tar);
            offsets.push(tar.len().saturating_sub(1024));
            let at = offsets[at.index(offsets.len())];
            let entry = raw_entry(*kind, name, data, magic);
            tar.splice(at..at, entry);
        }
    }
    tar
}

fn mutate_gz(mut gz: Vec<u8>, mutation: &GzMutation) -> Vec<u8> {
    match mutation {
        GzMutation::FlipByte(at, xor) => {
            let at = at.index(gz.len());
            gz[at] ^= xor;
        }
        GzMutation::Truncate(at) => gz.truncate(at.index(gz.len())),
        GzMutation::Append(bytes) => gz.extend_from_slice(bytes),
        GzMutation::AppendMember(bytes) => gz.extend(gzip(bytes)),
    }
    gz
}

/// Bounded so the whole property runs in a few seconds in a debug build; `PROPTEST_CASES`
/// asks for more.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(400)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_crates_never_panic_the_verifier_and_are_never_accepted_differently(
        ustar in any::<bool>(),
        tar_mutations in prop::collection::vec(tar_mutation(), 0..4),
        gz_mutation in prop::option::weighted(0.3, gz_mutation()),
    ) {
        let mut tar = base_tar(ustar);
        for mutation in &tar_mutations {
            tar = mutate_tar(tar, mutation);
        }
        let mut crate_file = gzip(&tar);
        if let Some(mutation) = &gz_mutation {
            crate_file = mutate_gz(crate_file, mutation);
        }
        let name = CrateName::parse(NAME).expect("name");
        let version = semver::Version::parse(VERSION).expect("version");

        let verdict = verify_tarball(&crate_file, &name, &version, Some("README.md"), 1024 * 1024);

        if let Ok(info) = verdict {
            let expected: Vec<Listed> = info.entries.iter().map(Listed::from).collect();
            match list_gzipped(&crate_file).map_err(|e| TestCaseError::fail(e.to_string()))? {
                Listing::Clean(listed) => prop_assert_eq!(listed, expected),
                other => prop_assert!(
                    false,
                    "accepted, but GNU tar complained: {:?}", other
                ),
            }
        }
    }
}
