mod buildkite;
mod configs;
mod e2e;
mod exchange;
mod pending;
mod reusable;
mod scopes;
mod verify;
