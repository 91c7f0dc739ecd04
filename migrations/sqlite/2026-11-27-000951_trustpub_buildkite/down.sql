-- Tokens minted through Buildkite configs lose those crates (fail closed) with the table.
DELETE FROM trustpub_token_crates WHERE provider = 'buildkite';
DROP TABLE trustpub_buildkite_configs;
