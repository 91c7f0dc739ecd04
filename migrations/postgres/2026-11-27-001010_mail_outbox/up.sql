-- Notification mail to crate owners, written in the same transaction as the change it reports
-- and delivered later by a sender task on any instance. `event` is the typed event as JSON
-- (rendered to text when sent). A row is claimed by one sender at a time through its lease
-- (`lease_owner`, `lease_until`); `next_attempt_at` moves forward with each failed attempt;
-- `sent_at` or `failed_at` (given up) ends it, and ended rows are pruned after a while.
-- Keep in step with ../../sqlite/2026-11-27-001010_mail_outbox/up.sql: same table, same columns.

CREATE TABLE mail_outbox (
    id BIGSERIAL PRIMARY KEY,
    crate_name TEXT NOT NULL,
    recipient_user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    recipient TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    sent_at TIMESTAMP,
    failed_at TIMESTAMP,
    last_error TEXT
);
-- The rows still to deliver, in the order a sender claims them.
CREATE INDEX mail_outbox_pending_idx ON mail_outbox (next_attempt_at, id)
    WHERE sent_at IS NULL AND failed_at IS NULL;
-- Pruning of delivered rows.
CREATE INDEX mail_outbox_sent_at_idx ON mail_outbox (sent_at) WHERE sent_at IS NOT NULL;
