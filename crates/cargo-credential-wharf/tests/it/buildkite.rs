//! Publishing from a Buildkite agent, where the ID token comes from
//! `buildkite-agent oidc request-token`. A stand-in `buildkite-agent` first on PATH plays the
//! agent.
#![cfg(unix)]

use std::time::{Duration, Instant};

use cargo_credential_wharf::Environment;
use cargo_credential_wharf::state::TokenStore;

use crate::protocol::converse;
use crate::support::{
    BUILDKITE_AGENT_ACCESS_TOKEN, BUILDKITE_JOB_ID, Exchange, FakeServer, buildkite_agent_stand_in,
    buildkite_env, buildkite_jwt, fake_buildkite_agent_api, fake_registry, get_request, index_url,
    logout_request, publish_request, respond_in, single_use_token, write_agent,
};

/// A job on an agent: the fake agent API, a directory for `buildkite-agent` and the system
/// temporary directory the provider keeps its state in.
struct Job {
    api: FakeServer,
    bin: tempfile::TempDir,
    temp: tempfile::TempDir,
}

impl Job {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            api: fake_buildkite_agent_api()?,
            bin: tempfile::tempdir()?,
            temp: tempfile::tempdir()?,
        })
    }

    /// With the stand-in that asks the fake agent API over HTTP.
    fn with_stand_in() -> anyhow::Result<Self> {
        let job = Self::new()?;
        buildkite_agent_stand_in(job.bin.path())?;
        Ok(job)
    }

    /// With a `#!/bin/sh` `buildkite-agent` running `body`.
    fn with_shell_agent(body: &str) -> anyhow::Result<Self> {
        let job = Self::new()?;
        write_agent(job.bin.path(), &format!("#!/bin/sh\n{body}\n"))?;
        Ok(job)
    }

    fn vars(&self) -> Vec<(String, String)> {
        buildkite_env(&self.api, self.bin.path())
    }

    fn env(&self) -> Environment {
        Environment::new(self.vars()).with_temp_dir(self.temp.path())
    }

    fn remembered(&self) -> anyhow::Result<Vec<String>> {
        Ok(TokenStore::for_environment(&self.env())
            .load()?
            .into_iter()
            .map(|minted| minted.token.expose())
            .collect())
    }
}

fn host_of(server: &FakeServer) -> String {
    server.url().trim_start_matches("http://").to_owned()
}

