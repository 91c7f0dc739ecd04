//! `/me`: the logged-in user's dashboard — their crates and where to manage them, their open
//! sessions, and "log out everywhere".

use std::time::Duration;

use actix_web::{HttpResponse, web};
use askama::Template;

use super::session::{self, CsrfForm, CurrentUser, Layout};
use super::{PageResult, render, see_other};
use crate::app::App;
use crate::models::version::max_version;
use crate::models::{crate_owner, now};

pub struct MyCrate {
    pub name: String,
    pub max_version: String,
    pub trustpub_only: bool,
}

#[derive(Template)]
#[template(path = "me.html")]
pub struct MePage {
    layout: Layout,
    login: String,
    crates: Vec<MyCrate>,
    /// Live sessions of this user, this one included.
    sessions: i64,
    /// How long a login lasts, in words.
    session_lifetime: String,
}

/// `GET /me`
pub async fn dashboard(app: web::Data<App>, user: CurrentUser) -> PageResult<HttpResponse> {
    let user_id = user.user.id;
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
        layout: user.layout,
        login: user.user.login,
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
    let ended = session::log_out_everywhere(&app, &user.session, user.user.id).await?;
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
