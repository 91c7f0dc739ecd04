mod buildkite;
mod configs;
mod e2e;
mod exchange;
mod pending;
mod scopes;
mod verify;
