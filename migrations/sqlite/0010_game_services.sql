-- Issue 14: service accounts, suspensions, join tickets, the revocation stream, security events.
--
-- The role SERVICE and the revocation reason `suspended` change CHECK constraints, which SQLite can
-- change only by rebuilding the table. sqlx runs a SQLite migration inside a transaction, where
-- `PRAGMA foreign_keys = OFF` has no effect, and dropping a parent table with foreign keys on
-- deletes its children (ON DELETE CASCADE). So the tables that reference `users` are rebuilt with
-- it: every new table is created and filled first (the children referencing `users_new`), the old
-- children are dropped before the old parent (nothing left to cascade to), and renaming
-- `users_new` to `users` rewrites the new children's references (SQLite >= 3.26). All of it is
-- one transaction: a crash leaves the old schema or the new one.

CREATE TABLE users_new (
    id                 BLOB    PRIMARY KEY CHECK (length(id) = 16),
    username           TEXT    NOT NULL,
    username_canonical TEXT    NOT NULL UNIQUE,
    role               TEXT    NOT NULL CHECK (role IN ('USER', 'ADMIN', 'SERVICE')),
    created_ms         INTEGER NOT NULL
) STRICT;
INSERT INTO users_new (id, username, username_canonical, role, created_ms)
    SELECT id, username, username_canonical, role, created_ms FROM users;

-- A service account has no row here: it cannot sign in with a password.
CREATE TABLE password_hashes_new (
    user_id    BLOB    PRIMARY KEY REFERENCES users_new (id) ON DELETE CASCADE,
    phc        TEXT    NOT NULL CHECK (phc LIKE '$argon2id$%'),
    updated_ms INTEGER NOT NULL
) STRICT;
INSERT INTO password_hashes_new (user_id, phc, updated_ms)
    SELECT user_id, phc, updated_ms FROM password_hashes;

CREATE TABLE keys_new (
    id              BLOB    PRIMARY KEY CHECK (length(id) = 16),
    user_id         BLOB    NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    digest          BLOB    NOT NULL UNIQUE CHECK (length(digest) = 32),
    created_ms      INTEGER NOT NULL,
    created_ip      TEXT,
    last_used_ms    INTEGER,
    last_ip         TEXT,
    user_agent      TEXT,
    revoked_ms      INTEGER,
    revoke_reason   TEXT CHECK (revoke_reason IN
        ('signed_out', 'expired', 'ip_changes', 'request_flood', 'evicted', 'password_changed', 'admin',
         'suspended')),
    activity        TEXT,
    revoked_network TEXT,
    CHECK ((revoked_ms IS NULL) = (revoke_reason IS NULL))
) STRICT;
INSERT INTO keys_new (id, user_id, digest, created_ms, created_ip, last_used_ms, last_ip, user_agent,
                      revoked_ms, revoke_reason, activity, revoked_network)
    SELECT id, user_id, digest, created_ms, created_ip, last_used_ms, last_ip, user_agent,
           revoked_ms, revoke_reason, activity, revoked_network FROM keys;

CREATE TABLE known_networks_new (
    user_id         BLOB    NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    network         TEXT    NOT NULL,
    last_success_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, network)
) STRICT;
INSERT INTO known_networks_new (user_id, network, last_success_ms)
    SELECT user_id, network, last_success_ms FROM known_networks;

-- The key history of 0001 was written and never read; `events` below replaces it.
DROP TABLE key_events;
DROP TABLE password_hashes;
DROP TABLE keys;
DROP TABLE known_networks;
DROP TABLE users;

ALTER TABLE users_new RENAME TO users;
ALTER TABLE password_hashes_new RENAME TO password_hashes;
ALTER TABLE keys_new RENAME TO keys;
ALTER TABLE known_networks_new RENAME TO known_networks;

CREATE INDEX keys_by_user ON keys (user_id, revoked_ms);
CREATE INDEX keys_live ON keys (created_ms) WHERE revoked_ms IS NULL;
CREATE INDEX keys_revoked ON keys (revoked_ms) WHERE revoked_ms IS NOT NULL;
CREATE INDEX keys_live_by_last_use ON keys (coalesce(last_used_ms, created_ms)) WHERE revoked_ms IS NULL;
CREATE INDEX known_networks_by_age ON known_networks (last_success_ms);

-- Security events (API.md `Event`), written in the transaction of what they record. `user_id` is
-- not a foreign key: `account_deleted` outlives the account. Never a name that matches no account.
-- `detail` is a JSON object. Pruned after `events.retention`.
CREATE TABLE events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       BLOB    NOT NULL UNIQUE CHECK (length(id) = 16),
    at_ms    INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    user_id  BLOB,
    actor_id BLOB,
    network  TEXT,
    detail   TEXT    NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX events_by_user ON events (user_id, seq);
CREATE INDEX events_by_age ON events (at_ms);

-- Suspensions (bans), with their history: a lifted or ended one stays, with `lifted` set when an
-- administrator lifted or replaced it. `by_id` is the administrator (NULL: the command line).
CREATE TABLE suspensions (
    id         BLOB    PRIMARY KEY CHECK (length(id) = 16),
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason     TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    until_ms   INTEGER,
    by_id      BLOB,
    lifted_ms  INTEGER
) STRICT;
CREATE INDEX suspensions_by_user ON suspensions (user_id, created_ms);

-- Join tickets, known only by the SHA-256 digest; dead with the key that asked for them.
CREATE TABLE tickets (
    digest      BLOB    PRIMARY KEY CHECK (length(digest) = 32),
    key_id      BLOB    NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
    user_id     BLOB    NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    redeemed_ms INTEGER
) STRICT;
CREATE INDEX tickets_by_key ON tickets (key_id);
CREATE INDEX tickets_by_age ON tickets (expires_ms);

-- The revocation stream (GET /revocations) tells game servers which key of which user went and
-- why; kept 30 days. Rows written before this migration have NULLs and are not streamed.
ALTER TABLE revocation_feed ADD COLUMN key_id BLOB;
ALTER TABLE revocation_feed ADD COLUMN user_id BLOB;
ALTER TABLE revocation_feed ADD COLUMN reason TEXT;
