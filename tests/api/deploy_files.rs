//! The files operators install as they are: `deploy/killbill-auth.service`, the systemd unit of
//! book/src/operating/deployment.md ("Installing on a server"), is one systemd accepts without a warning, and
//! keeps every hardening line the page explains. Needs `systemd-analyze` (Debian's `systemd`
//! package): without it these tests fail, saying so. systemd need not be running: `verify` only
//! loads the unit.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::installed;

/// The unit as committed.
const UNIT: &str = include_str!("../../deploy/killbill-auth.service");
/// The unit's file name, which names it in everything `systemd-analyze verify` says about it.
const UNIT_NAME: &str = "killbill-auth.service";

/// `systemd-analyze`, or a failure naming the package.
fn systemd_analyze() -> PathBuf {
    let Some(binary) = installed("systemd-analyze", "/usr/bin/systemd-analyze") else {
        panic!(
            "systemd-analyze is not installed: it is in Debian's systemd package \
             (apt-get install -y systemd)"
        );
    };
    binary
}

/// The unit as installed, but with every absolute path that `verify` may check made to exist:
/// ExecStart runs the binary under test, and /etc/killbill-auth/ (the configuration and the
/// pepper) is a temporary directory holding both files. (By hand, systemd 252 checks only that
/// ExecStart's binary is executable; the other paths are replaced so that a later systemd checking
/// more does not fail on them.)
fn unit_in(dir: &Path, unit: &str) -> PathBuf {
    let etc = dir.join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("killbill-auth.toml"), "").unwrap();
    std::fs::write(etc.join("pepper"), "a pepper of sixteen bytes or more\n").unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/killbill-auth "), "{unit}");
    let unit = unit
        .replace(
            "/usr/local/bin/killbill-auth",
            env!("CARGO_BIN_EXE_killbill-auth"),
        )
        .replace("/etc/killbill-auth/", &format!("{}/", etc.display()));
    let path = dir.join(UNIT_NAME);
    std::fs::write(&path, unit).unwrap();
    path
}

/// Runs `systemd-analyze verify` on `unit`: its exit status and what it said (standard output
/// and error together).
fn verify(unit: &Path) -> (bool, String) {
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .arg(unit)
        .output()
        .expect("run systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The lines of `verify`'s output about the unit. What systemd says about the machine it runs on
/// (a missing /etc/machine-id, no D-Bus, a broken unit of the machine's own that it loads as a
/// dependency, such as multi-user.target's) does not name our file and is left out; every line
/// about the unit names it, either as `PATH:LINE: …` or as `killbill-auth.service: …`.
fn about_the_unit(said: &str) -> Vec<&str> {
    said.lines().filter(|line| line.contains(UNIT_NAME)).collect()
}

/// systemd accepts the unit as it is: `systemd-analyze verify` exits 0 and says nothing about it
/// (an unknown directive or a value it cannot parse is only a warning, with exit status 0).
#[test]
#[cfg_attr(
    not(feature = "external"),
    ignore = "needs systemd-analyze (Debian's systemd): ./test runs it"
)]
fn systemd_accepts_the_unit_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, said) = verify(&unit_in(dir.path(), UNIT));
    assert!(ok, "systemd-analyze verify failed:\n{said}");
    let warnings = about_the_unit(&said);
    assert!(
        warnings.is_empty(),
        "systemd-analyze verify warns about the unit:\n{said}"
    );
    if !said.trim().is_empty() {
        // Not about the unit (see `about_the_unit`): shown, not failed on.
        eprintln!("systemd-analyze verify, about this machine:\n{said}");
    }
}

/// The check above can fail: a misspelt directive and a bad value in a copy of the unit are each
/// reported on a line naming the unit (so the filter keeps what matters), and a missing binary
/// makes `verify` exit non-zero.
#[test]
#[cfg_attr(
    not(feature = "external"),
    ignore = "needs systemd-analyze (Debian's systemd): ./test runs it"
)]
fn systemd_analyze_reports_a_broken_unit() {
    let dir = tempfile::tempdir().unwrap();
    let broken = UNIT
        .replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomes=yes")
        .replace("ProtectSystem=strict", "ProtectSystem=stricter");
    let (_, said) = verify(&unit_in(dir.path(), &broken));
    let warnings = about_the_unit(&said);
    assert!(
        warnings.iter().any(|line| line.contains("ProtectHomes")),
        "no warning for an unknown directive:\n{said}"
    );
    assert!(
        warnings.iter().any(|line| line.contains("stricter")),
        "no warning for a bad value:\n{said}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(UNIT_NAME);
    std::fs::write(
        &path,
        UNIT.replace("/usr/local/bin/killbill-auth", "/nonexistent/killbill-auth"),
    )
    .unwrap();
    let (ok, said) = verify(&path);
    assert!(!ok, "a unit whose binary is missing passed:\n{said}");
}

/// Every line book/src/operating/deployment.md promises is in the unit, as a directive (not in a comment):
/// deleting one fails this test.
#[test]
fn the_unit_keeps_every_hardening_line() {
    let directives: Vec<&str> = UNIT
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with(';'))
        .collect();
    let missing: Vec<&str> = [
        "DynamicUser=yes",
        "StateDirectory=killbill-auth",
        "WorkingDirectory=/var/lib/killbill-auth",
        "ExecStart=/usr/local/bin/killbill-auth serve --config /etc/killbill-auth/killbill-auth.toml",
        "LoadCredential=pepper:/etc/killbill-auth/pepper",
        "Environment=KILLBILL_AUTH_PASSWORD_PEPPER_FILE=%d/pepper",
        "LimitNOFILE=65536",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallArchitectures=native",
        // Empty: no capability at all.
        "CapabilityBoundingSet=",
        "UMask=0077",
        "Restart=on-failure",
        "TimeoutStopSec=30s",
    ]
    .into_iter()
    .filter(|wanted| !directives.contains(wanted))
    .collect();
    assert!(
        missing.is_empty(),
        "deploy/killbill-auth.service lacks {missing:?}"
    );

    // Exit 2 (configuration, pepper) must stop the service instead of restarting it in a loop.
    let prevented: Vec<&str> = directives
        .iter()
        .filter_map(|line| line.strip_prefix("RestartPreventExitStatus="))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(
        prevented.contains(&"2"),
        "RestartPreventExitStatus= lacks 2: {prevented:?}"
    );
}
