//! The web app, through the real server: status, key elements by CSS selector, authorisation,
//! CSRF refusal and validation messages. `browser` drives a real headless Chromium.

mod browser;
mod crate_page;
mod history;
mod home;
mod login;
mod me;
mod pending_publishers;
mod sessions;
mod settings;
mod tokens;
mod user;
