//! Settings: API.md's TOML file, overridden by `KILLBILL_AUTH_<SECTION>_<KEY>` environment
//! variables, every key with its documented default. An unknown key or a bad value stops
//! start-up with a message naming it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::key_lifecycle::OnLimit;
use crate::domain::ticket::MAX_TICKET_LIFETIME;
use crate::domain::{AnomalyPolicy, KeyPolicy, PasswordPolicy, ThrottlePolicy, TicketPolicy};

/// Prefix of every environment variable the service reads.
pub const ENV_PREFIX: &str = "KILLBILL_AUTH_";

/// The largest `anomaly.max_networks` accepted.
pub const MAX_NETWORKS_LIMIT: u32 = 64;

/// The configuration sections, which is how an environment variable name is split:
/// `KILLBILL_AUTH_RATE_LIMIT_KEY_BURST` is `rate_limit.key_burst`.
const SECTIONS: [&str; 9] = [
    "server",
    "database",
    "keys",
    "tickets",
    "events",
    "anomaly",
    "rate_limit",
    "throttle",
    "password",
];

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub keys: KeysSettings,
    pub tickets: TicketsSettings,
    pub events: EventsSettings,
    pub anomaly: AnomalySettings,
    pub rate_limit: RateLimitSettings,
    pub throttle: ThrottleSettings,
    pub password: PasswordSettings,
    /// The configuration file holds `password.pepper` (a secret in a file that tends to be
    /// committed): said in a warning, whatever overrides it.
    #[serde(skip)]
    pub pepper_in_file: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    #[serde(deserialize_with = "de_networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// A connection must deliver a whole request head within this (the first from its opening,
    /// later ones from their first byte), or it is closed.
    pub request_head_timeout: HumanDuration,
    /// A request's body must arrive, and its handler answer, within this: else 408.
    pub request_timeout: HumanDuration,
    /// A keep-alive connection with no request under way is closed after this.
    pub keep_alive_timeout: HumanDuration,
    /// Open connections at most; 0 = derived from the open-file limit
    /// (see `crate::http::server::derived_max_connections`).
    pub max_connections: u32,
    /// Open connections from one client address at most; trusted proxies are exempt.
    pub max_connections_per_address: u32,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://user:password@host:5432/db`: may hold a password, so it is
    /// printed only with the password redacted ([`redact_url`]).
    pub url: String,
    /// Pool size on PostgreSQL (each instance's).
    pub max_connections: u32,
    /// PostgreSQL: a direct session connection for notifications when `url` goes through a
    /// transaction-pooling PgBouncer; empty = `url`.
    pub listen_url: String,
    /// While the database is unreachable, cached keys keep validating this long after the
    /// instance last read the revocation feed; `0s` = answer 503 at once.
    pub outage_grace: HumanDuration,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("listen_url", &redact_url(&self.listen_url))
            .field("outage_grace", &self.outage_grace)
            .finish()
    }
}

/// A database URL with its password (if any) replaced by `***`: the one in the user
/// information (`postgres://user:PASSWORD@host/db`) and a `password=` (or `sslpassword=`) query
/// parameter. When in doubt it redacts too much rather than too little: a password holding a
/// raw `/` or `?` (which a URL should percent-encode) is still hidden, up to the last `@`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // SQLite URLs are file paths: no user information, no password.
    if scheme.eq_ignore_ascii_case("sqlite") {
        return url.to_owned();
    }
    // The user information ends at the last `@` (an `@` in the query makes this redact more).
    let (userinfo, host) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => (format!("{user}:***@"), host),
            None => (format!("{userinfo}@"), host),
        },
        None => (String::new(), rest),
    };
    let (host, query) = match host.split_once('?') {
        Some((host, query)) => (host, Some(query)),
        None => (host, None),
    };
    let rest = format!("{userinfo}{host}");
    let Some(query) = query else {
        return format!("{scheme}://{rest}");
    };
    let query = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _))
                if name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("sslpassword") =>
            {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{scheme}://{rest}?{query}")
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSettings {
    pub lifetime: HumanDuration,
    pub idle_timeout: HumanDuration,
    pub max_per_user: u32,
    /// `"evict"` (the default) or `"refuse"`.
    pub on_limit: OnLimit,
}

/// `[tickets]`: join tickets (API.md, "Game servers and operators").
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsSettings {
    /// How long a ticket can be redeemed after it was asked for.
    pub lifetime: HumanDuration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// Security events older than this are deleted.
    pub retention: HumanDuration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySettings {
    pub window: HumanDuration,
    pub max_networks: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub flood_window: HumanDuration,
    pub flood_max_requests: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    pub key_per_second: u32,
    pub key_burst: u32,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleSettings {
    pub signin_failures_per_account_network: u32,
    pub signin_failures_per_account: u32,
    pub signin_failures_per_network: u32,
    pub signin_failures_per_wide_network: u32,
    pub signin_failure_window: HumanDuration,
    pub signups_per_network: u32,
    pub signups_per_wide_network: u32,
    pub signup_window: HumanDuration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSettings {
    pub min_length: u32,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Server-side secret mixed into every hash (Argon2's secret input). Set it through
    /// `KILLBILL_AUTH_PASSWORD_PEPPER`, never in a committed file.
    #[serde(skip_serializing)]
    pub pepper: Option<SecretString>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
            request_head_timeout: HumanDuration::secs(10),
            request_timeout: HumanDuration::secs(30),
            keep_alive_timeout: HumanDuration::secs(60),
            max_connections: 0,
            max_connections_per_address: 256,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/killbill-auth.db".to_owned(),
            max_connections: 16,
            listen_url: String::new(),
            outage_grace: HumanDuration::secs(30),
        }
    }
}

impl Default for KeysSettings {
    fn default() -> Self {
        Self {
            lifetime: HumanDuration::days(180),
            idle_timeout: HumanDuration::ZERO,
            max_per_user: 10,
            on_limit: OnLimit::Evict,
        }
    }
}

impl Default for TicketsSettings {
    fn default() -> Self {
        Self {
            lifetime: HumanDuration::secs(30),
        }
    }
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            retention: HumanDuration::days(90),
        }
    }
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            window: HumanDuration::hours(24),
            max_networks: 8,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            flood_window: HumanDuration::hours(1),
            flood_max_requests: 100_000,
        }
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            key_per_second: 50,
            key_burst: 100,
        }
    }
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            signin_failures_per_account_network: 5,
            signin_failures_per_account: 50,
            signin_failures_per_network: 100,
            signin_failures_per_wide_network: 1000,
            signin_failure_window: HumanDuration(Duration::from_secs(15 * 60)),
            signups_per_network: 20,
            signups_per_wide_network: 200,
            signup_window: HumanDuration::hours(1),
        }
    }
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            min_length: 12,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            pepper: None,
        }
    }
}

