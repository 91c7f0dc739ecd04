//! Every route, in one place.

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::api;
use crate::pages;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(api::health::health))
        .route("/ready", web::get().to(api::health::ready))
        .service(
            web::scope("/index")
                .route("/config.json", web::get().to(api::index::config_json))
                .route("/{path:.+}", web::get().to(api::index::index_file)),
        )
        .service(
            web::scope("/api/v1")
                // cargo's web API
                .route("/crates", web::get().to(api::crates::search::search))
                .route("/crates/new", web::put().to(api::crates::publish::publish))
                .route("/crates/{name}", web::get().to(api::crates::info::info))
                .route(
                    "/crates/{name}",
                    web::patch().to(api::crates::update::update),
                )
                .route(
                    "/crates/{name}/owners",
                    web::get().to(api::crates::owners::list),
                )
                .route(
                    "/crates/{name}/owners",
                    web::put().to(api::crates::owners::add),
                )
                .route(
                    "/crates/{name}/owners",
                    web::delete().to(api::crates::owners::remove),
                )
                .route(
                    "/crates/{name}/{version}/download",
                    web::get().to(api::crates::download::download),
                )
                .route(
                    "/crates/{name}/{version}/yank",
                    web::delete().to(api::crates::yank::yank),
                )
                .route(
                    "/crates/{name}/{version}/unyank",
                    web::put().to(api::crates::yank::unyank),
                )
                // Trusted Publishing
                .route(
                    "/trusted_publishing/tokens",
                    web::post().to(api::trustpub::tokens::exchange),
                )
                .route(
                    "/trusted_publishing/tokens",
                    web::put().to(api::trustpub::tokens::exchange),
                )
                .route(
                    "/trusted_publishing/tokens",
                    web::delete().to(api::trustpub::tokens::revoke),
                )
                // publisher configs of every provider in `trustpub::providers`: `github_configs`…
                .route(
                    "/trusted_publishing/{kind}_configs",
                    web::get().to(api::trustpub::configs::list),
                )
                .route(
                    "/trusted_publishing/{kind}_configs",
                    web::post().to(api::trustpub::configs::create),
                )
                .route(
                    "/trusted_publishing/{kind}_configs/{id}",
                    web::delete().to(api::trustpub::configs::delete),
                )
                .default_service(web::to(api::not_found_handler)),
        );
    pages_routes(cfg);
}

/// The web app (server-rendered HTML).
fn pages_routes(cfg: &mut web::ServiceConfig) {
    use pages::{
        crate_page, crate_settings as cs, history, home, login, me, pending_publishers,
        static_files, tokens, user,
    };
    cfg.route("/", web::get().to(home::home))
        .route("/search", web::get().to(home::search))
        .route("/static/wharf.css", web::get().to(static_files::stylesheet))
        // login
        .route("/login", web::get().to(login::login_page))
        .route("/login/github", web::get().to(login::start))
        .route("/login/github/callback", web::get().to(login::callback))
        .route("/logout", web::post().to(login::logout))
        // `/me` is where `cargo login` sends people for a token: it answers anonymous visitors
        // too (see `me::dashboard`)
        .route("/me", web::get().to(me::dashboard))
        // the user's own pages, behind the login guard
        .service(
            web::scope("/me")
                .wrap(from_fn(pages::session::require_login))
                .route("/logout-everywhere", web::post().to(me::log_out_everywhere)),
        )
        .service(
            web::scope("/settings")
                .wrap(from_fn(pages::session::require_login))
                .route("/tokens", web::get().to(tokens::list))
                .route("/tokens", web::post().to(tokens::create))
                .route("/tokens/{id}/revoke", web::post().to(tokens::revoke))
                .route(
                    "/pending-publishers",
                    web::get().to(pending_publishers::show),
                )
                .route(
                    "/pending-publishers/{id}/remove",
                    web::post().to(pending_publishers::remove),
                )
                .route(
                    "/pending-publishers/{kind}",
                    web::post().to(pending_publishers::add),
                ),
        )
        // crates: public pages
        .route("/crates/{name}", web::get().to(crate_page::show))
        .route("/crates/{name}/history", web::get().to(history::history))
        .route("/users/{login}", web::get().to(user::show))
        // crate settings: owners only (checked in every handler against current ownership)
        .service(
            web::scope("/crates/{name}/settings")
                .wrap(from_fn(pages::session::require_login))
                .route("", web::get().to(cs::show))
                .route("/trustpub-only", web::post().to(cs::set_trustpub_only))
                .route("/{kind}/{id}/remove", web::get().to(cs::confirm_remove))
                .route("/{kind}/{id}/remove", web::post().to(cs::remove))
                .route("/tokens/{id}/revoke", web::post().to(cs::revoke_token))
                .route("/owners", web::post().to(cs::add_owner))
                .route("/owners/remove", web::post().to(cs::remove_owner))
                // adds a publisher of a provider in `trustpub::providers`: `/github`…
                .route("/{kind}", web::post().to(cs::add_publisher)),
        )
        .default_service(web::to(pages::errors::not_found_page));
}
