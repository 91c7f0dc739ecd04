-- Rate limits that hold across every instance on the database: one fixed-window counter per
-- action (publish per crate, exchange per client address, …) and subject (the crate, the
-- address, …). `window_start` (milliseconds since the Unix epoch) is the window's first
-- request; `expires_at` is the window's end, after which the row is only clean-up's.
-- Keep in step with ../../sqlite/2026-11-27-000010_rate_limits/up.sql: same table, same columns.

CREATE TABLE rate_limits (
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (action, subject)
);
CREATE INDEX rate_limits_expires_at_idx ON rate_limits (expires_at);
