-- Housekeeping (every 10 minutes, and once at start-up) marks expired keys and deletes rows past
-- their use. Without these indexes each of its statements scanned its whole table, inside the
-- write transaction: with a million keys, a hundred milliseconds of a core and of the write
-- lock, felt by every request of that moment.

-- Pruning by age. The index on keys holds revoked keys only, a small share of the table.
CREATE INDEX keys_revoked ON keys (revoked_ms) WHERE revoked_ms IS NOT NULL;
CREATE INDEX known_networks_by_age ON known_networks (last_success_ms);
CREATE INDEX throttles_by_age ON throttles (updated_ms);
CREATE INDEX revocation_feed_by_age ON revocation_feed (at_ms);

-- Expiry by idleness (`keys.idle_timeout`), next to `keys_live` (created_ms) for the lifetime.
CREATE INDEX keys_live_by_last_use ON keys (coalesce(last_used_ms, created_ms)) WHERE revoked_ms IS NULL;
