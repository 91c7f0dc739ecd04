ALTER TABLE trustpub_github_configs DROP COLUMN reusable_workflow;
