-- The probe write of GET /health while writes fail (after a full disk, say): a row of about 4 KiB
-- is inserted and deleted in one committed transaction, so that the probe needs a free page as a
-- real write does. Always empty between probes.
CREATE TABLE heartbeat (
    id     INTEGER PRIMARY KEY,
    filler BLOB    NOT NULL
) STRICT;
