//! Where the provider runs, and how it gets the job's OIDC ID token there.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use cargo_credential::Secret;
use serde::Deserialize;
use url::Url;

use crate::options::Options;
use crate::registry::error_detail;

/// A snapshot of the environment variables the provider reads, taken once at start-up so that
/// tests can run the provider against an environment of their own.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    temp_dir: PathBuf,
    /// How long `buildkite-agent` may run; [`AGENT_TIMEOUT`] when not set.
    agent_timeout: Option<Duration>,
    /// The cargo command that started this provider ([`Environment::invocation`]).
    invocation: Option<String>,
}

/// Names only: the values include the runner's request token, GitLab's ID token and the
/// Buildkite agent's access token.
impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("temp_dir", &self.temp_dir)
            .field("agent_timeout", &self.agent_timeout())
            .finish()
    }
}

impl Environment {
    /// The process's own environment.
    pub fn from_process() -> Self {
        Self::new(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
        .with_temp_dir(std::env::temp_dir())
        .with_invocation(cargo_invocation())
    }

    /// An environment holding exactly `vars`; the temporary directory is the system's.
    pub fn new<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: vars
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
            temp_dir: std::env::temp_dir(),
            agent_timeout: None,
            invocation: None,
        }
    }

    /// Names the cargo command this provider runs for (see [`Environment::invocation`]).
    pub fn with_invocation(mut self, invocation: Option<String>) -> Self {
        self.invocation = invocation;
        self
    }

    /// The cargo command that started this provider: cargo starts its credential providers
    /// itself, so this is the parent process, named by its id and (on Linux) its start time, so
    /// that a later command that happens to get the same id is another invocation. `None` where
    /// it cannot be told.
    pub fn invocation(&self) -> Option<&str> {
        self.invocation.as_deref()
    }

    /// Replaces the directory used when neither `RUNNER_TEMP` nor `CI_BUILDS_DIR` is set.
    pub fn with_temp_dir(mut self, temp_dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = temp_dir.into();
        self
    }

    /// Replaces how long `buildkite-agent oidc request-token` may run before it is stopped
    /// ([`AGENT_TIMEOUT`] by default).
    pub fn with_agent_timeout(mut self, timeout: Duration) -> Self {
        self.agent_timeout = Some(timeout);
        self
    }

    /// How long `buildkite-agent oidc request-token` may run before it is stopped.
    pub fn agent_timeout(&self) -> Duration {
        self.agent_timeout.unwrap_or(AGENT_TIMEOUT)
    }

    /// The value of `name`, treating an empty value as unset.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// The system temporary directory as it was at start-up.
    pub fn temp_dir(&self) -> &PathBuf {
        &self.temp_dir
    }

    /// The first executable file called `program` in a directory of `PATH`. Only absolute
    /// directories count: an empty or relative entry would make the working directory, which
    /// holds the repository being built, a place to pick a program from.
    pub fn find_program(&self, program: &str) -> Option<PathBuf> {
        let path = self.var("PATH")?;
        std::env::split_paths(path)
            .filter(|dir| dir.is_absolute())
            .flat_map(|dir| {
                let plain = dir.join(program);
                let exe = dir.join(format!("{program}{}", std::env::consts::EXE_SUFFIX));
                [plain, exe]
            })
            .find(|candidate| is_executable(candidate))
    }

    /// Works out whether an ID token can be had here, and from where.
    ///
    /// The platforms are tried in a fixed order, and the first one the environment names
    /// decides: GitHub Actions' ID-token request variables, then GitLab CI (`GITLAB_CI=true`),
    /// then Buildkite (`BUILDKITE=true`), then a GitHub Actions job without the permission to
    /// request an ID token (`GITHUB_ACTIONS=true`).
    pub fn detect(&self, options: &Options) -> Detection {
        if let (Some(request_url), Some(request_token)) = (
            self.var("ACTIONS_ID_TOKEN_REQUEST_URL"),
            self.var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        ) {
            return Detection::Available(IdTokenSource::GitHubActions {
                request_url: request_url.to_owned(),
                request_token: Secret::from(request_token.to_owned()),
            });
        }
        if self.var("GITLAB_CI") == Some("true") {
            let variable = options.gitlab_token_env.clone();
            return match self.var(&variable) {
                Some(jwt) => Detection::Available(IdTokenSource::GitLabCi {
                    variable,
                    jwt: Secret::from(jwt.to_owned()),
                }),
                None => Detection::Unavailable(format!(
                    "this is GitLab CI, but `{variable}` holds no ID token; declare it in the job \
                     with `id_tokens: {{ {variable}: {{ aud: <registry host> }} }}` (or point \
                     `--gitlab-token-env` at the variable you use)"
                )),
            };
        }
        if self.var("BUILDKITE") == Some("true") {
            return match self.find_program(BUILDKITE_AGENT) {
                Some(agent) => Detection::Available(IdTokenSource::Buildkite {
                    agent,
                    env: Box::new(self.clone()),
                }),
                None => Detection::Unavailable(format!(
                    "this is Buildkite, but `{BUILDKITE_AGENT}` is not on PATH; the step must \
                     run on a Buildkite agent, which puts `{BUILDKITE_AGENT}` on the job's PATH \
                     (a step that runs in a container needs the agent binary and its \
                     BUILDKITE_AGENT_* variables inside it, for example the Docker plugin's \
                     `mount-buildkite-agent: true`)"
                )),
            };
        }
        if self.var("GITHUB_ACTIONS") == Some("true") {
            return Detection::Unavailable(
                "this is GitHub Actions, but the job may not request an ID token \
                 (ACTIONS_ID_TOKEN_REQUEST_URL is not set); give the job \
                 `permissions: id-token: write`"
                    .to_owned(),
            );
        }
        Detection::NotInCi
    }
}

