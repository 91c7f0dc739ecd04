-- Index files are stored in chunks of consecutive lines, so that a publish appends to the last
-- chunk (a small row) instead of rewriting the whole file, and a yank renders only the chunk
-- holding its version's line. Keep in step with
-- ../../sqlite/2026-11-27-001300_index_chunks/up.sql.
--
-- A chunk holds the lines of the versions `first_version_id` … `last_version_id` of its crate
-- in order; `size` is the length of `content` in bytes and `digest` a hash of its lines (see
-- src/models/index_file.rs). `index_files` keeps the file's ETag, made from the digests.
CREATE TABLE index_chunks (
    crate_id BIGINT NOT NULL REFERENCES crates (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    first_version_id BIGINT NOT NULL,
    last_version_id BIGINT NOT NULL,
    size BIGINT NOT NULL,
    digest TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (crate_id, seq)
);

-- Existing files are carried over whole, as one chunk each, with their ETags. The empty
-- digest marks such a chunk: the next change of the crate's file renders it again in chunks.
INSERT INTO index_chunks (crate_id, seq, first_version_id, last_version_id, size, digest, content)
SELECT f.crate_id, 0,
       COALESCE((SELECT MIN(v.id) FROM versions v WHERE v.crate_id = f.crate_id), 0),
       COALESCE((SELECT MAX(v.id) FROM versions v WHERE v.crate_id = f.crate_id), 0),
       OCTET_LENGTH(f.content), '', f.content
FROM index_files f;

ALTER TABLE index_files DROP COLUMN content;
