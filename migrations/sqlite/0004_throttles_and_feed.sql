-- Networks from which a user signed in successfully: an account throttled by failures from many
-- networks stays open from these (for 30 days after the last success).
CREATE TABLE known_networks (
    user_id         BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    network         TEXT    NOT NULL,
    last_success_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, network)
) STRICT;

-- Recent failures per throttled subject (scope: 'account_network', 'account', 'network', 'signup'),
-- written in batches so that a restart does not reset a throttle. `failures` is a JSON array of
-- millisecond times, at most the scope's limit long.
CREATE TABLE throttles (
    scope      TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    failures   TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, subject)
) STRICT;

-- Every revoked or deleted key, in order, so that other processes sharing the database (the admin
-- command line, other instances) drop it from their caches within a second. Pruned after an hour.
CREATE TABLE revocation_feed (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    digest BLOB    NOT NULL,
    at_ms  INTEGER NOT NULL
) STRICT;
