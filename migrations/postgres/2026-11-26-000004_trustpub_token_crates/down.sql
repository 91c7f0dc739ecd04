-- Back to `crate_ids` and the config ids inside `publisher`, from the rows that are not
-- revoked (a revoked crate is left out: fail closed).

ALTER TABLE trustpub_tokens ADD COLUMN crate_ids TEXT NOT NULL DEFAULT '';
UPDATE trustpub_tokens AS t SET
    crate_ids = COALESCE((SELECT string_agg(DISTINCT l.crate_id::TEXT, ',')
                          FROM trustpub_token_crates AS l
                          WHERE l.token_id = t.id AND l.revoked_at IS NULL), ''),
    publisher = jsonb_set(t.publisher::jsonb, '{config_ids}', COALESCE(
        (SELECT jsonb_object_agg(l.crate_id::TEXT, l.config_id)
         FROM trustpub_token_crates AS l
         WHERE l.token_id = t.id AND l.revoked_at IS NULL), '{}'::jsonb))::TEXT;
ALTER TABLE trustpub_tokens ALTER COLUMN crate_ids DROP DEFAULT;

DROP TABLE trustpub_token_crates;
