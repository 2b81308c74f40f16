//! The command line itself, through the real binary: `serve --check-config`, `--help` and the
//! exit codes that need no database. (The admin commands against a running server are in
//! `admin.rs`.)

use std::path::Path;
use std::process::{Command, Output, Stdio};

use killbill_auth::config::Settings;

/// `killbill-auth ARGS` in `dir` with only `env` among the service's variables.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_killbill-auth"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KILLBILL_AUTH_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run the binary")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("killbill-auth.toml");
    std::fs::write(
        &file,
        "[database]\nurl = \"postgres://kb:hunter2-in-the-file@db.internal:5432/killbill\"\n\
         max_connections = 8\n[anomaly]\nmax_networks = 5\n[keys]\nlifetime = \"90d\"\n",
    )
    .unwrap();
    let pepper = dir.path().join("pepper");
    std::fs::write(&pepper, "pepper-from-a-file-0123456789\n").unwrap();
    let out = run(
        dir.path(),
        &["serve", "--check-config", "--config", file.to_str().unwrap()],
        &[
            ("KILLBILL_AUTH_PASSWORD_PEPPER_FILE", pepper.to_str().unwrap()),
            ("KILLBILL_AUTH_KEYS_LIFETIME", "30d"),
            ("KILLBILL_AUTH_SERVER_LISTEN", "0.0.0.0:9000"),
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for section in [
        "server",
        "database",
        "keys",
        "tickets",
        "events",
        "anomaly",
        "rate_limit",
        "throttle",
        "password",
    ] {
        assert!(
            text.contains(&format!("\n[{section}]\n")),
            "[{section}] in:\n{text}"
        );
    }
    assert!(
        !text.contains("hunter2") && !text.contains("pepper-from-a-file"),
        "{text}"
    );
    assert!(
        text.contains("url = \"postgres://kb:***@db.internal:5432/killbill\""),
        "{text}"
    );
    assert!(text.contains("# pepper: set"), "{text}");
    assert!(
        text.contains("KILLBILL_AUTH_PASSWORD_PEPPER_FILE") && text.contains("KILLBILL_AUTH_KEYS_LIFETIME"),
        "the variables are named: {text}"
    );
    assert!(text.contains("# warning: listening on 0.0.0.0"), "{text}");
    // The output is a configuration: it loads, with the file's and the variables' values.
    let back = Settings::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert_eq!(back.anomaly.max_networks, 5);
    assert_eq!(
        back.keys.lifetime.0.as_secs(),
        30 * 86_400,
        "the variable beats the file"
    );
    assert_eq!(back.database.max_connections, 8);
    assert_eq!(back.server.listen.to_string(), "0.0.0.0:9000");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(!dir.path().join("data").exists(), "a check creates nothing");

    // The database URL, password and all, from a `_FILE` variable; no pepper.
    let url = dir.path().join("database-url");
    std::fs::write(
        &url,
        "postgresql://svc:s3cr3t%2Fpw@10.0.0.5/kb?sslmode=require&password=other-s3cr3t\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &["serve", "--check-config"],
        &[("KILLBILL_AUTH_DATABASE_URL_FILE", url.to_str().unwrap())],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(
        text.contains("url = \"postgresql://svc:***@10.0.0.5/kb?sslmode=require&password=***\""),
        "{text}"
    );
    assert!(
        text.contains("# pepper: not set") && text.contains("# file: none"),
        "{text}"
    );

    // No configuration at all: the documented defaults.
    let out = run(dir.path(), &["serve", "--check-config"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for line in [
        "listen = \"127.0.0.1:8080\"",
        "url = \"sqlite://data/killbill-auth.db\"",
        "lifetime = \"180d\"",
        "window = \"24h\"",
        "signin_failure_window = \"15m\"",
        "argon2_memory_kib = 19456",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}

#[test]
fn check_config_names_what_is_wrong_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let unknown = write("unknown.toml", "[keys]\nlifetimes = \"30d\"\n");
    let range = write("range.toml", "[anomaly]\nmax_networks = 0\n");
    let duration = write("duration.toml", "[tickets]\nlifetime = \"a while\"\n");
    let syntax = write("syntax.toml", "[server\nlisten = 1\n");
    let secret = write(
        "secret.toml",
        "[database]\nurl = \"postgres://kb:hunter2@h/db\"\nmax_connections = 0\n",
    );
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--config", &unknown], vec![], "lifetimes"),
        (vec!["--config", &range], vec![], "anomaly.max_networks"),
        (vec!["--config", &duration], vec![], "a while"),
        (vec!["--config", &syntax], vec![], "syntax.toml"),
        (vec!["--config", &secret], vec![], "database.max_connections"),
        (
            vec!["--config", "/nonexistent/killbill-auth.toml"],
            vec![],
            "/nonexistent/killbill-auth.toml",
        ),
        (
            vec![],
            vec![("KILLBILL_AUTH_KEYS_MAX_PER_USER", "lots")],
            "KILLBILL_AUTH_KEYS_MAX_PER_USER",
        ),
        (vec![], vec![("KILLBILL_AUTH_KEYS_LIFETIMES", "1d")], "lifetimes"),
        (
            vec![],
            vec![("KILLBILL_AUTH_PASSWORD_PEPPER_FILE", "/nonexistent/pepper")],
            "KILLBILL_AUTH_PASSWORD_PEPPER_FILE",
        ),
        (
            vec![],
            vec![("KILLBILL_AUTH_PASSWORD_PEPPER", "short")],
            "password.pepper",
        ),
        (
            vec![],
            vec![("KILLBILL_AUTH_DATABASE_OUTAGE_GRACE", "soon")],
            "`database.outage_grace`",
        ),
        (
            vec![],
            vec![("KILLBILL_AUTH_DATABASE_OUTAGE_GRACE", "-5s")],
            "`database.outage_grace`",
        ),
        (
            vec![],
            vec![("KILLBILL_AUTH_PASSWORD_MIN_LENGTH", "1")],
            "`password.min_length`: must be 8 to 256",
        ),
    ];
    for (args, env, names) in cases {
        let mut all = vec!["serve", "--check-config"];
        all.extend(&args);
        let out = run(dir.path(), &all, &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert!(err.contains(names), "{args:?} {env:?} should name {names}: {err}");
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
        assert!(!err.contains("hunter2") && !err.contains("short\""), "{err}");
    }
    // `serve` itself stops on the same errors with the same code, before binding anything.
    let out = run(dir.path(), &["serve", "--config", &range], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("anomaly.max_networks"));
}

#[test]
fn help_shows_examples_and_exit_codes_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    assert!(
        help.contains("Exit codes") && help.contains("Examples:"),
        "{help}"
    );
    for code in ["  0  ", "  1  ", "  2  "] {
        assert!(help.contains(code), "{code} in {help}");
    }
    let out = run(dir.path(), &["serve", "--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("--check-config") && stdout(&out).contains("Examples:"));
    for sub in [
        "create-admin",
        "create-service",
        "list-users",
        "revoke-keys",
        "delete-user",
        "suspend",
        "unsuspend",
        "set-role",
        "backup",
    ] {
        let out = run(dir.path(), &["admin", sub, "--help"], &[]);
        assert_eq!(out.status.code(), Some(0), "admin {sub} --help");
        let help = stdout(&out);
        assert!(
            help.contains("Example") && help.contains(&format!("killbill-auth admin {sub}")),
            "admin {sub} --help:\n{help}"
        );
    }
    for args in [
        vec![],
        vec!["serve", "--frobnicate"],
        vec!["admin"],
        vec!["nonsense"],
    ] {
        let out = run(dir.path(), &args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = run(dir.path(), &["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("killbill-auth "));
}

/// Argon2 settings below OWASP's minimum are allowed (tests choose cheap ones) but named in a
/// warning by `--check-config`, with the floor at that many iterations.
#[test]
fn check_config_warns_about_argon2_settings_below_owasps_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["serve", "--check-config"],
        &[
            ("KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB", "8"),
            ("KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS", "1"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let warning = text
        .lines()
        .find(|l| l.starts_with("# warning: password.argon2_memory_kib"))
        .unwrap_or_else(|| panic!("no warning in:\n{text}"));
    assert!(
        warning.starts_with(
            "# warning: password.argon2_memory_kib = 8 with password.argon2_iterations = 1 is below \
             OWASP's minimum for Argon2id (47104 KiB at that many iterations;"
        ),
        "{warning}"
    );
    // OWASP's own pairs are quiet.
    for (m, t) in [("19456", "2"), ("7168", "5")] {
        let out = run(
            dir.path(),
            &["serve", "--check-config"],
            &[
                ("KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB", m),
                ("KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS", t),
            ],
        );
        assert!(
            !stdout(&out).contains("# warning:"),
            "m={m} t={t}: {}",
            stdout(&out)
        );
    }
}

/// `--check-config` names what an operator would regret: PostgreSQL without a pepper, a pepper
/// written in the configuration file, and an unknown key with the nearest valid one (the exact
/// lines printed).
#[test]
fn check_config_warns_about_the_pepper_and_names_an_unknown_key_and_its_nearest() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["serve", "--check-config"],
        &[(
            "KILLBILL_AUTH_DATABASE_URL",
            "postgres://kb:hunter2@db.internal/kb",
        )],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l
            == "# warning: database.url is PostgreSQL and no pepper is set: a dump or a replica of the \
                database then holds all an attacker needs to guess passwords offline; set \
                KILLBILL_AUTH_PASSWORD_PEPPER_FILE (book/src/operating/deployment.md, \"The pepper\") before the first start"),
        "{text}"
    );
    let out = run(
        dir.path(),
        &["serve", "--check-config"],
        &[
            ("KILLBILL_AUTH_DATABASE_URL", "postgres://kb@db.internal/kb"),
            ("KILLBILL_AUTH_PASSWORD_PEPPER", "sixteen+ bytes of pepper"),
        ],
    );
    assert!(!stdout(&out).contains("# warning:"), "{}", stdout(&out));

    let file = dir.path().join("peppered.toml");
    std::fs::write(&file, "[password]\npepper = \"a pepper written in a file\"\n").unwrap();
    let out = run(
        dir.path(),
        &["serve", "--check-config", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l
            == "# warning: password.pepper is written in the configuration file: a secret in a file that \
                is copied, backed up and committed; give it as KILLBILL_AUTH_PASSWORD_PEPPER_FILE (or a \
                systemd credential) instead"),
        "{text}"
    );
    assert!(!text.contains("a pepper written in a file"), "{text}");

    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "[server]\nlistn = \"0.0.0.0:8080\"\n").unwrap();
    let out = run(
        dir.path(),
        &["serve", "--check-config", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "killbill-auth: configuration: unknown key `server.listn` in {}: did you mean `server.listen`?\n",
            file.display()
        )
    );
    let out = run(
        dir.path(),
        &["serve", "--check-config"],
        &[("KILLBILL_AUTH_ANOMALY_MAX_NETWORK", "3")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "killbill-auth: configuration: unknown key `anomaly.max_network` in environment variable \
         KILLBILL_AUTH_ANOMALY_MAX_NETWORK: did you mean `anomaly.max_networks`?\n"
    );
}

/// Start-up with PostgreSQL unreachable names the cause at once (not "pool timed out").
#[test]
fn an_unreachable_postgresql_is_named_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let url = format!("postgres://kb:hunter2@127.0.0.1:{port}/kb");
    for args in [&["admin", "list-users"][..], &["serve"][..]] {
        let started = std::time::Instant::now();
        let out = run(
            dir.path(),
            args,
            &[
                ("KILLBILL_AUTH_DATABASE_URL", &url),
                ("KILLBILL_AUTH_PASSWORD_PEPPER", "sixteen+ bytes of pepper"),
                ("KILLBILL_AUTH_SERVER_LISTEN", "127.0.0.1:0"),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let last = stderr(&out).lines().last().unwrap_or_default().to_owned();
        assert_eq!(
            last,
            format!(
                "killbill-auth: cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused (is \
                 PostgreSQL running and listening there? check database.url)"
            ),
            "{args:?}"
        );
        assert!(!stderr(&out).contains("hunter2") && !stdout(&out).contains("hunter2"));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(4),
            "{args:?}: at once"
        );
    }
}