fn error_message(response: &str) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_str(response)?;
    anyhow::ensure!(value["Err"]["kind"] == "other", "{response}");
    Ok(value["Err"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn exchanges(registry: &FakeServer) -> usize {
    registry
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

#[test]
fn a_publish_exchanges_the_agents_id_token_and_the_next_one_revokes_the_token() -> anyhow::Result<()>
{
    let registry = fake_registry(Exchange::Issue, 204)?;
    let job = Job::with_stand_in()?;
    let audience = host_of(&registry);

    let first = respond_in(job.env(), &publish_request(&index_url(&registry), &[]))?;

    assert_eq!(first, single_use_token("wharf_tp_1"));
    let asked = job.api.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method, "POST");
    assert_eq!(
        asked[0].target,
        format!("/v3/jobs/{BUILDKITE_JOB_ID}/oidc/tokens")
    );
    assert_eq!(
        asked[0].header("authorization"),
        Some(format!("Token {BUILDKITE_AGENT_ACCESS_TOKEN}").as_str())
    );
    let body: serde_json::Value = serde_json::from_str(&asked[0].body)?;
    assert_eq!(
        body,
        serde_json::json!({ "audience": audience, "claims": ["organization_id", "pipeline_id"] })
    );
    let exchange = registry
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .ok_or_else(|| anyhow::anyhow!("no exchange"))?;
    assert_eq!(exchange.path(), "/api/v1/trusted_publishing/tokens");
    let sent: serde_json::Value = serde_json::from_str(&exchange.body)?;
    assert_eq!(
        sent,
        serde_json::json!({ "jwt": buildkite_jwt(&audience, 1) })
    );
    assert_eq!(job.remembered()?, ["wharf_tp_1"]);

    // The next crate of the publish: a fresh ID token, and the previous token revoked first.
    let second = respond_in(job.env(), &publish_request(&index_url(&registry), &[]))?;

    assert_eq!(second, single_use_token("wharf_tp_2"));
    assert_eq!(job.api.requests().len(), 2);
    let requests = registry.requests();
    let delete = requests
        .iter()
        .position(|r| r.method == "DELETE")
        .ok_or_else(|| anyhow::anyhow!("nothing was revoked"))?;
    let second_exchange = requests
        .iter()
        .rposition(|r| r.method == "POST")
        .ok_or_else(|| anyhow::anyhow!("no second exchange"))?;
    assert!(delete < second_exchange, "revoke before minting the next");
    assert_eq!(
        requests[delete].header("authorization"),
        Some("Bearer wharf_tp_1")
    );
    let sent: serde_json::Value = serde_json::from_str(&requests[second_exchange].body)?;
    assert_eq!(sent["jwt"], buildkite_jwt(&audience, 2));
    assert_eq!(job.remembered()?, ["wharf_tp_2"]);

    // `cargo logout` at the end of the step revokes the last one.
    let logout = respond_in(job.env(), &logout_request(&index_url(&registry)))?;

    assert_eq!(logout, r#"{"Ok":{"kind":"logout"}}"#);
    assert!(job.remembered()?.is_empty());
    Ok(())
}

#[test]
fn the_binary_on_an_agent_says_where_the_token_came_from_and_prints_no_secret() -> anyhow::Result<()>
{
    let registry = fake_registry(Exchange::Issue, 204)?;
    let job = Job::with_stand_in()?;
    let mut vars = job.vars();
    vars.push(("TMPDIR".into(), job.temp.path().display().to_string()));
    let audience = host_of(&registry);

    let (_, response, stderr) = converse(&vars, &publish_request(&index_url(&registry), &[]))?;

    assert_eq!(response, single_use_token("wharf_tp_1"));
    assert!(
        stderr.contains(&format!(
            "exchanged the Buildkite ID token from `buildkite-agent oidc request-token` \
             (audience `{audience}`) for a Trusted Publishing token to publish sample@0.1.0"
        )),
        "{stderr}"
    );
    for secret in [
        buildkite_jwt(&audience, 1).as_str(),
        BUILDKITE_AGENT_ACCESS_TOKEN,
        "wharf_tp_1",
    ] {
        assert!(!stderr.contains(secret), "{secret} was printed: {stderr}");
    }
    Ok(())
}

#[test]
fn the_state_file_is_named_after_the_buildkite_job() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let job = Job::with_stand_in()?;

    respond_in(job.env(), &publish_request(&index_url(&registry), &[]))?;

    let expected = format!(
        "cargo-credential-wharf-{}.json",
        BUILDKITE_JOB_ID.replace('-', "_")
    );
    assert!(job.temp.path().join(expected).is_file());
    Ok(())
}

#[test]
fn the_audience_argument_and_wharf_audience_reach_the_agent() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let job = Job::with_stand_in()?;

    respond_in(
        job.env(),
        &publish_request(&index_url(&registry), &["--audience", "from-arg"]),
    )?;
    let mut vars = job.vars();
    vars.push(("WHARF_AUDIENCE".into(), "wharf.example.com".into()));
    respond_in(
        Environment::new(vars).with_temp_dir(job.temp.path()),
        &publish_request(&index_url(&registry), &[]),
    )?;

    let audiences: Vec<serde_json::Value> = job
        .api
        .requests()
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).map(|b| b["audience"].clone()))
        .collect::<Result<_, _>>()?;
    assert_eq!(audiences, ["from-arg", "wharf.example.com"]);
    Ok(())
}

#[test]
fn a_read_on_buildkite_is_the_placeholder_without_asking_the_agent() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let job = Job::with_stand_in()?;

    let response = respond_in(job.env(), &get_request(&index_url(&registry), "read"))?;

    assert_eq!(
        response,
        single_use_token(cargo_credential_wharf::provider::READ_PLACEHOLDER)
    );
    assert!(job.api.requests().is_empty());
    assert!(registry.requests().iter().all(|r| r.method == "GET"));
    Ok(())
}

