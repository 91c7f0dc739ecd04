-- Trusted Publishing: publisher configs, exchanged tokens, used ID-token `jti`s.
-- Keep in step with ../../postgres/2026-11-26-000002_trusted_publishing/up.sql.

CREATE TABLE trustpub_github_configs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    crate_id BIGINT NOT NULL REFERENCES crates (id) ON DELETE CASCADE,
    repository_owner TEXT NOT NULL,
    repository_owner_id BIGINT NOT NULL,
    repository_name TEXT NOT NULL,
    workflow_filename TEXT NOT NULL,
    environment TEXT,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX trustpub_github_configs_repo_idx
    ON trustpub_github_configs (lower(repository_owner), lower(repository_name));
CREATE INDEX trustpub_github_configs_crate_idx ON trustpub_github_configs (crate_id);

CREATE TABLE trustpub_gitlab_configs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    crate_id BIGINT NOT NULL REFERENCES crates (id) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    namespace_id BIGINT,
    project TEXT NOT NULL,
    workflow_filepath TEXT NOT NULL,
    environment TEXT,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX trustpub_gitlab_configs_project_idx
    ON trustpub_gitlab_configs (lower(namespace), lower(project));
CREATE INDEX trustpub_gitlab_configs_crate_idx ON trustpub_gitlab_configs (crate_id);

CREATE TABLE trustpub_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    crate_ids TEXT NOT NULL,
    actor TEXT NOT NULL,
    publisher TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX trustpub_tokens_expires_at_idx ON trustpub_tokens (expires_at);

CREATE TABLE trustpub_used_jtis (
    jti_hash TEXT PRIMARY KEY,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX trustpub_used_jtis_expires_at_idx ON trustpub_used_jtis (expires_at);
