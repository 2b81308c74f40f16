-- killbill-auth schema, SQLite dialect. Times are UTC milliseconds since the Unix epoch.
-- Never edit an applied migration: add a new file.

CREATE TABLE users (
    id                 BLOB    PRIMARY KEY CHECK (length(id) = 16),
    username           TEXT    NOT NULL,
    -- ASCII-lowercased name: uniqueness regardless of case is the database's to enforce.
    username_canonical TEXT    NOT NULL UNIQUE,
    role               TEXT    NOT NULL CHECK (role IN ('USER', 'ADMIN')),
    created_ms         INTEGER NOT NULL
) STRICT;

-- One Argon2id PHC string per user; never a password.
CREATE TABLE password_hashes (
    user_id    BLOB    PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phc        TEXT    NOT NULL CHECK (phc LIKE '$argon2id$%'),
    updated_ms INTEGER NOT NULL
) STRICT;

-- Access keys, known only by the SHA-256 digest of the key.
CREATE TABLE keys (
    id            BLOB    PRIMARY KEY CHECK (length(id) = 16),
    user_id       BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest        BLOB    NOT NULL UNIQUE CHECK (length(digest) = 32),
    created_ms    INTEGER NOT NULL,
    created_ip    TEXT,
    last_used_ms  INTEGER,
    last_ip       TEXT,
    user_agent    TEXT,
    revoked_ms    INTEGER,
    revoke_reason TEXT CHECK (revoke_reason IN
        ('signed_out', 'expired', 'ip_changes', 'request_flood', 'evicted', 'password_changed', 'admin')),
    CHECK ((revoked_ms IS NULL) = (revoke_reason IS NULL))
) STRICT;

CREATE INDEX keys_by_user ON keys (user_id, revoked_ms);
CREATE INDEX keys_live ON keys (created_ms) WHERE revoked_ms IS NULL;

-- The history of every key: issued, revoked (with reason). Kept with the account.
CREATE TABLE key_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id  BLOB    NOT NULL,
    user_id BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event   TEXT    NOT NULL CHECK (event IN ('issued', 'revoked')),
    reason  TEXT,
    network TEXT,
    at_ms   INTEGER NOT NULL
) STRICT;

CREATE INDEX key_events_by_user ON key_events (user_id, at_ms);