/// Where the data lives, from `database.url`.
#[derive(Clone, Debug)]
pub enum DatabaseTarget {
    /// `sqlite://PATH` (relative to the working directory) or `sqlite:///abs/path`.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`: several instances may share it.
    Postgres(PostgresTarget),
}

/// A PostgreSQL database. The URLs may hold a password: they are secrets (`Debug` redacts them).
#[derive(Clone, Debug)]
pub struct PostgresTarget {
    pub url: SecretString,
    /// Where notifications are listened for (`database.listen_url`, else `url`).
    pub listen_url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Settings {
    /// Defaults, then the TOML file (if any), then `KILLBILL_AUTH_*` variables; then validation.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        // A variable that is not valid Unicode cannot be a setting of ours; skip it rather than panic.
        let vars =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::load_from(file, vars)
    }

    /// [`Settings::load`] with the environment given explicitly (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError::Parse(format!("file {} not found", path.display())))
            }
            Some(path) => Some(Toml::file_exact(path)),
            None => None,
        };
        Self::extract(file, env)
    }

    /// Settings from TOML text and no environment (for tools and fuzzing).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::extract(Some(Toml::string(text)), Vec::new())
    }

    fn extract(
        file: Option<figment::providers::Data<Toml>>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let mut pepper_in_file = false;
        if let Some(file) = file {
            pepper_in_file = file.data().is_ok_and(|profiles| {
                profiles.values().any(|dict| {
                    matches!(dict.get("password"), Some(Value::Dict(_, password)) if password.contains_key("pepper"))
                })
            });
            figment = figment.merge(file);
        }
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        for (name, value) in read_file_variables(vars)? {
            figment = figment.merge(EnvVar { name, value });
        }
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Parse(flatten_figment_error(e)))?;
        settings.pepper_in_file = pepper_in_file;
        settings.validate()?;
        Ok(settings)
    }

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

    pub fn database_target(&self) -> Result<DatabaseTarget, ConfigError> {
        let url = self.database.url.as_str();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid(
                    "database.url",
                    "sqlite:// needs a file path, e.g. sqlite://data/killbill-auth.db",
                ));
            }
            return Ok(DatabaseTarget::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let d = &self.database;
            if d.max_connections == 0 || d.max_connections > 1000 {
                return Err(invalid("database.max_connections", "must be 1 to 1000"));
            }
            let listen = if d.listen_url.is_empty() {
                &d.url
            } else if d.listen_url.starts_with("postgres://") || d.listen_url.starts_with("postgresql://") {
                &d.listen_url
            } else {
                return Err(invalid(
                    "database.listen_url",
                    "must start with postgres:// (or be empty)",
                ));
            };
            return Ok(DatabaseTarget::Postgres(PostgresTarget {
                url: SecretString::from(d.url.clone()),
                listen_url: SecretString::from(listen.clone()),
                max_connections: d.max_connections,
            }));
        }
        Err(invalid(
            "database.url",
            "must start with sqlite:// or postgres://",
        ))
    }

    pub fn key_policy(&self) -> KeyPolicy {
        KeyPolicy {
            lifetime: self.keys.lifetime.0,
            idle_timeout: (!self.keys.idle_timeout.0.is_zero()).then_some(self.keys.idle_timeout.0),
            max_per_user: self.keys.max_per_user as usize,
            on_limit: self.keys.on_limit,
        }
    }

    pub fn ticket_policy(&self) -> TicketPolicy {
        TicketPolicy {
            lifetime: self.tickets.lifetime.0,
        }
    }

    pub fn anomaly_policy(&self) -> AnomalyPolicy {
        let a = &self.anomaly;
        AnomalyPolicy {
            window: a.window.0,
            max_networks: a.max_networks as usize,
            ipv4_prefix: a.ipv4_prefix,
            ipv6_prefix: a.ipv6_prefix,
            flood_window: a.flood_window.0,
            flood_max_requests: a.flood_max_requests,
            per_second: f64::from(self.rate_limit.key_per_second),
            burst: f64::from(self.rate_limit.key_burst),
            shared: matches!(self.database_target(), Ok(DatabaseTarget::Postgres(_))),
        }
    }

    pub fn throttle_policy(&self) -> ThrottlePolicy {
        let t = &self.throttle;
        ThrottlePolicy {
            per_account_network: t.signin_failures_per_account_network as usize,
            per_account: t.signin_failures_per_account as usize,
            per_network: t.signin_failures_per_network as usize,
            per_wide_network: t.signin_failures_per_wide_network as usize,
            failure_window: t.signin_failure_window.0,
            signups_per_network: t.signups_per_network as usize,
            signups_per_wide_network: t.signups_per_wide_network as usize,
            signup_window: t.signup_window.0,
        }
    }

    pub fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy {
            min_length: self.password.min_length as usize,
        }
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

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.server.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The effective configuration as TOML (`serve --check-config`): every section and key in
    /// the documented order, database URLs with their password redacted ([`redact_url`]), the
    /// pepper only as a comment saying whether it is set, never its value. The text loads back
    /// ([`Settings::from_toml_str`]) to the same settings, less the secrets.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        #[derive(Serialize)]
        struct Database {
            url: String,
            max_connections: u32,
            listen_url: String,
        }
        fn section<T: Serialize>(out: &mut String, name: &str, value: &T) -> Result<(), ConfigError> {
            let body = toml::to_string(value)
                .map_err(|e| ConfigError::Parse(format!("cannot write section [{name}]: {e}")))?;
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{name}]\n{body}"));
            Ok(())
        }
        let mut out = String::new();
        section(&mut out, "server", &self.server)?;
        section(
            &mut out,
            "database",
            &Database {
                url: redact_url(&self.database.url),
                max_connections: self.database.max_connections,
                listen_url: redact_url(&self.database.listen_url),
            },
        )?;
        section(&mut out, "keys", &self.keys)?;
        section(&mut out, "tickets", &self.tickets)?;
        section(&mut out, "events", &self.events)?;
        section(&mut out, "anomaly", &self.anomaly)?;
        section(&mut out, "rate_limit", &self.rate_limit)?;
        section(&mut out, "throttle", &self.throttle)?;
        section(&mut out, "password", &self.password)?;
        out.push_str(match self.password.pepper {
            Some(_) => "# pepper: set (its value is never shown)\n",
            None => "# pepper: not set\n",
        });
        Ok(out)
    }
}

