-- Issue 16: players moved in from another back end (`admin import`, docs/migration.md). The same
-- tables as migrations/sqlite/0011 (which has to rebuild password_hashes to change its CHECK).

-- Imported password hashes are kept as their source wrote them (Argon2 in any variant, bcrypt),
-- flagged `legacy`: verified as the source made them (the password's own bytes, no pepper) and
-- replaced by the configured Argon2id at the owner's next successful sign-in.
ALTER TABLE password_hashes ADD COLUMN legacy boolean NOT NULL DEFAULT false;
ALTER TABLE password_hashes DROP CONSTRAINT password_hashes_phc_check;
ALTER TABLE password_hashes ADD CONSTRAINT password_hashes_phc_check CHECK (
    (NOT legacy AND phc LIKE '$argon2id$%') OR (legacy AND (phc LIKE '$argon2%' OR phc LIKE '$2%')));

-- An imported key keeps its own deadline (the earlier of this and the service's own rules); NULL
-- for keys issued here.
ALTER TABLE keys ADD COLUMN expires_ms bigint;
CREATE INDEX keys_live_by_deadline ON keys (expires_ms) WHERE revoked_ms IS NULL AND expires_ms IS NOT NULL;

-- Which accounts were imported, from what (see the SQLite migration).
CREATE TABLE imported_users (
    user_id     uuid   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    source      text   NOT NULL CHECK (source IN ('mysql', 'jsonl')),
    source_id   text,
    source_ref  text   NOT NULL,
    run_ms      bigint NOT NULL,
    imported_ms bigint NOT NULL
);
CREATE UNIQUE INDEX imported_users_by_source_id ON imported_users (source, source_id) WHERE source_id IS NOT NULL;

-- Every key ever imported, by digest (never brought back once gone here); `seen_ms` the last run
-- that found it live at the source. No foreign key, on purpose.
CREATE TABLE imported_keys (
    digest     bytea  PRIMARY KEY CHECK (length(digest) = 32),
    key_id     uuid   NOT NULL,
    user_id    uuid   NOT NULL,
    expires_ms bigint NOT NULL,
    seen_ms    bigint NOT NULL
);
CREATE INDEX imported_keys_by_expiry ON imported_keys (expires_ms);
CREATE INDEX imported_keys_by_seen ON imported_keys (seen_ms);

-- The kinds and costs of stored hashes other than the configured Argon2id, written by imports
-- (see src/service/hasher.rs, "Timing").
CREATE TABLE password_hash_classes (
    class text PRIMARY KEY
);
