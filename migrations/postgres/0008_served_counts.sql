-- The requests each key was served (not answered 429) per flood window, beside all the requests
-- that presented it: the rate limit of a key used on several instances charges each instance
-- with what the others served, while the flood rule counts every request.
ALTER TABLE key_request_counts ADD COLUMN served bigint NOT NULL DEFAULT 0;
