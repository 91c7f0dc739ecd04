//! `/api/v1/crates/…`: cargo's web API for crates.

pub mod download;
pub mod info;
pub mod owners;
pub mod publish;
pub mod search;
pub mod update;
pub mod yank;
