-- One row per ledger writer (host:pid): an append commits without waiting for the disk,
-- then the writer updates its row in a transaction that does wait, which makes everything
-- committed before durable (zhongshu.ledger.postgres). Rows of writers gone stay; each
-- process adds at most one.
CREATE TABLE ledger_flushes (writer text PRIMARY KEY, n bigint NOT NULL);
