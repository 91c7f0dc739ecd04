-- An optional constraint on a GitHub publisher: the reusable workflow
-- (`owner/repo/.github/workflows/file.yml`, optionally `@ref`) that the job must run, as the
-- ID token's `job_workflow_ref` names it. NULL: no constraint (existing configs keep none).
-- Keep in step with ../../sqlite/2026-11-27-001200_github_reusable_workflow/up.sql.

ALTER TABLE trustpub_github_configs ADD COLUMN reusable_workflow TEXT;
