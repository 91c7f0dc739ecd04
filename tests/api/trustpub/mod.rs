mod buildkite;
mod configs;
mod e2e;
mod exchange;
mod scopes;
mod verify;
