-- The anomaly state of a key (networks seen, request counters), written with the batched usage
-- updates so that a restart does not reset a key that was near its limits. JSON, a few hundred
-- bytes at most.
ALTER TABLE keys ADD COLUMN activity TEXT;