/// The outcome of [`Environment::detect`].
#[derive(Debug)]
pub enum Detection {
    /// An ID token can be obtained.
    Available(IdTokenSource),
    /// This is a CI job, but no ID token can be had; the text says how to fix that.
    Unavailable(String),
    /// Neither GitHub Actions, GitLab CI nor Buildkite.
    NotInCi,
}

/// Where the ID token comes from.
#[derive(Debug)]
pub enum IdTokenSource {
    /// GitHub Actions mints a fresh token, for the audience we ask for, on every request.
    GitHubActions {
        request_url: String,
        request_token: Secret<String>,
    },
    /// GitLab CI puts one token per job, with the audience fixed in the pipeline, in a variable.
    GitLabCi {
        variable: String,
        jwt: Secret<String>,
    },
    /// A Buildkite agent mints a fresh token, for the audience we ask for, every time
    /// `buildkite-agent oidc request-token` runs. The environment is the one the agent
    /// subcommand needs (`BUILDKITE_AGENT_ACCESS_TOKEN`, `BUILDKITE_AGENT_ENDPOINT`,
    /// `BUILDKITE_JOB_ID`); its `Debug` names the variables, never their values.
    Buildkite {
        agent: PathBuf,
        env: Box<Environment>,
    },
}

impl IdTokenSource {
    /// Which ID token this is, for messages.
    pub fn describe(&self, audience: &str) -> String {
        match self {
            Self::GitHubActions { .. } => {
                format!("the GitHub Actions ID token (audience `{audience}`)")
            }
            Self::GitLabCi { variable, .. } => format!("the GitLab CI ID token in `{variable}`"),
            Self::Buildkite { .. } => format!(
                "the Buildkite ID token from `{BUILDKITE_AGENT} oidc request-token` (audience \
                 `{audience}`)"
            ),
        }
    }

    /// The ID token for `audience`. GitLab's token was issued before the job started, so there
    /// the audience is whatever `id_tokens:` asked for.
    pub fn id_token(
        &self,
        http: &reqwest::blocking::Client,
        audience: &str,
    ) -> anyhow::Result<Secret<String>> {
        match self {
            Self::GitHubActions {
                request_url,
                request_token,
            } => github_id_token(http, request_url, request_token.as_deref(), audience),
            Self::GitLabCi { jwt, .. } => Ok(jwt.clone()),
            Self::Buildkite { agent, env } => buildkite_id_token(agent, env, audience),
        }
    }
}

