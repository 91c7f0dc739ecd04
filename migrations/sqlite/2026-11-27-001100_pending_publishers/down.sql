DROP TABLE trustpub_token_pending;
DROP TABLE trustpub_pending_configs;
