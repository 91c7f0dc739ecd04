//! Publishing from GitLab CI, where the ID token arrives in a variable.

use crate::support::{
    Exchange, fake_registry, index_url, publish_request, respond, single_use_token,
};

fn gitlab_env(builds_dir: &std::path::Path, variable: &str, jwt: &str) -> Vec<(String, String)> {
    vec![
        ("GITLAB_CI".into(), "true".into()),
        ("CI_JOB_ID".into(), "4242".into()),
        ("CI_BUILDS_DIR".into(), builds_dir.display().to_string()),
        (variable.into(), jwt.into()),
    ]
}

#[test]
fn the_id_token_is_read_from_wharf_id_token_and_exchanged() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let builds = tempfile::tempdir()?;

    let response = respond(
        gitlab_env(builds.path(), "WHARF_ID_TOKEN", "gl.jwt.1"),
        &publish_request(&index_url(&registry), &[]),
    )?;

    assert_eq!(response, single_use_token("wharf_tp_1"));
    let exchange = registry
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .ok_or_else(|| anyhow::anyhow!("no exchange"))?;
    assert_eq!(exchange.body, r#"{"jwt":"gl.jwt.1"}"#);
    assert!(
        builds
            .path()
            .join("cargo-credential-wharf-4242.json")
            .exists()
    );
    Ok(())
}

#[test]
fn gitlab_token_env_names_another_variable() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let builds = tempfile::tempdir()?;

    let response = respond(
        gitlab_env(builds.path(), "REGISTRY_ID_TOKEN", "gl.jwt.2"),
        &publish_request(
            &index_url(&registry),
            &["--gitlab-token-env", "REGISTRY_ID_TOKEN"],
        ),
    )?;

    assert_eq!(response, single_use_token("wharf_tp_1"));
    Ok(())
}

#[test]
fn a_missing_id_token_variable_falls_through_to_other_providers() -> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let builds = tempfile::tempdir()?;

    let response = respond(
        gitlab_env(builds.path(), "SOMETHING_ELSE", "gl.jwt.3"),
        &publish_request(&index_url(&registry), &[]),
    )?;

    assert_eq!(response, r#"{"Err":{"kind":"not-found"}}"#);
    assert!(registry.requests().is_empty());
    Ok(())
}

#[test]
fn a_second_publish_in_the_job_reuses_the_token_instead_of_replaying_the_id_token()
-> anyhow::Result<()> {
    let registry = fake_registry(Exchange::Issue, 204)?;
    let builds = tempfile::tempdir()?;
    let env = gitlab_env(builds.path(), "WHARF_ID_TOKEN", "gl.jwt.4");

    let first = respond(env.clone(), &publish_request(&index_url(&registry), &[]))?;
    let second = respond(env, &publish_request(&index_url(&registry), &[]))?;

    assert_eq!(first, single_use_token("wharf_tp_1"));
    assert_eq!(second, single_use_token("wharf_tp_1"));
    let requests = registry.requests();
    assert_eq!(requests.iter().filter(|r| r.method == "POST").count(), 1);
    assert_eq!(requests.iter().filter(|r| r.method == "DELETE").count(), 0);
    Ok(())
}