/// The URL GitHub's ID-token endpoint is asked with: the runner's URL (which already carries a
/// query string) plus `audience`.
pub fn github_id_token_url(request_url: &str, audience: &str) -> anyhow::Result<Url> {
    let mut url =
        Url::parse(request_url).context("ACTIONS_ID_TOKEN_REQUEST_URL is not a valid URL")?;
    url.query_pairs_mut().append_pair("audience", audience);
    Ok(url)
}

/// Requests an ID token from the GitHub Actions runtime
/// (`GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` → `{"value": "<jwt>"}`).
fn github_id_token(
    http: &reqwest::blocking::Client,
    request_url: &str,
    request_token: Secret<&str>,
    audience: &str,
) -> anyhow::Result<Secret<String>> {
    #[derive(Deserialize)]
    struct IdTokenResponse {
        value: Secret<String>,
    }

    let url = github_id_token_url(request_url, audience)?;
    let response = http
        .get(url)
        .bearer_auth(request_token.expose())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .context("could not request an ID token from GitHub Actions")?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().unwrap_or_default();
        bail!(
            "GitHub Actions did not issue an ID token (HTTP {status}): {}",
            error_detail(&body)
        );
    }
    let body: IdTokenResponse = response
        .json()
        .context("GitHub Actions answered the ID-token request with an unexpected body")?;
    if body.value.as_deref().expose().is_empty() {
        bail!("GitHub Actions answered the ID-token request with an empty token");
    }
    Ok(body.value)
}

/// The Buildkite agent's command-line program.
pub const BUILDKITE_AGENT: &str = "buildkite-agent";

/// How long `buildkite-agent oidc request-token` may run before it is stopped. A healthy agent
/// answers in well under a second; the limit makes a job whose agent cannot reach Buildkite
/// fail with a message instead of hanging.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most the agent may print on stdout: an ID token is a JWT of one or two KiB.
const AGENT_STDOUT_LIMIT: usize = 64 * 1024;

/// How much of the agent's stderr a message quotes.
const AGENT_STDERR_LIMIT: usize = 2 * 1024;

/// The optional claims asked for. `organization_id` and `pipeline_id` are Buildkite's UUIDs,
/// which unlike the slugs never change hands: the registry pins them on first use.
pub const BUILDKITE_CLAIMS: [&str; 2] = ["organization_id", "pipeline_id"];

/// The arguments of `buildkite-agent`. From Buildkite's reference for `buildkite-agent oidc`
/// (<https://buildkite.com/docs/agent/v3/cli-oidc>): `request-token` "requests and prints an
/// OIDC token from Buildkite"; `--audience value` is "the audience that will consume the OIDC
/// token"; `--claim value` adds "claims to add to the OIDC token" and may be repeated. The
/// agent itself reads `BUILDKITE_AGENT_ACCESS_TOKEN`, `BUILDKITE_AGENT_ENDPOINT` (default
/// `https://agent.buildkite.com/v3`) and `BUILDKITE_JOB_ID` from the job's environment.
pub fn buildkite_agent_args(audience: &str) -> Vec<String> {
    let mut args = vec![
        "oidc".to_owned(),
        "request-token".to_owned(),
        "--audience".to_owned(),
        audience.to_owned(),
    ];
    for claim in BUILDKITE_CLAIMS {
        args.push("--claim".to_owned());
        args.push(claim.to_owned());
    }
    args
}

