//! What serde cannot check of the settings: ranges and combinations (an error that stops
//! start-up, naming the key), and what is allowed but probably a mistake (a warning).

use super::*;

impl Settings {
    /// Checks ranges and combinations serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        for (key, value) in [
            ("server.request_head_timeout", server.request_head_timeout),
            ("server.request_timeout", server.request_timeout),
            ("server.keep_alive_timeout", server.keep_alive_timeout),
        ] {
            if value.0.is_zero() {
                return Err(invalid(key, "must be longer than 0s"));
            }
        }
        if server.max_connections_per_address == 0 {
            return Err(invalid(
                "server.max_connections_per_address",
                "must be at least 1",
            ));
        }
        self.database_target()?;
        if self.keys.lifetime.0.is_zero() {
            return Err(invalid("keys.lifetime", "must be longer than 0s"));
        }
        if self.keys.max_per_user == 0 {
            return Err(invalid("keys.max_per_user", "must be at least 1"));
        }
        let tickets = self.tickets.lifetime.0;
        if tickets.is_zero() || tickets > MAX_TICKET_LIFETIME {
            return Err(invalid(
                "tickets.lifetime",
                format!(
                    "must be longer than 0s and at most {}",
                    humantime::format_duration(MAX_TICKET_LIFETIME)
                ),
            ));
        }
        if self.events.retention.0.is_zero() {
            return Err(invalid("events.retention", "must be longer than 0s"));
        }
        if self.anomaly.window.0.is_zero() {
            return Err(invalid("anomaly.window", "must be longer than 0s"));
        }
        // Bounded so that the state kept per key stays small whatever clients send.
        if self.anomaly.max_networks == 0 || self.anomaly.max_networks > MAX_NETWORKS_LIMIT {
            return Err(invalid(
                "anomaly.max_networks",
                format!("must be 1 to {MAX_NETWORKS_LIMIT}"),
            ));
        }
        if self.anomaly.ipv4_prefix > 32 {
            return Err(invalid(
                "anomaly.ipv4_prefix",
                format!("must be 0 to 32, not {}", self.anomaly.ipv4_prefix),
            ));
        }
        if self.anomaly.ipv6_prefix > 128 {
            return Err(invalid(
                "anomaly.ipv6_prefix",
                format!("must be 0 to 128, not {}", self.anomaly.ipv6_prefix),
            ));
        }
        if self.anomaly.flood_window.0.is_zero() {
            return Err(invalid("anomaly.flood_window", "must be longer than 0s"));
        }
        if self.anomaly.flood_max_requests == 0 {
            return Err(invalid("anomaly.flood_max_requests", "must be at least 1"));
        }
        if self.rate_limit.key_per_second == 0 {
            return Err(invalid("rate_limit.key_per_second", "must be at least 1"));
        }
        if self.rate_limit.key_burst == 0 {
            return Err(invalid("rate_limit.key_burst", "must be at least 1"));
        }
        let t = &self.throttle;
        for (key, value) in [
            (
                "throttle.signin_failures_per_account_network",
                t.signin_failures_per_account_network,
            ),
            (
                "throttle.signin_failures_per_account",
                t.signin_failures_per_account,
            ),
            (
                "throttle.signin_failures_per_network",
                t.signin_failures_per_network,
            ),
            (
                "throttle.signin_failures_per_wide_network",
                t.signin_failures_per_wide_network,
            ),
            ("throttle.signups_per_network", t.signups_per_network),
            ("throttle.signups_per_wide_network", t.signups_per_wide_network),
        ] {
            // Each throttled subject keeps its last `limit` failure times: keep that small.
            if value == 0 || value > 10_000 {
                return Err(invalid(key, "must be 1 to 10000"));
            }
        }
        if t.signin_failure_window.0.is_zero() {
            return Err(invalid(
                "throttle.signin_failure_window",
                "must be longer than 0s",
            ));
        }
        if t.signup_window.0.is_zero() {
            return Err(invalid("throttle.signup_window", "must be longer than 0s"));
        }
        let p = &self.password;
        // NIST SP 800-63B's floor for a password the user chose.
        if p.min_length < 8 || p.min_length > 256 {
            return Err(invalid("password.min_length", "must be 8 to 256"));
        }
        if p.argon2_parallelism == 0 || p.argon2_parallelism > 16 {
            return Err(invalid("password.argon2_parallelism", "must be 1 to 16"));
        }
        if p.argon2_iterations == 0 || p.argon2_iterations > 64 {
            return Err(invalid("password.argon2_iterations", "must be 1 to 64"));
        }
        // 4 GiB would let one sign-in exhaust the machine; Argon2 itself needs 8 KiB per lane.
        if p.argon2_memory_kib < 8 * p.argon2_parallelism || p.argon2_memory_kib > 4 * 1024 * 1024 {
            return Err(invalid(
                "password.argon2_memory_kib",
                "must be at least 8 × argon2_parallelism and at most 4194304 (4 GiB)",
            ));
        }
        if let Some(pepper) = &p.pepper {
            use secrecy::ExposeSecret;
            if pepper.expose_secret().len() < 16 {
                return Err(invalid("password.pepper", "must be at least 16 bytes when set"));
            }
        }
        Ok(())
    }

    /// What is allowed but probably a mistake, said once at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let listen = self.server.listen.ip();
        if !listen.is_loopback() && self.server.trusted_proxies.is_empty() {
            warnings.push(format!(
                "listening on {listen} with no server.trusted_proxies: behind a proxy or load \
                 balancer every client would count as the proxy's address (one network for the \
                 throttles and the anomaly rules); list the proxies, or listen on a loopback address"
            ));
        }
        let postgres = matches!(self.database_target(), Ok(DatabaseTarget::Postgres(_)));
        if postgres && self.password.pepper.is_none() {
            warnings.push(
                "database.url is PostgreSQL and no pepper is set: a dump or a replica of the database \
                 then holds all an attacker needs to guess passwords offline; set \
                 KILLBILL_AUTH_PASSWORD_PEPPER_FILE (book/src/operating/deployment.md, \"The pepper\") before the first start"
                    .to_owned(),
            );
        }
        if self.pepper_in_file {
            warnings.push(
                "password.pepper is written in the configuration file: a secret in a file that is \
                 copied, backed up and committed; give it as KILLBILL_AUTH_PASSWORD_PEPPER_FILE (or a \
                 systemd credential) instead"
                    .to_owned(),
            );
        }
        if let Some(floor) =
            argon2_below_owasp(self.password.argon2_memory_kib, self.password.argon2_iterations)
        {
            warnings.push(format!(
                "password.argon2_memory_kib = {} with password.argon2_iterations = {} is below \
                 OWASP's minimum for Argon2id ({floor} KiB at that many iterations; the \
                 equivalent settings are m=47104 t=1, m=19456 t=2, m=12288 t=3, m=9216 t=4, \
                 m=7168 t=5): a stolen database would be cheaper to crack; raise either",
                self.password.argon2_memory_kib, self.password.argon2_iterations
            ));
        }
        warnings
    }
}
