//! The tokens this provider has minted and not yet revoked.
//!
//! Cargo asks the provider for a token just before an upload and has no hook after it, so the
//! provider writes down each token it mints and revokes it on its next run (or on
//! `cargo logout`). The file lives in the job's private temporary directory:
//! `$RUNNER_TEMP` on GitHub Actions, `$CI_BUILDS_DIR` on GitLab CI (named after `$CI_JOB_ID`,
//! as that directory is shared by the runner's jobs), else the system temporary directory. On
//! Buildkite the agent's jobs share the system temporary directory, so there the file is named
//! after `$BUILDKITE_JOB_ID` and one job never revokes another's tokens. On
//! Unix it is created readable by its owner only. Its contents are never printed.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cargo_credential::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ci::Environment;

/// One minted token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintedToken {
    /// The registry API base it belongs to (where it is revoked).
    pub api: String,
    /// The token itself, needed to revoke it.
    pub token: Secret<String>,
    /// SHA-256 of the ID token it was exchanged for, to recognise a GitLab job's single ID token.
    pub id_token_sha256: String,
    /// The cargo command it was minted for ([`crate::ci::Environment::invocation`]): that
    /// command keeps using it (to read a private registry, and to publish), later ones revoke it.
    #[serde(default)]
    pub invocation: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    tokens: Vec<MintedToken>,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    /// The state file for the CI job described by `env`.
    pub fn for_environment(env: &Environment) -> Self {
        let dir = env
            .var("RUNNER_TEMP")
            .or_else(|| env.var("CI_BUILDS_DIR"))
            .map(PathBuf::from)
            .unwrap_or_else(|| env.temp_dir().clone());
        let name = match env.var("CI_JOB_ID").or_else(|| env.var("BUILDKITE_JOB_ID")) {
            Some(job) => format!("cargo-credential-wharf-{}.json", sanitise(job)),
            None => "cargo-credential-wharf.json".to_owned(),
        };
        Self {
            path: dir.join(name),
        }
    }

    /// A store at an explicit path.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The remembered tokens; none when the file does not exist.
    pub fn load(&self) -> anyhow::Result<Vec<MintedToken>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("could not read {}", self.path.display()));
            }
        };
        let state: StateFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid state file", self.path.display()))?;
        Ok(state.tokens)
    }

    /// Replaces the remembered tokens; with none left, the file is removed.
    pub fn save(&self, tokens: &[MintedToken]) -> anyhow::Result<()> {
        if tokens.is_empty() {
            return match fs::remove_file(&self.path) {
                Err(error) if error.kind() != ErrorKind::NotFound => {
                    Err(error).with_context(|| format!("could not remove {}", self.path.display()))
                }
                _ => Ok(()),
            };
        }
        let state = StateFile {
            tokens: tokens.to_vec(),
        };
        let json = serde_json::to_vec(&state)?;
        let temporary = self.path.with_extension("json.tmp");
        let _ = fs::remove_file(&temporary);
        let mut file = private_file(&temporary)
            .with_context(|| format!("could not create {}", temporary.display()))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("could not write {}", temporary.display()))?;
        fs::rename(&temporary, &self.path)
            .with_context(|| format!("could not replace {}", self.path.display()))?;
        Ok(())
    }
}

/// SHA-256 (hex) of an ID token: enough to recognise it again, useless to anyone reading the file.
pub fn fingerprint(id_token: Secret<&str>) -> String {
    hex::encode(Sha256::digest(id_token.expose().as_bytes()))
}

fn sanitise(component: &str) -> String {
    component
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minted(token: &str) -> MintedToken {
        MintedToken {
            api: "http://127.0.0.1:1".to_owned(),
            token: Secret::from(token.to_owned()),
            id_token_sha256: fingerprint(Secret::from("a.b.c")),
            invocation: None,
        }
    }

    #[test]
    fn github_jobs_keep_state_in_runner_temp() {
        let env = Environment::new([("RUNNER_TEMP", "/runner/_temp"), ("CI_BUILDS_DIR", "/b")]);
        assert_eq!(
            TokenStore::for_environment(&env).path(),
            Path::new("/runner/_temp/cargo-credential-wharf.json")
        );
    }

    #[test]
    fn gitlab_jobs_keep_state_per_job_in_the_builds_dir() {
        let env = Environment::new([("CI_BUILDS_DIR", "/builds"), ("CI_JOB_ID", "123")]);
        assert_eq!(
            TokenStore::for_environment(&env).path(),
            Path::new("/builds/cargo-credential-wharf-123.json")
        );
    }

    #[test]
    fn buildkite_jobs_keep_state_per_job_in_the_temp_dir() {
        let env = Environment::new([
            ("BUILDKITE", "true"),
            ("BUILDKITE_JOB_ID", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        ])
        .with_temp_dir("/tmp/agent");
        assert_eq!(
            TokenStore::for_environment(&env).path(),
            Path::new(
                "/tmp/agent/cargo-credential-wharf-0190a1b2_c3d4_7e5f_8a9b_0c1d2e3f4a5b.json"
            )
        );
    }

    #[test]
    fn elsewhere_state_goes_to_the_temp_dir() {
        let env = Environment::new([("HOME", "/home/me")]).with_temp_dir("/tmp/x");
        assert_eq!(
            TokenStore::for_environment(&env).path(),
            Path::new("/tmp/x/cargo-credential-wharf.json")
        );
    }

    #[test]
    fn saved_tokens_load_back_and_an_empty_list_removes_the_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = TokenStore::at(dir.path().join("state.json"));
        assert!(store.load()?.is_empty());

        store.save(&[minted("wharf_tp_one"), minted("wharf_tp_two")])?;
        let loaded = store.load()?;
        let tokens: Vec<&str> = loaded.iter().map(|t| t.token.as_deref().expose()).collect();
        assert_eq!(tokens, ["wharf_tp_one", "wharf_tp_two"]);

        store.save(&[])?;
        assert!(!store.path().exists());
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn the_state_file_is_private_to_its_owner() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let store = TokenStore::at(dir.path().join("state.json"));
        store.save(&[minted("wharf_tp_one")])?;
        let mode = fs::metadata(store.path())?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn a_fingerprint_does_not_contain_the_token() {
        let print = fingerprint(Secret::from("header.payload.signature"));
        assert_eq!(print.len(), 64);
        assert!(!print.contains("payload"));
    }
}
