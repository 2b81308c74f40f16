-- The anomaly state that several instances add up (API.md: the anomaly rules and the rate limit
-- count what all instances saw): requests per key and flood window (windows aligned to the
-- epoch, counts added as deltas), and the networks each key was seen from. On one machine the
-- key's own `activity` column is enough; these tables are kept by the same code on both
-- databases. No foreign key: a key deleted meanwhile must not fail a batch; housekeeping prunes
-- by age.
CREATE TABLE key_request_counts (
    key_id          BLOB    NOT NULL,
    window_start_ms INTEGER NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (key_id, window_start_ms)
) STRICT;
CREATE INDEX key_request_counts_by_age ON key_request_counts (window_start_ms);

CREATE TABLE key_networks (
    key_id       BLOB    NOT NULL,
    network      TEXT    NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (key_id, network)
) STRICT;
CREATE INDEX key_networks_by_age ON key_networks (last_seen_ms);
