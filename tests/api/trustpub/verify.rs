//! The verifier and the matchers against a fake identity provider.

use crate::support::fake_idp::{self, FakeIdp, Provider as Idp};
use anyhow::{Context, bail};
use chrono::{TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wharf::trustpub::{
    GitHubClaims, GitHubPublisher, GitLabClaims, GitLabPublisher, Match, MatchError, Provider,
    TrustpubSettings, VerifiedIdentity, Verifier, VerifyError, github, gitlab,
};

const AUDIENCE: &str = "wharf.test";
const REAL_GITHUB: &str = "https://token.actions.githubusercontent.com";
const REAL_GITLAB: &str = "https://gitlab.com";

fn verifier(github_issuer: &str, gitlab_issuers: &[&str]) -> Verifier {
    Verifier::new(
        reqwest::Client::new(),
        TrustpubSettings {
            audience: AUDIENCE.to_owned(),
            github_issuer: github_issuer.to_owned(),
            gitlab_issuers: gitlab_issuers.iter().map(|i| (*i).to_owned()).collect(),
        },
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

async fn github_claims(idp: &FakeIdp, overrides: Value) -> anyhow::Result<GitHubClaims> {
    let jwt = idp.sign(&idp.github_claims(AUDIENCE, overrides));
    match github_verifier(idp).verify(&jwt).await? {
        VerifiedIdentity::GitHub(claims) => Ok(claims),
        other => bail!("expected a GitHub identity, got {other:?}"),
    }
}

async fn gitlab_claims(idp: &FakeIdp, overrides: Value) -> anyhow::Result<GitLabClaims> {
    let jwt = idp.sign(&idp.gitlab_claims(AUDIENCE, overrides));
    match gitlab_verifier(idp).verify(&jwt).await? {
        VerifiedIdentity::GitLab(claims) => Ok(claims),
        other => bail!("expected a GitLab identity, got {other:?}"),
    }
}

fn github_publisher(id: i64, crate_name: &str) -> GitHubPublisher {
    GitHubPublisher {
        id,
        crate_id: id * 10,
        crate_name: crate_name.to_owned(),
        repository_owner: fake_idp::GITHUB_OWNER.to_owned(),
        repository_owner_id: fake_idp::GITHUB_OWNER_ID,
        repository_name: fake_idp::GITHUB_REPO.to_owned(),
        workflow_filename: fake_idp::GITHUB_WORKFLOW.to_owned(),
        environment: None,
    }
}

fn gitlab_publisher(id: i64, crate_name: &str) -> GitLabPublisher {
    GitLabPublisher {
        id,
        crate_id: id * 10,
        crate_name: crate_name.to_owned(),
        namespace: fake_idp::GITLAB_NAMESPACE.to_owned(),
        namespace_id: None,
        project: fake_idp::GITLAB_PROJECT.to_owned(),
        workflow_filepath: fake_idp::GITLAB_CI_CONFIG.to_owned(),
        environment: None,
    }
}

fn mismatch(result: Result<Vec<Match>, MatchError>) -> anyhow::Result<String> {
    match result {
        Err(error) => Ok(error.to_string()),
        Ok(matches) => bail!("expected no match, got {matches:?}"),
    }
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
    assert_eq!(identity.provider(), Provider::GitHub);
    assert_eq!(identity.issuer(), idp.issuer());
    assert_eq!(Some(identity.jti()), claims["jti"].as_str());
    assert_eq!(
        Some(identity.expires_at().timestamp()),
        claims["exp"].as_i64()
    );
    assert_eq!(identity.actor(), "octocat");
    assert_eq!(identity.repository(), "octo-org/widget");
    assert_eq!(identity.workflow(), Some("release.yml"));
    assert_eq!(identity.environment(), None);
    assert_eq!(identity.sha(), fake_idp::SHA);
    assert_eq!(identity.git_ref(), "refs/tags/v1.0.0");
    assert_eq!(identity.run_id(), fake_idp::GITHUB_RUN_ID);
    // The fake's issuer has GitHub Enterprise Server's shape: run links lead back to it.
    assert_eq!(
        identity.run_url(),
        format!(
            "{}/octo-org/widget/actions/runs/4242424242/attempts/1",
            idp.base_url()
        )
    );
    let VerifiedIdentity::GitHub(claims) = identity else {
        bail!("expected a GitHub identity");
    };
    assert_eq!(claims.repository_owner_id, 65);
    assert_eq!(claims.runner_environment.as_deref(), Some("github-hosted"));
    let matches = github::match_publishers(&claims, &[github_publisher(1, "widget")])?;
    assert_eq!(
        matches,
        vec![Match {
            publisher_id: 1,
            crate_id: 10,
            crate_name: "widget".to_owned(),
            capture_namespace_id: None,
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
async fn repository_owner_and_name_are_matched_ignoring_case() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(
        &idp,
        json!({ "repository": "Octo-Org/Widget", "repository_owner": "Octo-Org" }),
    )
    .await?;
    let publisher = GitHubPublisher {
        repository_owner: "OCTO-org".to_owned(),
        repository_name: "wIdGeT".to_owned(),
        ..github_publisher(1, "widget")
    };

    let matches = github::match_publishers(&claims, &[publisher])?;

    assert_eq!(matches.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_configured_environment_is_matched_ignoring_case() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(&idp, json!({ "environment": "Production" })).await?;
    let publisher = GitHubPublisher {
        environment: Some("production".to_owned()),
        ..github_publisher(1, "widget")
    };

    let matches = github::match_publishers(&claims, &[publisher])?;

    assert_eq!(matches.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_config_without_environment_accepts_any_environment_and_none() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let with = github_claims(&idp, json!({ "environment": "staging" })).await?;
    let without = github_claims(&idp, json!({})).await?;
    let publisher = github_publisher(1, "widget");

    assert_eq!(
        github::match_publishers(&with, std::slice::from_ref(&publisher))?.len(),
        1
    );
    assert_eq!(github::match_publishers(&without, &[publisher])?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn configs_of_other_repositories_are_ignored_and_several_crates_can_match()
-> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(&idp, json!({})).await?;
    let other_repository = GitHubPublisher {
        repository_name: "gadget".to_owned(),
        ..github_publisher(3, "gadget")
    };
    let publishers = [
        github_publisher(1, "widget"),
        other_repository,
        github_publisher(2, "widget-derive"),
    ];

    let matches = github::match_publishers(&claims, &publishers)?;

    let names: Vec<&str> = matches.iter().map(|m| m.crate_name.as_str()).collect();
    assert_eq!(names, ["widget", "widget-derive"]);
    Ok(())
}

#[tokio::test]
async fn a_reusable_workflow_is_matched_on_the_calling_workflow() -> anyhow::Result<()> {
    // The caller's release.yml uses a reusable workflow from another repository: the owner
    // trusted release.yml, so that is what must match, not the reusable one.
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(
        &idp,
        json!({
            "job_workflow_ref": "shared-org/ci/.github/workflows/publish-crate.yml@refs/heads/main",
        }),
    )
    .await?;

    let matches = github::match_publishers(&claims, &[github_publisher(1, "widget")])?;

    assert_eq!(matches.len(), 1);
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
    let publisher = GitLabPublisher {
        namespace: "Acme/Tools".to_owned(),
        project: "Widget".to_owned(),
        workflow_filepath: "ci/release.yml".to_owned(),
        environment: Some("release".to_owned()),
        ..gitlab_publisher(7, "widget")
    };

    // Act
    let identity = verifier.verify(&idp.sign(&claims)).await?;

    // Assert
    assert_eq!(identity.provider(), Provider::GitLab);
    assert_eq!(identity.actor(), "gitlab-user");
    assert_eq!(identity.repository(), project_path);
    assert_eq!(identity.workflow(), Some("ci/release.yml"));
    assert_eq!(identity.environment(), Some("Release"));
    assert_eq!(identity.run_id(), fake_idp::GITLAB_JOB_ID);
    assert_eq!(
        identity.run_url(),
        format!("{}/acme/tools/widget/-/jobs/302", idp.issuer())
    );
    let VerifiedIdentity::GitLab(claims) = identity else {
        bail!("expected a GitLab identity");
    };
    assert_eq!(claims.namespace_id, fake_idp::GITLAB_NAMESPACE_ID);
    assert_eq!(claims.runner_id, Some(1));
    let matches = gitlab::match_publishers(&claims, &[publisher])?;
    assert_eq!(
        matches,
        vec![Match {
            publisher_id: 7,
            crate_id: 70,
            crate_name: "widget".to_owned(),
            capture_namespace_id: Some(fake_idp::GITLAB_NAMESPACE_ID),
        }]
    );
    Ok(())
}

#[tokio::test]
async fn a_gitlab_config_with_its_namespace_id_recorded_matches_without_capturing_again()
-> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitLab);
    let claims = gitlab_claims(&idp, json!({})).await?;
    let publisher = GitLabPublisher {
        namespace_id: Some(fake_idp::GITLAB_NAMESPACE_ID),
        ..gitlab_publisher(1, "widget")
    };

    let matches = gitlab::match_publishers(&claims, &[publisher])?;

    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].capture_namespace_id, None);
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
    assert_eq!(identity.repository(), "octo-org/widget");
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
    assert_eq!(identity.repository(), "octo-org/widget");
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

// ---------------------------------------------------------------------------------------------
// Matching failures

#[tokio::test]
async fn a_repository_without_config_is_named_in_the_error() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(&idp, json!({})).await?;
    let elsewhere = GitHubPublisher {
        repository_owner: "someone-else".to_owned(),
        ..github_publisher(1, "widget")
    };

    let result = github::match_publishers(&claims, &[elsewhere]);

    assert!(matches!(result, Err(MatchError::NoConfig(_))));
    assert_eq!(
        mismatch(result)?,
        "No Trusted Publishing config exists for repository `octo-org/widget`; an owner of the \
         crate can add one in the crate's settings."
    );
    Ok(())
}

#[tokio::test]
async fn an_owner_id_that_changed_is_refused_with_advice() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(&idp, json!({ "repository_owner_id": "123" })).await?;
    let publisher = GitHubPublisher {
        repository_owner_id: 456,
        ..github_publisher(1, "widget")
    };

    let message = mismatch(github::match_publishers(&claims, &[publisher]))?;

    assert_eq!(
        message,
        "No Trusted Publishing config matches repository `octo-org/widget`: the repository owner \
         ID 123 differs from the one recorded when the config was created (456); the account may \
         have been deleted and re-created. Remove and re-add the config."
    );
    Ok(())
}

#[tokio::test]
async fn a_different_workflow_is_refused_naming_the_expected_one() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(
        &idp,
        json!({
            "workflow_ref": "octo-org/widget/.github/workflows/ci.yml@refs/heads/main",
            "job_workflow_ref": "octo-org/widget/.github/workflows/ci.yml@refs/heads/main",
        }),
    )
    .await?;

    let message = mismatch(github::match_publishers(
        &claims,
        &[github_publisher(1, "widget")],
    ))?;

    assert_eq!(
        message,
        "No Trusted Publishing config matches repository `octo-org/widget`: the token's workflow \
         is `ci.yml`, but the configs for this repository expect workflow `release.yml`."
    );
    Ok(())
}

#[tokio::test]
async fn a_workflow_that_calls_the_configured_file_as_a_reusable_workflow_is_refused()
-> anyhow::Result<()> {
    // ci.yml calls a reusable release.yml: job_workflow_ref names the configured file, but the
    // run's workflow is ci.yml, which the owner did not trust.
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(
        &idp,
        json!({
            "workflow_ref": "octo-org/widget/.github/workflows/ci.yml@refs/heads/main",
            "job_workflow_ref": "octo-org/widget/.github/workflows/release.yml@refs/heads/main",
        }),
    )
    .await?;

    let message = mismatch(github::match_publishers(
        &claims,
        &[github_publisher(1, "widget")],
    ))?;

    assert!(
        message.contains("the token's workflow is `ci.yml`"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn workflow_file_names_are_compared_exactly() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(
        &idp,
        json!({ "workflow_ref": "octo-org/widget/.github/workflows/Release.yml@refs/tags/v1" }),
    )
    .await?;

    let message = mismatch(github::match_publishers(
        &claims,
        &[github_publisher(1, "widget")],
    ))?;

    assert!(
        message.contains("the token's workflow is `Release.yml`"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_different_environment_is_refused_naming_both() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(&idp, json!({ "environment": "staging" })).await?;
    let publisher = GitHubPublisher {
        environment: Some("production".to_owned()),
        ..github_publisher(1, "widget")
    };

    let message = mismatch(github::match_publishers(&claims, &[publisher]))?;

    assert_eq!(
        message,
        "No Trusted Publishing config matches repository `octo-org/widget`: the token has \
         environment `staging`, but the config expects `production`."
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_environment_is_refused_when_one_is_configured() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(&idp, json!({})).await?;
    let publishers = [
        GitHubPublisher {
            environment: Some("production".to_owned()),
            ..github_publisher(1, "widget")
        },
        GitHubPublisher {
            environment: Some("release".to_owned()),
            ..github_publisher(2, "widget-derive")
        },
    ];

    let message = mismatch(github::match_publishers(&claims, &publishers))?;

    assert_eq!(
        message,
        "No Trusted Publishing config matches repository `octo-org/widget`: the token has no \
         environment, but the configs expect `production` or `release`."
    );
    Ok(())
}

#[tokio::test]
async fn every_differing_field_is_reported_when_configs_differ_in_several() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitHub);
    let claims = github_claims(&idp, json!({ "environment": "staging" })).await?;
    let publishers = [
        GitHubPublisher {
            workflow_filename: "publish.yml".to_owned(),
            ..github_publisher(1, "widget")
        },
        GitHubPublisher {
            environment: Some("production".to_owned()),
            ..github_publisher(2, "widget-derive")
        },
    ];

    let message = mismatch(github::match_publishers(&claims, &publishers))?;

    assert_eq!(
        message,
        "No Trusted Publishing config matches repository `octo-org/widget`: the token's workflow \
         is `release.yml`, but the configs for this repository expect workflow `publish.yml`; \
         the token has environment `staging`, but the config expects `production`."
    );
    Ok(())
}

#[tokio::test]
async fn a_gitlab_namespace_id_that_changed_is_refused_with_advice() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitLab);
    let claims = gitlab_claims(&idp, json!({ "namespace_id": "999" })).await?;
    let publisher = GitLabPublisher {
        namespace_id: Some(fake_idp::GITLAB_NAMESPACE_ID),
        ..gitlab_publisher(1, "widget")
    };

    let message = mismatch(gitlab::match_publishers(&claims, &[publisher]))?;

    assert_eq!(
        message,
        "No Trusted Publishing config matches project `acme/widget`: the namespace ID 999 \
         differs from the one recorded when the config was first used (72); the group or user \
         may have been deleted and re-created. Remove and re-add the config."
    );
    Ok(())
}

#[tokio::test]
async fn a_different_gitlab_ci_config_path_is_refused_naming_the_expected_one() -> anyhow::Result<()>
{
    let idp = FakeIdp::start(Idp::GitLab);
    let claims = gitlab_claims(&idp, json!({})).await?;
    let publisher = GitLabPublisher {
        workflow_filepath: "ci/release.yml".to_owned(),
        ..gitlab_publisher(1, "widget")
    };

    let message = mismatch(gitlab::match_publishers(&claims, &[publisher]))?;

    assert_eq!(
        message,
        "No Trusted Publishing config matches project `acme/widget`: the token's CI config file \
         is `.gitlab-ci.yml`, but the configs for this project expect `ci/release.yml`."
    );
    Ok(())
}

#[tokio::test]
async fn a_gitlab_project_in_another_namespace_has_no_config() -> anyhow::Result<()> {
    // `acme/tools/widget` is not `acme/widget`: the namespace includes the subgroup.
    let idp = FakeIdp::start(Idp::GitLab);
    let claims = gitlab_claims(
        &idp,
        json!({ "project_path": "acme/tools/widget", "namespace_path": "acme/tools" }),
    )
    .await?;

    let result = gitlab::match_publishers(&claims, &[gitlab_publisher(1, "widget")]);

    assert!(matches!(result, Err(MatchError::NoConfig(_))));
    assert_eq!(
        mismatch(result)?,
        "No Trusted Publishing config exists for project `acme/tools/widget`; an owner of the \
         crate can add one in the crate's settings."
    );
    Ok(())
}

#[tokio::test]
async fn a_gitlab_token_without_environment_is_refused_when_one_is_configured() -> anyhow::Result<()>
{
    let idp = FakeIdp::start(Idp::GitLab);
    let claims = gitlab_claims(&idp, json!({})).await?;
    let publisher = GitLabPublisher {
        environment: Some("production".to_owned()),
        ..gitlab_publisher(1, "widget")
    };

    let message = mismatch(gitlab::match_publishers(&claims, &[publisher]))?;

    assert_eq!(
        message,
        "No Trusted Publishing config matches project `acme/widget`: the token has no \
         environment, but the config expects `production`."
    );
    Ok(())
}

#[test]
fn claim_paths_are_parsed_like_crates_io_does() {
    assert_eq!(
        github::workflow_filename("octo/widget/.github/workflows/release.yml@refs/tags/v1"),
        Some("release.yml")
    );
    assert_eq!(
        github::workflow_filename("octo/widget/.github/workflows/release.yml@refs/heads/a@b"),
        Some("release.yml")
    );
    assert_eq!(
        github::workflow_filename("octo/widget/release.yml@refs/tags/v1"),
        None
    );
    assert_eq!(
        github::workflow_filename("octo/widget/.github/workflows/release.yml"),
        None
    );
    assert_eq!(
        gitlab::ci_config_path("gitlab.com/group/sub/project//.gitlab-ci.yml@refs/heads/main"),
        Some(".gitlab-ci.yml")
    );
    assert_eq!(
        gitlab::ci_config_path("gitlab.com/group/project//ci/release@v1.yml@refs/tags/v1"),
        Some("ci/release@v1.yml")
    );
    assert_eq!(
        gitlab::ci_config_path("gitlab.com/group/project/.gitlab-ci.yml"),
        None
    );
}

#[actix_web::test]
async fn the_fake_identity_provider_also_runs_under_actix_tests() -> anyhow::Result<()> {
    let idp = FakeIdp::start(Idp::GitLab);

    let identity = gitlab_verifier(&idp)
        .verify(&idp.sign(&idp.gitlab_claims(AUDIENCE, json!({}))))
        .await?;

    assert_eq!(identity.repository(), "acme/widget");
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