/// Suffix of a variable whose value is read from a file: `KILLBILL_AUTH_DATABASE_URL_FILE=/run/secrets/db`
/// sets `database.url` to the file's contents, its trailing newline removed (how containers hand
/// secrets over). Sorted by name, so that the order of the environment does not matter.
const FILE_SUFFIX: &str = "_FILE";

/// Replaces each `…_FILE` variable by the variable it names, with the file's contents. Setting
/// both forms of one key is an error (which one wins would be a guess); so is a file that cannot
/// be read. Error messages name the variable and the path, never the contents (a secret).
fn read_file_variables(vars: Vec<(String, String)>) -> Result<Vec<(String, String)>, ConfigError> {
    let direct: std::collections::HashSet<&str> = vars
        .iter()
        .filter(|(k, _)| !k.ends_with(FILE_SUFFIX))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut out = Vec::with_capacity(vars.len());
    for (name, value) in &vars {
        let Some(target) = name.strip_suffix(FILE_SUFFIX) else {
            out.push((name.clone(), value.clone()));
            continue;
        };
        if direct.contains(target) {
            return Err(ConfigError::Parse(format!(
                "both {target} and {name} are set; set one of them"
            )));
        }
        let mut text = std::fs::read_to_string(value).map_err(|e| {
            ConfigError::Parse(format!("environment variable {name}: cannot read {value}: {e}"))
        })?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        out.push((target.to_owned(), text));
    }
    out.sort();
    Ok(out)
}

