//! The verifier and the matchers against a fake identity provider.

use crate::support::fake_idp::{self, FakeIdp, Provider as Idp};
use anyhow::{Context, bail};
use chrono::{NaiveDateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wharf::trustpub::provider::{Candidate, Match, Provider};
use wharf::trustpub::{
    Claims, GitHub, GitHubConfig, GitLab, GitLabConfig, ProviderKind, TrustpubSettings,
    VerifiedIdentity, Verifier, VerifyError,
};

const AUDIENCE: &str = "wharf.test";
const REAL_GITHUB: &str = "https://token.actions.githubusercontent.com";
const REAL_GITLAB: &str = "https://gitlab.com";

fn verifier(github_issuer: &str, gitlab_issuers: &[&str]) -> Verifier {
    Verifier::new(
        reqwest::Client::new(),
        TrustpubSettings::new(AUDIENCE)
            .trust(ProviderKind::GitHub, &[github_issuer])
            .trust(ProviderKind::GitLab, gitlab_issuers),
    )
}

fn github_verifier(idp: &FakeIdp) -> Verifier {
    verifier(idp.issuer(), &[REAL_GITLAB])
}

fn gitlab_verifier(idp: &FakeIdp) -> Verifier {
    verifier(REAL_GITHUB, &[REAL_GITLAB, idp.issuer()])
}

fn refusal(result: Result<VerifiedIdentity, VerifyError>) -> anyhow::Result<String> {
    match result {
        Err(VerifyError::InvalidToken(message)) => Ok(message),
        other => bail!("expected the token to be refused, got {other:?}"),
    }
}

fn unavailable(result: Result<VerifiedIdentity, VerifyError>) -> anyhow::Result<String> {
    match result {
        Err(error @ VerifyError::Unavailable(_)) => {
            assert!(error.is_unavailable());
            Ok(error.to_string())
        }
        other => bail!("expected the IdP to be unavailable, got {other:?}"),
    }
}

/// The record an exchange of this identity leaves behind, as JSON.
fn record(identity: &VerifiedIdentity) -> Value {
    identity.data().to_json()
}

// ---------------------------------------------------------------------------------------------
// Happy paths

#[tokio::test]
async fn a_github_token_from_the_configured_workflow_is_verified_and_matched() -> anyhow::Result<()>
{
    // Arrange
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    let claims = idp.github_claims(AUDIENCE, json!({}));
    let jwt = idp.sign(&claims);

    // Act
    let identity = verifier.verify(&jwt).await?;

    // Assert
    assert_eq!(identity.provider(), ProviderKind::GitHub);
    assert_eq!(identity.issuer(), idp.issuer());
    assert_eq!(Some(identity.jti()), claims["jti"].as_str());
    assert_eq!(
        Some(identity.expires_at().timestamp()),
        claims["exp"].as_i64()
    );
    assert_eq!(identity.published_by(), "octocat");
    let record = record(&identity);
    assert_eq!(record["provider"], "github");
    assert_eq!(record["repository"], "octo-org/widget");
    assert_eq!(record["workflow"], "release.yml");
    assert_eq!(record["environment"], Value::Null);
    assert_eq!(record["sha"], fake_idp::SHA);
    assert_eq!(record["ref"], "refs/tags/v1.0.0");
    assert_eq!(record["run_id"], fake_idp::GITHUB_RUN_ID.to_string());
    // The fake's issuer has GitHub Enterprise Server's shape: run links lead back to it.
    assert_eq!(
        record["run_url"],
        format!(
            "{}/octo-org/widget/actions/runs/4242424242/attempts/1",
            idp.base_url()
        )
    );
    let Claims::GitHub(claims) = &identity.claims else {
        bail!("expected a GitHub identity");
    };
    assert_eq!(claims.repository_owner_id, 65);
    assert_eq!(claims.runner_environment.as_deref(), Some("github-hosted"));
    let config = GitHubConfig {
        id: 1,
        crate_id: 10,
        repository_owner: fake_idp::GITHUB_OWNER.to_owned(),
        repository_owner_id: fake_idp::GITHUB_OWNER_ID,
        repository_name: fake_idp::GITHUB_REPO.to_owned(),
        workflow_filename: fake_idp::GITHUB_WORKFLOW.to_owned(),
        environment: None,
        created_at: NaiveDateTime::default(),
        created_by: None,
        reusable_workflow: None,
    };
    let candidates = [Candidate {
        crate_name: "widget".to_owned(),
        config,
    }];
    let matches = GitHub::match_configs(claims, &candidates)?;
    assert_eq!(
        matches,
        vec![Match {
            publisher_id: 1,
            crate_id: 10,
            crate_name: "widget".to_owned(),
        }]
    );
    assert_eq!(idp.jwks_fetches(), 1);
    Ok(())
}

#[tokio::test]
async fn keys_are_fetched_once_and_reused_for_later_tokens() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);

    for _ in 0..3 {
        let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({})));
        verifier.verify(&jwt).await?;
    }

    assert_eq!(idp.discovery_fetches(), 1);
    assert_eq!(idp.jwks_fetches(), 1);
    Ok(())
}

