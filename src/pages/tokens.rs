//! `/settings/tokens`: the user's API tokens. Create one (name, endpoint scopes, crate
//! patterns, expiry; the token is shown once, in the answer to the form, with the
//! `[registries.wharf]` entry and the cargo commands that use it), list, revoke. The rules for a
//! new token are in [`crate::services::tokens`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::me::TokenHelp;
use super::session::{self, CsrfForm, CurrentUser, Layout};
use super::{PageResult, format_time, no_store, render_with_status, see_other};
use crate::app::App;
use crate::errors::not_found;
use crate::models::{ApiToken, now};
use crate::services::tokens::{self as service, TokenRequest};
use crate::tokens::EndpointScope;

/// The expiry choices of the form: (value, label, days).
const EXPIRIES: [(&str, &str, Option<i64>); 5] = [
    ("30", "30 days", Some(30)),
    ("90", "90 days", Some(90)),
    ("365", "1 year", Some(365)),
    ("7", "7 days", Some(7)),
    ("never", "No expiry", None),
];

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub scopes: String,
    pub crates: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    /// "active", "expired" or "revoked".
    pub status: &'static str,
}

/// The values and errors of the create form.
#[derive(Default)]
pub struct TokenForm {
    pub name: String,
    pub scopes: Vec<String>,
    pub crates: String,
    pub expiry: String,
    pub name_error: Option<String>,
    pub scopes_error: Option<String>,
    pub crates_error: Option<String>,
    pub expiry_error: Option<String>,
}

impl TokenForm {
    fn has_errors(&self) -> bool {
        self.name_error.is_some()
            || self.scopes_error.is_some()
            || self.crates_error.is_some()
            || self.expiry_error.is_some()
    }

    pub fn scope_checked(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

pub struct ScopeChoice {
    pub value: &'static str,
    pub description: &'static str,
}

#[derive(Template)]
#[template(path = "settings/tokens.html")]
pub struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
    form: TokenForm,
    scope_choices: Vec<ScopeChoice>,
    expiries: Vec<(&'static str, &'static str)>,
    /// The token just created, shown this once.
    new_token: Option<String>,
    /// How cargo uses it on this instance (its real public URL), shown with the new token.
    help: TokenHelp,
}

fn scope_choices() -> Vec<ScopeChoice> {
    EndpointScope::ALL
        .iter()
        .map(|scope| ScopeChoice {
            value: scope.as_str(),
            description: match scope {
                EndpointScope::PublishNew => "publish new crates",
                EndpointScope::PublishUpdate => "publish new versions of existing crates",
                EndpointScope::Yank => "yank and unyank versions",
                EndpointScope::ChangeOwners => "add and remove owners",
                EndpointScope::TrustedPublishing => "manage trusted publishers",
            },
        })
        .collect()
}

async fn page(
    app: &web::Data<App>,
    user: CurrentUser,
    status: StatusCode,
    form: TokenForm,
    new_token: Option<String>,
) -> PageResult<HttpResponse> {
    let user_id = user.user.id;
    let tokens = app
        .db
        .run(move |conn| Ok(ApiToken::for_user(conn, user_id)?))
        .await?;
    let now = now();
    let rows = tokens
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            status: if t.revoked_at.is_some() {
                "revoked"
            } else if t.is_live(now) {
                "active"
            } else {
                "expired"
            },
            scopes: t
                .endpoint_scopes
                .clone()
                .map_or_else(|| "all".to_owned(), |s| s.replace(',', ", ")),
            crates: t
                .crate_scopes
                .clone()
                .map_or_else(|| "all".to_owned(), |s| s.replace(',', ", ")),
            created: format_time(&t.created_at),
            last_used: t
                .last_used_at
                .as_ref()
                .map_or_else(|| "never".to_owned(), format_time),
            expires: t
                .expires_at
                .as_ref()
                .map_or_else(|| "never".to_owned(), format_time),
            name: t.name,
        })
        .collect();
    let page = TokensPage {
        layout: user.layout,
        tokens: rows,
        form,
        scope_choices: scope_choices(),
        expiries: EXPIRIES.iter().map(|(v, l, _)| (*v, *l)).collect(),
        new_token,
        help: TokenHelp::new(&app.config),
    };
    Ok(no_store(render_with_status(status, &page)?))
}

/// `GET /settings/tokens`
pub async fn list(app: web::Data<App>, user: CurrentUser) -> PageResult<HttpResponse> {
    let form = TokenForm {
        expiry: "90".to_owned(),
        ..TokenForm::default()
    };
    page(&app, user, StatusCode::OK, form, None).await
}

/// `POST /settings/tokens`: 200 with the new token shown once, or 422 with the errors.
pub async fn create(
    app: web::Data<App>,
    user: CurrentUser,
    form: CsrfForm,
) -> PageResult<HttpResponse> {
    let mut values = TokenForm {
        name: form.get("name").trim().to_owned(),
        scopes: form.all("scope").into_iter().map(str::to_owned).collect(),
        crates: form.get("crates").trim().to_owned(),
        expiry: form.get("expiry").to_owned(),
        ..TokenForm::default()
    };
    let lifetime = EXPIRIES
        .iter()
        .find(|(v, _, _)| *v == values.expiry)
        .map(|(_, _, days)| days.map(chrono::Duration::days));
    let request = TokenRequest {
        name: values.name.clone(),
        scopes: Some(values.scopes.clone()),
        crates: values
            .crates
            .split([',', '\n', ' '])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        lifetime: lifetime.flatten(),
    };
    let valid = service::validate(&request, now());
    if lifetime.is_none() {
        values.expiry_error = Some("Choose an expiry from the list.".into());
    }
    if let Err(errors) = &valid {
        for error in errors {
            let message = Some(sentence(&error.message));
            match error.field {
                service::NAME => values.name_error = message,
                service::SCOPES => values.scopes_error = message,
                service::CRATES => values.crates_error = message,
                _ => values.expiry_error = message,
            }
        }
    }
    let valid = match valid {
        Ok(valid) if !values.has_errors() => valid,
        _ => return page(&app, user, StatusCode::UNPROCESSABLE_ENTITY, values, None).await,
    };

    let user_id = user.user.id;
    let created = app
        .db
        .run(move |conn| Ok(service::create(conn, user_id, &valid, now())?))
        .await?;
    tracing::info!(user.id = user_id, "API token created");
    let fresh = TokenForm {
        expiry: "90".to_owned(),
        ..TokenForm::default()
    };
    page(&app, user, StatusCode::OK, fresh, Some(created.token)).await
}

/// A service message as a sentence: capitalised, with a full stop.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut text: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// `POST /settings/tokens/{id}/revoke`: only the user's own tokens.
pub async fn revoke(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<i64>,
    _form: CsrfForm,
) -> PageResult<HttpResponse> {
    let id = path.into_inner();
    let user_id = user.user.id;
    let name = app
        .db
        .run(move |conn| {
            let token = ApiToken::for_user(conn, user_id)?
                .into_iter()
                .find(|t| t.id == id)
                .ok_or_else(|| not_found("you have no API token with this id"))?;
            ApiToken::revoke(conn, id, now())?;
            Ok(token.name)
        })
        .await?;
    // A private registry stops reading with it here at once (elsewhere within seconds).
    app.token_cache.clear();
    session::flash(
        &user.session,
        "success",
        format!("The token “{name}” has been revoked."),
    )?;
    Ok(see_other("/settings/tokens"))
}
