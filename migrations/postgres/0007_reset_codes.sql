-- Account recovery without e-mail: one-time reset codes issued by an administrator (API.md,
-- "Accounts and passwords"). At most one per user (a newer one replaces it), stored as the
-- SHA-256 digest of the code, deleted when spent; housekeeping deletes expired ones.
CREATE TABLE reset_codes (
    user_id    uuid   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    digest     bytea  NOT NULL CHECK (length(digest) = 32),
    created_ms bigint NOT NULL,
    expires_ms bigint NOT NULL
);

CREATE INDEX reset_codes_by_expiry ON reset_codes (expires_ms);
