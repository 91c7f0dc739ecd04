//! The integration tests: one binary, modules mirroring the URLs. Each test starts the real
//! server on 127.0.0.1 with a fresh database.

#![allow(clippy::unwrap_used, reason = "tests")]

mod admin_check;
mod api_reference;
mod backup;
mod cli;
mod crates;
mod credential_provider;
mod db;
mod dev;
mod e2e_cargo;
mod health;
mod http;
mod index;
mod limits;
mod mail;
mod metrics;
mod pages;
mod private;
mod s3;
mod scale_out;
mod startup;
mod support;
mod trustpub;
