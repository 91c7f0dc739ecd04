//! Wharf: a self-hostable Cargo registry with Trusted Publishing.
//!
//! A map of the crate is in `docs/ARCHITECTURE.md`.

pub mod api;
pub mod app;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod content_encoding;
pub mod db;
pub mod dev;
pub mod errors;
pub mod head;
pub mod index_cache;
#[cfg(test)]
mod layering;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod models;
pub mod oauth;
pub mod pages;
pub mod private;
pub mod registry;
pub mod router;
pub mod schema;
pub mod services;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod tokens;
pub mod trustpub;
