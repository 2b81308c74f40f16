-- Secrets the service generates for itself and every instance must share (PostgreSQL keeps the
-- key of name digests here when no pepper is set; SQLite keeps that key in a file beside the
-- database instead, so that a copy of the database alone does not hold it).
CREATE TABLE service_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
