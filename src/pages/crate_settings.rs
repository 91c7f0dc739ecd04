//! `/crates/{name}/settings`: for owners only. Trusted publishers (a list and an "add" form per
//! provider of the registry in `trustpub::providers`, remove with a confirmation step), the unexpired publish tokens they exchanged
//! (revoke), "require Trusted Publishing", owners, and the crate's audit log.
//!
//! The rules for publisher configs live in [`crate::services::publishers`] (shared with the JSON API):
//! these handlers call it and only turn its answers into forms, field errors and redirects.
//! Every handler checks ownership at the time of the request, so a crafted POST from a
//! non-owner is refused with 403 like the page itself.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::Value;

use super::session::{self, CsrfForm, CurrentUser, Layout};
use super::{PageResult, format_time, render_with_status, see_other};
use crate::app::App;
use crate::errors::{AppError, AppResult, bad_request, not_found};
use crate::models::crate_owner;
use crate::models::krate::find_crate;
use crate::models::{Crate, User, audit, now};
use crate::services::owners::{self, OwnersError};
use crate::services::publishers::{self, ConfigSummary, PublisherError};
use crate::trustpub::provider::{Cell, FieldError, Provider};
use crate::trustpub::providers::{ProviderKind, with_provider};

const AUDIT_ROWS: i64 = 100;

/// Field values and the error next to each field, plus one error for the whole form.
#[derive(Default)]
pub struct FormState {
    values: HashMap<&'static str, String>,
    errors: HashMap<&'static str, String>,
    pub form_error: Option<String>,
}

impl FormState {
    pub fn value(&self, field: &str) -> &str {
        self.values.get(field).map_or("", String::as_str)
    }

    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    pub(super) fn with_values(form: &CsrfForm, fields: &[&'static str]) -> Self {
        FormState {
            values: fields
                .iter()
                .map(|f| (*f, form.get(f).trim().to_owned()))
                .collect(),
            ..FormState::default()
        }
    }

    pub(super) fn field_errors(mut self, errors: Vec<FieldError>) -> Self {
        for e in errors {
            let message = capitalise(&e.message);
            match self.values.contains_key(e.field) {
                true => {
                    self.errors.insert(e.field, message);
                }
                false => self.form_error = Some(message),
            }
        }
        self
    }

    /// A client error from the service that belongs to no field: above the form. Other
    /// errors (403, 404, 5xx) are the page's, not the form's.
    pub(super) fn form_level(mut self, error: AppError) -> Result<Self, AppError> {
        if error.status() != StatusCode::BAD_REQUEST {
            return Err(error);
        }
        self.form_error = Some(capitalise(error.detail()));
        Ok(self)
    }

    fn error_on(mut self, field: &'static str, message: impl Into<String>) -> Self {
        self.errors.insert(field, message.into());
        self
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[derive(Default)]
pub struct Forms {
    /// The "add a publisher" form that was submitted, with its values and errors.
    pub publisher: Option<(ProviderKind, FormState)>,
    pub owner: FormState,
}

/// A config in a provider's list.
pub struct ConfigRow {
    pub id: i64,
    pub cells: Vec<Cell>,
    pub description: String,
    pub added: String,
}

/// One field of an "add a publisher" form.
pub struct FieldView {
    pub id: String,
    pub name: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub value: String,
    pub error: Option<String>,
    pub required: bool,
}

/// A provider's part of the page: its configs and its "add" form.
pub struct ProviderSection {
    /// `github`: in element ids and form actions.
    pub kind: &'static str,
    pub label: &'static str,
    pub columns: &'static [&'static str],
    pub rows: Vec<ConfigRow>,
    pub fields: Vec<FieldView>,
    pub form_error: Option<String>,
}

impl ProviderSection {
    pub(super) fn new(
        kind: ProviderKind,
        summaries: &[ConfigSummary],
        form: Option<&FormState>,
    ) -> Self {
        let empty = FormState::default();
        let form = form.unwrap_or(&empty);
        ProviderSection {
            kind: kind.as_str(),
            label: kind.label(),
            columns: kind.columns(),
            rows: summaries
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| ConfigRow {
                    id: s.id,
                    cells: s.cells.clone(),
                    description: s.description.clone(),
                    added: format_time(&s.created_at),
                })
                .collect(),
            fields: kind
                .fields()
                .iter()
                .map(|f| FieldView {
                    id: format!("{}-{}", kind.form_id(), field_id(f.name)),
                    name: f.name,
                    label: f.label,
                    hint: f.hint,
                    value: form.value(f.name).to_owned(),
                    error: form.error(f.name).map(str::to_owned),
                    required: f.required,
                })
                .collect(),
            form_error: form.form_error.clone(),
        }
    }
}

/// The short element id of a field: `repository_owner` → `owner`, `workflow_filename` →
/// `workflow` (the ids the forms have always had).
fn field_id(name: &str) -> String {
    match name {
        "repository_owner" => "owner".to_owned(),
        "repository_name" => "repo".to_owned(),
        "workflow_filename" | "workflow_filepath" => "workflow".to_owned(),
        other => other.replace('_', "-"),
    }
}

/// An unexpired publish token exchanged by a trusted publisher of the crate.
pub struct TokenRow {
    pub id: i64,
    pub actor: String,
    pub run_url: Option<String>,
    pub workflow: String,
    pub expires: String,
}

pub struct AuditRow {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "crates/settings.html")]
pub struct SettingsPage {
    layout: Layout,
    name: String,
    is_owner: bool,
    tab: &'static str,
    trustpub_only: bool,
    providers: Vec<ProviderSection>,
    tokens: Vec<TokenRow>,
    owners: Vec<String>,
    me: String,
    audit: Vec<AuditRow>,
    forms: Forms,
}

