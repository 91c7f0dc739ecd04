//! `/me`: the logged-in user's dashboard — their crates and where to manage them.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::session::{CurrentUser, Layout};
use super::{PageResult, render};
use crate::app::App;
use crate::models::crate_owner;
use crate::models::version::max_version;

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
}

/// `GET /me`
pub async fn dashboard(app: web::Data<App>, user: CurrentUser) -> PageResult<HttpResponse> {
    let user_id = user.user.id;
    let crates = app
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
            Ok(out)
        })
        .await?;
    render(&MePage {
        layout: user.layout,
        login: user.user.login,
        crates,
    })
}
