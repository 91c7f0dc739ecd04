//! `/settings/pending-publishers`: the user's pending publishers, trusted publishers for a
//! crate that does not exist yet, so that CI can publish its first version. A list (with the
//! expiry, and whether a crate of the name has appeared since, which voids one), an "add" form
//! per provider of the registry (the provider's fields as on a crate's settings page, plus the
//! crate name) and remove. The rules are in [`crate::services::pending`], shared with the JSON
//! API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde_json::Value;

use super::crate_settings::{FormState, ProviderSection};
use super::session::{self, CsrfForm, CurrentUser, Layout};
use super::{PageResult, format_time, render_with_status, see_other};
use crate::app::App;
use crate::errors::{bad_request, not_found};
use crate::services::pending::{self, MAX_PENDING_PER_USER};
use crate::services::publishers::PublisherError;
use crate::trustpub::provider::{Cell, Provider};
use crate::trustpub::providers::{ProviderKind, with_provider};

const PAGE_URL: &str = "/settings/pending-publishers";

/// One pending publisher in the list.
pub struct PendingRow {
    pub id: i64,
    pub crate_name: String,
    pub provider: &'static str,
    pub cells: Vec<Cell>,
    pub description: String,
    pub expires: String,
    pub void: bool,
}

/// A provider's "add" form: its fields (as on the crate settings page) and the crate name.
pub struct AddForm {
    pub section: ProviderSection,
    pub crate_name: String,
    pub crate_error: Option<String>,
}

#[derive(Template)]
#[template(path = "settings/pending_publishers.html")]
pub struct PendingPage {
    layout: Layout,
    rows: Vec<PendingRow>,
    forms: Vec<AddForm>,
    max: usize,
}

async fn page(
    app: &App,
    user: CurrentUser,
    submitted: Option<(ProviderKind, FormState)>,
    status: StatusCode,
) -> PageResult<HttpResponse> {
    let views = pending::list(app, user.user.clone()).await?;
    let rows = views
        .into_iter()
        .map(|v| PendingRow {
            id: v.id,
            crate_name: v.crate_name,
            provider: v.kind.label(),
            cells: v.cells,
            description: v.description,
            expires: format_time(&v.expires_at),
            void: v.void,
        })
        .collect();
    let forms = ProviderKind::ALL
        .iter()
        .map(|kind| {
            let state = submitted
                .as_ref()
                .filter(|(k, _)| k == kind)
                .map(|(_, state)| state);
            AddForm {
                section: ProviderSection::new(*kind, &[], state),
                crate_name: state
                    .map(|s| s.value("crate").to_owned())
                    .unwrap_or_default(),
                crate_error: state.and_then(|s| s.error("crate")).map(str::to_owned),
            }
        })
        .collect();
    let page = PendingPage {
        layout: user.layout,
        rows,
        forms,
        max: MAX_PENDING_PER_USER,
    };
    render_with_status(status, &page)
}

/// `GET /settings/pending-publishers`
pub async fn show(app: web::Data<App>, user: CurrentUser) -> PageResult<HttpResponse> {
    page(&app, user, None, StatusCode::OK).await
}

/// `POST /settings/pending-publishers/{kind}`: adds a pending publisher of that provider, then
/// redirects with a flash message, or re-renders the page with the errors next to the form's
/// fields (422).
pub async fn add(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<String>,
    form: CsrfForm,
) -> PageResult<HttpResponse> {
    let kind = ProviderKind::from_kind(&path.into_inner())
        .ok_or_else(|| not_found("there is no such kind of trusted publisher"))?;
    let mut fields: Vec<&'static str> = kind.fields().iter().map(|f| f.name).collect();
    fields.push("crate");
    let state = FormState::with_values(&form, &fields);
    let values: serde_json::Map<String, Value> = kind
        .fields()
        .iter()
        .map(|f| {
            (
                f.name.to_owned(),
                Value::String(state.value(f.name).to_owned()),
            )
        })
        .collect();
    let crate_name = state.value("crate").to_owned();
    let created = with_provider!(kind, P => {
        match serde_json::from_value::<<P as Provider>::Input>(Value::Object(values)) {
            Ok(input) => pending::create::<P>(&app, user.user.clone(), crate_name, input).await,
            Err(e) => Err(PublisherError::Other(bad_request(format!(
                "the form is not complete: {e}"
            )))),
        }
    });
    match created {
        Ok(view) => {
            session::flash(
                &user.session,
                "success",
                format!(
                    "Added a pending {} publisher for {}: {}. It expires on {}.",
                    kind.label(),
                    view.crate_name,
                    view.description,
                    format_time(&view.expires_at)
                ),
            )?;
            Ok(see_other(PAGE_URL))
        }
        Err(error) => {
            let state = match error {
                PublisherError::Fields(errors) => state.field_errors(errors),
                PublisherError::Other(error) => state.form_level(error)?,
            };
            page(
                &app,
                user,
                Some((kind, state)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// `POST /settings/pending-publishers/{id}/remove`
pub async fn remove(
    app: web::Data<App>,
    user: CurrentUser,
    path: web::Path<i64>,
    _form: CsrfForm,
) -> PageResult<HttpResponse> {
    let removed = pending::delete(&app, user.user.clone(), None, path.into_inner()).await?;
    session::flash(
        &user.session,
        "success",
        format!(
            "Removed the pending {} publisher for {}.",
            removed.kind.label(),
            removed.crate_name
        ),
    )?;
    Ok(see_other(PAGE_URL))
}
