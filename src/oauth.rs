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
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read:user".to_owned()))
        .add_scope(Scope::new("user:email".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    Ok(LoginStart {
        authorize_url: url.to_string(),
        state: state.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

/// Exchanges the code (with the PKCE verifier) for an access token and reads the user.
pub async fn finish(
    config: &Config,
    http: &reqwest::Client,
    code: String,
    pkce_verifier: String,
) -> anyhow::Result<GitHubUser> {
    let client = client(config)?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
        .request_async(http)
        .await
        .map_err(|e| anyhow::anyhow!("GitHub refused the login code: {e}"))?;
    let access_token = token.access_token().secret();
    let api = config.github.api_url.as_str().trim_end_matches('/');
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

async fn github_get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    access_token: &str,
) -> anyhow::Result<T> {
    let response = http
        .get(url)
        .bearer_auth(access_token)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await?;
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
