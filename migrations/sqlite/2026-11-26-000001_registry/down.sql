DROP TABLE crate_audit_log;
DROP TABLE index_files;
DROP TABLE versions;
DROP TABLE crate_owners;
DROP TABLE crates;
DROP TABLE api_tokens;
DROP TABLE users;