#[test]
fn without_buildkite_agent_on_path_cargo_is_told_where_the_step_must_run() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let job = Job::new()?; // nothing in `bin`
    let mut vars = job.vars();
    vars.retain(|(name, _)| name != "PATH");
    vars.push(("PATH".into(), job.bin.path().display().to_string()));
    vars.push(("TMPDIR".into(), job.temp.path().display().to_string()));
    let request = publish_request(&index_url(&registry), &[]);

    let (_, response, stderr) = converse(&vars, &request)?;

    assert_eq!(response, r#"{"Err":{"kind":"not-found"}}"#);
    assert!(
        stderr.contains(
            "cargo-credential-wharf: this is Buildkite, but `buildkite-agent` is not on PATH; \
             the step must run on a Buildkite agent"
        ),
        "{stderr}"
    );
    assert!(registry.requests().is_empty());
    assert!(!stderr.contains(BUILDKITE_AGENT_ACCESS_TOKEN), "{stderr}");
    Ok(())
}

#[test]
fn a_failing_agent_is_reported_with_its_message_and_nothing_is_exchanged() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let job = Job::with_shell_agent(
        "echo 'fatal: failed to get OIDC token: POST https://agent.buildkite.com/v3/jobs/x/oidc/tokens: 403 Forbidden' >&2\nexit 1",
    )?;

    let response = respond_in(job.env(), &publish_request(&index_url(&registry), &[]))?;

    assert_eq!(
        error_message(&response)?,
        "`buildkite-agent oidc request-token` failed (exit status: 1): fatal: failed to get \
         OIDC token: POST https://agent.buildkite.com/v3/jobs/x/oidc/tokens: 403 Forbidden"
    );
    assert_eq!(exchanges(&registry), 0);
    Ok(())
}

#[test]
fn the_agent_api_refusing_the_agent_reaches_cargo() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let job = Job::with_stand_in()?;
    let mut vars = job.vars();
    vars.retain(|(name, _)| name != "BUILDKITE_AGENT_ACCESS_TOKEN");
    vars.push(("BUILDKITE_AGENT_ACCESS_TOKEN".into(), "revoked".into()));

    let response = respond_in(
        Environment::new(vars).with_temp_dir(job.temp.path()),
        &publish_request(&index_url(&registry), &[]),
    )?;

    let message = error_message(&response)?;
    assert!(
        message.starts_with(
            "`buildkite-agent oidc request-token` failed (exit status: 1): fatal: failed to get \
             OIDC token: 401"
        ),
        "{message}"
    );
    assert!(!message.contains("revoked"), "{message}");
    assert_eq!(exchanges(&registry), 0);
    Ok(())
}

#[test]
fn a_hanging_agent_is_stopped_at_the_timeout() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let job = Job::with_shell_agent("sleep 5")?;
    let started = Instant::now();

    let response = respond_in(
        job.env().with_agent_timeout(Duration::from_secs(1)),
        &publish_request(&index_url(&registry), &[]),
    )?;

    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        error_message(&response)?,
        "`buildkite-agent oidc request-token` did not finish within 1 s and was stopped; check \
         that the agent can reach Buildkite's agent API (BUILDKITE_AGENT_ENDPOINT)"
    );
    assert_eq!(exchanges(&registry), 0);
    Ok(())
}

#[test]
fn garbage_from_the_agent_is_refused_without_being_sent_or_shown() -> anyhow::Result<()> {
    let cases = [
        ("exit 0", "printed nothing on stdout"),
        ("echo", "printed nothing on stdout"),
        (
            "echo 'eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln'\necho 'eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ5In0.c2ln'",
            "printed 2 lines on stdout where one ID token was expected",
        ),
        (
            "echo 'Requesting token for job'\necho 'eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln'",
            "printed 2 lines on stdout where one ID token was expected",
        ),
        (
            "echo 'secretsauce'",
            "printed something that is not a JWT on stdout (expected three base64url parts \
             separated by dots)",
        ),
    ];
    for (body, problem) in cases {
        let registry = fake_registry(Exchange::Issue, 204)?;
        let job = Job::with_shell_agent(body)?;

        let response = respond_in(job.env(), &publish_request(&index_url(&registry), &[]))?;

        let message = error_message(&response)?;
        assert_eq!(
            message,
            format!(
                "`buildkite-agent oidc request-token` exited successfully but {problem}; no ID \
                 token to exchange"
            ),
            "{body}"
        );
        assert!(!message.contains("eyJ") && !message.contains("secretsauce"));
        assert_eq!(exchanges(&registry), 0, "{body}");
    }
    Ok(())
}
