//! `/me`: the logged-in user's dashboard — a token for cargo, their crates and where to manage
//! them, their open sessions, and "log out everywhere".
//!
//! `cargo login` tells people to paste "the token found on <registry>/me", so `/me` also
//! answers anonymous visitors: with GitHub login on they log in and come back to token
//! creation; without it, no login exists to send them to, and the page says how the operator
//! of this instance creates a token.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use askama::Template;

use super::errors::PageError;
use super::session::{self, CsrfForm, CurrentUser, Layout, PageContext};
use super::{PageResult, render, see_other};
use crate::app::App;
use crate::auth::session as auth_session;
use crate::config::Config;
use crate::models::version::max_version;
use crate::models::{crate_owner, now};

pub struct MyCrate {
    pub name: String,
    pub max_version: String,
    pub trustpub_only: bool,
}

/// Where API tokens are created (the page's form).
pub const TOKENS_PAGE: &str = "/settings/tokens";

/// What a visitor needs to get a token and use it with cargo on this instance; shown where no
/// web login exists (`/me` and `/login` without GitHub login).
pub struct TokenHelp {
    /// The `index` of cargo's `[registries.…]` entry.
    pub index_url: String,
    /// The `Cargo.toml` keys every publish must set (`WHARF_REQUIRED_METADATA`).
    pub required_metadata: Vec<&'static str>,
}

impl TokenHelp {
    pub fn new(config: &Config) -> Self {
        Self {
            index_url: format!("sparse+{}/index/", config.base_url()),
            required_metadata: config
                .required_metadata
                .fields()
                .map(|field| field.key())
                .collect(),
        }
    }
}

/// `/me` for an anonymous visitor when GitHub login is off.
#[derive(Template)]
#[template(path = "token_help.html")]
pub struct TokenHelpPage {
    layout: Layout,
    help: TokenHelp,
}

#[derive(Template)]
#[template(path = "me.html")]
pub struct MePage {
    layout: Layout,
    help: TokenHelp,
    login: String,
    crates: Vec<MyCrate>,
    /// Live sessions of this user, this one included.
    sessions: i64,
    /// How long a login lasts, in words.
    session_lifetime: String,
}

/// `GET /me`: the dashboard, with token creation first. Anonymous visitors are sent to log in
/// and come back to token creation, or, without GitHub login, told how to get a token here.
pub async fn dashboard(app: web::Data<App>, ctx: PageContext) -> PageResult<HttpResponse> {
    let Some(user) = ctx.user else {
        if app.config.github.oauth.is_some() {
            return Err(PageError::LoginRequired {
                next: TOKENS_PAGE.to_owned(),
            });
        }
        return render(&TokenHelpPage {
            layout: ctx.layout,
            help: TokenHelp::new(&app.config),
        });
    };
    let user_id = user.id;
    let (crates, sessions) = app
        .db
        .run(move |conn| {
            let mut out = Vec::new();
            for krate in crate_owner::crates_of(conn, user_id)? {
                out.push(MyCrate {
                    max_version: max_version(conn, krate.id)?.unwrap_or_default(),
                    trustpub_only: krate.trustpub_only,
                    name: krate.name,
                });
            }
            let sessions = crate::models::session::count_live(conn, user_id, now())?;
            Ok((out, sessions))
        })
        .await?;
    render(&MePage {
        layout: ctx.layout,
        help: TokenHelp::new(&app.config),
        login: user.login,
        crates,
        sessions,
        session_lifetime: lifetime(app.config.session_ttl),
    })
}

/// `POST /me/logout-everywhere`: ends every session of this user (other browsers, copied
/// cookies, this one).
pub async fn log_out_everywhere(
    app: web::Data<App>,
    user: CurrentUser,
    _form: CsrfForm,
) -> PageResult<HttpResponse> {
    let ended = auth_session::log_out_everywhere(&app, &user.session, user.user.id).await?;
    tracing::info!(
        user.id = user.user.id,
        sessions = ended,
        "logged out everywhere"
    );
    session::flash(
        &user.session,
        "success",
        format!(
            "Logged out everywhere: {ended} session{} ended.",
            if ended == 1 { "" } else { "s" }
        ),
    )?;
    Ok(see_other("/"))
}

/// `14 days`, `8 hours`, `90 seconds`.
fn lifetime(ttl: Duration) -> String {
    let secs = ttl.as_secs();
    let (n, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_in_the_largest_whole_unit() {
        let cases = [
            (14 * 86_400, "14 days"),
            (86_400, "1 day"),
            (8 * 3_600, "8 hours"),
            (90 * 60, "90 minutes"),
            (90, "90 seconds"),
            (1, "1 second"),
        ];
        for (secs, words) in cases {
            assert_eq!(lifetime(Duration::from_secs(secs)), words);
        }
    }
}
