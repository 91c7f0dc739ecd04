//! GitHub login: the OAuth authorization-code flow with a `state` check and PKCE, then the
//! GitHub user API, then the matching Wharf user (created or updated).
//!
//! No actix here: [`crate::pages::login`] keeps the `state` and PKCE verifier in the session and
//! calls [`start`] and [`finish`]. The access token is used for two API calls and dropped; it is
//! never stored or logged.

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

use crate::config::Config;
use crate::db::DbConn;
use crate::errors::{AppResult, conflict};
use crate::models::User;
use crate::models::user::NewUser;
use crate::schema::users;

type GitHubClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The path GitHub sends the browser back to.
pub const CALLBACK_PATH: &str = "/login/github/callback";

/// What the login must remember until GitHub sends the browser back (kept in the session).
pub struct LoginStart {
    /// Where to send the browser.
    pub authorize_url: String,
    pub state: String,
    pub pkce_verifier: String,
}

/// The GitHub account that logged in.
#[derive(Debug, Clone, Deserialize)]
pub struct GitHubUser {
    pub id: i64,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    /// The primary, verified address from `/user/emails` (never the profile's).
    #[serde(skip)]
    pub email: Option<String>,
    /// Whether `/user/emails` answered (else the stored address is kept).
    #[serde(skip)]
    pub emails_read: bool,
}

/// The primary address, if GitHub has verified it and it is a valid address.
fn primary_verified(emails: Vec<GitHubEmail>) -> Option<String> {
    emails
        .into_iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email)
        .filter(|e| e.parse::<lettre::Address>().is_ok())
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

fn client(config: &Config) -> anyhow::Result<GitHubClient> {
    let oauth = config
        .github
        .oauth
        .as_ref()
        .context("GitHub login is not configured")?;
    let github = config.github.url.as_str().trim_end_matches('/');
    Ok(BasicClient::new(ClientId::new(oauth.client_id.clone()))
        .set_client_secret(ClientSecret::new(oauth.client_secret.expose().to_owned()))
        .set_auth_uri(AuthUrl::new(format!("{github}/login/oauth/authorize"))?)
        .set_token_uri(TokenUrl::new(format!("{github}/login/oauth/access_token"))?)
        .set_redirect_uri(RedirectUrl::new(format!(
            "{}{CALLBACK_PATH}",
            config.base_url()
        ))?))
}

