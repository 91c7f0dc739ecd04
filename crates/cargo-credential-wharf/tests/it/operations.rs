//! What the provider answers besides a publish in CI.

use crate::support::{
    Exchange, fake_github, fake_registry, get_request, github_env, index_url, publish_request,
    respond, single_use_token,
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
        registry.requests().is_empty(),
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
