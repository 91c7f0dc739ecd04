//! The real `cargo` against the real server: publish, resolve, download, build, yank, owners,
//! search.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::TestApp;

pub struct Cargo {
    pub home: PathBuf,
    pub target: PathBuf,
    pub token: Option<String>,
}

impl Cargo {
    /// A temporary CARGO_HOME whose registry `wharf` is the test server.
    pub fn new(root: &Path, app: &TestApp, token: Option<String>) -> anyhow::Result<Self> {
        let home = root.join("cargo-home");
        std::fs::create_dir_all(&home)?;
        std::fs::write(
            home.join("config.toml"),
            format!(
                "[registries.wharf]\nindex = \"sparse+{}/index/\"\n\n[net]\nretry = 0\n",
                app.base_url
            ),
        )?;
        Ok(Self {
            home,
            target: root.join("target"),
            token,
        })
    }

    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let cargo = env!("CARGO");
        let mut cmd = Command::new(cargo);
        cmd.args(args).current_dir(dir).env_clear();
        for var in ["PATH", "HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "TMPDIR"] {
            if let Ok(value) = std::env::var(var) {
                cmd.env(var, value);
            }
        }
        let rustc = Path::new(cargo).with_file_name("rustc");
        if rustc.exists() {
            cmd.env("RUSTC", rustc);
        }
        cmd.env("CARGO_HOME", &self.home)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_TERM_COLOR", "never")
            .env("CARGO_HTTP_TIMEOUT", "60");
        if let Some(token) = &self.token {
            cmd.env("CARGO_REGISTRIES_WHARF_TOKEN", token);
        }
        cmd
    }

    /// Runs cargo on the blocking pool; returns (success, stdout, stderr).
    pub async fn run(&self, dir: &Path, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
        let mut cmd = self.command(dir, args);
        let output = tokio::task::spawn_blocking(move || cmd.output()).await??;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    pub async fn ok(&self, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
        let (ok, stdout, stderr) = self.run(dir, args).await?;
        assert!(ok, "cargo {args:?} failed:\n{stdout}\n{stderr}");
        Ok(stdout)
    }
}

