//! `/users/{login}`: a user's public profile — the crates they own. The crate API's owner and
//! `published_by` entries link here.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::home::SearchResult;
use super::{Layout, PageContext, PageResult, render, see_other};
use crate::app::App;
use crate::errors::not_found;
use crate::models::{User, crate_owner, version};

#[derive(Template)]
#[template(path = "user.html")]
pub struct UserPage {
    layout: Layout,
    login: String,
    name: String,
    crates: Vec<SearchResult>,
}

/// `GET /users/{login}`; another spelling of the login redirects to the user's own.
pub async fn show(
    app: web::Data<App>,
    ctx: PageContext,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    let login = path.into_inner();
    let lookup = login.clone();
    let found = app
        .db
        .run(move |conn| {
            let Some(user) = User::by_login(conn, &lookup)? else {
                return Ok(None);
            };
            let mut crates = Vec::new();
            for krate in crate_owner::crates_of(conn, user.id)? {
                let max = version::max_version(conn, krate.id)?;
                crates.push(SearchResult {
                    name: krate.name,
                    max_version: max.unwrap_or_default(),
                    description: krate.description.unwrap_or_default(),
                });
            }
            Ok(Some((user, crates)))
        })
        .await?;
    let Some((user, crates)) = found else {
        return Err(not_found(format!("there is no user called {login} here")).into());
    };
    if user.login != login {
        return Ok(see_other(&format!("/users/{}", user.login)));
    }
    render(&UserPage {
        layout: ctx.layout,
        name: user.name.unwrap_or_default(),
        login: user.login,
        crates,
    })
}
