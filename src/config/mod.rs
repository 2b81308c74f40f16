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
use serde::{Deserialize, Deserializer, Serialize};

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

mod duration;
mod load;
#[cfg(test)]
mod tests;
mod validate;

pub use duration::HumanDuration;

impl Settings {
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

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.server.trusted_proxies.iter().any(|net| net.contains(&ip))
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