/// The URL of GitHub's authorize page, with a fresh `state` and PKCE challenge.
pub fn start(config: &Config) -> anyhow::Result<LoginStart> {
    let client = client(config)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read:user".to_owned()))
        .add_scope(Scope::new("user:email".to_owned()));
    if !config.github.allowed_orgs.is_empty() {
        // Only to read the user's own organisation memberships at login.
        request = request.add_scope(Scope::new("read:org".to_owned()));
    }
    let (url, state) = request.set_pkce_challenge(challenge).url();
    Ok(LoginStart {
        authorize_url: url.to_string(),
        state: state.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

/// Why a GitHub login did not go through.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// `WHARF_GITHUB_ALLOWED_ORGS` is set and the account is an active member of none of them.
    #[error("{}", not_a_member(.orgs, .pending))]
    NotAMember {
        /// The allowed organisations.
        orgs: Vec<String>,
        /// Those of them whose invitation the user has not accepted yet.
        pending: Vec<String>,
    },
    /// GitHub refused the code, or did not answer as expected.
    #[error(transparent)]
    GitHub(#[from] anyhow::Error),
}

fn not_a_member(orgs: &[String], pending: &[String]) -> String {
    let list = orgs.join(", ");
    let mut message = format!(
        "Logging in to this registry is limited to active members of the GitHub organisation{} {list}, and GitHub does not list the account you signed in with as an active member of {}.",
        if orgs.len() == 1 { "" } else { "s" },
        if orgs.len() == 1 { "it" } else { "any of them" },
    );
    if !pending.is_empty() {
        message.push_str(&format!(
            " Your invitation to {} is still pending: accept it on GitHub, then log in again.",
            pending.join(", ")
        ));
    } else {
        message.push_str(
            " Ask an owner of the organisation to add you; if you are a member already, make sure the organisation allows this registry's OAuth app (GitHub settings, Applications), then log in again.",
        );
    }
    message
}

/// Exchanges the code (with the PKCE verifier) for an access token and reads the user; with
/// `WHARF_GITHUB_ALLOWED_ORGS`, first checks that the user is an active member of one of them.
pub async fn finish(
    config: &Config,
    http: &reqwest::Client,
    code: String,
    pkce_verifier: String,
) -> Result<GitHubUser, LoginError> {
    let client = client(config)?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
        .request_async(http)
        .await
        .map_err(|e| anyhow::anyhow!("GitHub refused the login code: {e}"))?;
    let access_token = token.access_token().secret();
    let api = config.github.api_url.as_str().trim_end_matches('/');
    check_membership(config, http, access_token).await?;
    let mut user: GitHubUser = github_get(http, &format!("{api}/user"), access_token)
        .await
        .context("cannot read the GitHub user")?;
    // The address notification mail goes to: the primary, verified one, read at every login
    // (the profile's public email may be unverified or absent). If GitHub does not answer, the
    // address stored before is kept.
    user.email = None;
    user.emails_read = false;
    match github_get::<Vec<GitHubEmail>>(http, &format!("{api}/user/emails"), access_token).await {
        Ok(emails) => {
            user.email = primary_verified(emails);
            user.emails_read = true;
        }
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot read the GitHub user's emails")
        }
    }
    Ok(user)
}

/// With `WHARF_GITHUB_ALLOWED_ORGS`: `Ok` when `GET /user/memberships/orgs/{org}` says
/// `"state": "active"` for one of the organisations. A 403 or 404 means "not a member" (GitHub
/// answers so for non-members, and for organisations that do not allow this OAuth app); any other
/// failure is an error, so a login is never let through unchecked.
async fn check_membership(
    config: &Config,
    http: &reqwest::Client,
    access_token: &str,
) -> Result<(), LoginError> {
    #[derive(Deserialize)]
    struct Membership {
        state: String,
    }

    let orgs = &config.github.allowed_orgs;
    if orgs.is_empty() {
        return Ok(());
    }
    let api = config.github.api_url.as_str().trim_end_matches('/');
    let mut pending = Vec::new();
    for org in orgs {
        let url = format!("{api}/user/memberships/orgs/{org}");
        let response = github_request(http, &url, access_token)
            .send()
            .await
            .with_context(|| format!("cannot reach GitHub to check the membership of {org}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            continue;
        }
        if !status.is_success() {
            return Err(anyhow::anyhow!("GitHub answered {status} for {url}").into());
        }
        let membership: Membership = response
            .json()
            .await
            .with_context(|| format!("GitHub answered {url} with an unexpected body"))?;
        match membership.state.as_str() {
            "active" => return Ok(()),
            "pending" => pending.push(org.clone()),
            _ => {}
        }
    }
    Err(LoginError::NotAMember {
        orgs: orgs.clone(),
        pending,
    })
}

fn github_request(
    http: &reqwest::Client,
    url: &str,
    access_token: &str,
) -> reqwest::RequestBuilder {
    http.get(url)
        .bearer_auth(access_token)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
}

async fn github_get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    access_token: &str,
) -> anyhow::Result<T> {
    let response = github_request(http, url, access_token).send().await?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("GitHub answered {status} for {url}");
    }
    Ok(response.json().await?)
}

/// The Wharf user for a GitHub account: found by GitHub id first, then by login among users
/// without a GitHub id (created by `wharf admin user add`), else created. Login, name, avatar
/// and email are refreshed from GitHub.
pub fn upsert_user(conn: &mut DbConn, gh: &GitHubUser, now: NaiveDateTime) -> AppResult<User> {
    if !crate::models::user::valid_login(&gh.login) {
        return Err(crate::errors::bad_request(
            "GitHub sent a login that is not valid",
        ));
    }
    let existing = match User::by_github_id(conn, gh.id)? {
        Some(user) => Some(user),
        None => User::by_login(conn, &gh.login)?.filter(|u| u.github_id.is_none()),
    };
    if let Some(other) = User::by_login(conn, &gh.login)?
        && existing.as_ref().is_none_or(|e| e.id != other.id)
    {
        return Err(conflict(format!(
            "the login `{}` belongs to another account on this registry (a different GitHub account had it before); ask an administrator to rename that account",
            gh.login
        )));
    }
    match existing {
        Some(user) => {
            diesel::update(users::table.find(user.id))
                .set((
                    users::login.eq(&gh.login),
                    users::github_id.eq(gh.id),
                    users::name.eq(gh.name.as_deref()),
                    users::avatar_url.eq(gh.avatar_url.as_deref()),
                    users::email.eq(if gh.emails_read {
                        gh.email.as_deref()
                    } else {
                        user.email.as_deref()
                    }),
                    users::updated_at.eq(now),
                ))
                .execute(conn)?;
            Ok(User::by_id(conn, user.id)?)
        }
        None => Ok(NewUser {
            login: &gh.login,
            github_id: Some(gh.id),
            name: gh.name.as_deref(),
            email: gh.email.as_deref(),
            avatar_url: gh.avatar_url.as_deref(),
            is_admin: false,
            created_at: now,
            updated_at: now,
        }
        .insert(conn)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(email: &str, primary: bool, verified: bool) -> GitHubEmail {
        GitHubEmail {
            email: email.to_owned(),
            primary,
            verified,
        }
    }

    #[test]
    fn only_the_primary_verified_valid_address_is_taken() {
        let cases = [
            (
                vec![
                    email("work@example.com", false, true),
                    email("me@example.com", true, true),
                ],
                Some("me@example.com"),
            ),
            (vec![email("me@example.com", true, false)], None),
            (vec![email("other@example.com", false, true)], None),
            (vec![email("not an address", true, true)], None),
            (vec![], None),
        ];
        for (emails, expected) in cases {
            assert_eq!(primary_verified(emails).as_deref(), expected);
        }
    }
}