impl SettingsPage {
    pub fn has_publishers(&self) -> bool {
        self.providers.iter().any(|p| !p.rows.is_empty())
    }
}

/// A one-line summary of an audit entry's JSON detail (scalar fields only).
fn summarise(detail: &str) -> String {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(detail) else {
        return String::new();
    };
    map.iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some(format!("{k}: {s}")),
            Value::Number(n) => Some(format!("{k}: {n}")),
            Value::Bool(b) => Some(format!("{k}: {b}")),
            _ => None,
        })
        .filter(|s| !s.starts_with("checksum") && !s.starts_with("created_at"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn settings_page(
    app: &App,
    user: CurrentUser,
    name: String,
    forms: Forms,
    status: StatusCode,
) -> PageResult<HttpResponse> {
    let (krate, summaries) = publishers::summaries(app, user.user.clone(), name.clone()).await?;
    let tokens = publishers::exchanged_tokens(app, user.user.clone(), name).await?;
    let crate_id = krate.id;
    let (owners, entries) = app
        .db
        .run(move |conn| {
            Ok((
                crate_owner::owners(conn, crate_id)?,
                audit::for_crate(conn, crate_id, AUDIT_ROWS)?,
            ))
        })
        .await?;
    let page = SettingsPage {
        layout: user.layout,
        name: krate.name,
        is_owner: true,
        tab: "settings",
        trustpub_only: krate.trustpub_only,
        providers: ProviderKind::ALL
            .iter()
            .map(|kind| {
                let form = forms
                    .publisher
                    .as_ref()
                    .filter(|(k, _)| k == kind)
                    .map(|(_, form)| form);
                ProviderSection::new(*kind, &summaries, form)
            })
            .collect(),
        tokens: tokens
            .iter()
            .map(|t| TokenRow {
                id: t.id,
                actor: t.actor.clone(),
                run_url: t.run_url().map(str::to_owned),
                workflow: t.workflow(),
                expires: format_time(&t.expires_at),
            })
            .collect(),
        owners: owners.into_iter().map(|o| o.login).collect(),
        me: user.user.login,
        audit: entries
            .iter()
            .map(|e| AuditRow {
                when: format_time(&e.created_at),
                actor: e.actor.clone(),
                action: e.action.replace('_', " "),
                detail: summarise(&e.detail),
            })
            .collect(),
        forms,
    };
    render_with_status(status, &page)
}

fn settings_url(name: &str) -> String {
    format!("/crates/{name}/settings")
}

/// `GET /crates/{name}/settings`
pub async fn show(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<String>,
) -> PageResult<HttpResponse> {
    settings_page(
        &app,
        user,
        path.into_inner(),
        Forms::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /crates/{name}/settings/{kind}`: adds a publisher of that provider. Creates it
/// through the service and redirects with a flash message, or re-renders the settings with the
/// errors next to the form's fields (422).
pub async fn add_publisher(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<(String, String)>,
    form: CsrfForm,
) -> PageResult<HttpResponse> {
    let (name, kind_name) = path.into_inner();
    let kind = config_kind(&kind_name)?;
    let fields: Vec<&'static str> = kind.fields().iter().map(|f| f.name).collect();
    let state = FormState::with_values(&form, &fields);
    let values: serde_json::Map<String, Value> = fields
        .iter()
        .map(|f| (f.to_string(), Value::String(state.value(f).to_owned())))
        .collect();
    let created = with_provider!(kind, P => {
        match serde_json::from_value::<<P as Provider>::Input>(Value::Object(values)) {
            Ok(input) => publishers::create::<P>(&app, user.user.clone(), name.clone(), input)
                .await
                .map(|(_, config)| P::describe(&config)),
            Err(e) => Err(PublisherError::Other(bad_request(format!("the form is not complete: {e}")))),
        }
    });
    match created {
        Ok(description) => {
            session::flash(
                &user.session,
                "success",
                format!("Added the trusted publisher {description}."),
            )?;
            Ok(see_other(&settings_url(&name)))
        }
        Err(error) => {
            let state = match error {
                PublisherError::Fields(errors) => state.field_errors(errors),
                PublisherError::Other(error) => state.form_level(error)?,
            };
            let forms = Forms {
                publisher: Some((kind, state)),
                ..Forms::default()
            };
            settings_page(&app, user, name, forms, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

fn config_kind(kind: &str) -> AppResult<ProviderKind> {
    ProviderKind::from_kind(kind)
        .ok_or_else(|| not_found("there is no such kind of trusted publisher"))
}

/// The publisher `id` of kind `kind` of crate `name` (which the user must own), described.
async fn find_publisher(
    app: &App,
    user: &User,
    name: String,
    kind: ProviderKind,
    id: i64,
) -> AppResult<(Crate, String)> {
    let (krate, summaries) = publishers::summaries(app, user.clone(), name).await?;
    let summary = summaries
        .iter()
        .find(|s| s.kind == kind && s.id == id)
        .ok_or_else(|| {
            not_found(format!(
                "crate `{}` has no trusted publisher {id}",
                krate.name
            ))
        })?;
    let description = format!("{}: {}", kind.label(), summary.description);
    Ok((krate, description))
}

#[derive(Template)]
#[template(path = "crates/remove_publisher.html")]
pub struct RemovePage {
    layout: Layout,
    name: String,
    is_owner: bool,
    tab: &'static str,
    kind: String,
    id: i64,
    description: String,
    /// How many unexpired publish tokens removing it revokes.
    tokens: i64,
}

/// `GET /crates/{name}/settings/{kind}/{id}/remove`: the confirmation step (no JavaScript).
pub async fn confirm_remove(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<(String, String, i64)>,
) -> PageResult<HttpResponse> {
    let (name, kind_name, id) = path.into_inner();
    let kind = config_kind(&kind_name)?;
    let (krate, description) = find_publisher(&app, &user.user, name, kind, id).await?;
    let tokens = publishers::tokens_minted_through(&app, kind, id).await?;
    render_with_status(
        StatusCode::OK,
        &RemovePage {
            layout: user.layout,
            name: krate.name,
            is_owner: true,
            tab: "settings",
            kind: kind_name,
            id,
            description,
            tokens,
        },
    )
}

/// `POST /crates/{name}/settings/{kind}/{id}/remove`
pub async fn remove(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<(String, String, i64)>,
    _form: CsrfForm,
) -> PageResult<HttpResponse> {
    let (name, kind_name, id) = path.into_inner();
    let kind = config_kind(&kind_name)?;
    // The config must belong to this crate, not just to some crate the user owns.
    let (krate, description) = find_publisher(&app, &user.user, name, kind, id).await?;
    let revoked =
        with_provider!(kind, P => publishers::delete::<P>(&app, user.user.clone(), id).await?);
    let tokens = match revoked {
        0 => String::new(),
        1 => " and revoked the publish token it had exchanged".to_owned(),
        n => format!(" and revoked the {n} publish tokens it had exchanged"),
    };
    session::flash(
        &user.session,
        "success",
        format!("Removed the trusted publisher {description}{tokens}."),
    )?;
    Ok(see_other(&settings_url(&krate.name)))
}

/// `POST /crates/{name}/settings/tokens/{id}/revoke`: an owner revokes a publish token that a
/// trusted publisher exchanged (it can no longer publish this crate).
pub async fn revoke_token(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<(String, i64)>,
    _form: CsrfForm,
) -> PageResult<HttpResponse> {
    let (name, id) = path.into_inner();
    let (krate, token) =
        publishers::revoke_exchanged_token(&app, user.user.clone(), name, id).await?;
    let run = token
        .run_url()
        .map(|url| format!(" (run {url})"))
        .unwrap_or_default();
    session::flash(
        &user.session,
        "success",
        format!(
            "Revoked the publish token of {}{run}: it can no longer publish {}.",
            token.actor, krate.name
        ),
    )?;
    Ok(see_other(&settings_url(&krate.name)))
}

/// `POST /crates/{name}/settings/trustpub-only` with `trustpub_only=true|false`.
pub async fn set_trustpub_only(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<String>,
    form: CsrfForm,
) -> PageResult<HttpResponse> {
    let value = match form.get("trustpub_only") {
        "true" => true,
        "false" => false,
        _ => return Err(bad_request("trustpub_only must be true or false").into()),
    };
    let name = path.into_inner();
    let krate = publishers::set_trustpub_only(&app, user.user.clone(), name.clone(), value).await?;
    let (_, summaries) = publishers::summaries(&app, user.user.clone(), name).await?;
    let (kind, message) = match (value, summaries.is_empty()) {
        (true, true) => (
            "warning",
            "Trusted Publishing is now required, but this crate has no trusted publisher: nobody can publish new versions until you add one.",
        ),
        (true, false) => (
            "success",
            "Trusted Publishing is now required: new versions can only be published from the trusted publishers below.",
        ),
        (false, _) => (
            "success",
            "Trusted Publishing is no longer required: owners' API tokens can publish again.",
        ),
    };
    session::flash(&user.session, kind, message)?;
    Ok(see_other(&settings_url(&krate.name)))
}

/// What a call to the owners service inside a transaction can fail with: the service's
/// typed error (some of whose variants the form shows next to its field) or anything else.
enum ServiceError {
    Owners(OwnersError),
    App(AppError),
}

impl From<OwnersError> for ServiceError {
    fn from(error: OwnersError) -> Self {
        ServiceError::Owners(error)
    }
}

impl From<AppError> for ServiceError {
    fn from(error: AppError) -> Self {
        ServiceError::App(error)
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(error: diesel::result::Error) -> Self {
        ServiceError::App(error.into())
    }
}

/// `POST /crates/{name}/settings/owners` with `login`: adds an owner (who must have logged in
/// once, or been created by an operator). The rules are in [`crate::services::owners`].
pub async fn add_owner(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<String>,
    form: CsrfForm,
) -> PageResult<HttpResponse> {
    let name = path.into_inner();
    let state = FormState::with_values(&form, &["login"]);
    let login = state.value("login").to_owned();
    let logins: Vec<String> = if login.is_empty() {
        Vec::new()
    } else {
        vec![login]
    };
    let me = user.user.clone();
    let crate_name = name.clone();
    let result = app
        .db
        .transaction_with(move |conn| -> Result<_, ServiceError> {
            let krate = find_crate(conn, &crate_name).map_err(OwnersError::from)?;
            let added = owners::add(conn, &me, &krate, &logins, now())?;
            Ok((krate.name, added.join(", ")))
        })
        .await;
    let error = match result {
        Ok((crate_name, login)) => {
            session::flash(
                &user.session,
                "success",
                format!("{login} is now an owner of {crate_name}."),
            )?;
            return Ok(see_other(&settings_url(&crate_name)));
        }
        Err(error) => error,
    };
    // Mistakes in the login go next to the field; the rest (not an owner, no such crate) is
    // the page's error.
    let state = match error {
        ServiceError::Owners(OwnersError::NoLogins) => {
            state.error_on("login", "Enter the login of the user to add.")
        }
        ServiceError::Owners(
            error @ (OwnersError::UnknownUser { .. } | OwnersError::AlreadyOwner { .. }),
        ) => state.error_on("login", capitalise(&error.to_string())),
        ServiceError::Owners(error) => return Err(AppError::from(error).into()),
        ServiceError::App(error) => return Err(error.into()),
    };
    let forms = Forms {
        owner: state,
        ..Forms::default()
    };
    settings_page(&app, user, name, forms, StatusCode::UNPROCESSABLE_ENTITY).await
}

/// `POST /crates/{name}/settings/owners/remove` with `login`. The last owner stays.
pub async fn remove_owner(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<String>,
    form: CsrfForm,
) -> PageResult<HttpResponse> {
    let name = path.into_inner();
    let login = form.get("login").trim().to_owned();
    let me = user.user.clone();
    let (crate_name, login) = app
        .db
        .transaction(move |conn| {
            let krate = find_crate(conn, &name)?;
            let removed = owners::remove(conn, &me, &krate, &[login], now())?;
            Ok((krate.name, removed.join(", ")))
        })
        .await?;
    session::flash(
        &user.session,
        "success",
        format!("{login} is no longer an owner of {crate_name}."),
    )?;
    // Removing oneself ends access to the settings.
    if login.eq_ignore_ascii_case(&user.user.login) {
        return Ok(see_other(&format!("/crates/{crate_name}")));
    }
    Ok(see_other(&settings_url(&crate_name)))
}
