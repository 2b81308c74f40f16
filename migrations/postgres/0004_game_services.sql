-- Issue 14: service accounts, suspensions, join tickets, the revocation stream, security events.
-- The same tables as migrations/sqlite/0010 (which has to rebuild tables to change a CHECK).

ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('USER', 'ADMIN', 'SERVICE'));

ALTER TABLE keys DROP CONSTRAINT keys_revoke_reason_check;
ALTER TABLE keys ADD CONSTRAINT keys_revoke_reason_check CHECK (revoke_reason IN
    ('signed_out', 'expired', 'ip_changes', 'request_flood', 'evicted', 'password_changed', 'admin',
     'suspended'));

-- The key history of 0001 was written and never read; `events` below replaces it.
DROP TABLE key_events;

-- Security events (API.md `Event`), written in the transaction of what they record. `user_id` is
-- not a foreign key: `account_deleted` outlives the account. Never a name that matches no account.
-- Pruned after `events.retention`.
CREATE TABLE events (
    seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id       uuid   NOT NULL UNIQUE,
    at_ms    bigint NOT NULL,
    kind     text   NOT NULL,
    user_id  uuid,
    actor_id uuid,
    network  text,
    detail   text   NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_user ON events (user_id, seq);
CREATE INDEX events_by_age ON events (at_ms);

-- Suspensions (bans), with their history. `by_id` is the administrator (NULL: the command line).
CREATE TABLE suspensions (
    id         uuid   PRIMARY KEY,
    user_id    uuid   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason     text   NOT NULL,
    created_ms bigint NOT NULL,
    until_ms   bigint,
    by_id      uuid,
    lifted_ms  bigint
);
CREATE INDEX suspensions_by_user ON suspensions (user_id, created_ms);

-- Join tickets, known only by the SHA-256 digest; dead with the key that asked for them.
CREATE TABLE tickets (
    digest      bytea  PRIMARY KEY CHECK (length(digest) = 32),
    key_id      uuid   NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
    user_id     uuid   NOT NULL,
    created_ms  bigint NOT NULL,
    expires_ms  bigint NOT NULL,
    redeemed_ms bigint
);
CREATE INDEX tickets_by_key ON tickets (key_id);
CREATE INDEX tickets_by_age ON tickets (expires_ms);

-- The revocation stream (GET /revocations); kept 30 days. Writers append under an advisory lock
-- held until commit (src/store/postgres), so `seq` order is commit order. Rows written before this
-- migration have NULLs and are not streamed.
ALTER TABLE revocation_feed ADD COLUMN key_id uuid;
ALTER TABLE revocation_feed ADD COLUMN user_id uuid;
ALTER TABLE revocation_feed ADD COLUMN reason text;