/// Runs `buildkite-agent oidc request-token` (no shell, stdin closed, the job's environment)
/// and returns the JWT it prints. Nothing it prints on stdout ever goes into a message.
fn buildkite_id_token(
    agent: &Path,
    env: &Environment,
    audience: &str,
) -> anyhow::Result<Secret<String>> {
    let command_line = format!("`{BUILDKITE_AGENT} oidc request-token`");
    let mut command = Command::new(agent);
    command
        .args(buildkite_agent_args(audience))
        .env_clear()
        .envs(&env.vars);
    let timeout = env.agent_timeout();
    let outcome = run_bounded(&mut command, timeout)
        .with_context(|| format!("could not run {command_line} ({})", agent.display()))?;
    let (status, stdout, stderr) = match outcome {
        Outcome::TimedOut { stderr } => bail!(
            "{command_line} did not finish within {} s and was stopped; check that the agent \
             can reach Buildkite's agent API (BUILDKITE_AGENT_ENDPOINT){}",
            timeout.as_secs_f32(),
            quoted_stderr(stderr.as_ref())
        ),
        Outcome::Exited {
            status,
            stdout,
            stderr,
        } => (status, stdout, stderr),
    };
    if !status.success() {
        bail!(
            "{command_line} failed ({status}){}",
            quoted_stderr(Some(&stderr))
        );
    }
    let token = parse_agent_stdout(stdout).map_err(|problem| {
        anyhow!("{command_line} exited successfully but {problem}; no ID token to exchange")
    })?;
    Ok(token)
}

/// The single JWT the agent printed, or what is wrong with its output (never the output).
fn parse_agent_stdout(stdout: Captured) -> Result<Secret<String>, String> {
    if stdout.truncated {
        return Err(format!(
            "printed more than {} KiB on stdout",
            AGENT_STDOUT_LIMIT / 1024
        ));
    }
    let text = String::from_utf8(stdout.bytes)
        .map_err(|_| "printed something that is not text on stdout".to_owned())?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    match lines.as_slice() {
        [] => Err("printed nothing on stdout".to_owned()),
        [token] if looks_like_a_jwt(token) => Ok(Secret::from((*token).to_owned())),
        [_] => Err(
            "printed something that is not a JWT on stdout (expected three base64url parts \
             separated by dots)"
                .to_owned(),
        ),
        several => Err(format!(
            "printed {} lines on stdout where one ID token was expected",
            several.len()
        )),
    }
}

/// Three non-empty base64url parts separated by dots: the compact form of a signed JWT.
fn looks_like_a_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `: <stderr>` for a message, trimmed and bounded, or nothing when stderr was empty.
fn quoted_stderr(stderr: Option<&Captured>) -> String {
    let Some(stderr) = stderr else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&stderr.bytes);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let ellipsis = if stderr.truncated { " …" } else { "" };
    format!(": {text}{ellipsis}")
}

/// At most a limit of what a child wrote to one pipe. No `Debug`: stdout holds the ID token.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    /// The child wrote more than the limit; the rest was read and dropped.
    truncated: bool,
}

/// How a bounded run ended.
enum Outcome {
    Exited {
        status: ExitStatus,
        stdout: Captured,
        stderr: Captured,
    },
    /// Stopped at the deadline; what it had written to stderr, if that could be had.
    TimedOut { stderr: Option<Captured> },
}

/// Runs `command` with stdin closed and both outputs captured up to their limits, killing it
/// if it has not exited, and closed its outputs, within `timeout`. A program that leaves a
/// child of its own holding the pipes open is treated as not finished.
fn run_bounded(command: &mut Command, timeout: Duration) -> io::Result<Outcome> {
    let deadline = Instant::now() + timeout;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // "Text file busy": the program was written a moment ago and another thread's child, not yet
    // past exec, still holds the descriptor it was written through. That passes within
    // milliseconds (it happens when a wrapper script is installed during the job).
    let mut attempts = 0;
    let mut child = loop {
        match command.spawn() {
            Err(error) if error.kind() == io::ErrorKind::ExecutableFileBusy && attempts < 10 => {
                attempts += 1;
                thread::sleep(Duration::from_millis(20));
            }
            result => break result?,
        }
    };
    let stdout = child
        .stdout
        .take()
        .map(|pipe| capture(pipe, AGENT_STDOUT_LIMIT));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| capture(pipe, AGENT_STDERR_LIMIT));

    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let stderr = stderr.and_then(|rx| rx.recv_timeout(Duration::from_millis(200)).ok());
        return Ok(Outcome::TimedOut { stderr });
    };
    let collect = |rx: Option<mpsc::Receiver<Captured>>| match rx {
        None => Some(Captured::default()),
        Some(rx) => rx
            // A moment's grace even at the deadline: the readers see end of file just after
            // the exit.
            .recv_timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(200)),
            )
            .ok(),
    };
    let stdout = collect(stdout);
    let stderr = collect(stderr);
    match (stdout, stderr) {
        (Some(stdout), Some(stderr)) => Ok(Outcome::Exited {
            status,
            stdout,
            stderr,
        }),
        (_, stderr) => Ok(Outcome::TimedOut { stderr }),
    }
}

