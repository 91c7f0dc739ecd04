//! Revoking minted tokens on the next run and on `cargo logout`.

use cargo_credential_wharf::Environment;
use cargo_credential_wharf::state::TokenStore;

use crate::support::{
    Exchange, fake_github, fake_registry, get_request, github_env, index_url, logout_request,
    publish_request, respond, single_use_token,
};

fn remembered(env: &[(String, String)]) -> anyhow::Result<Vec<String>> {
    let store = TokenStore::for_environment(&Environment::new(env.iter().cloned()));
    Ok(store
        .load()?
        .into_iter()
        .map(|minted| minted.token.expose())
        .collect())
}

#[test]
fn the_next_publish_revokes_the_token_the_previous_one_minted() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let env = github_env(&github, runner_temp.path());

    let first = respond(env.clone(), &publish_request(&index_url(&registry), &[]))?;
    let second = respond(env.clone(), &publish_request(&index_url(&registry), &[]))?;

    assert_eq!(first, single_use_token("wharf_tp_1"));
    assert_eq!(second, single_use_token("wharf_tp_2"));
    let requests = registry.requests();
    let delete = requests
        .iter()
        .position(|r| r.method == "DELETE")
        .ok_or_else(|| anyhow::anyhow!("nothing was revoked"))?;
    let second_exchange = requests
        .iter()
        .rposition(|r| r.method == "POST")
        .ok_or_else(|| anyhow::anyhow!("no exchange"))?;
    assert!(delete < second_exchange, "revoke before minting the next");
    assert_eq!(requests[delete].path(), "/api/v1/trusted_publishing/tokens");
    assert_eq!(
        requests[delete].header("authorization"),
        Some("Bearer wharf_tp_1")
    );
    assert_eq!(remembered(&env)?, ["wharf_tp_2"]);
    Ok(())
}

#[test]
fn the_read_that_starts_the_next_cargo_publish_revokes_too() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let env = github_env(&github, runner_temp.path());

    respond(env.clone(), &publish_request(&index_url(&registry), &[]))?;
    respond(env.clone(), &get_request(&index_url(&registry), "read"))?;

    assert!(
        registry
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.header("authorization") == Some("Bearer wharf_tp_1"))
    );
    assert!(remembered(&env)?.is_empty());
    Ok(())
}

#[test]
fn logout_revokes_every_remembered_token_and_forgets_them() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let env = github_env(&github, runner_temp.path());
    respond(env.clone(), &publish_request(&index_url(&registry), &[]))?;

    let response = respond(env.clone(), &logout_request(&index_url(&registry)))?;

    assert_eq!(response, r#"{"Ok":{"kind":"logout"}}"#);
    let deletes: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        deletes[0].header("authorization"),
        Some("Bearer wharf_tp_1")
    );
    assert!(remembered(&env)?.is_empty());

    let again = respond(env, &logout_request(&index_url(&registry)))?;
    assert_eq!(again, r#"{"Err":{"kind":"not-found"}}"#);
    Ok(())
}

#[test]
fn logout_works_outside_the_ci_detection_too() -> anyhow::Result<()> {
    // `after_script:` or a final step may run without the ID-token variables.
    let registry = fake_registry(Exchange::Issue, 204)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let env = github_env(&github, runner_temp.path());
    respond(env, &publish_request(&index_url(&registry), &[]))?;

    let only_temp = vec![(
        "RUNNER_TEMP".to_owned(),
        runner_temp.path().display().to_string(),
    )];
    let response = respond(only_temp, &logout_request(&index_url(&registry)))?;

    assert_eq!(response, r#"{"Ok":{"kind":"logout"}}"#);
    Ok(())
}

#[test]
fn a_token_the_registry_cannot_revoke_now_is_kept_for_the_next_attempt() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 503)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let env = github_env(&github, runner_temp.path());
    respond(env.clone(), &publish_request(&index_url(&registry), &[]))?;

    let second = respond(env.clone(), &publish_request(&index_url(&registry), &[]))?;
    assert_eq!(second, single_use_token("wharf_tp_2"));
    assert_eq!(remembered(&env)?, ["wharf_tp_1", "wharf_tp_2"]);

    let logout = respond(env.clone(), &logout_request(&index_url(&registry)))?;
    let value: serde_json::Value = serde_json::from_str(&logout)?;
    assert_eq!(value["Err"]["kind"], "other", "{logout}");
    assert_eq!(remembered(&env)?, ["wharf_tp_1", "wharf_tp_2"]);
    Ok(())
}

#[test]
fn a_token_the_registry_no_longer_knows_is_forgotten() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 401)?;
    let github = fake_github()?;
    let runner_temp = tempfile::tempdir()?;
    let env = github_env(&github, runner_temp.path());
    respond(env.clone(), &publish_request(&index_url(&registry), &[]))?;

    let response = respond(env.clone(), &logout_request(&index_url(&registry)))?;

    assert_eq!(response, r#"{"Ok":{"kind":"logout"}}"#);
    assert!(remembered(&env)?.is_empty());
    Ok(())
}
