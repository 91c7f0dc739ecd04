DROP INDEX index_files_change_seq_idx;
ALTER TABLE index_files DROP COLUMN change_seq;
ALTER TABLE crates DROP COLUMN max_version;