pub fn write_package(dir: &Path, manifest: &str, lib: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    let file = if lib.contains("fn main") {
        "src/main.rs"
    } else {
        "src/lib.rs"
    };
    std::fs::write(dir.join(file), lib)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cargo_publishes_resolves_downloads_builds_yanks_and_manages_owners() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.user("bob");
    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, Some(token))?;

    let base = root.path().join("base");
    write_package(
        &base,
        "[package]\nname = \"e2e-base\"\nversion = \"1.0.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"The base of the e2e test\"\nreadme = \"README.md\"\n",
        "pub fn forty() -> u32 { 40 }\n",
    )?;
    std::fs::write(
        base.join("README.md"),
        "# e2e-base\n\nHello from the README.\n",
    )?;
    cargo.ok(&base, &["publish", "--registry", "wharf"]).await?;

    let mid = root.path().join("mid");
    write_package(
        &mid,
        "[package]\nname = \"e2e-mid\"\nversion = \"1.0.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"Depends on the base, renamed\"\n\n[dependencies]\nrenamed_base = { package = \"e2e-base\", version = \"1.0\", registry = \"wharf\" }\n\n[features]\nextra = []\n",
        "pub fn answer() -> u32 { renamed_base::forty() + extra() }\n#[cfg(feature = \"extra\")]\nfn extra() -> u32 { 2 }\n#[cfg(not(feature = \"extra\"))]\nfn extra() -> u32 { 0 }\n",
    )?;
    cargo.ok(&mid, &["publish", "--registry", "wharf"]).await?;

    let lines = app.index_lines("e2e-mid").await;
    assert_eq!(lines[0]["deps"][0]["name"], "renamed_base");
    assert_eq!(lines[0]["deps"][0]["package"], "e2e-base");
    assert!(lines[0]["deps"][0].get("registry").is_none());
    assert_eq!(lines[0]["features"]["extra"], serde_json::json!([]));

    let user = root.path().join("user");
    write_package(
        &user,
        "[package]\nname = \"e2e-user\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\ne2e-mid = { version = \"1\", registry = \"wharf\", features = [\"extra\"] }\n",
        "fn main() { println!(\"answer={}\", e2e_mid::answer()); }\n",
    )?;
    let stdout = cargo.ok(&user, &["run", "--quiet"]).await?;
    assert_eq!(stdout.trim(), "answer=42");

    cargo
        .ok(
            &user,
            &[
                "yank",
                "--registry",
                "wharf",
                "--version",
                "1.0.0",
                "e2e-mid",
            ],
        )
        .await?;
    assert_eq!(app.index_lines("e2e-mid").await[0]["yanked"], true);
    cargo
        .ok(
            &user,
            &[
                "yank",
                "--registry",
                "wharf",
                "--version",
                "1.0.0",
                "--undo",
                "e2e-mid",
            ],
        )
        .await?;
    assert_eq!(app.index_lines("e2e-mid").await[0]["yanked"], false);

    let (ok, _, stderr) = cargo
        .run(
            &user,
            &["owner", "--registry", "wharf", "--add", "bob", "e2e-base"],
        )
        .await?;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("user bob has been added as an owner of crate e2e-base"),
        "{stderr}"
    );
    let listed = cargo
        .ok(
            &user,
            &["owner", "--registry", "wharf", "--list", "e2e-base"],
        )
        .await?;
    assert!(
        listed.contains("alice") && listed.contains("bob"),
        "{listed}"
    );
    cargo
        .ok(
            &user,
            &[
                "owner",
                "--registry",
                "wharf",
                "--remove",
                "bob",
                "e2e-base",
            ],
        )
        .await?;
    let listed = cargo
        .ok(
            &user,
            &["owner", "--registry", "wharf", "--list", "e2e-base"],
        )
        .await?;
    assert!(!listed.contains("bob"), "{listed}");

    let found = cargo
        .ok(&user, &["search", "--registry", "wharf", "e2e"])
        .await?;
    assert!(found.contains("e2e-base = \"1.0.0\""), "{found}");
    assert!(found.contains("e2e-mid = \"1.0.0\""), "{found}");

    let (_, info) = app.get_json("/api/v1/crates/e2e-mid").await;
    assert_eq!(info["versions"][0]["published_by"]["login"], "alice");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cargo_shows_the_registry_error_when_a_publish_is_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, Some("wharf_not_a_real_token".to_owned()))?;
    let pkg = root.path().join("pkg");
    write_package(
        &pkg,
        "[package]\nname = \"refused\"\nversion = \"1.0.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"x\"\n",
        "",
    )?;
    let (ok, _, stderr) = cargo
        .run(&pkg, &["publish", "--registry", "wharf", "--no-verify"])
        .await?;
    assert!(!ok);
    assert!(
        stderr.contains("the API token is invalid, revoked or expired"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_cargo_new_crate_publishes_under_the_default_settings() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, Some(app.token("alice")))?;
    cargo
        .ok(
            root.path(),
            &[
                "new",
                "--lib",
                "--vcs",
                "none",
                "--name",
                "fresh-start",
                "fresh",
            ],
        )
        .await?;
    let pkg = root.path().join("fresh");
    let manifest = std::fs::read_to_string(pkg.join("Cargo.toml"))?;
    assert!(
        !manifest.contains("description") && !manifest.contains("license"),
        "cargo new writes neither key: {manifest}"
    );

    cargo.ok(&pkg, &["publish", "--registry", "wharf"]).await?;

    assert_eq!(app.index_lines("fresh-start").await[0]["vers"], "0.1.0");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cargo_shows_which_cargo_toml_keys_a_registry_requires() -> anyhow::Result<()> {
    let app = TestApp::builder()
        .set("required_metadata", "description,license")
        .spawn()
        .await;
    let root = tempfile::tempdir()?;
    let cargo = Cargo::new(root.path(), &app, Some(app.token("alice")))?;
    let pkg = root.path().join("pkg");
    write_package(
        &pkg,
        "[package]\nname = \"undescribed\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        "",
    )?;

    let (ok, _, stderr) = cargo
        .run(&pkg, &["publish", "--registry", "wharf", "--no-verify"])
        .await?;

    assert!(!ok);
    for expected in [
        "missing or empty metadata fields: description, license",
        "[package]",
        "description = \"",
        "license = \"MIT OR Apache-2.0\"",
        "license-file = \"LICENSE\"",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    Ok(())
}
