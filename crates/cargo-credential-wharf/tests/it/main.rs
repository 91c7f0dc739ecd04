//! Tests of the provider against fake registries and CI runtimes on 127.0.0.1.

mod buildkite;
mod github;
mod gitlab;
mod operations;
mod protocol;
mod revocation;
mod support;
