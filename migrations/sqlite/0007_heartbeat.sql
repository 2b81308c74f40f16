-- The probe write of GET /health while writes fail (after a full disk, say): a row of a few pages
-- is inserted and deleted in one committed transaction, so that the probe needs free space as a
-- real write does (src/store/sqlite/write.rs). Always empty between probes.
CREATE TABLE heartbeat (
    id     INTEGER PRIMARY KEY,
    filler BLOB    NOT NULL
) STRICT;
