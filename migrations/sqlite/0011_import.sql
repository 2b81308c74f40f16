-- Issue 16: players moved in from another back end (`admin import`, docs/migration.md).
--
-- Imported password hashes are kept as their source wrote them (never re-hashed blind): Argon2 in
-- any variant (Spring Security's `$argon2id$…`) and bcrypt (`$2a$`, `$2b$`, `$2y$`), flagged
-- `legacy`: verified as the source made them (the password's own bytes, no pepper) and replaced by
-- the configured Argon2id at the owner's next successful sign-in, which clears the flag. A hash
-- made here is never legacy. Changing the CHECK means rebuilding the table (nothing references
-- it, so dropping it cascades to nothing).
CREATE TABLE password_hashes_new (
    user_id    BLOB    PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phc        TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL,
    legacy     INTEGER NOT NULL DEFAULT 0 CHECK (legacy IN (0, 1)),
    CHECK ((legacy = 0 AND phc LIKE '$argon2id$%')
        OR (legacy = 1 AND (phc LIKE '$argon2%' OR phc LIKE '$2%')))
) STRICT;
INSERT INTO password_hashes_new (user_id, phc, updated_ms, legacy)
    SELECT user_id, phc, updated_ms, 0 FROM password_hashes;
DROP TABLE password_hashes;
ALTER TABLE password_hashes_new RENAME TO password_hashes;

-- An imported key (the original back end's, `--keep-keys`) keeps its own deadline: it expires at
-- the earlier of this and the service's own rules (`keys.lifetime` from its creation,
-- `keys.idle_timeout`). NULL for keys issued here.
ALTER TABLE keys ADD COLUMN expires_ms INTEGER;
CREATE INDEX keys_live_by_deadline ON keys (expires_ms) WHERE revoked_ms IS NULL AND expires_ms IS NOT NULL;

-- Which accounts were imported, from what: what tells a row already imported (run again: "already
-- present") from a name taken by another account. `source_id` is the source's own id (the
-- original back end's user UUID; NULL for a JSON lines file, whose rows are known by name);
-- `run_ms` and `source_ref` (`line 12`, `user <uuid>`) name the run and the row that imported it.
CREATE TABLE imported_users (
    user_id     BLOB    PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    source      TEXT    NOT NULL CHECK (source IN ('mysql', 'jsonl')),
    source_id   TEXT,
    source_ref  TEXT    NOT NULL,
    run_ms      INTEGER NOT NULL,
    imported_ms INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX imported_users_by_source_id ON imported_users (source, source_id) WHERE source_id IS NOT NULL;

-- Every key ever imported, by digest, whether or not it still exists here: a key signed out
-- here and pruned is never brought back by a later run. `seen_ms` is the last run that found it
-- live at the source: a run that no longer does revokes it here (signed out at the source).
-- Deleted once past the source's own expiry. No foreign key, on purpose.
CREATE TABLE imported_keys (
    digest     BLOB    PRIMARY KEY CHECK (length(digest) = 32),
    key_id     BLOB    NOT NULL,
    user_id    BLOB    NOT NULL,
    expires_ms INTEGER NOT NULL,
    seen_ms    INTEGER NOT NULL
) STRICT;
CREATE INDEX imported_keys_by_expiry ON imported_keys (expires_ms);
CREATE INDEX imported_keys_by_seen ON imported_keys (seen_ms);

-- The kinds and costs of stored hashes other than the configured Argon2id (`bcrypt 10`,
-- `argon2id v=19 m=16384 t=2 p=1 len=32`), written by imports: every instance measures each at
-- start so that a wrong password takes as long whatever kind of hash the account has
-- (src/service/hasher.rs, "Timing").
CREATE TABLE password_hash_classes (
    class TEXT PRIMARY KEY
) STRICT;