/// `ANOMALY_MAX_NETWORKS` → `anomaly.max_networks`; a name with no known section is kept as it
/// is, so that `deny_unknown_fields` reports it by name.
fn env_key_path(rest: &str) -> String {
    let lower = rest.to_ascii_lowercase();
    for section in SECTIONS {
        if let Some(key) = lower.strip_prefix(section).and_then(|r| r.strip_prefix('_')) {
            return format!("{section}.{key}");
        }
    }
    lower
}

/// Keys whose values are text even when they look like a number (a pepper of digits, say).
const STRING_KEYS: [&str; 14] = [
    "server.listen",
    "server.request_head_timeout",
    "server.request_timeout",
    "server.keep_alive_timeout",
    "database.url",
    "database.outage_grace",
    "password.pepper",
    "keys.lifetime",
    "keys.idle_timeout",
    "tickets.lifetime",
    "anomaly.window",
    "anomaly.flood_window",
    "throttle.signin_failure_window",
    "throttle.signup_window",
];

/// One `KILLBILL_AUTH_*` variable as a figment provider, so that errors name the variable.
struct EnvVar {
    name: String,
    value: String,
}

impl Provider for EnvVar {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let path = env_key_path(&self.name[ENV_PREFIX.len()..]);
        // Values read like TOML scalars (`3`, `true`, `["10.0.0.2"]`); anything else is a string.
        // A backslash is never part of a valid number, boolean, duration or address list, and
        // figment's parser panics on one after a non-ASCII character (found by the proptest
        // below): such a value stays a string, and the type check names the variable.
        let value: Value = if STRING_KEYS.contains(&path.as_str()) || self.value.contains('\\') {
            Value::from(self.value.clone())
        } else {
            match self.value.parse() {
                Ok(v) => v,
                Err(never) => match never {},
            }
        };
        match figment::util::nest(&path, value) {
            Value::Dict(_, dict) => Ok(Profile::Default.collect(dict)),
            _ => Err(figment::Error::from(format!(
                "{} is not a configuration key",
                self.name
            ))),
        }
    }
}

fn flatten_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| describe_figment_error(&e))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One configuration error in an operator's words: the key as written in the file
/// (`server.listn`, never figment's profile prefix), where it came from, and for an unknown key
/// the nearest valid one.
fn describe_figment_error(e: &figment::Error) -> String {
    use figment::error::Kind;
    let key = e.path.join(".");
    let place = match &e.metadata {
        Some(md) => match &md.source {
            Some(figment::Source::File(path)) => format!(" in {}", path.display()),
            Some(source) => format!(" in {source}"),
            None => format!(" in {}", md.name),
        },
        None => String::new(),
    };
    match &e.kind {
        Kind::UnknownField(field, expected) => {
            let section = e
                .path
                .split_last()
                .map(|(_, rest)| rest.join("."))
                .unwrap_or_default();
            let full = |name: &str| {
                if section.is_empty() {
                    name.to_owned()
                } else {
                    format!("{section}.{name}")
                }
            };
            let nearest = expected
                .iter()
                .map(|candidate| (strsim::levenshtein(field, candidate), *candidate))
                .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2))
                .min();
            let key = if key.is_empty() { full(field) } else { key };
            match nearest {
                Some((_, name)) => format!("unknown key `{key}`{place}: did you mean `{}`?", full(name)),
                None => format!(
                    "unknown key `{key}`{place}: the keys here are {}",
                    expected
                        .iter()
                        .map(|n| format!("`{}`", full(n)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        kind if key.is_empty() => format!("{kind}{place}"),
        kind => format!("`{key}`{place}: {kind}"),
    }
}

/// A duration written like `180d`, `24h`, `90s`, `500ms` (humantime's syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const ZERO: Self = Self(Duration::ZERO);

    const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    const fn hours(h: u64) -> Self {
        Self(Duration::from_secs(h * 3600))
    }

    const fn days(d: u64) -> Self {
        Self(Duration::from_secs(d * 86_400))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?} ({e}); write e.g. 180d, 24h, 90s, 500ms"
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The largest of `d`, `h`, `m`, `s`, `ms` that writes the duration exactly (`180d`, `15m`,
/// `1500ms`), as the configuration is written; below a millisecond, humantime's own form.
impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return write!(
                f,
                "{}",
                humantime::format_duration(d).to_string().replace(' ', "")
            );
        }
        let ms = d.as_millis();
        // As the documentation writes them: one day as 24h, one minute as 60s.
        match ms {
            0 => return f.write_str("0s"),
            86_400_000 => return f.write_str("24h"),
            60_000 => return f.write_str("60s"),
            _ => {}
        }
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// Accepts addresses (`10.0.0.2`) and networks (`10.0.0.0/8`).
fn de_networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let items = Vec::<String>::deserialize(d)?;
    items
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IP address or network")))
        })
        .collect()
}

