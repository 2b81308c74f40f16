-- Secrets the service generates for itself and every instance must share: the key of name
-- digests when no pepper is set (the first instance to start stores it; the others read it).
CREATE TABLE service_secrets (
    name  text  PRIMARY KEY,
    value bytea NOT NULL
);
