//! The local deployment demo (`deploy/demo.sh`, book/src/operating/deployment.md) still works: two instances of
//! the binary under test on one fresh PostgreSQL database behind Debian's nginx, checked through
//! nginx by the script itself (`--check`).

use std::path::Path;
use std::process::Command;

use crate::helpers::postgres_admin_url;

/// nginx as the script finds it: on the `PATH`, or where Debian puts it.
fn nginx_installed() -> bool {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("nginx").is_file()));
    on_path || Path::new("/usr/sbin/nginx").is_file()
}

#[test]
fn the_demo_runs_two_instances_behind_nginx() {
    assert!(
        nginx_installed(),
        "nginx is not installed: run ./test (it installs Debian's nginx package), \
         or apt-get install -y nginx"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/demo.sh"))
        .args(["--check", "--port", &port.to_string()])
        // The binary under test, not a release build (and not a KILLBILL_AUTH_* name: the
        // service refuses variables of its own prefix that it does not know).
        .env("KB_DEMO_BIN", env!("CARGO_BIN_EXE_killbill-auth"))
        .env("KB_DEMO_POSTGRES_URL", postgres_admin_url())
        .env("KB_DEMO_TIMEOUT", "90")
        // Reach both instances: the cheapest Argon2 parameters, as in every test.
        .env("KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB", "64")
        .env("KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS", "1")
        .output()
        .expect("run deploy/demo.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}");
    assert!(
        out.status.success(),
        "deploy/demo.sh --check failed ({}):\n{stderr}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("check passed"), "{stderr}");
}
