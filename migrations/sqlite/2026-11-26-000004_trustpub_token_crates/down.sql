-- Back to `crate_ids` and the config ids inside `publisher`, from the rows that are not
-- revoked (a revoked crate is left out: fail closed). SQLite cannot add a NOT NULL column
-- without a default, so the table is rebuilt exactly as 2026-11-26-000002 created it.

CREATE TABLE trustpub_tokens_previous (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL UNIQUE,
    crate_ids TEXT NOT NULL,
    actor TEXT NOT NULL,
    publisher TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
INSERT INTO trustpub_tokens_previous
    (id, token_hash, crate_ids, actor, publisher, created_at, expires_at)
SELECT t.id,
       t.token_hash,
       COALESCE((SELECT group_concat(DISTINCT l.crate_id) FROM trustpub_token_crates AS l
                 WHERE l.token_id = t.id AND l.revoked_at IS NULL), ''),
       t.actor,
       json_set(t.publisher, '$.config_ids', json(
           (SELECT json_group_object(CAST(l.crate_id AS TEXT), l.config_id)
            FROM trustpub_token_crates AS l
            WHERE l.token_id = t.id AND l.revoked_at IS NULL))),
       t.created_at,
       t.expires_at
FROM trustpub_tokens AS t;

DROP TABLE trustpub_token_crates;
DROP TABLE trustpub_tokens;
ALTER TABLE trustpub_tokens_previous RENAME TO trustpub_tokens;
CREATE INDEX trustpub_tokens_expires_at_idx ON trustpub_tokens (expires_at);
