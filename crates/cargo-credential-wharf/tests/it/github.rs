//! Publishing from GitHub Actions.

use crate::support::{
    Exchange, FakeServer, GITHUB_REQUEST_TOKEN, fake_github, fake_registry, github_env, index_url,
    publish_request, respond, single_use_token,
};

fn host_of(server: &FakeServer) -> String {
    server.url().trim_start_matches("http://").to_owned()
}

#[test]
fn the_id_token_is_requested_for_the_registry_host_with_the_runner_bearer_token()
-> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;

    let response = respond(
        github_env(&github, runner_temp.path()),
        &publish_request(&index_url(&registry), &[]),
    )?;

    assert_eq!(response, single_use_token("wharf_tp_1"));
    let id_requests = github.requests();
    assert_eq!(id_requests.len(), 1);
    let audience = host_of(&registry).replace(':', "%3A");
    assert_eq!(id_requests[0].method, "GET");
    assert_eq!(
        id_requests[0].target,
        format!("/idtoken?api-version=2.0&audience={audience}")
    );
    assert_eq!(
        id_requests[0].header("authorization"),
        Some(format!("Bearer {GITHUB_REQUEST_TOKEN}").as_str())
    );
    Ok(())
}

#[test]
fn the_api_is_found_in_config_json_and_the_id_token_is_exchanged_there() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;

    respond(
        github_env(&github, runner_temp.path()),
        &publish_request(&index_url(&registry), &[]),
    )?;

    let requests = registry.requests();
    let seen: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/index/config.json"),
            ("POST", "/api/v1/trusted_publishing/tokens")
        ]
    );
    let body: serde_json::Value = serde_json::from_str(&requests[1].body)?;
    assert_eq!(
        body,
        serde_json::json!({ "jwt": format!("gh.{}.1", host_of(&registry)) })
    );
    Ok(())
}

#[test]
fn the_audience_argument_wins_over_wharf_audience() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let mut env = github_env(&github, runner_temp.path());
    env.push(("WHARF_AUDIENCE".into(), "from-env".into()));

    respond(
        env,
        &publish_request(&index_url(&registry), &["--audience", "from-arg"]),
    )?;

    assert_eq!(
        github.requests()[0].target,
        "/idtoken?api-version=2.0&audience=from-arg"
    );
    Ok(())
}

#[test]
fn wharf_audience_replaces_the_registry_host() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let mut env = github_env(&github, runner_temp.path());
    env.push(("WHARF_AUDIENCE".into(), "wharf.example.com".into()));

    respond(env, &publish_request(&index_url(&registry), &[]))?;

    assert_eq!(
        github.requests()[0].target,
        "/idtoken?api-version=2.0&audience=wharf.example.com"
    );
    Ok(())
}

#[test]
fn github_refusing_the_id_token_is_reported_with_its_status() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let mut env = github_env(&github, runner_temp.path());
    env.retain(|(name, _)| name != "ACTIONS_ID_TOKEN_REQUEST_TOKEN");
    env.push(("ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(), "wrong".into()));

    let response = respond(env, &publish_request(&index_url(&registry), &[]))?;

    let value: serde_json::Value = serde_json::from_str(&response)?;
    let message = value["Err"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("GitHub Actions did not issue an ID token (HTTP 401 Unauthorized)"),
        "{response}"
    );
    assert!(
        !registry.requests().iter().any(|r| r.method == "POST"),
        "nothing may be exchanged without an ID token"
    );
    Ok(())
}

#[test]
fn a_registry_failure_during_the_exchange_is_not_called_a_refusal() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Refuse(503, "the database is unavailable"), 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;

    let response = respond(
        github_env(&github, runner_temp.path()),
        &publish_request(&index_url(&registry), &[]),
    )?;

    let value: serde_json::Value = serde_json::from_str(&response)?;
    assert_eq!(
        value["Err"]["message"],
        "the registry could not complete the Trusted Publishing token exchange \
         (HTTP 503 Service Unavailable): the database is unavailable"
    );
    Ok(())
}

#[test]
fn an_unreachable_registry_is_an_error_with_its_cause() -> anyhow::Result<()> {
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;

    let response = respond(
        github_env(&github, runner_temp.path()),
        &publish_request(&format!("sparse+http://{closed}/index/"), &[]),
    )?;

    let value: serde_json::Value = serde_json::from_str(&response)?;
    assert_eq!(value["Err"]["kind"], "other");
    let message = value["Err"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("could not fetch the registry configuration"),
        "{response}"
    );
    Ok(())
}
