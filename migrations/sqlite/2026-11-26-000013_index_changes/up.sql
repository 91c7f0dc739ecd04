-- What a publish needs without reading every version of the crate, and what lets each
-- instance learn which index files changed. Keep in step with
-- ../../postgres/2026-11-26-000013_index_changes/up.sql.

-- The version the crate's page and search show as the latest (the highest non-yanked one, or
-- the highest of all when every one is yanked), kept by publish, yank and unyank. NULL until
-- the next of those computes it.
ALTER TABLE crates ADD COLUMN max_version TEXT;

-- Set above every other on each change of the file (SQLite has one writer at a time, so the
-- numbers follow commit order); each instance polls it to drop changed files from its cache.
ALTER TABLE index_files ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX index_files_change_seq_idx ON index_files (change_seq);
