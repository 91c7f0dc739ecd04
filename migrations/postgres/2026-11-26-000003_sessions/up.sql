-- Logins, kept on the server so that logging out ends them for good: the session cookie holds
-- a random id, and only its SHA-256 is stored here.
-- Keep in step with ../../sqlite/2026-11-26-000003_sessions/up.sql: same table, same columns.

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