#[tokio::test]
async fn keys_are_fetched_again_after_an_hour() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    let now = Utc::now();
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({})));
    verifier.verify_at(&jwt, now).await?;

    let later = now + TimeDelta::minutes(61);
    let later_claims = idp.github_claims(
        AUDIENCE,
        json!({ "iat": later.timestamp(), "nbf": later.timestamp(), "exp": later.timestamp() + 300 }),
    );
    verifier.verify_at(&idp.sign(&later_claims), later).await?;

    assert_eq!(idp.jwks_fetches(), 2);
    Ok(())
}

#[tokio::test]
async fn a_gitlab_token_from_a_subgroup_project_is_verified_and_matched() -> anyhow::Result<()> {
    // Arrange
    let idp = FakeIdp::start(Idp::GitLab);
    let verifier = gitlab_verifier(&idp);
    let project_path = "acme/tools/widget";
    let claims = idp.gitlab_claims(
        AUDIENCE,
        json!({
            "namespace_path": "acme/tools",
            "project_path": project_path,
            "ci_config_ref_uri": idp.gitlab_ci_config_ref_uri(project_path, "ci/release.yml"),
            "environment": "Release",
        }),
    );
    let config = GitLabConfig {
        id: 7,
        crate_id: 70,
        namespace: "Acme/Tools".to_owned(),
        namespace_id: None,
        project: "Widget".to_owned(),
        workflow_filepath: "ci/release.yml".to_owned(),
        environment: Some("release".to_owned()),
        created_at: NaiveDateTime::default(),
        created_by: None,
    };

    // Act
    let identity = verifier.verify(&idp.sign(&claims)).await?;

    // Assert
    assert_eq!(identity.provider(), ProviderKind::GitLab);
    assert_eq!(identity.published_by(), "gitlab-user");
    let record = record(&identity);
    assert_eq!(record["provider"], "gitlab");
    assert_eq!(record["repository"], project_path);
    assert_eq!(record["project"], project_path);
    assert_eq!(record["workflow"], "ci/release.yml");
    assert_eq!(record["environment"], "Release");
    assert_eq!(record["job_id"], fake_idp::GITLAB_JOB_ID.to_string());
    assert_eq!(
        record["run_url"],
        format!("{}/acme/tools/widget/-/jobs/302", idp.issuer())
    );
    let Claims::GitLab(claims) = &identity.claims else {
        bail!("expected a GitLab identity");
    };
    assert_eq!(claims.namespace_id, fake_idp::GITLAB_NAMESPACE_ID);
    assert_eq!(claims.runner_id, Some(1));
    let candidates = [Candidate {
        crate_name: "widget".to_owned(),
        config,
    }];
    let matches = GitLab::match_configs(claims, &candidates)?;
    assert_eq!(
        matches,
        vec![Match {
            publisher_id: 7,
            crate_id: 70,
            crate_name: "widget".to_owned(),
        }]
    );
    Ok(())
}

#[tokio::test]
async fn the_id_token_request_endpoint_mints_a_token_for_the_requested_audience()
-> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let http = reqwest::Client::new();
    let url = format!("{}&audience={AUDIENCE}", idp.id_token_request_url());

    let anonymous = http.get(&url).send().await?;
    let response: Value = http
        .get(&url)
        .bearer_auth(idp.id_token_request_token())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;

    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let jwt = response["value"].as_str().context("no value")?;
    let identity = github_verifier(&idp).verify(jwt).await?;
    assert_eq!(record(&identity)["repository"], "octo-org/widget");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Hostile headers: refused before any network call

