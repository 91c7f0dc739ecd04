-- The registry core: users, API tokens, crates, owners, versions, index files, audit log.
-- Keep in step with ../../postgres/2026-11-26-000001_registry/up.sql: same tables, same columns.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    login TEXT NOT NULL,
    github_id BIGINT UNIQUE,
    name TEXT,
    email TEXT,
    avatar_url TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_login_lower_idx ON users (lower(login));

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    endpoint_scopes TEXT,
    crate_scopes TEXT,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

CREATE TABLE crates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    canonical_name TEXT NOT NULL UNIQUE,
    description TEXT,
    homepage TEXT,
    documentation TEXT,
    repository TEXT,
    keywords TEXT NOT NULL DEFAULT '[]',
    categories TEXT NOT NULL DEFAULT '[]',
    trustpub_only BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE crate_owners (
    crate_id BIGINT NOT NULL REFERENCES crates (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    PRIMARY KEY (crate_id, user_id)
);
CREATE INDEX crate_owners_user_id_idx ON crate_owners (user_id);

CREATE TABLE versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    crate_id BIGINT NOT NULL REFERENCES crates (id) ON DELETE CASCADE,
    num TEXT NOT NULL,
    num_no_build TEXT NOT NULL,
    checksum TEXT NOT NULL,
    crate_size BIGINT NOT NULL,
    yanked BOOLEAN NOT NULL DEFAULT FALSE,
    license TEXT,
    description TEXT,
    rust_version TEXT,
    links TEXT,
    features TEXT NOT NULL,
    features2 TEXT NOT NULL,
    deps TEXT NOT NULL,
    readme TEXT,
    published_by TEXT NOT NULL,
    published_by_user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    trustpub TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (crate_id, num_no_build)
);

CREATE TABLE index_files (
    crate_id BIGINT PRIMARY KEY REFERENCES crates (id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    etag TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE crate_audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    crate_id BIGINT NOT NULL REFERENCES crates (id) ON DELETE CASCADE,
    actor TEXT NOT NULL,
    actor_user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX crate_audit_log_crate_id_idx ON crate_audit_log (crate_id, created_at);
