//! What the provider answers besides a publish in CI.

use cargo_credential_wharf::Environment;

use crate::support::{
    Exchange, fake_github, fake_registry, fake_registry_with, get_request, github_env, index_url,
    publish_request, respond, respond_in, session_token, single_use_token,
};

#[test]
fn a_read_inside_ci_is_a_placeholder_that_cargo_never_caches_or_reuses() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;

    let response = respond(
        github_env(&github, runner_temp.path()),
        &get_request(&index_url(&registry), "read"),
    )?;

    assert_eq!(
        response,
        single_use_token(cargo_credential_wharf::provider::READ_PLACEHOLDER)
    );
    assert!(
        github.requests().is_empty(),
        "a read must not use an ID token"
    );
    assert!(
        registry.requests().iter().all(|r| r.method == "GET"),
        "a read must not mint a token"
    );
    Ok(())
}

#[test]
fn a_publish_outside_ci_falls_through_to_other_providers() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;

    let response = respond(
        vec![("HOME".into(), "/home/me".into())],
        &publish_request(&index_url(&registry), &[]),
    )?;

    assert_eq!(response, r#"{"Err":{"kind":"not-found"}}"#);
    assert!(registry.requests().is_empty());
    Ok(())
}

#[test]
fn github_actions_without_id_token_permission_falls_through() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;

    let response = respond(
        vec![("GITHUB_ACTIONS".into(), "true".into())],
        &publish_request(&index_url(&registry), &[]),
    )?;

    assert_eq!(response, r#"{"Err":{"kind":"not-found"}}"#);
    Ok(())
}

#[test]
fn yank_unyank_and_owners_get_no_token_even_in_ci() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;

    for operation in ["yank", "unyank", "owners"] {
        let response = respond(
            github_env(&github, runner_temp.path()),
            &get_request(&index_url(&registry), operation),
        )?;
        assert_eq!(response, r#"{"Err":{"kind":"not-found"}}"#, "{operation}");
    }
    assert!(github.requests().is_empty());
    assert!(registry.requests().is_empty());
    Ok(())
}

#[test]
fn a_git_index_is_left_to_other_providers() -> anyhow::Result<()> {
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;

    let response = respond(
        github_env(&github, runner_temp.path()),
        &publish_request("https://github.com/rust-lang/crates.io-index", &[]),
    )?;

    assert_eq!(response, r#"{"Err":{"kind":"url-not-supported"}}"#);
    assert!(github.requests().is_empty());
    Ok(())
}

#[test]
fn a_misspelt_provider_argument_is_an_error_not_a_silent_default() -> anyhow::Result<()> {
    let response = respond(
        Vec::new(),
        &publish_request("sparse+http://127.0.0.1:9/index/", &["--audiense", "x"]),
    )?;

    let value: serde_json::Value = serde_json::from_str(&response)?;
    assert_eq!(value["Err"]["kind"], "other");
    assert!(
        value["Err"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--audiense")),
        "{response}"
    );
    Ok(())
}

/// The environment of a GitHub Actions job, inside the cargo command `invocation`.
fn github_job(
    github: &crate::support::FakeServer,
    runner_temp: &std::path::Path,
    invocation: &str,
) -> Environment {
    Environment::new(github_env(github, runner_temp)).with_invocation(Some(invocation.to_owned()))
}

fn exchanges(registry: &crate::support::FakeServer) -> usize {
    registry
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

fn revocations(registry: &crate::support::FakeServer) -> Vec<String> {
    registry
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect()
}

#[test]
fn a_read_of_a_private_registry_exchanges_once_per_cargo_command() -> anyhow::Result<()> {
    let registry = fake_registry_with(Exchange::Issue, 204, true)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let read = get_request(&index_url(&registry), "read");

    // The first read of a command exchanges; cargo keeps the token for the command.
    let first = respond_in(github_job(&github, runner_temp.path(), "100@1"), &read)?;
    assert_eq!(first, session_token("wharf_tp_1"));
    // Asked again by the same command (another cargo process would not ask twice, but a
    // publish after the read does): the same token, no second exchange.
    let again = respond_in(github_job(&github, runner_temp.path(), "100@1"), &read)?;
    assert_eq!(again, session_token("wharf_tp_1"));
    let publish = respond_in(
        github_job(&github, runner_temp.path(), "100@1"),
        &publish_request(&index_url(&registry), &[]),
    )?;
    assert_eq!(publish, single_use_token("wharf_tp_1"));
    assert_eq!(exchanges(&registry), 1);
    assert_eq!(github.requests().len(), 1, "one ID token");
    assert!(revocations(&registry).is_empty(), "still in use");

    // The next command revokes the earlier command's token and exchanges its own.
    let next = respond_in(github_job(&github, runner_temp.path(), "200@5"), &read)?;
    assert_eq!(next, session_token("wharf_tp_2"));
    assert_eq!(revocations(&registry), ["Bearer wharf_tp_1"]);
    assert_eq!(exchanges(&registry), 2);
    Ok(())
}

#[test]
fn a_read_the_registry_refuses_to_exchange_falls_through_to_other_providers() -> anyhow::Result<()>
{
    let registry = fake_registry_with(
        Exchange::Refuse(400, "no trusted publisher config matched"),
        204,
        true,
    )?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let response = respond_in(
        github_job(&github, runner_temp.path(), "100@1"),
        &get_request(&index_url(&registry), "read"),
    )?;
    assert_eq!(response, r#"{"Err":{"kind":"not-found"}}"#);
    Ok(())
}

#[test]
fn a_read_of_a_private_registry_outside_ci_is_left_to_other_providers() -> anyhow::Result<()> {
    let registry = fake_registry_with(Exchange::Issue, 204, true)?;
    let response = respond(
        vec![("HOME".into(), "/home/me".into())],
        &get_request(&index_url(&registry), "read"),
    )?;
    assert_eq!(response, r#"{"Err":{"kind":"not-found"}}"#);
    assert!(registry.requests().is_empty());
    Ok(())
}