#[tokio::test]
async fn an_unsigned_token_with_alg_none_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = idp.github_claims(AUDIENCE, json!({}));
    let jwt = fake_idp::unsigned(
        &json!({ "alg": "none", "typ": "JWT", "kid": idp.current_kid() }),
        &claims,
    );

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert_eq!(
        message,
        "The ID token is unsigned (`alg` is `none`); only RS256-signed tokens are accepted."
    );
    assert_eq!(idp.jwks_fetches(), 0);
    Ok(())
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_public_key_as_secret_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = idp.github_claims(AUDIENCE, json!({}));
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(idp.current_kid());
    let secret = EncodingKey::from_secret(idp.public_key_pem().as_bytes());
    let jwt = jsonwebtoken::encode(&header, &claims, &secret)?;

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert_eq!(
        message,
        "The ID token is signed with the HMAC algorithm `HS256`; shared-secret signatures are \
         refused, only RS256 is accepted."
    );
    assert_eq!(idp.jwks_fetches(), 0);
    Ok(())
}

#[tokio::test]
async fn other_algorithms_than_rs256_are_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    let claims = idp.github_claims(AUDIENCE, json!({}));

    for alg in ["ES256", "RS512", "PS256", "EdDSA"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": idp.current_kid() });
        let message = refusal(
            verifier
                .verify(&idp.sign_with_header(&header, &claims))
                .await,
        )?;
        assert_eq!(
            message,
            format!(
                "The ID token's signing algorithm `{alg}` is not supported; only RS256 is accepted."
            )
        );
    }
    assert_eq!(idp.jwks_fetches(), 0);
    Ok(())
}

#[tokio::test]
async fn a_token_carrying_its_own_key_or_key_location_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    let claims = idp.github_claims(AUDIENCE, json!({}));
    let jwk = idp.jwks()["keys"][0].clone();
    let hostile = [
        ("jwk", jwk),
        ("jku", json!(format!("{}/.well-known/jwks", idp.issuer()))),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
    ];

    for (name, value) in hostile {
        let mut header = json!({ "alg": "RS256", "typ": "JWT", "kid": idp.current_kid() });
        header[name] = value;
        let message = refusal(
            verifier
                .verify(&idp.sign_with_header(&header, &claims))
                .await,
        )?;
        assert_eq!(
            message,
            format!(
                "The ID token's header carries `{name}`: keys and key locations given by a token \
                 are never trusted; the signing key must come from the issuer's published key \
                 set."
            )
        );
    }
    assert_eq!(idp.jwks_fetches(), 0);
    Ok(())
}

#[tokio::test]
async fn a_token_without_kid_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = idp.github_claims(AUDIENCE, json!({}));
    let jwt = idp.sign_with_header(&json!({ "alg": "RS256", "typ": "JWT" }), &claims);

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert!(message.contains("no valid `kid`"), "{message}");
    assert_eq!(idp.jwks_fetches(), 0);
    Ok(())
}

#[tokio::test]
async fn oversize_and_garbage_tokens_are_refused_without_any_network_call() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    let padding = "a".repeat(16 * 1024);
    let oversize = idp.sign(&idp.github_claims(AUDIENCE, json!({ "padding": padding })));

    let message = refusal(verifier.verify(&oversize).await)?;
    assert_eq!(
        message,
        "The ID token is larger than 16 KiB; it cannot be an ID token from a CI platform."
    );
    assert!(!message.contains(&oversize));

    let not_a_jwt =
        "The ID token is not a JWT: expected three base64url segments separated by dots.";
    for garbage in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a+b.c/d.e",
        "a=.b.c",
        ".b.c",
        "a..c",
        " a.b.c",
    ] {
        assert_eq!(
            refusal(verifier.verify(garbage).await)?,
            not_a_jwt,
            "{garbage:?}"
        );
    }
    let header = fake_idp::segment(&json!({ "alg": "RS256", "kid": "k" }));
    assert_eq!(
        refusal(verifier.verify(&format!("{header}.e.sig")).await)?,
        "The ID token's payload is not valid base64url."
    );
    assert_eq!(
        refusal(verifier.verify(&format!("{header}.bm90IGpzb24.sig")).await)?,
        "The ID token's payload is not a JSON object."
    );
    assert_eq!(
        refusal(verifier.verify("bm90IGpzb24.e30.sig").await)?,
        "The ID token's header is not a JSON object."
    );
    assert_eq!(idp.discovery_fetches(), 0);
    assert_eq!(idp.jwks_fetches(), 0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Issuers and keys

#[tokio::test]
async fn a_token_from_an_issuer_that_is_not_configured_is_refused_without_any_network_call()
-> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = verifier(REAL_GITHUB, &[REAL_GITLAB]);
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({})));

    let message = refusal(verifier.verify(&jwt).await)?;

    assert_eq!(
        message,
        format!(
            "The ID token's issuer `{}` is not trusted by this registry; trusted issuers are \
             `{REAL_GITHUB}`, `{REAL_GITLAB}`.",
            idp.issuer()
        )
    );
    assert_eq!(idp.discovery_fetches(), 0);
    assert_eq!(idp.jwks_fetches(), 0);
    Ok(())
}

