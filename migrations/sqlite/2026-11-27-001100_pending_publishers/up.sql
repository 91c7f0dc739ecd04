-- Pending publishers: trusted publisher configs for a crate that does not exist yet, of any
-- provider (`provider` names it; `config` is the provider's fields as JSON, exactly as they
-- were checked and looked up when the config was created). A user may have a few; each waits
-- until `expires_at` for the first publish, which creates the crate, makes the config an
-- ordinary one in its provider's table and deletes the row here. Once a crate of that name
-- exists by any other path the row is void (it never reserves the name).
-- Keep in step with ../../postgres/2026-11-27-001100_pending_publishers/up.sql.

CREATE TABLE trustpub_pending_configs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    -- As the user typed it, and folded as crate names are (lower case, `-` for `_`).
    crate_name TEXT NOT NULL,
    canonical_name TEXT NOT NULL,
    config TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX trustpub_pending_configs_provider_idx ON trustpub_pending_configs (provider, expires_at);
CREATE INDEX trustpub_pending_configs_user_idx ON trustpub_pending_configs (created_by);
CREATE INDEX trustpub_pending_configs_name_idx ON trustpub_pending_configs (canonical_name);

-- The pending configs an exchanged token was minted through: it may publish the first version
-- of each one's crate (and nothing else through it). `claims` are the ID token's claims, so
-- that what a provider captures on first use is captured when the config becomes ordinary.
CREATE TABLE trustpub_token_pending (
    token_id BIGINT NOT NULL REFERENCES trustpub_tokens (id) ON DELETE CASCADE,
    pending_id BIGINT NOT NULL REFERENCES trustpub_pending_configs (id) ON DELETE CASCADE,
    claims TEXT NOT NULL,
    PRIMARY KEY (token_id, pending_id)
);
CREATE INDEX trustpub_token_pending_pending_idx ON trustpub_token_pending (pending_id);
