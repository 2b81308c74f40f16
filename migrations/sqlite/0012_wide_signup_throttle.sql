-- Sign-ups are also counted per wide network (IPv4 /16, IPv6 /48: `throttle.signups_per_wide_network`),
-- as sign-in failures are: an IPv6 /48 holds 65,536 /64 networks of `signups_per_network` each.
-- SQLite cannot change a CHECK in place: the table is rebuilt with its rows.
CREATE TABLE throttle_attempts_new (
    id      INTEGER PRIMARY KEY,
    scope   TEXT    NOT NULL CHECK (scope IN ('account_network', 'account', 'network', 'wide_network', 'signup', 'wide_signup')),
    subject TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL
) STRICT;

INSERT INTO throttle_attempts_new (id, scope, subject, at_ms)
    SELECT id, scope, subject, at_ms FROM throttle_attempts;
DROP TABLE throttle_attempts;
ALTER TABLE throttle_attempts_new RENAME TO throttle_attempts;

CREATE INDEX throttle_attempts_by_counter ON throttle_attempts (scope, subject, at_ms);
CREATE INDEX throttle_attempts_by_age ON throttle_attempts (at_ms);