#[tokio::test]
async fn a_token_claiming_another_trusted_issuer_is_refused() -> anyhow::Result<()> {
    // Both issuers are trusted; the attacker controls keys of neither, but has a token of one
    // and rewrites its issuer to the other.
    let github_idp = FakeIdp::start(Idp::GitHub);
    let gitlab_idp = FakeIdp::start(Idp::GitLab);
    let verifier = verifier(github_idp.issuer(), &[gitlab_idp.issuer()]);
    let forged = gitlab_idp.gitlab_claims(AUDIENCE, json!({ "iss": github_idp.issuer() }));

    // Signed by the GitLab IdP, with its own kid: the GitHub issuer does not publish that kid.
    let message = refusal(verifier.verify(&gitlab_idp.sign(&forged)).await)?;
    assert!(message.contains("which the issuer"), "{message}");
    assert!(message.contains("does not publish"), "{message}");

    // A genuine GitHub token whose payload is swapped for the forged one: bad signature.
    let genuine = github_idp.sign(&github_idp.github_claims(AUDIENCE, json!({})));
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    parts[1] = fake_idp::segment(&forged);
    let message = refusal(verifier.verify(&parts.join(".")).await)?;
    assert_eq!(
        message,
        format!(
            "The ID token's signature does not verify with the issuer's key `{}`.",
            github_idp.current_kid()
        )
    );
    Ok(())
}

#[tokio::test]
async fn a_tampered_payload_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({})));
    let other = idp.github_claims(AUDIENCE, json!({ "repository": "evil/widget" }));
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    parts[1] = fake_idp::segment(&other);
    let tampered = parts.join(".");

    let message = refusal(github_verifier(&idp).verify(&tampered).await)?;

    assert!(message.contains("signature does not verify"), "{message}");
    assert!(!message.contains(&tampered));
    Ok(())
}

#[tokio::test]
async fn an_unknown_kid_triggers_at_most_one_refetch_per_minute() -> anyhow::Result<()> {
    // Arrange: the verifier has fetched the keys once.
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    let now = Utc::now();
    verifier
        .verify_at(&idp.sign(&idp.github_claims(AUDIENCE, json!({}))), now)
        .await?;
    assert_eq!(idp.jwks_fetches(), 1);
    let claims = idp.github_claims(AUDIENCE, json!({}));
    let unknown = idp.sign_with_header(
        &json!({ "alg": "RS256", "typ": "JWT", "kid": "made-up-kid" }),
        &claims,
    );

    // Act & Assert: right after a fetch, no refetch.
    let message = refusal(
        verifier
            .verify_at(&unknown, now + TimeDelta::seconds(5))
            .await,
    )?;
    assert_eq!(
        message,
        format!(
            "The ID token was signed with key `made-up-kid`, which the issuer `{}` does not \
             publish. Request a fresh token; if the issuer rotated its keys a moment ago, try \
             again in a minute.",
            idp.issuer()
        )
    );
    assert_eq!(idp.jwks_fetches(), 1);

    // A minute later one refetch, then none for another minute however many tokens come.
    for seconds in [61, 62, 90, 120] {
        refusal(
            verifier
                .verify_at(&unknown, now + TimeDelta::seconds(seconds))
                .await,
        )?;
    }
    assert_eq!(idp.jwks_fetches(), 2);
    refusal(
        verifier
            .verify_at(&unknown, now + TimeDelta::seconds(122))
            .await,
    )?;
    assert_eq!(idp.jwks_fetches(), 3);
    Ok(())
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_the_refetch() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    let start = Utc::now() - TimeDelta::seconds(120);
    let early = json!({
        "iat": start.timestamp(), "nbf": start.timestamp(), "exp": start.timestamp() + 300,
    });
    verifier
        .verify_at(&idp.sign(&idp.github_claims(AUDIENCE, early)), start)
        .await?;

    let new_kid = idp.rotate_key();
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({})));
    let identity = verifier.verify(&jwt).await?;

    assert!(jwt.starts_with(&fake_idp::segment(
        &json!({ "alg": "RS256", "typ": "JWT", "kid": new_kid })
    )));
    assert_eq!(record(&identity)["repository"], "octo-org/widget");
    assert_eq!(idp.jwks_fetches(), 2);
    Ok(())
}

