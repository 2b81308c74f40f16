-- killbill-auth schema, PostgreSQL dialect: what migrations/sqlite/0001 to 0007 add up to, for
-- several instances sharing one database. Times are UTC milliseconds since the Unix epoch
-- (bigint, as SQLite's integers, so that both stores decode the same rows); ids are uuid,
-- digests bytea. Applied at start-up by sqlx's migrator, which holds an advisory lock while it
-- runs, so instances starting together on an empty database apply it once.
-- Never edit an applied migration: add a new file.

CREATE TABLE users (
    id                 uuid   PRIMARY KEY,
    username           text   NOT NULL,
    -- ASCII-lowercased name: uniqueness regardless of case is the database's to enforce.
    username_canonical text   NOT NULL UNIQUE,
    role               text   NOT NULL CHECK (role IN ('USER', 'ADMIN')),
    created_ms         bigint NOT NULL
);

-- One Argon2id PHC string per user; never a password.
CREATE TABLE password_hashes (
    user_id    uuid   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phc        text   NOT NULL CHECK (phc LIKE '$argon2id$%'),
    updated_ms bigint NOT NULL
);

-- Access keys, known only by the SHA-256 digest of the key.
CREATE TABLE keys (
    id              uuid   PRIMARY KEY,
    user_id         uuid   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest          bytea  NOT NULL UNIQUE CHECK (length(digest) = 32),
    created_ms      bigint NOT NULL,
    created_ip      text,
    last_used_ms    bigint,
    last_ip         text,
    user_agent      text,
    revoked_ms      bigint,
    revoke_reason   text CHECK (revoke_reason IN
        ('signed_out', 'expired', 'ip_changes', 'request_flood', 'evicted', 'password_changed', 'admin')),
    -- The client network of the request that revoked the key (anomaly revocations, sign-outs),
    -- shown to the key's owner next to the reason.
    revoked_network text,
    -- The anomaly state of the key (networks seen, request counters), written with the batched
    -- usage updates so that a restart does not reset a key that was near its limits. JSON, a few
    -- hundred bytes at most.
    activity        text,
    CHECK ((revoked_ms IS NULL) = (revoke_reason IS NULL))
);

CREATE INDEX keys_by_user ON keys (user_id, revoked_ms);
CREATE INDEX keys_live ON keys (created_ms) WHERE revoked_ms IS NULL;

-- The history of every key: issued, revoked (with reason). Kept with the account.
CREATE TABLE key_events (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id  uuid   NOT NULL,
    user_id uuid   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event   text   NOT NULL CHECK (event IN ('issued', 'revoked')),
    reason  text,
    network text,
    at_ms   bigint NOT NULL
);

CREATE INDEX key_events_by_user ON key_events (user_id, at_ms);

-- Networks from which a user signed in successfully: an account throttled by failures from many
-- networks stays open from these (for 30 days after the last success).
CREATE TABLE known_networks (
    user_id         uuid   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    network         text   NOT NULL,
    last_success_ms bigint NOT NULL,
    PRIMARY KEY (user_id, network)
);

-- Every revoked or deleted key, in order, so that other processes sharing the database (the admin
-- command line, other instances) drop it from their caches. Pruned after an hour.
-- Caveat: a sequence hands out numbers when rows are inserted, not when they commit, so two
-- concurrent transactions may commit their rows out of `seq` order; a reader that remembers the
-- highest `seq` it saw can step past a row that commits later. Polling by `seq` alone is not
-- enough with several writers (the next step, issue 13).
CREATE TABLE revocation_feed (
    seq    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest bytea  NOT NULL CHECK (length(digest) = 32),
    at_ms  bigint NOT NULL
);

-- Throttles count attempts in the database, one row per counted attempt and counter, inside the
-- transaction that decides whether the attempt may go ahead (before its password is hashed). On
-- PostgreSQL that transaction first takes a transaction-level advisory lock per counter (see
-- src/store/postgres), so the limit holds exactly under any concurrency, across instances.
-- Subjects are client networks or keyed digests of account names, never a name. A counter never
-- holds more rows within its window than its limit (a refused attempt is not counted);
-- housekeeping deletes rows older than the longest window.
CREATE TABLE throttle_attempts (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope   text   NOT NULL CHECK (scope IN ('account_network', 'account', 'network', 'wide_network', 'signup')),
    subject text   NOT NULL,
    at_ms   bigint NOT NULL
);

CREATE INDEX throttle_attempts_by_counter ON throttle_attempts (scope, subject, at_ms);

-- Housekeeping (every 10 minutes, and once at start-up) marks expired keys and deletes rows past
-- their use; each of its statements is answered by one of these indexes, not a scan of its table.
-- Pruning by age. The index on keys holds revoked keys only, a small share of the table.
CREATE INDEX keys_revoked ON keys (revoked_ms) WHERE revoked_ms IS NOT NULL;
CREATE INDEX known_networks_by_age ON known_networks (last_success_ms);
CREATE INDEX revocation_feed_by_age ON revocation_feed (at_ms);
CREATE INDEX throttle_attempts_by_age ON throttle_attempts (at_ms);
-- Expiry by idleness (`keys.idle_timeout`), next to `keys_live` (created_ms) for the lifetime.
CREATE INDEX keys_live_by_last_use ON keys ((coalesce(last_used_ms, created_ms))) WHERE revoked_ms IS NULL;

-- The probe write of GET /health while writes fail (after a full disk, say): a 16 KiB row is
-- inserted and deleted in one committed transaction, so that the probe needs room as a real write
-- does. Stored out of line and uncompressed (EXTERNAL): compressed, 16 KiB of zeros would need
-- almost nothing. Always empty between probes.
CREATE TABLE heartbeat (
    id     integer PRIMARY KEY,
    filler bytea   NOT NULL
);
ALTER TABLE heartbeat ALTER COLUMN filler SET STORAGE EXTERNAL;
