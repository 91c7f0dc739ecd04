-- Buildkite publisher configs: an organization and a pipeline (slugs, matched ignoring ASCII
-- case), optionally a branch and a step key (matched exactly). The organization's and
-- pipeline's IDs are captured on the first use of a token that carries them.
-- Keep in step with ../../sqlite/2026-11-27-000951_trustpub_buildkite/up.sql.

CREATE TABLE trustpub_buildkite_configs (
    id BIGSERIAL PRIMARY KEY,
    crate_id BIGINT NOT NULL REFERENCES crates (id) ON DELETE CASCADE,
    organization TEXT NOT NULL,
    organization_id TEXT,
    pipeline TEXT NOT NULL,
    pipeline_id TEXT,
    branch TEXT,
    step_key TEXT,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX trustpub_buildkite_configs_pipeline_idx
    ON trustpub_buildkite_configs (lower(organization), lower(pipeline));
CREATE INDEX trustpub_buildkite_configs_crate_idx ON trustpub_buildkite_configs (crate_id);