#[tokio::test]
async fn a_rotated_key_seen_within_a_minute_of_the_last_fetch_is_refused_for_now()
-> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    verifier
        .verify(&idp.sign(&idp.github_claims(AUDIENCE, json!({}))))
        .await?;

    idp.rotate_key();
    let message = refusal(
        verifier
            .verify(&idp.sign(&idp.github_claims(AUDIENCE, json!({}))))
            .await,
    )?;

    assert!(message.contains("try again in a minute"), "{message}");
    assert_eq!(idp.jwks_fetches(), 1);
    Ok(())
}

#[tokio::test]
async fn an_identity_provider_that_is_down_is_a_try_again_error_never_an_accept()
-> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    idp.set_down(true);
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({})));

    let message = unavailable(verifier.verify(&jwt).await)?;

    assert_eq!(
        message,
        format!(
            "Could not fetch the signing keys of the identity provider `{0}` \
             ({0}/.well-known/openid-configuration answered HTTP 500), so the ID token cannot be \
             checked now. Try again later.",
            idp.issuer()
        )
    );
    assert!(!message.contains(&jwt));

    // Once it is back, the same token is accepted: failures are not cached.
    idp.set_down(false);
    verifier.verify(&jwt).await?;
    Ok(())
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_a_try_again_error() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({})));
    let issuer = idp.issuer().to_owned();
    drop(idp);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let message = unavailable(verifier(&issuer, &[]).verify(&jwt).await)?;

    assert!(message.contains("could not be reached"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_broken_key_set_is_a_try_again_error() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    idp.set_broken_jwks(true);
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({})));

    let message = unavailable(verifier.verify(&jwt).await)?;

    assert!(
        message.contains("/.well-known/jwks did not send the expected JSON"),
        "{message}"
    );
    idp.set_broken_jwks(false);
    verifier.verify(&jwt).await?;
    Ok(())
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_not_trusted() -> anyhow::Result<()> {
    // The verifier knows the IdP as `localhost`, but its discovery says `127.0.0.1`.
    let idp = FakeIdp::start(Idp::GitHub);
    let alias = idp.issuer().replace("127.0.0.1", "localhost");
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({ "iss": alias })));

    let message = unavailable(verifier(&alias, &[]).verify(&jwt).await)?;

    assert!(
        message.contains(&format!(
            "the discovery document names the issuer `{}`",
            idp.issuer()
        )),
        "{message}"
    );
    assert_eq!(idp.jwks_fetches(), 0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Claims

#[tokio::test]
async fn a_token_for_another_audience_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let jwt = idp.sign(&idp.github_claims("crates.io", json!({})));

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert_eq!(
        message,
        "The ID token's audience (`aud`) is `crates.io`, but this registry expects `wharf.test`. \
         Request the token with the audience `wharf.test`."
    );
    Ok(())
}

#[tokio::test]
async fn a_token_with_a_list_of_audiences_is_refused_even_if_it_contains_ours() -> anyhow::Result<()>
{
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);

    for audiences in [json!([AUDIENCE]), json!([AUDIENCE, "crates.io"])] {
        let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({ "aud": audiences })));
        let message = refusal(verifier.verify(&jwt).await)?;
        assert_eq!(
            message,
            "The ID token has a list of audiences; this registry requires the single audience \
             `wharf.test`. Request the token with only that audience."
        );
    }
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({ "aud": null })));
    assert!(refusal(verifier.verify(&jwt).await)?.contains("no audience"));
    Ok(())
}

#[tokio::test]
async fn an_expired_token_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let past = Utc::now().timestamp() - 3600;
    let jwt = idp.sign(&idp.github_claims(
        AUDIENCE,
        json!({ "iat": past, "nbf": past, "exp": 1_700_000_000 }),
    ));

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert_eq!(
        message,
        "The ID token expired at 2023-11-14 22:13:20 UTC. ID tokens are short-lived: request a \
         fresh one right before the exchange."
    );
    Ok(())
}