/// Reads `pipe` on a thread of its own: up to `limit` bytes are kept, the rest is read and
/// dropped so that the child never blocks on a full pipe. The result arrives at end of file.
fn capture(mut pipe: impl Read + Send + 'static, limit: usize) -> mpsc::Receiver<Captured> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = (&mut pipe).take(limit as u64 + 1).read_to_end(&mut bytes);
        let truncated = bytes.len() > limit;
        bytes.truncate(limit);
        let _ = io::copy(&mut pipe, &mut io::sink());
        // Nobody listens any more once the deadline has passed.
        let _ = sender.send(Captured { bytes, truncated });
    });
    receiver
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// See [`Environment::invocation`].
#[cfg(unix)]
fn cargo_invocation() -> Option<String> {
    let parent = std::os::unix::process::parent_id();
    if parent <= 1 {
        return None;
    }
    // Field 22 of /proc/PID/stat, after the parenthesised command name: the start time.
    let started = std::fs::read_to_string(format!("/proc/{parent}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1.to_owned();
            after_name.split_whitespace().nth(19).map(str::to_owned)
        });
    Some(match started {
        Some(started) => format!("{parent}@{started}"),
        None => parent.to_string(),
    })
}

#[cfg(not(unix))]
fn cargo_invocation() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(vars: &[(&str, &str)], options: &Options) -> Detection {
        Environment::new(vars.iter().copied()).detect(options)
    }

    #[test]
    fn github_actions_with_id_token_permission_is_a_source() {
        let detection = detect(
            &[
                ("GITHUB_ACTIONS", "true"),
                (
                    "ACTIONS_ID_TOKEN_REQUEST_URL",
                    "https://runner/token?api-version=2.0",
                ),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token"),
            ],
            &Options::default(),
        );
        assert!(
            matches!(detection, Detection::Available(IdTokenSource::GitHubActions { ref request_url, .. }) if request_url == "https://runner/token?api-version=2.0"),
            "{detection:?}"
        );
    }

    #[test]
    fn github_actions_without_id_token_permission_says_which_permission_is_missing() {
        let detection = detect(&[("GITHUB_ACTIONS", "true")], &Options::default());
        let Detection::Unavailable(message) = detection else {
            panic!("expected Unavailable, got {detection:?}");
        };
        assert!(message.contains("id-token: write"), "{message}");
    }

    #[test]
    fn gitlab_ci_reads_the_token_from_the_configured_variable() {
        let options = Options {
            gitlab_token_env: "MY_ID_TOKEN".to_owned(),
            ..Options::default()
        };
        let detection = detect(
            &[
                ("GITLAB_CI", "true"),
                ("MY_ID_TOKEN", "a.b.c"),
                ("WHARF_ID_TOKEN", "x.y.z"),
            ],
            &options,
        );
        let Detection::Available(IdTokenSource::GitLabCi { variable, jwt }) = detection else {
            panic!("expected a GitLab source, got {detection:?}");
        };
        assert_eq!(variable, "MY_ID_TOKEN");
        assert_eq!(jwt.expose(), "a.b.c");
    }

    #[test]
    fn gitlab_ci_without_the_variable_explains_id_tokens() {
        let detection = detect(&[("GITLAB_CI", "true")], &Options::default());
        let Detection::Unavailable(message) = detection else {
            panic!("expected Unavailable, got {detection:?}");
        };
        assert!(message.contains("id_tokens:"), "{message}");
        assert!(message.contains("WHARF_ID_TOKEN"), "{message}");
    }

    #[test]
    fn debug_output_names_variables_without_their_values() {
        let env = Environment::new([("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "very-secret")]);
        let debug = format!("{env:?}");
        assert!(debug.contains("ACTIONS_ID_TOKEN_REQUEST_TOKEN"), "{debug}");
        assert!(!debug.contains("very-secret"), "{debug}");
    }

    #[test]
    fn a_developer_machine_is_not_ci() {
        let detection = detect(
            &[("HOME", "/home/me"), ("GITLAB_CI", "")],
            &Options::default(),
        );
        assert!(matches!(detection, Detection::NotInCi), "{detection:?}");
    }

    #[test]
    fn the_audience_is_appended_to_the_existing_query_string() -> anyhow::Result<()> {
        let url = github_id_token_url(
            "https://pipelines.actions.githubusercontent.com/abc/idtoken/1?api-version=2.0",
            "wharf.example.com:8443",
        )?;
        assert_eq!(
            url.as_str(),
            "https://pipelines.actions.githubusercontent.com/abc/idtoken/1?api-version=2.0&audience=wharf.example.com%3A8443"
        );
        Ok(())
    }

    #[test]
    fn the_audience_becomes_the_query_when_there_was_none() -> anyhow::Result<()> {
        let url = github_id_token_url("http://127.0.0.1:9/token", "wharf")?;
        assert_eq!(url.as_str(), "http://127.0.0.1:9/token?audience=wharf");
        Ok(())
    }

    // ---- Buildkite ----

    /// Writes an executable `#!/bin/sh` script called `name` into `dir`.
    #[cfg(unix)]
    fn script(dir: &Path, name: &str, body: &str) -> anyhow::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }

    fn buildkite_vars(path: &str) -> Vec<(&str, &str)> {
        vec![
            ("BUILDKITE", "true"),
            ("BUILDKITE_AGENT_ACCESS_TOKEN", "agent-secret-value"),
            ("BUILDKITE_JOB_ID", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            ("PATH", path),
        ]
    }

    #[cfg(unix)]
    #[test]
    fn buildkite_with_the_agent_on_path_is_a_source() -> anyhow::Result<()> {
        let bin = tempfile::tempdir()?;
        let agent = script(bin.path(), "buildkite-agent", "exit 0")?;
        let path = format!("/nonexistent:{}", bin.path().display());

        let detection = detect(&buildkite_vars(&path), &Options::default());

        let Detection::Available(IdTokenSource::Buildkite { agent: found, .. }) = &detection else {
            panic!("expected a Buildkite source, got {detection:?}");
        };
        assert_eq!(found, &agent);
        let debug = format!("{detection:?}");
        assert!(debug.contains("BUILDKITE_AGENT_ACCESS_TOKEN"), "{debug}");
        assert!(!debug.contains("agent-secret-value"), "{debug}");
        Ok(())
    }

    #[test]
    fn buildkite_without_the_agent_on_path_says_where_it_must_run() {
        let detection = detect(&buildkite_vars("/nonexistent"), &Options::default());
        let Detection::Unavailable(message) = detection else {
            panic!("expected Unavailable, got {detection:?}");
        };
        assert!(message.starts_with("this is Buildkite, but `buildkite-agent` is not on PATH"));
        assert!(message.contains("run on a Buildkite agent"), "{message}");
        assert!(message.contains("mount-buildkite-agent"), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn relative_and_non_executable_path_entries_do_not_count() -> anyhow::Result<()> {
        let executable = tempfile::tempdir()?;
        script(executable.path(), "buildkite-agent", "exit 0")?;
        let not_executable = tempfile::tempdir()?;
        std::fs::write(not_executable.path().join("buildkite-agent"), "#!/bin/sh\n")?;
        // The same directory as `executable`, written relative to the working directory.
        let cwd = std::env::current_dir()?;
        let up = "../".repeat(cwd.components().count().saturating_sub(1));
        let relative = format!(
            "{up}{}",
            executable
                .path()
                .display()
                .to_string()
                .trim_start_matches('/')
        );
        assert!(
            Path::new(&relative).join("buildkite-agent").is_file(),
            "{relative}"
        );

        let env = Environment::new([(
            "PATH",
            format!("{relative}::{}", not_executable.path().display()),
        )]);

        assert_eq!(env.find_program("buildkite-agent"), None);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn the_first_platform_the_environment_names_decides() -> anyhow::Result<()> {
        let bin = tempfile::tempdir()?;
        script(bin.path(), "buildkite-agent", "exit 0")?;
        let path = bin.path().display().to_string();
        let on_buildkite_and = |extra: &[(&'static str, &'static str)]| {
            let mut vars = buildkite_vars(&path);
            vars.extend_from_slice(extra);
            detect(&vars, &Options::default())
        };

        let github = on_buildkite_and(&[
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://runner/token"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token"),
        ]);
        let gitlab = on_buildkite_and(&[("GITLAB_CI", "true"), ("WHARF_ID_TOKEN", "a.b.c")]);
        let github_without_permission = on_buildkite_and(&[("GITHUB_ACTIONS", "true")]);

        assert!(
            matches!(
                github,
                Detection::Available(IdTokenSource::GitHubActions { .. })
            ),
            "{github:?}"
        );
        assert!(
            matches!(gitlab, Detection::Available(IdTokenSource::GitLabCi { .. })),
            "{gitlab:?}"
        );
        assert!(
            matches!(
                github_without_permission,
                Detection::Available(IdTokenSource::Buildkite { .. })
            ),
            "{github_without_permission:?}"
        );
        Ok(())
    }

    #[test]
    fn buildkite_is_only_detected_by_its_marker() {
        let detection = detect(
            &[
                ("BUILDKITE", "1"),
                ("BUILDKITE_JOB_ID", "x"),
                ("PATH", "/bin"),
            ],
            &Options::default(),
        );
        assert!(matches!(detection, Detection::NotInCi), "{detection:?}");
    }

    #[test]
    fn the_agent_is_asked_for_the_audience_and_the_pinnable_id_claims() {
        assert_eq!(
            buildkite_agent_args("wharf.example.com:8443"),
            [
                "oidc",
                "request-token",
                "--audience",
                "wharf.example.com:8443",
                "--claim",
                "organization_id",
                "--claim",
                "pipeline_id",
            ]
        );
    }

    #[test]
    fn agent_output_is_one_jwt_or_a_problem_that_does_not_quote_it() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let cases: [(&[u8], Result<&str, &str>); 9] = [
            (
                b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\n",
                Ok(jwt),
            ),
            (
                b"  eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\r\n\n",
                Ok(jwt),
            ),
            (b"", Err("printed nothing on stdout")),
            (b" \n\n\t\n", Err("printed nothing on stdout")),
            (
                b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\nsecond.line.here\n",
                Err("printed 2 lines on stdout where one ID token was expected"),
            ),
            (
                b"Token: abc.def.ghi\n",
                Err("printed something that is not a JWT"),
            ),
            (b"abc.def\n", Err("printed something that is not a JWT")),
            (b"abc..ghi\n", Err("printed something that is not a JWT")),
            (b"\xff\xfe.a.b\n", Err("printed something that is not text")),
        ];
        for (output, expected) in cases {
            let captured = Captured {
                bytes: output.to_vec(),
                truncated: false,
            };
            match (parse_agent_stdout(captured), expected) {
                (Ok(token), Ok(want)) => assert_eq!(token.expose(), want),
                (Err(problem), Err(want)) => {
                    assert!(problem.starts_with(want), "{problem} for {output:?}");
                    assert!(!problem.contains("abc"), "the output was quoted: {problem}");
                }
                (got, want) => panic!("{output:?}: got {got:?}, want {want:?}"),
            }
        }
        let too_much = Captured {
            bytes: vec![b'a'; AGENT_STDOUT_LIMIT],
            truncated: true,
        };
        assert_eq!(
            parse_agent_stdout(too_much).err().as_deref(),
            Some("printed more than 64 KiB on stdout")
        );
    }

    #[cfg(unix)]
    fn agent_source(agent: PathBuf, timeout: Duration) -> IdTokenSource {
        IdTokenSource::Buildkite {
            agent,
            env: Box::new(
                Environment::new(buildkite_vars("/usr/bin:/bin")).with_agent_timeout(timeout),
            ),
        }
    }

    #[cfg(unix)]
    fn id_token_error(source: &IdTokenSource) -> anyhow::Result<String> {
        let http = reqwest::blocking::Client::new();
        match source.id_token(&http, "wharf.example.com") {
            Ok(_) => anyhow::bail!("the agent stand-in gave a token"),
            Err(error) => Ok(format!("{error:#}")),
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_agent_gets_its_arguments_and_the_job_environment_but_not_stdin() -> anyhow::Result<()> {
        let bin = tempfile::tempdir()?;
        let agent = script(
            bin.path(),
            "buildkite-agent",
            r#"[ "$*" = "oidc request-token --audience wharf.example.com --claim organization_id --claim pipeline_id" ] || { echo "args: $*" >&2; exit 2; }
[ "$BUILDKITE_AGENT_ACCESS_TOKEN" = "agent-secret-value" ] || { echo "no access token" >&2; exit 3; }
if [ -e /proc/$$/fd/0 ] && [ "$(readlink /proc/$$/fd/0)" != /dev/null ]; then echo "stdin: $(readlink /proc/$$/fd/0)" >&2; exit 4; fi
echo eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ3aGFyZiJ9.c2ln"#,
        )?;
        let http = reqwest::blocking::Client::new();

        let token = agent_source(agent, AGENT_TIMEOUT).id_token(&http, "wharf.example.com")?;

        assert_eq!(
            token.expose(),
            "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ3aGFyZiJ9.c2ln"
        );
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_agent_is_reported_with_its_exit_status_and_stderr() -> anyhow::Result<()> {
        let bin = tempfile::tempdir()?;
        let agent = script(
            bin.path(),
            "buildkite-agent",
            "echo 'fatal: failed to get OIDC token: 403 Forbidden' >&2\nexit 1",
        )?;

        let message = id_token_error(&agent_source(agent, AGENT_TIMEOUT))?;

        assert_eq!(
            message,
            "`buildkite-agent oidc request-token` failed (exit status: 1): fatal: failed to get \
             OIDC token: 403 Forbidden"
        );
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_flood_of_stderr_is_quoted_only_up_to_the_limit() -> anyhow::Result<()> {
        let bin = tempfile::tempdir()?;
        let agent = script(
            bin.path(),
            "buildkite-agent",
            "i=0; while [ $i -lt 2000 ]; do echo 'error error error error error' >&2; i=$((i+1)); done; exit 1",
        )?;

        let message = id_token_error(&agent_source(agent, AGENT_TIMEOUT))?;

        assert!(
            message.len() < AGENT_STDERR_LIMIT + 200,
            "{} bytes",
            message.len()
        );
        assert!(message.ends_with(" …"), "{message}");
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_flood_on_stdout_is_refused_without_being_read_into_memory() -> anyhow::Result<()> {
        let bin = tempfile::tempdir()?;
        let agent = script(
            bin.path(),
            "buildkite-agent",
            "i=0; while [ $i -lt 3000 ]; do echo 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'; i=$((i+1)); done",
        )?;

        let message = id_token_error(&agent_source(agent, AGENT_TIMEOUT))?;

        assert_eq!(
            message,
            "`buildkite-agent oidc request-token` exited successfully but printed more than 64 \
             KiB on stdout; no ID token to exchange"
        );
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn a_hanging_agent_is_stopped_at_the_timeout_even_if_its_child_holds_the_pipes()
    -> anyhow::Result<()> {
        let bin = tempfile::tempdir()?;
        // `sleep` runs as a child of the shell and keeps stdout and stderr open after the shell
        // is killed.
        let agent = script(
            bin.path(),
            "buildkite-agent",
            "echo 'requesting token' >&2\nsleep 5\necho too.late.token",
        )?;
        let started = Instant::now();

        let message = id_token_error(&agent_source(agent, Duration::from_millis(700)))?;

        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert!(
            message.starts_with(
                "`buildkite-agent oidc request-token` did not finish within 0.7 s and was \
                 stopped; check that the agent can reach Buildkite's agent API"
            ),
            "{message}"
        );
        Ok(())
    }
}
