//! The settings' tests: defaults, sources, validation, redaction.

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
