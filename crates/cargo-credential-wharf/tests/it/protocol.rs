//! The real binary speaking cargo's protocol over stdin/stdout, with the messages from cargo's
//! documentation (credential-provider-protocol.md), each on one line.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::support::{Exchange, fake_github, fake_registry, github_env, single_use_token};

/// Runs the provider as cargo does (`--cargo-plugin`, nothing inherited from this process's
/// environment), sends `request` after the hello and returns (hello, response, stderr).
pub(crate) fn converse(
    env: &[(String, String)],
    request: &str,
) -> anyhow::Result<(String, String, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cargo-credential-wharf"))
        .arg("--cargo-plugin")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut stdin = child.stdin.take().context("no stdin")?;

    let mut hello = String::new();
    stdout.read_line(&mut hello)?;
    writeln!(stdin, "{request}")?;
    let mut response = String::new();
    stdout.read_line(&mut response)?;
    drop(stdin);

    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "provider exited with {}",
        output.status
    );
    Ok((
        hello.trim_end().to_owned(),
        response.trim_end().to_owned(),
        String::from_utf8(output.stderr)?,
    ))
}

const READ_REQUEST: &str = r#"{"v":1,"kind":"get","operation":"read","registry":{"index-url":"sparse+https://registry-url/index/","name":"my-registry"},"args":[]}"#;

#[test]
fn the_provider_greets_cargo_with_protocol_version_one() -> anyhow::Result<()> {
    let (hello, _, _) = converse(&[], READ_REQUEST)?;
    assert_eq!(hello, r#"{"v":[1]}"#);
    Ok(())
}

#[test]
fn the_documented_read_request_outside_ci_is_answered_not_found() -> anyhow::Result<()> {
    let (_, response, stderr) = converse(&[], READ_REQUEST)?;
    assert_eq!(response, r#"{"Err":{"kind":"not-found"}}"#);
    assert!(
        stderr.contains("not running in GitHub Actions, GitLab CI or Buildkite"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn the_documented_publish_request_in_github_actions_gets_a_token_cargo_never_caches()
-> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let request = format!(
        r#"{{"v":1,"kind":"get","operation":"publish","name":"sample","vers":"0.1.0","cksum":"...","registry":{{"index-url":"sparse+{}/index/","name":"my-registry"}},"args":[]}}"#,
        registry.url()
    );

    let (hello, response, stderr) = converse(&github_env(&github, runner_temp.path()), &request)?;

    assert_eq!(hello, r#"{"v":[1]}"#);
    assert_eq!(response, single_use_token("wharf_tp_1"));
    assert!(
        !stderr.contains("wharf_tp_1"),
        "the token was printed: {stderr}"
    );
    assert!(
        !stderr.contains("gh."),
        "the ID token was printed: {stderr}"
    );
    assert!(stderr.contains("sample@0.1.0"), "{stderr}");
    Ok(())
}

#[test]
fn an_exchange_refusal_reaches_cargo_with_the_registry_explanation() -> anyhow::Result<()> {
    let detail = "no Trusted Publishing config for crate `sample` matches repository `o/r`";
    let registry = fake_registry(Exchange::Refuse(400, detail), 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let request = format!(
        r#"{{"v":1,"kind":"get","operation":"publish","name":"sample","vers":"0.1.0","cksum":"...","registry":{{"index-url":"sparse+{}/index/"}}}}"#,
        registry.url()
    );

    let (_, response, _) = converse(&github_env(&github, runner_temp.path()), &request)?;

    assert_eq!(
        response,
        format!(
            r#"{{"Err":{{"kind":"other","message":"the registry refused the Trusted Publishing token exchange: {}","caused-by":[]}}}}"#,
            detail
        )
    );
    Ok(())
}

#[test]
fn the_logout_request_with_nothing_minted_is_answered_not_found() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let env = [("RUNNER_TEMP".to_owned(), temp.path().display().to_string())];
    let (_, response, _) = converse(
        &env,
        r#"{"v":1,"kind":"logout","registry":{"index-url":"sparse+https://registry-url/index/","name":"my-registry"},"args":[]}"#,
    )?;
    assert_eq!(response, r#"{"Err":{"kind":"not-found"}}"#);
    Ok(())
}

#[test]
fn the_documented_login_request_is_not_supported() -> anyhow::Result<()> {
    let (_, response, stderr) = converse(
        &[],
        r#"{"v":1,"kind":"login","registry":{"index-url":"sparse+https://registry-url/index/","name":"my-registry"},"token":"<the token value>","login-url":"http://registry-url/login","args":[]}"#,
    )?;
    assert_eq!(response, r#"{"Err":{"kind":"operation-not-supported"}}"#);
    assert!(stderr.contains("needs no login"), "{stderr}");
    Ok(())
}
