//! `wharf dev`: the fake GitHub and the registry, on loopback only, from the same binary as
//! `wharf serve` (so one build, debug or release, serves every purpose).

use std::path::Path;
use std::process::Command;

use crate::support::process::{Spawned, value_after};

#[test]
fn dev_mode_refuses_to_listen_beyond_loopback() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("dev")
        .env("WHARF_BIND", "0.0.0.0:0")
        .env("WHARF_DATA_DIR", dir.path())
        .env_remove("WHARF_DATABASE_URL")
        .env("WHARF_LOG", "warn")
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only listens on loopback"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn the_built_binary_runs_dev_mode_with_logs_free_of_colour_codes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    command
        .arg("dev")
        .env("WHARF_BIND", "127.0.0.1:0")
        .env("WHARF_DATA_DIR", dir.path())
        .env_remove("WHARF_DATABASE_URL")
        .env_remove("NO_COLOR")
        .env("WHARF_LOG", "info");
    let mut dev = Spawned::start(command)?;
    dev.wait_for("Press Ctrl-C to stop.").await?;
    let banner = dev.stdout();
    let registry = value_after(&banner, "registry:").expect("the registry's URL");
    let github = value_after(&banner, "fake GitHub:").expect("the fake GitHub's URL");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    let login = client.get(format!("{registry}login")).send().await?;
    assert_eq!(login.status(), 200);
    assert!(
        login.text().await?.contains("id=\"login-github\""),
        "GitHub login is on, against the fake"
    );
    let start = client.get(format!("{registry}login/github")).send().await?;
    assert_eq!(start.status(), 303);
    let location = start.headers()["location"].to_str()?;
    assert!(
        location.starts_with(&format!("{github}login/oauth/authorize?")),
        "{location}"
    );
    let id_tokens = client.get(format!("{github}_dev/id-token")).send().await?;
    assert_eq!(id_tokens.status(), 200);

    let (stdout, stderr) = dev.stop()?;
    assert!(
        stderr.contains("/login/github"),
        "the requests were logged: {stderr}"
    );
    for (name, output) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !output.contains('\u{1b}'),
            "{name} is a pipe, so it carries no escape codes: {output:?}"
        );
    }
    Ok(())
}

/// `dev` is part of every build: nothing in `src/` depends on the build profile
/// (`debug_assertions`) or on a cargo feature, so `cargo build --release` compiles the very code
/// the test above runs, and `target/release/wharf dev` works.
#[test]
fn no_code_depends_on_the_build_profile_or_a_feature() -> anyhow::Result<()> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    )?;
    assert!(files.len() > 20, "found the sources: {files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for gate in ["debug_assertions", "feature ="] {
            assert!(
                !text.contains(gate),
                "{} depends on `{gate}`: then a release build may lack what the tests ran",
                file.display()
            );
        }
    }
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))?;
    assert!(
        !manifest.contains("[features]"),
        "wharf has no features of its own: `dev` must be in the default build"
    );
    Ok(())
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
    Ok(())
}
