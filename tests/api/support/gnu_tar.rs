//! GNU tar as an independent reader of `.crate` files: what it lists is what `tar`, mirrors
//! and scanners see, whatever our verifier (built on the `tar` crate) thought it checked.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};
use wharf::registry::tarball::{TarEntry, TarEntryKind};

/// One entry as GNU tar lists it: the type letter of `ls -l` (`-` file, `d` directory, `l`
/// symbolic link, `h` hard link…), the size, and the raw path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub kind: char,
    pub size: u64,
    pub path: Vec<u8>,
}

impl From<&TarEntry> for Listed {
    fn from(entry: &TarEntry) -> Self {
        Listed {
            kind: match entry.kind {
                TarEntryKind::File => '-',
                TarEntryKind::Directory => 'd',
            },
            size: entry.size,
            path: entry.path.as_bytes().to_vec(),
        }
    }
}

/// What GNU tar made of an archive.
#[derive(Debug)]
pub enum Listing {
    /// Exit status 0 and nothing on stderr.
    Clean(Vec<Listed>),
    /// A non-zero exit or a warning: the archive is not one GNU tar reads without complaint.
    Complained { stdout: String, stderr: String },
}

/// The `tar` on `PATH`, which must be GNU tar: fails loudly otherwise.
fn gnu_tar() -> anyhow::Result<()> {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    CHECK
        .get_or_init(|| {
            let output = Command::new("tar")
                .arg("--version")
                .output()
                .map_err(|e| format!("cannot run `tar` ({e}); these tests need GNU tar"))?;
            let version = String::from_utf8_lossy(&output.stdout);
            if version.contains("GNU tar") {
                Ok(())
            } else {
                Err(format!(
                    "`tar` is not GNU tar ({}); these tests need GNU tar",
                    version.lines().next().unwrap_or("")
                ))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Lists a gzipped tar (`tar -tvz` on stdin) with numeric owners, UTC times and escaped names.
pub fn list_gzipped(bytes: &[u8]) -> anyhow::Result<Listing> {
    gnu_tar()?;
    let mut child = Command::new("tar")
        .args(["--numeric-owner", "--quoting-style=escape", "-tvzf", "-"])
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run GNU tar")?;
    let mut stdin = child.stdin.take().context("tar's stdin")?;
    let input = bytes.to_vec();
    // Write from another thread: tar may stop reading early, or fill its stdout meanwhile.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().context("waiting for GNU tar")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))?;
    let stdout = String::from_utf8(output.stdout).context("tar's output (LC_ALL=C) is ASCII")?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() || !stderr.is_empty() {
        return Ok(Listing::Complained { stdout, stderr });
    }
    let entries = stdout
        .lines()
        .map(parse_line)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Listing::Clean(entries))
}

/// `-rw-r--r-- 0/0     14 1970-01-01 00:00 name` → kind, size, name.
fn parse_line(line: &str) -> anyhow::Result<Listed> {
    let mut rest = line;
    let mut fields = Vec::new();
    for _ in 0..5 {
        rest = rest.trim_start_matches(' ');
        let end = rest
            .find(' ')
            .with_context(|| format!("unexpected tar output line {line:?}"))?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let path = rest
        .strip_prefix(' ')
        .with_context(|| format!("unexpected tar output line {line:?}"))?;
    let kind = fields[0]
        .chars()
        .next()
        .with_context(|| format!("unexpected tar output line {line:?}"))?;
    let size = fields[2]
        .parse()
        .with_context(|| format!("size in tar output line {line:?}"))?;
    Ok(Listed {
        kind,
        size,
        path: unescape(path)?,
    })
}

/// Undoes `--quoting-style=escape`: C escapes and `\ooo` octal bytes.
fn unescape(text: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let Some(&next) = bytes.get(i + 1) else {
            bail!("dangling backslash in {text:?}");
        };
        let simple = match next {
            b'\\' => Some(b'\\'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'?' => Some(b'?'),
            b' ' => Some(b' '),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
            continue;
        }
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .with_context(|| format!("unknown escape in {text:?}"))?;
        let value = octal
            .iter()
            .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
        out.push(u8::try_from(value).with_context(|| format!("octal escape in {text:?}"))?);
        i += 4;
    }
    Ok(out)
}

#[test]
fn escaped_names_are_read_back_to_their_bytes() -> anyhow::Result<()> {
    assert_eq!(unescape(r"a/f\001 x\\y\303\251")?, b"a/f\x01 x\\y\xc3\xa9");
    assert_eq!(unescape(r"tab\there")?, b"tab\there");
    assert!(unescape(r"bad\9").is_err());
    let listed = parse_line("drwxr-xr-x 0/0               0 1970-01-01 00:00 a b/")?;
    assert_eq!(
        listed,
        Listed {
            kind: 'd',
            size: 0,
            path: b"a b/".to_vec()
        }
    );
    Ok(())
}
