DROP TABLE trustpub_used_jtis;
DROP TABLE trustpub_tokens;
DROP TABLE trustpub_gitlab_configs;
DROP TABLE trustpub_github_configs;
