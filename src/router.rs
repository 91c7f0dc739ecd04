//! Every route, in one place.

use actix_web::web;

use crate::api;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(api::health::health))
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
                .route(
                    "/trusted_publishing/github_configs",
                    web::get().to(api::trustpub::configs::list_github),
                )
                .route(
                    "/trusted_publishing/github_configs",
                    web::post().to(api::trustpub::configs::create_github),
                )
                .route(
                    "/trusted_publishing/github_configs/{id}",
                    web::delete().to(api::trustpub::configs::delete_github),
                )
                .route(
                    "/trusted_publishing/gitlab_configs",
                    web::get().to(api::trustpub::configs::list_gitlab),
                )
                .route(
                    "/trusted_publishing/gitlab_configs",
                    web::post().to(api::trustpub::configs::create_gitlab),
                )
                .route(
                    "/trusted_publishing/gitlab_configs/{id}",
                    web::delete().to(api::trustpub::configs::delete_gitlab),
                )
                .default_service(web::to(api::not_found_handler)),
        )
        .default_service(web::to(api::not_found_handler));
}
