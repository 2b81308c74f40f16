-- Throttles count attempts in the database, one row per counted attempt and counter, inside the
-- transaction that decides whether the attempt may go ahead (before its password is hashed):
-- the limit then holds exactly under any concurrency, and with several instances on one
-- database. Subjects are client networks or keyed digests of account names, never a name.
-- A counter never holds more rows within its window than its limit (a refused attempt is not
-- counted); housekeeping deletes rows older than the longest window.
DROP TABLE throttles;

CREATE TABLE throttle_attempts (
    id      INTEGER PRIMARY KEY,
    scope   TEXT    NOT NULL CHECK (scope IN ('account_network', 'account', 'network', 'wide_network', 'signup')),
    subject TEXT    NOT NULL,
    at_ms   INTEGER NOT NULL
) STRICT;

CREATE INDEX throttle_attempts_by_counter ON throttle_attempts (scope, subject, at_ms);
CREATE INDEX throttle_attempts_by_age ON throttle_attempts (at_ms);
