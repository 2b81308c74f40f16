-- Sign-ups are also counted per wide network (IPv4 /16, IPv6 /48: `throttle.signups_per_wide_network`),
-- as sign-in failures are: an IPv6 /48 holds 65,536 /64 networks of `signups_per_network` each.
ALTER TABLE throttle_attempts DROP CONSTRAINT throttle_attempts_scope_check;
ALTER TABLE throttle_attempts ADD CONSTRAINT throttle_attempts_scope_check CHECK (
    scope IN ('account_network', 'account', 'network', 'wide_network', 'signup', 'wide_signup'));
