-- The client network of the request that revoked a key (anomaly revocations, sign-outs), shown
-- to the key's owner next to the reason.
ALTER TABLE keys ADD COLUMN revoked_network TEXT;
