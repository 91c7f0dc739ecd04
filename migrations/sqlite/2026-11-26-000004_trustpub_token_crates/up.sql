-- Which crates each exchanged Trusted Publishing token may publish, and through which publisher
-- config: one row per config that matched the ID token. Replaces `trustpub_tokens.crate_ids`
-- (comma-separated text) and the config ids kept inside `trustpub_tokens.publisher`, so that
-- removing a config revokes exactly the tokens minted through it. A revoked row stays (with
-- who and why) until its token expires, so that a refused publish can say what happened.
-- Keep in step with ../../postgres/2026-11-26-000004_trustpub_token_crates/up.sql.

CREATE TABLE trustpub_token_crates (
    token_id BIGINT NOT NULL REFERENCES trustpub_tokens (id) ON DELETE CASCADE,
    crate_id BIGINT NOT NULL REFERENCES crates (id) ON DELETE CASCADE,
    -- `github` or `gitlab`: which table `config_id` is in.
    provider TEXT NOT NULL,
    config_id BIGINT NOT NULL,
    revoked_at TIMESTAMP,
    -- The login of the owner who removed the config or revoked the token.
    revoked_by TEXT,
    -- `publisher_removed` or `owner_revoked`.
    revoked_because TEXT,
    PRIMARY KEY (token_id, provider, config_id)
);
CREATE INDEX trustpub_token_crates_config_idx ON trustpub_token_crates (provider, config_id);
CREATE INDEX trustpub_token_crates_crate_idx ON trustpub_token_crates (crate_id);

-- Existing tokens keep each crate whose matched config is recorded and still exists; a crate
-- whose config is gone already is not carried over (the token loses it: fail closed).
INSERT INTO trustpub_token_crates (token_id, crate_id, provider, config_id)
SELECT t.id, CAST(c.key AS BIGINT), json_extract(t.publisher, '$.provider'), c.value
FROM trustpub_tokens AS t, json_each(t.publisher, '$.config_ids') AS c
WHERE ',' || t.crate_ids || ',' LIKE '%,' || c.key || ',%'
  AND (
    (json_extract(t.publisher, '$.provider') = 'github' AND EXISTS (
        SELECT 1 FROM trustpub_github_configs AS g
        WHERE g.id = c.value AND g.crate_id = CAST(c.key AS BIGINT)))
    OR (json_extract(t.publisher, '$.provider') = 'gitlab' AND EXISTS (
        SELECT 1 FROM trustpub_gitlab_configs AS g
        WHERE g.id = c.value AND g.crate_id = CAST(c.key AS BIGINT)))
  );

ALTER TABLE trustpub_tokens DROP COLUMN crate_ids;
