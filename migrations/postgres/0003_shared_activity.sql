-- The anomaly state that several instances add up (API.md: the anomaly rules and the rate limit
-- count what all instances saw, with a lag of at most a second): requests per key and flood
-- window (windows aligned to the epoch; every instance adds its counts as deltas, never
-- read-modify-write), and the networks each key was seen from (the latest sighting wins).
-- No foreign key: a key deleted meanwhile must not fail a batch; housekeeping prunes by age.
CREATE TABLE key_request_counts (
    key_id          uuid   NOT NULL,
    window_start_ms bigint NOT NULL,
    count           bigint NOT NULL,
    PRIMARY KEY (key_id, window_start_ms)
);
CREATE INDEX key_request_counts_by_age ON key_request_counts (window_start_ms);

CREATE TABLE key_networks (
    key_id       uuid   NOT NULL,
    network      text   NOT NULL,
    last_seen_ms bigint NOT NULL,
    PRIMARY KEY (key_id, network)
);
CREATE INDEX key_networks_by_age ON key_networks (last_seen_ms);