/// OWASP's Password Storage Cheat Sheet: the least memory (KiB) Argon2id should use at each
/// number of iterations (m=47104 t=1, m=19456 t=2, m=12288 t=3, m=9216 t=4, m=7168 t=5, which
/// give about the same defence; more iterations than 5 are not credited further). The floor
/// when `memory_kib` is below it, else `None`.
pub fn argon2_below_owasp(memory_kib: u32, iterations: u32) -> Option<u32> {
    let floor = match iterations {
        0 | 1 => 47_104,
        2 => 19_456,
        3 => 12_288,
        4 => 9_216,
        _ => 7_168,
    };
    (memory_kib < floor).then_some(floor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_api_md() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.request_head_timeout.0, Duration::from_secs(10));
        assert_eq!(s.server.request_timeout.0, Duration::from_secs(30));
        assert_eq!(s.server.keep_alive_timeout.0, Duration::from_secs(60));
        assert_eq!(
            (s.server.max_connections, s.server.max_connections_per_address),
            (0, 256)
        );
        assert!(matches!(
            s.database_target().unwrap(),
            DatabaseTarget::Sqlite(p) if p == Path::new("data/killbill-auth.db")
        ));
        assert_eq!(s.database.max_connections, 16);
        assert_eq!(s.keys.lifetime.0, Duration::from_secs(180 * 86_400));
        assert!(s.key_policy().idle_timeout.is_none());
        assert_eq!(s.keys.max_per_user, 10);
        assert_eq!(s.anomaly.window.0, Duration::from_secs(86_400));
        assert_eq!(
            (
                s.anomaly.max_networks,
                s.anomaly.ipv4_prefix,
                s.anomaly.ipv6_prefix
            ),
            (8, 24, 64)
        );
        assert_eq!(s.anomaly.flood_max_requests, 100_000);
        assert_eq!((s.rate_limit.key_per_second, s.rate_limit.key_burst), (50, 100));
        assert_eq!(s.throttle.signin_failure_window.0, Duration::from_secs(900));
        assert_eq!(s.throttle.signups_per_network, 20);
        assert_eq!(s.throttle.signin_failures_per_wide_network, 1000);
        assert_eq!(s.key_policy().on_limit, OnLimit::Evict);
        let refuse = Settings::load_from(None, env(&[("KILLBILL_AUTH_KEYS_ON_LIMIT", "refuse")])).unwrap();
        assert_eq!(refuse.key_policy().on_limit, OnLimit::Refuse);
        let e = Settings::load_from(None, env(&[("KILLBILL_AUTH_KEYS_ON_LIMIT", "drop")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("on_limit") || e.contains("KILLBILL_AUTH_KEYS_ON_LIMIT"),
            "{e}"
        );
        assert_eq!(
            (
                s.password.min_length,
                s.password.argon2_memory_kib,
                s.password.argon2_iterations,
                s.password.argon2_parallelism
            ),
            (12, 19_456, 2, 1)
        );
    }

    #[test]
    fn file_then_environment() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "[server]\nlisten = \"127.0.0.1:9999\"\ntrusted_proxies = [\"10.0.0.2\", \"192.168.0.0/16\"]\n\
             [keys]\nlifetime = \"30d\"\nidle_timeout = \"500ms\"\n[anomaly]\nmax_networks = 5\n\
             [rate_limit]\nkey_burst = 7"
        )
        .unwrap();
        let s = Settings::load_from(
            Some(f.path()),
            env(&[
                ("KILLBILL_AUTH_ANOMALY_MAX_NETWORKS", "3"),
                ("KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND", "9"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.listen.port(), 9999);
        assert!(s.is_trusted_proxy("10.0.0.2".parse().unwrap()));
        assert!(s.is_trusted_proxy("192.168.4.5".parse().unwrap()));
        assert!(!s.is_trusted_proxy("10.0.0.3".parse().unwrap()));
        assert_eq!(s.keys.lifetime.0, Duration::from_secs(30 * 86_400));
        assert_eq!(s.key_policy().idle_timeout, Some(Duration::from_millis(500)));
        assert_eq!(s.anomaly.max_networks, 3, "environment overrides the file");
        assert_eq!(s.rate_limit.key_burst, 7);
        assert_eq!(s.rate_limit.key_per_second, 9);
    }

    fn load_err(toml: &str, vars: &[(&str, &str)]) -> String {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "{toml}").unwrap();
        Settings::load_from(Some(f.path()), env(vars))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_keys_are_named() {
        assert!(load_err("[anomaly]\nmax_netwroks = 3\n", &[]).contains("max_netwroks"));
        assert!(load_err("[anomali]\nmax_networks = 3\n", &[]).contains("anomali"));
        assert!(load_err("", &[("KILLBILL_AUTH_KEYS_LIFETIMES", "1d")]).contains("lifetimes"));
    }

    #[test]
    fn bad_values_are_named() {
        let e = load_err("[keys]\nlifetime = \"six months\"\n", &[]);
        assert!(e.contains("lifetime") && e.contains("six months"), "{e}");
        let e = load_err("", &[("KILLBILL_AUTH_ANOMALY_MAX_NETWORKS", "lots")]);
        assert!(e.contains("max_networks"), "{e}");
        let e = load_err("[anomaly]\nipv4_prefix = 33\n", &[]);
        assert!(e.contains("anomaly.ipv4_prefix"), "{e}");
        let e = load_err("[server]\ntrusted_proxies = [\"nope\"]\n", &[]);
        assert!(e.contains("trusted_proxies") && e.contains("nope"), "{e}");
        let e = load_err("[database]\nurl = \"mysql://x\"\n", &[]);
        assert!(e.contains("database.url"), "{e}");
        let e = load_err("[password]\nargon2_memory_kib = 4\n", &[]);
        assert!(e.contains("password.argon2_memory_kib"), "{e}");
        let e = load_err("[keys]\nmax_per_user = 0\n", &[]);
        assert!(e.contains("keys.max_per_user"), "{e}");
    }

    #[test]
    fn ticket_lifetime_from_file_and_environment_within_bounds() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.ticket_policy().lifetime, Duration::from_secs(30));
        let s = Settings::load_from(None, env(&[("KILLBILL_AUTH_TICKETS_LIFETIME", "90s")])).unwrap();
        assert_eq!(s.tickets.lifetime.0, Duration::from_secs(90));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[tickets]\nlifetime = \"10m\"").unwrap();
        let s = Settings::load_from(Some(f.path()), env(&[])).unwrap();
        assert_eq!(s.tickets.lifetime.0, Duration::from_secs(600));
        for bad in ["0s", "601s", "1h"] {
            let e = load_err(&format!("[tickets]\nlifetime = \"{bad}\"\n"), &[]);
            assert!(e.contains("tickets.lifetime"), "{bad}: {e}");
        }
        let e = load_err("", &[("KILLBILL_AUTH_TICKETS_LIFETIME", "soon")]);
        assert!(e.contains("lifetime") && e.contains("soon"), "{e}");
        let e = load_err("[tickets]\nlifetme = \"30s\"\n", &[]);
        assert!(e.contains("lifetme"), "{e}");
    }

    #[test]
    fn argon2_settings_below_owasps_minimum_are_warned_about_and_short_passwords_refused() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(
            s.warnings().is_empty(),
            "the defaults are OWASP's: {:?}",
            s.warnings()
        );
        for (m, t, below) in [
            ("19456", "2", false),
            ("19455", "2", true),
            ("47104", "1", false),
            ("46080", "1", true),
            ("7168", "5", false),
            ("7168", "4", true),
            ("7168", "64", false),
            ("8", "1", true),
            ("12288", "3", false),
        ] {
            let s = Settings::load_from(
                None,
                env(&[
                    ("KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB", m),
                    ("KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS", t),
                ]),
            )
            .unwrap();
            let warned = s.warnings().iter().any(|w| {
                w.contains(&format!(
                    "password.argon2_memory_kib = {m} with password.argon2_iterations = {t}"
                )) && w.contains("OWASP")
            });
            assert_eq!(warned, below, "m={m} t={t}: {:?}", s.warnings());
        }
        for bad in ["0", "1", "7", "257"] {
            let e = load_err(&format!("[password]\nmin_length = {bad}\n"), &[]);
            assert!(
                e.contains("password.min_length") && e.contains("8 to 256"),
                "{bad}: {e}"
            );
        }
        let s = Settings::load_from(None, env(&[("KILLBILL_AUTH_PASSWORD_MIN_LENGTH", "8")])).unwrap();
        assert_eq!(s.password.min_length, 8);
    }

    #[test]
    fn a_public_listener_without_trusted_proxies_is_warned_about() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert!(s.warnings().is_empty());
        let s = Settings::load_from(None, env(&[("KILLBILL_AUTH_SERVER_LISTEN", "0.0.0.0:8080")])).unwrap();
        assert_eq!(s.warnings().len(), 1);
        assert!(s.warnings()[0].contains("trusted_proxies"));
        let s = Settings::load_from(
            None,
            env(&[
                ("KILLBILL_AUTH_SERVER_LISTEN", "0.0.0.0:8080"),
                ("KILLBILL_AUTH_SERVER_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
            ]),
        )
        .unwrap();
        assert!(s.warnings().is_empty());
    }

    #[test]
    fn server_limits_from_file_and_environment() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "[server]\nrequest_head_timeout = \"2s\"\nkeep_alive_timeout = \"5m\"\nmax_connections = 900"
        )
        .unwrap();
        let s = Settings::load_from(
            Some(f.path()),
            env(&[
                ("KILLBILL_AUTH_SERVER_REQUEST_TIMEOUT", "1500ms"),
                ("KILLBILL_AUTH_SERVER_KEEP_ALIVE_TIMEOUT", "90s"),
                ("KILLBILL_AUTH_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "12"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.request_head_timeout.0, Duration::from_secs(2));
        assert_eq!(s.server.request_timeout.0, Duration::from_millis(1500));
        assert_eq!(s.server.keep_alive_timeout.0, Duration::from_secs(90));
        assert_eq!(s.server.max_connections, 900);
        assert_eq!(s.server.max_connections_per_address, 12);
    }

    #[test]
    fn server_limits_are_validated() {
        for key in ["request_head_timeout", "request_timeout", "keep_alive_timeout"] {
            let e = load_err(&format!("[server]\n{key} = \"0s\"\n"), &[]);
            assert!(e.contains(&format!("server.{key}")), "{e}");
            let var = format!("KILLBILL_AUTH_SERVER_{}", key.to_uppercase());
            let e = load_err("", &[(var.as_str(), "soon")]);
            assert!(e.contains(key) && e.contains("soon"), "{e}");
        }
        let e = load_err("[server]\nmax_connections_per_address = 0\n", &[]);
        assert!(e.contains("server.max_connections_per_address"), "{e}");
        let e = load_err("", &[("KILLBILL_AUTH_SERVER_MAX_CONNECTIONS", "-1")]);
        assert!(e.contains("max_connections"), "{e}");
    }

    #[test]
    fn values_may_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let pepper = dir.path().join("pepper");
        std::fs::write(&pepper, "a-pepper-from-a-file-123\n").unwrap();
        let networks = dir.path().join("networks");
        std::fs::write(&networks, "3").unwrap();
        let s = Settings::load_from(
            None,
            vec![
                (
                    "KILLBILL_AUTH_PASSWORD_PEPPER_FILE".into(),
                    pepper.display().to_string(),
                ),
                (
                    "KILLBILL_AUTH_ANOMALY_MAX_NETWORKS_FILE".into(),
                    networks.display().to_string(),
                ),
            ],
        )
        .unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(
            s.password.pepper.as_ref().unwrap().expose_secret(),
            "a-pepper-from-a-file-123"
        );
        assert_eq!(s.anomaly.max_networks, 3);

        let e = Settings::load_from(
            None,
            vec![(
                "KILLBILL_AUTH_PASSWORD_PEPPER_FILE".into(),
                "/nonexistent/pepper".into(),
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("KILLBILL_AUTH_PASSWORD_PEPPER_FILE") && e.contains("/nonexistent/pepper"),
            "{e}"
        );
        let e = Settings::load_from(
            None,
            vec![
                (
                    "KILLBILL_AUTH_PASSWORD_PEPPER_FILE".into(),
                    pepper.display().to_string(),
                ),
                (
                    "KILLBILL_AUTH_PASSWORD_PEPPER".into(),
                    "another-pepper-value-456".into(),
                ),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("set one of them"), "{e}");
        assert!(!e.contains("a-pepper-from-a-file"), "{e}");
    }

    #[test]
    fn postgres_urls_are_secrets() {
        let url = "postgres://kb:s3cr3t-pw@db.internal:5432/killbill";
        let s = Settings::load_from(
            None,
            env(&[
                ("KILLBILL_AUTH_DATABASE_URL", url),
                ("KILLBILL_AUTH_DATABASE_MAX_CONNECTIONS", "32"),
            ]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("s3cr3t-pw"), "{s:?}");
        match s.database_target().unwrap() {
            DatabaseTarget::Postgres(pg) => {
                use secrecy::ExposeSecret;
                assert_eq!(pg.url.expose_secret(), url);
                assert_eq!(pg.listen_url.expose_secret(), url);
                assert_eq!(pg.max_connections, 32);
                assert!(!format!("{pg:?}").contains("s3cr3t-pw"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(redact_url(url), "postgres://kb:***@db.internal:5432/killbill");
        assert_eq!(redact_url("postgres://kb@h/db"), "postgres://kb@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
        let e = load_err(
            "[database]\nurl = \"postgres://kb:pw@h/db\"\nmax_connections = 0\n",
            &[],
        );
        assert!(e.contains("database.max_connections"), "{e}");
        let e = load_err("[database]\nurl = \"mysql://kb:s3cr3t@h/db\"\n", &[]);
        assert!(e.contains("database.url") && !e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn passwords_are_redacted_wherever_they_sit_in_a_url() {
        for (url, shown) in [
            ("postgres://kb:pw@h:5432/db", "postgres://kb:***@h:5432/db"),
            (
                "postgres://kb:pw@h/db?password=pw2&sslmode=require",
                "postgres://kb:***@h/db?password=***&sslmode=require",
            ),
            (
                "postgresql://kb@h/db?sslpassword=pw3",
                "postgresql://kb@h/db?sslpassword=***",
            ),
            ("postgres://kb:p/w?x@h/db", "postgres://kb:***@h/db"),
            ("postgres://kb:p@w@h/db", "postgres://kb:***@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            (
                "postgres://kb:pw@h/db?application_name=a@b",
                "postgres://kb:***@b",
            ),
            ("sqlite://data/a:b@c.db", "sqlite://data/a:b@c.db"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn durations_are_written_as_the_configuration_is() {
        for (ms, text) in [
            (0, "0s"),
            (500, "500ms"),
            (1500, "1500ms"),
            (90_000, "90s"),
            (15 * 60_000, "15m"),
            (86_400_000, "24h"),
            (2 * 86_400_000, "2d"),
            (60_000, "60s"),
            (120_000, "2m"),
            (3_600_000, "1h"),
            (180 * 86_400_000, "180d"),
            (25 * 3_600_000, "25h"),
        ] {
            let d = HumanDuration(Duration::from_millis(ms));
            assert_eq!(d.to_string(), text);
            let back: HumanDuration = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(back, d);
        }
    }

    #[test]
    fn the_effective_configuration_loads_back_less_its_secrets() {
        let s = Settings::load_from(
            None,
            env(&[
                (
                    "KILLBILL_AUTH_DATABASE_URL",
                    "postgres://kb:s3cr3t-pw@db:5432/kb?password=s3cr3t-too",
                ),
                ("KILLBILL_AUTH_PASSWORD_PEPPER", "a-very-secret-pepper-value"),
                ("KILLBILL_AUTH_KEYS_LIFETIME", "30d"),
                (
                    "KILLBILL_AUTH_SERVER_TRUSTED_PROXIES",
                    "[\"10.0.0.0/8\", \"10.1.2.3\"]",
                ),
                ("KILLBILL_AUTH_THROTTLE_SIGNIN_FAILURE_WINDOW", "1500ms"),
            ]),
        )
        .unwrap();
        let text = s.to_redacted_toml().unwrap();
        assert!(
            !text.contains("s3cr3t") && !text.contains("a-very-secret-pepper"),
            "{text}"
        );
        assert!(text.contains("# pepper: set"), "{text}");
        for section in SECTIONS {
            assert!(text.contains(&format!("[{section}]\n")), "{section} in {text}");
        }
        let back = Settings::from_toml_str(&text).unwrap();
        assert_eq!(back.keys.lifetime, s.keys.lifetime);
        assert_eq!(back.server.trusted_proxies, s.server.trusted_proxies);
        assert_eq!(back.throttle.signin_failure_window.0, Duration::from_millis(1500));
        assert_eq!(back.database.url, "postgres://kb:***@db:5432/kb?password=***");
        assert!(back.password.pepper.is_none());
        assert_eq!(
            back.to_redacted_toml().unwrap(),
            text.replace("# pepper: set (its value is never shown)", "# pepper: not set")
        );
        let defaults = Settings::load_from(None, env(&[]))
            .unwrap()
            .to_redacted_toml()
            .unwrap();
        assert!(
            defaults.contains("lifetime = \"180d\"") && defaults.contains("# pepper: not set"),
            "{defaults}"
        );
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Settings::load_from(Some(Path::new("/nonexistent/k.toml")), env(&[])).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/k.toml"));
    }

    #[test]
    fn pepper_comes_from_the_environment_and_is_not_printed() {
        let s = Settings::load_from(
            None,
            env(&[("KILLBILL_AUTH_PASSWORD_PEPPER", "a-very-secret-pepper-value")]),
        )
        .unwrap();
        assert!(s.password.pepper.is_some());
        assert!(!format!("{s:?}").contains("a-very-secret-pepper-value"));
    }

    proptest::proptest! {
        /// Whatever the file says, loading ends in settings or an error, never a panic.
        #[test]
        fn arbitrary_toml_never_panics(text in "\\PC{0,200}") {
            let _ = Settings::from_toml_str(&text);
        }

        #[test]
        fn arbitrary_values_of_known_keys_never_panic(
            section in proptest::sample::select(SECTIONS.to_vec()),
            key in "[a-z_]{1,40}",
            value in "\\PC{0,40}",
        ) {
            let _ = Settings::from_toml_str(&format!("[{section}]\n{key} = {value}\n"));
            let _ = Settings::load_from(None, vec![(format!("KILLBILL_AUTH_{section}_{key}").to_uppercase(), value)]);
        }
    }

    #[test]
    fn a_backslash_after_non_ascii_in_a_variable_is_an_error_not_a_panic() {
        for value in ["\"é\\n\"", "é\\", "[\"ü\\\"]"] {
            let err = Settings::load_from(
                None,
                vec![("KILLBILL_AUTH_ANOMALY_MAX_NETWORKS".into(), value.into())],
            )
            .expect_err(value);
            assert!(
                err.to_string().contains("KILLBILL_AUTH_ANOMALY_MAX_NETWORKS"),
                "{err}"
            );
        }
    }

    #[test]
    fn durations_in_every_documented_unit() {
        for (text, d) in [
            ("180d", 180 * 86_400_000),
            ("24h", 86_400_000),
            ("90s", 90_000),
            ("500ms", 500),
            ("0s", 0),
        ] {
            let v: HumanDuration = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(v.0, Duration::from_millis(d), "{text}");
        }
    }
}