#[tokio::test]
async fn the_leeway_is_sixty_seconds() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    let claims = idp.github_claims(AUDIENCE, json!({}));
    let jwt = idp.sign(&claims);
    let exp = chrono::DateTime::from_timestamp(claims["exp"].as_i64().context("exp")?, 0)
        .context("exp")?;
    let iat = chrono::DateTime::from_timestamp(claims["iat"].as_i64().context("iat")?, 0)
        .context("iat")?;

    // Expired 59 s ago, issued 59 s ahead of our clock: still accepted.
    verifier
        .verify_at(&jwt, exp + TimeDelta::seconds(59))
        .await?;
    verifier
        .verify_at(&jwt, iat - TimeDelta::seconds(59))
        .await?;
    // Beyond the leeway: refused.
    let late = refusal(verifier.verify_at(&jwt, exp + TimeDelta::seconds(61)).await)?;
    assert!(late.starts_with("The ID token expired at"), "{late}");
    let early = refusal(verifier.verify_at(&jwt, iat - TimeDelta::seconds(61)).await)?;
    assert!(
        early.starts_with("The ID token is not valid before"),
        "{early}"
    );
    Ok(())
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let future = Utc::now().timestamp() + 600;
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({ "nbf": future, "exp": future + 300 })));

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert!(
        message.starts_with("The ID token is not valid before "),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let future = Utc::now().timestamp() + 600;
    let jwt = idp.sign(&idp.github_claims(
        AUDIENCE,
        json!({ "iat": future, "nbf": null, "exp": future + 300 }),
    ));

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert!(
        message.starts_with("The ID token was issued in the future ("),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn tokens_without_exp_or_iat_are_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);

    let no_exp = idp.sign(&idp.github_claims(AUDIENCE, json!({ "exp": null })));
    let no_iat = idp.sign(&idp.github_claims(AUDIENCE, json!({ "iat": null })));
    let text_exp = idp.sign(&idp.github_claims(AUDIENCE, json!({ "exp": "tomorrow" })));

    assert_eq!(
        refusal(verifier.verify(&no_exp).await)?,
        "The ID token has no `exp` (expiry) claim."
    );
    assert_eq!(
        refusal(verifier.verify(&no_iat).await)?,
        "The ID token has no `iat` (issued-at) claim."
    );
    assert_eq!(
        refusal(verifier.verify(&text_exp).await)?,
        "The ID token's `exp` claim is not a NumericDate."
    );
    Ok(())
}

#[tokio::test]
async fn a_token_without_jti_is_refused() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let verifier = github_verifier(&idp);
    let expected = "The ID token has no `jti` (token ID) claim, which is needed to refuse \
                    replayed tokens.";

    for jti in [Value::Null, json!(""), json!(42)] {
        let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({ "jti": jti })));
        assert_eq!(refusal(verifier.verify(&jwt).await)?, expected);
    }
    Ok(())
}

#[tokio::test]
async fn a_github_token_missing_a_required_claim_is_refused_naming_it() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({ "repository_owner_id": null })));

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert!(
        message.starts_with("The GitHub Actions ID token lacks a required claim"),
        "{message}"
    );
    assert!(message.contains("repository_owner_id"), "{message}");
    Ok(())
}

#[tokio::test]
async fn pull_request_target_runs_are_refused_with_an_explanation() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let jwt =
        idp.sign(&idp.github_claims(AUDIENCE, json!({ "event_name": "pull_request_target" })));

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert_eq!(
        message,
        "Trusted Publishing refuses ID tokens from `pull_request_target` events: \
         `pull_request_target` workflows run with the target repository's permissions while \
         handling pull requests from forks, so code from an untrusted pull request could obtain \
         a publish token. Publish from a workflow triggered by `push`, `release` or \
         `workflow_dispatch` instead."
    );
    Ok(())
}

#[tokio::test]
async fn workflow_run_runs_are_refused_with_an_explanation() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, json!({ "event_name": "workflow_run" })));

    let message = refusal(github_verifier(&idp).verify(&jwt).await)?;

    assert!(
        message.starts_with("Trusted Publishing refuses ID tokens from `workflow_run` events:"),
        "{message}"
    );
    assert!(message.contains("pull request from a fork"), "{message}");
    Ok(())
}

#[actix_web::test]
async fn the_fake_identity_provider_also_runs_under_actix_tests() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitLab);

    let identity = gitlab_verifier(&idp)
        .verify(&idp.sign(&idp.gitlab_claims(AUDIENCE, json!({}))))
        .await?;

    assert_eq!(record(&identity)["repository"], "acme/widget");
    Ok(())
}

#[test]
fn the_verifier_and_its_future_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>(_: &T) {}
    fn sendable<F: std::future::Future + Send>(_: &F) {}
    let verifier = verifier(REAL_GITHUB, &[REAL_GITLAB]);
    shareable(&verifier);
    sendable(&verifier.verify("a.b.c"));
}
