-- The hub's state in PostgreSQL: what zhongshu/stores/sqlite.py keeps in SQLite files.
-- Times are epoch seconds (double precision), as in the embedded stores.

CREATE TABLE members (
    name text PRIMARY KEY, kind text NOT NULL, title text NOT NULL DEFAULT '',
    roles text NOT NULL DEFAULT '[]'
);
CREATE TABLE tokens (
    token_hash text PRIMARY KEY, member text NOT NULL, label text NOT NULL DEFAULT '',
    created_at double precision NOT NULL, expires_at double precision,
    revoked_at double precision
);
CREATE INDEX ix_tokens_member ON tokens (member);
CREATE TABLE keys (
    key_id text PRIMARY KEY, member text NOT NULL, public_key bytea NOT NULL,
    created_at double precision NOT NULL, revoked_at double precision
);
CREATE TABLE grants (
    n bigint GENERATED ALWAYS AS IDENTITY, id text PRIMARY KEY, owner text NOT NULL,
    spec text NOT NULL, created_by text NOT NULL, created_at double precision NOT NULL,
    revoked_at double precision, revoked_by text
);
-- seq is handed out under an advisory lock (stores/postgres.py), so changes commit in seq
-- order and a reader that saw seq n has seen every change before it
CREATE TABLE changes (
    seq bigint PRIMARY KEY, at double precision NOT NULL, actor text NOT NULL,
    action text NOT NULL, subject text NOT NULL, details text NOT NULL DEFAULT '{}'
);
CREATE TABLE datasets (
    name text PRIMARY KEY, owner text NOT NULL, source text NOT NULL, listed boolean NOT NULL,
    status text NOT NULL, reason text NOT NULL DEFAULT '',
    observed jsonb NOT NULL DEFAULT '{}', checked_at double precision NOT NULL
);

CREATE TABLE nonces (nonce text PRIMARY KEY, until double precision NOT NULL);
CREATE INDEX ix_nonces_until ON nonces (until);
CREATE TABLE token_sessions (
    sid_hash bytea PRIMARY KEY, member text NOT NULL, token_hash text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE TABLE rate_hits (key text NOT NULL, at double precision NOT NULL);
CREATE INDEX ix_rate_hits ON rate_hits (key, at);
CREATE TABLE lookups (
    key text NOT NULL, value text NOT NULL, at double precision NOT NULL,
    PRIMARY KEY (key, value)
);
CREATE INDEX ix_lookups ON lookups (key, at);

-- The ledger (zhongshu/ledger/postgres.py): the same tables as its SQLite file.
CREATE TABLE ledger_entries (idx bigint PRIMARY KEY, time_ms bigint NOT NULL,
                             body bytea NOT NULL);
CREATE TABLE ledger_tiles (key bigint PRIMARY KEY, hashes bytea NOT NULL);
CREATE TABLE ledger_edge (key bigint NOT NULL, pos integer NOT NULL, hash bytea NOT NULL,
                          PRIMARY KEY (key, pos));
CREATE TABLE ledger_entry_datasets (dataset text NOT NULL, idx bigint NOT NULL,
                                    PRIMARY KEY (dataset, idx));
CREATE TABLE ledger_checkpoints (size bigint PRIMARY KEY, root bytea NOT NULL,
                                 time_ms bigint NOT NULL, note text NOT NULL);
CREATE TABLE ledger_cosignatures (size bigint NOT NULL, witness text NOT NULL,
                                  line text NOT NULL, PRIMARY KEY (size, witness));
CREATE TABLE ledger_witness_sent (witness text PRIMARY KEY, size bigint NOT NULL);
CREATE TABLE ledger_witnessed (origin text PRIMARY KEY, size bigint NOT NULL,
                               root bytea NOT NULL, note text NOT NULL);
CREATE TABLE ledger_evidence (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                              origin text NOT NULL, time_ms bigint NOT NULL,
                              kind text NOT NULL, detail text NOT NULL);
CREATE TABLE ledger_evidence_forks (origin text NOT NULL, fork text NOT NULL,
                                    evidence bigint NOT NULL, offered integer NOT NULL,
                                    PRIMARY KEY (origin, fork));
