//! Validation through a failover, tested for real (API.md, "Database outages and failovers";
//! issue 25): a highly available PostgreSQL of the test's own, as operators run it, with two real
//! instances of the service going through PgBouncer under load while the primary crashes, is
//! switched over, or dies with its node; and one instance cut off from the database while the
//! other is not.
//!
//! The cluster ([`HaCluster`]), all from Debian's packages (`./test` installs them), in a
//! temporary directory owned by the `postgres` user, every process on a free port of 127.0.0.1:
//!
//! - one etcd (`/usr/bin/etcd`), Patroni's consensus store;
//! - two Patroni nodes, each running its PostgreSQL, with synchronous replication
//!   (`synchronous_mode: true`: a commit is acknowledged once the standby has it, so the standby
//!   that Patroni promotes holds every acknowledged write). PostgreSQL runs with `fsync = off`:
//!   the tests kill processes, never the machine, so what a killed process wrote is still in the
//!   kernel's page cache; what is tested is replication and failover, not the disk;
//! - PgBouncer in session mode (the service listens for revocations, and `LISTEN` needs a session
//!   of its own), one per group of instances, pointing at the current primary. Nothing in the test
//!   repoints it: Patroni's `on_start` and `on_role_change` callbacks (a script, as an operator
//!   would install it) rewrite every PgBouncer's `[databases]` entry when their node becomes the
//!   primary, `RELOAD` it, and `KILL` then `RESUME` the database so that no client stays on a
//!   session to the old primary (in session mode PgBouncer would otherwise keep a client's server
//!   connection, to a node now read-only, until the client disconnects).
//!
//! Daemons run as `postgres` through `Command::uid`/`gid` rather than `runuser`, so that the
//! process the test holds is the daemon itself, which it can kill (`runuser` would stand between).
//!
//! The failover tests run one at a time ([`ONE_AT_A_TIME`]): each starts a cluster, and their
//! timings would suffer from sharing two cores with another one.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{free_port, start_binary_with_url, Server, PASSWORD};

/// One failover test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The database's name in PgBouncer (`dbname=postgres` on the nodes).
const DATABASE: &str = "killbill";

/// Patroni's timing: the leader key lives `TTL` seconds unless renewed (a dead leader's node is
/// replaced after that), every node acts each `LOOP_WAIT`, and gives up on etcd or PostgreSQL
/// after `RETRY_TIMEOUT` (Patroni's rule: `loop_wait + 2 × retry_timeout ≤ ttl`). Shorter than
/// Patroni's defaults (30, 10, 10) to keep the tests short; the operators' chapter says what a
/// failover costs with each.
const TTL: u64 = 10;
const LOOP_WAIT: u64 = 1;
const RETRY_TIMEOUT: u64 = 3;

/// The `postgres` user's ids: the owner of its home, as Debian's package makes it.
fn postgres_ids() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let home = std::fs::metadata("/var/lib/postgresql")
        .expect("the postgres user's home (./test installs PostgreSQL)");
    (home.uid(), home.gid())
}

fn chown_to_postgres(path: &Path) {
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// Writes `text` to `path`, owned by `postgres` (the callback rewrites PgBouncer's files).
fn write_owned(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    chown_to_postgres(path);
}

/// Debian's PostgreSQL binaries (the newest installed).
fn postgres_bin() -> PathBuf {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's PostgreSQL server (./test installs it)")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    bins.sort();
    bins.pop().expect("initdb")
}

/// `program`, found on the PATH or where Debian puts it.
fn program(name: &str, fallback: &str) -> PathBuf {
    crate::helpers::installed(name, fallback)
        .unwrap_or_else(|| panic!("{name}: ./test installs it (Debian's package)"))
}

/// Starts `program` as the `postgres` user, its output appended to `log`.
fn spawn_as_postgres(program: &Path, args: &[&str], cwd: &Path, log: &Path) -> Child {
    let (uid, gid) = postgres_ids();
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`) to the process `pid`.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output();
}

/// The last `n` lines of a log file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One Patroni node and the PostgreSQL it runs.
struct Node {
    name: String,
    pg_port: u16,
    api_port: u16,
    data: PathBuf,
    config: PathBuf,
    log: PathBuf,
    patroni: Option<Child>,
}

impl Node {
    /// The postmaster's process id, from its pid file.
    fn postmaster(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

/// One PgBouncer, in session mode, in front of whichever node is the primary.
struct Bouncer {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Bouncer {
    /// The port of the node its `[databases]` entry points at.
    fn points_at(&self) -> Option<u16> {
        let ini = std::fs::read_to_string(self.dir.join("pgbouncer.ini")).ok()?;
        let line = ini.lines().find(|l| l.starts_with(DATABASE))?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("port="))?
            .parse()
            .ok()
    }
}

/// A highly available PostgreSQL of the test's own: etcd, two Patroni nodes with synchronous
/// replication, and PgBouncers that Patroni's callback keeps pointing at the primary. Dropping
/// it kills every process it started.
pub struct HaCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    etcd: Option<Child>,
    nodes: Vec<Node>,
    bouncers: Vec<Bouncer>,
    http: reqwest::Client,
}

impl HaCluster {
    /// A healthy cluster (a primary and its synchronous standby) with `bouncers` PgBouncers.
    pub async fn start(bouncers: usize) -> Self {
        Self::start_with(bouncers, true).await
    }

    /// [`HaCluster::start`]; `kill_clients`: whether the failover callback also drops the
    /// pooler's clients (`KILL`/`RESUME`) after repointing it, or only reloads it.
    pub async fn start_with(bouncers: usize, kill_clients: bool) -> Self {
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        chown_to_postgres(dir.path());
        let root = dir.path().to_owned();
        let etcd_client = free_port();
        let etcd_peer = free_port();
        let etcd = spawn_as_postgres(
            &program("etcd", "/usr/bin/etcd"),
            &[
                "--name",
                "etcd",
                "--data-dir",
                root.join("etcd").to_str().unwrap(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{etcd_client}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{etcd_client}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{etcd_peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{etcd_peer}"),
                "--initial-cluster",
                &format!("etcd=http://127.0.0.1:{etcd_peer}"),
            ],
            &root,
            &root.join("etcd.log"),
        );
        let mut cluster = Self {
            bin: postgres_bin(),
            etcd: Some(etcd),
            nodes: Vec::new(),
            bouncers: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
            dir,
        };
        let health = format!("http://127.0.0.1:{etcd_client}/health");
        let up = cluster
            .poll(Duration::from_secs(20), async |c: &Self| {
                c.http.get(&health).send().await.is_ok_and(|r| r.status() == 200)
            })
            .await;
        assert!(up, "etcd did not start: {}", tail(&root.join("etcd.log"), 30));

        // PgBouncers' directories first: the callback may run as soon as a node is the primary.
        let bouncer_root = root.join("bouncers");
        std::fs::create_dir(&bouncer_root).unwrap();
        chown_to_postgres(&bouncer_root);
        let bouncer_ports: Vec<u16> = (0..bouncers).map(|_| free_port()).collect();
        for (i, port) in bouncer_ports.iter().enumerate() {
            let b = bouncer_root.join(i.to_string());
            std::fs::create_dir(&b).unwrap();
            chown_to_postgres(&b);
            write_owned(&b.join("port"), &port.to_string());
            write_owned(&b.join("userlist.txt"), "\"postgres\" \"\"\n");
            write_owned(&b.join("pgbouncer.ini.in"), &bouncer_ini(*port, &b));
        }

        for name in ["node1", "node2"] {
            let node = Node {
                name: name.to_owned(),
                pg_port: free_port(),
                api_port: free_port(),
                data: root.join(name),
                config: root.join(format!("{name}.yml")),
                log: root.join(format!("{name}.log")),
                patroni: None,
            };
            let callback = root.join(format!("{name}-callback.sh"));
            write_owned(
                &callback,
                &callback_script(&bouncer_root, node.pg_port, &cluster.bin, kill_clients),
            );
            std::fs::set_permissions(&callback, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            write_owned(
                &node.config,
                &patroni_config(&node, &root, etcd_client, &cluster.bin, &callback),
            );
            cluster.nodes.push(node);
        }
        for i in 0..cluster.nodes.len() {
            cluster.start_patroni(i);
        }
        let healthy = cluster
            .poll(Duration::from_secs(60), async |c: &Self| c.replicating().await)
            .await;
        assert!(healthy, "the cluster did not come up:\n{}", cluster.logs());
        let leader = cluster.leader().await.unwrap();

        // Each PgBouncer starts pointing at the primary (as the callback writes it).
        let leader_port = cluster.nodes[leader].pg_port;
        for (i, port) in bouncer_ports.into_iter().enumerate() {
            let b = bouncer_root.join(i.to_string());
            let template = std::fs::read_to_string(b.join("pgbouncer.ini.in")).unwrap();
            let ini = b.join("pgbouncer.ini");
            if !ini.exists() {
                write_owned(
                    &ini,
                    &template.replace("@PRIMARY_PORT@", &leader_port.to_string()),
                );
            }
            let child = spawn_as_postgres(
                &program("pgbouncer", "/usr/sbin/pgbouncer"),
                &[ini.to_str().unwrap()],
                &b,
                &b.join("pgbouncer.log"),
            );
            cluster.bouncers.push(Bouncer { port, dir: b, child });
        }
        for i in 0..cluster.bouncers.len() {
            let url = cluster.bouncer_url(i);
            let ready = cluster
                .poll(Duration::from_secs(20), async |_: &Self| {
                    writable(&url).await == Some(true)
                })
                .await;
            assert!(
                ready,
                "PgBouncer {i} does not reach the primary:\n{}",
                cluster.logs()
            );
        }
        eprintln!(
            "HA cluster (etcd, 2 Patroni nodes, {} PgBouncer) up in {:.1} s",
            cluster.bouncers.len(),
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    fn start_patroni(&mut self, i: usize) {
        let node = &self.nodes[i];
        let child = spawn_as_postgres(
            &program("patroni", "/usr/bin/patroni"),
            &[node.config.to_str().unwrap()],
            self.dir.path(),
            &node.log,
        );
        self.nodes[i].patroni = Some(child);
    }

    /// Polls `f` every 100 ms until it is true, for at most `limit`.
    async fn poll(&self, limit: Duration, mut f: impl AsyncFnMut(&Self) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f(self).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// GET on a node's Patroni REST API: whether it answers 200.
    async fn api_ok(&self, i: usize, path: &str) -> bool {
        let url = format!("http://127.0.0.1:{}{path}", self.nodes[i].api_port);
        self.http.get(url).send().await.is_ok_and(|r| r.status() == 200)
    }

    /// The node that Patroni says is the running primary holding the leader key.
    pub async fn leader(&self) -> Option<usize> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].patroni.is_some() && self.api_ok(i, "/primary").await {
                return Some(i);
            }
        }
        None
    }

    /// A primary, and every other live node its synchronous standby.
    async fn replicating(&self) -> bool {
        let Some(leader) = self.leader().await else {
            return false;
        };
        for i in 0..self.nodes.len() {
            if i != leader && self.nodes[i].patroni.is_some() && !self.api_ok(i, "/sync").await {
                return false;
            }
        }
        true
    }

    /// The URL of the database through PgBouncer `i`.
    pub fn bouncer_url(&self, i: usize) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{DATABASE}",
            self.bouncers[i].port
        )
    }

    /// SIGKILL to the primary's postmaster (Patroni stays): PostgreSQL crashes.
    pub async fn crash_primary_postmaster(&self) -> String {
        let leader = self.leader().await.expect("a primary");
        let pid = self.nodes[leader]
            .postmaster()
            .expect("the primary's postmaster.pid");
        signal(pid, "KILL");
        self.nodes[leader].name.clone()
    }

    /// A planned switchover to the synchronous standby, through Patroni's REST API; returns the
    /// old primary.
    pub async fn switchover(&self) -> usize {
        let leader = self.leader().await.expect("a primary");
        let candidate = (leader + 1) % self.nodes.len();
        let r = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .post(format!(
                "http://127.0.0.1:{}/switchover",
                self.nodes[leader].api_port
            ))
            .json(&json!({"leader": self.nodes[leader].name, "candidate": self.nodes[candidate].name}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "switchover refused: {text}\n{}", self.logs());
        leader
    }

    /// Node `i` dies: its Patroni and its postmaster SIGKILLed at once (as when a machine
    /// stops).
    pub async fn kill_node(&mut self, i: usize) {
        let postmaster = self.nodes[i].postmaster();
        if let Some(mut patroni) = self.nodes[i].patroni.take() {
            let _ = patroni.kill();
            let _ = patroni.wait();
        }
        if let Some(pid) = postmaster {
            signal(pid, "KILL");
        }
    }

    /// Waits until a node other than `old` (any node, when `None`) is the primary and every
    /// PgBouncer points at it; returns it.
    pub async fn wait_for_new_leader(&self, old: Option<usize>, limit: Duration) -> usize {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(leader) = self.leader().await {
                let port = self.nodes[leader].pg_port;
                if Some(leader) != old && self.bouncers.iter().all(|b| b.points_at() == Some(port)) {
                    return leader;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no new primary within {limit:?}:\n{}", self.logs());
    }

    /// Cuts the path through PgBouncer `i`, as a network partition would: `Cut::Refused` kills
    /// it (connections are refused, open ones reset), `Cut::Unanswered` stops it (SIGSTOP: open
    /// connections and new ones hang, neither refused nor reset, as when packets are dropped).
    pub fn cut_bouncer(&mut self, i: usize, cut: Cut) {
        let b = &mut self.bouncers[i];
        match cut {
            Cut::Refused => {
                let _ = b.child.kill();
                let _ = b.child.wait();
            }
            Cut::Unanswered => signal(b.child.id(), "STOP"),
        }
    }

    /// Heals [`HaCluster::cut_bouncer`]: PgBouncer `i` starts again, or goes on.
    pub fn heal_bouncer(&mut self, i: usize, cut: Cut) {
        let b = &mut self.bouncers[i];
        match cut {
            Cut::Refused => {
                b.child = spawn_as_postgres(
                    &program("pgbouncer", "/usr/sbin/pgbouncer"),
                    &[b.dir.join("pgbouncer.ini").to_str().unwrap()],
                    &b.dir,
                    &b.dir.join("pgbouncer.log"),
                );
            }
            Cut::Unanswered => signal(b.child.id(), "CONT"),
        }
    }

    /// The end of every log of the cluster, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out += &format!(
                "--- {} (port {}) ---\n{}\n",
                node.name,
                node.pg_port,
                tail(&node.log, 40)
            );
        }
        for (i, b) in self.bouncers.iter().enumerate() {
            out += &format!(
                "--- PgBouncer {i} ---\n{}\n",
                tail(&b.dir.join("pgbouncer.log"), 20)
            );
        }
        out
    }
}

impl Drop for HaCluster {
    fn drop(&mut self) {
        // Patroni first, so that it restarts nothing; then PostgreSQL (an immediate stop takes
        // its backends along), PgBouncer (SIGKILL ends a stopped process too) and etcd.
        for node in &mut self.nodes {
            if let Some(mut patroni) = node.patroni.take() {
                let _ = patroni.kill();
                let _ = patroni.wait();
            }
        }
        for node in &self.nodes {
            if node.data.join("postmaster.pid").exists() {
                let _ = Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(self.bin.join("pg_ctl"))
                    .args(["-D", node.data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
                    .output();
            }
        }
        for b in &mut self.bouncers {
            let _ = b.child.kill();
            let _ = b.child.wait();
        }
        if let Some(mut etcd) = self.etcd.take() {
            let _ = etcd.kill();
            let _ = etcd.wait();
        }
    }
}

/// A node's Patroni configuration.
fn patroni_config(node: &Node, root: &Path, etcd: u16, bin: &Path, callback: &Path) -> String {
    format!(
        r#"scope: killbill
namespace: /killbill-test/
name: {name}
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts: 127.0.0.1:{etcd}
bootstrap:
  dcs:
    ttl: {TTL}
    loop_wait: {LOOP_WAIT}
    retry_timeout: {RETRY_TIMEOUT}
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: 'on'
        fsync: 'off'
        max_connections: 200
  initdb:
    - encoding: UTF8
    - auth: trust
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {root}/pgpass-{name}
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
    rewind:
      username: postgres
  parameters:
    unix_socket_directories: '{root}'
  callbacks:
    on_start: {callback}
    on_role_change: {callback}
"#,
        name = node.name,
        api = node.api_port,
        pg = node.pg_port,
        data = node.data.display(),
        bin = bin.display(),
        root = root.display(),
        callback = callback.display(),
    )
}

/// A PgBouncer's configuration, `@PRIMARY_PORT@` standing for the primary's port.
fn bouncer_ini(port: u16, dir: &Path) -> String {
    format!(
        "[databases]
{DATABASE} = host=127.0.0.1 port=@PRIMARY_PORT@ dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
admin_users = postgres
; LISTEN (the revocation feed) and prepared statements need a session of their own.
pool_mode = session
max_client_conn = 500
default_pool_size = 100
; sqlx sends it; PgBouncer would refuse the connection otherwise.
ignore_startup_parameters = extra_float_digits
; After a failed connection to the server, try again in a second, not 15.
server_login_retry = 1
pidfile = {dir}/pgbouncer.pid
",
        dir = dir.display()
    )
}

/// Patroni's callback (`on_start`, `on_role_change`: called as SCRIPT ACTION ROLE CLUSTER) of
/// the node whose PostgreSQL listens on `port`.
fn callback_script(bouncers: &Path, port: u16, bin: &Path, kill_clients: bool) -> String {
    // Without KILL: also late, as a callback that has to wait for something would be, so
    // that the pooler has meanwhile reconnected to the old primary, now a standby.
    let (wait, commands) = if kill_clients {
        (
            "",
            format!("-c RELOAD -c 'KILL {DATABASE}' -c 'RESUME {DATABASE}'"),
        )
    } else {
        ("sleep 4", "-c RELOAD".to_owned())
    };
    format!(
        r#"#!/bin/sh
# On the node that is now the primary: point every PgBouncer at it and reload it, then drop
# every client of the old primary (KILL, then RESUME: clients reconnect, to this node). A
# restart in place (the same port) changes nothing.
case "$2" in master|primary) ;; *) exit 0 ;; esac
{wait}
for dir in {bouncers}/*; do
    ini="$dir/pgbouncer.ini"
    if grep -q "port={port} " "$ini" 2>/dev/null; then continue; fi
    sed "s/@PRIMARY_PORT@/{port}/" "$dir/pgbouncer.ini.in" > "$ini.new" && mv "$ini.new" "$ini"
    PGCONNECT_TIMEOUT=2 {psql} -X -q -h 127.0.0.1 -p "$(cat "$dir/port")" -U postgres -d pgbouncer \
        {commands}
done
exit 0
"#,
        bouncers = bouncers.display(),
        psql = bin.join("psql").display(),
    )
}

/// Whether the database at `url` takes writes (a fresh connection, one second at most): `None`
/// when it cannot be reached.
async fn writable(url: &str) -> Option<bool> {
    use sqlx::Connection;
    let attempt = async {
        let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
        let primary: bool = sqlx::query_scalar("SELECT NOT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await
            .ok()?;
        let _ = conn.close().await;
        Some(primary)
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
}

// ---------------------------------------------------------------------------------------------
// The service under load.

/// Settings of the instances under test: generous limits, so that the load's hundreds of
/// requests per second per key and its hundreds of sign-ups from 127.0.0.1 are not refused for
/// what they are (429 would hide what the failover does).
const LOAD_ENV: [(&str, &str); 4] = [
    ("KILLBILL_AUTH_RATE_LIMIT_KEY_PER_SECOND", "100000"),
    ("KILLBILL_AUTH_RATE_LIMIT_KEY_BURST", "100000"),
    ("KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_NETWORK", "10000"),
    ("KILLBILL_AUTH_THROTTLE_SIGNUPS_PER_WIDE_NETWORK", "10000"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sign {
    Up,
    In,
    Out,
}

/// One write and its answer.
#[derive(Debug)]
struct Write {
    kind: Sign,
    started: Instant,
    ended: Instant,
    status: u16,
    retry_after: bool,
}

/// Everything the load saw.
#[derive(Default)]
struct Ledger {
    validations: u64,
    /// Validations of cached keys that were not 200: (when, instance, status).
    failed_validations: Vec<(Instant, &'static str, u16)>,
    writes: Vec<Write>,
    /// Acknowledged sign-ups.
    users: Vec<String>,
    /// Keys acknowledged (sign-ins) and never signed out.
    live: Vec<String>,
    /// Keys whose sign-out was acknowledged.
    signed_out: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock_ledger(shared: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// An HTTP answer: status (0 when none came), whether `Retry-After` was there, the body.
async fn answer(r: Result<reqwest::Response, reqwest::Error>) -> (u16, bool, Value) {
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r.headers().contains_key("retry-after");
            (status, retry_after, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, false, Value::Null),
    }
}

fn key_in(body: &Value) -> Option<String> {
    body["data"]["key"].as_str().map(str::to_owned)
}

async fn validation(client: &reqwest::Client, server: &str, key: &str) -> u16 {
    client
        .get(format!("{server}/auth"))
        .bearer_auth(key)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A running load on two instances: validations of cached keys on both, and writes.
struct Load {
    stop: Arc<AtomicBool>,
    ledger: Shared,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Three tasks per instance validate `keys` (cached on both) over and over; one writer per
    /// instance signs up a new account there, signs it in on the other instance and signs the
    /// sign-up's key out there, again and again.
    fn start(client: &reqwest::Client, a: &Server, b: &Server, keys: &[String]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger: Shared = Arc::default();
        let mut tasks = Vec::new();
        for (name, server) in [("A", a.url("")), ("B", b.url(""))] {
            for t in 0..3 {
                let (client, stop, ledger, keys, server) = (
                    client.clone(),
                    stop.clone(),
                    ledger.clone(),
                    keys.to_vec(),
                    server.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        let status = validation(&client, &server, &keys[i % keys.len()]).await;
                        {
                            let mut l = lock_ledger(&ledger);
                            l.validations += 1;
                            if status != 200 {
                                l.failed_validations.push((Instant::now(), name, status));
                            }
                        }
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }));
            }
        }
        for (prefix, here, there) in [("wa", a.url(""), b.url("")), ("wb", b.url(""), a.url(""))] {
            let (client, stop, ledger) = (client.clone(), stop.clone(), ledger.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let name = format!("{prefix}_{n}");
                    let credentials = json!({"username": name, "password": PASSWORD});
                    let (first, _) = write(&ledger, Sign::Up, async {
                        client
                            .post(format!("{here}/users"))
                            .json(&credentials)
                            .send()
                            .await
                    })
                    .await;
                    if let Some(first) = first {
                        lock_ledger(&ledger).users.push(name.clone());
                        let (second, _) = write(&ledger, Sign::In, async {
                            client
                                .post(format!("{there}/auth"))
                                .json(&credentials)
                                .send()
                                .await
                        })
                        .await;
                        if let Some(second) = second {
                            lock_ledger(&ledger).live.push(second);
                        }
                        let (_, status) = write(&ledger, Sign::Out, async {
                            client
                                .delete(format!("{there}/auth"))
                                .bearer_auth(&first)
                                .send()
                                .await
                        })
                        .await;
                        if status == 200 {
                            lock_ledger(&ledger).signed_out.push(first);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }));
        }
        Self { stop, ledger, tasks }
    }

    async fn stop(self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.ledger)
            .ok()
            .expect("the load's tasks are over")
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn lock_ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        lock_ledger(&self.ledger)
    }
}

/// Sends one write and records it; the key it returned when it was acknowledged.
async fn write(
    shared: &Shared,
    kind: Sign,
    send: impl std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>,
) -> (Option<String>, u16) {
    let started = Instant::now();
    let (status, retry_after, body) = answer(send.await).await;
    lock_ledger(shared).writes.push(Write {
        kind,
        started,
        ended: Instant::now(),
        status,
        retry_after,
    });
    let key = if status == 200 { key_in(&body) } else { None };
    (key, status)
}

/// Watches whether the database takes writes through PgBouncer: (when, writable) every 100 ms.
fn watch_database(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<(Instant, bool)>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let at = Instant::now();
            seen.push((at, writable(&url).await == Some(true)));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    })
}

/// Signs up `name` on `server` (retrying through 503s for up to 20 s); its key.
async fn sign_up(client: &reqwest::Client, server: &Server, name: &str) -> String {
    for _ in 0..200 {
        let (status, _, body) = answer(
            client
                .post(server.url("/users"))
                .json(&json!({"username": name, "password": PASSWORD}))
                .send()
                .await,
        )
        .await;
        if status == 200 {
            return key_in(&body).unwrap();
        }
        assert_eq!(status, 503, "sign-up of {name}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not sign up {name}");
}

/// Signs in `name` on `server`, retrying through 503s for up to 20 s; its key.
async fn sign_in(client: &reqwest::Client, server: &Server, name: &str) -> String {
    for _ in 0..200 {
        let (status, _, body) = answer(
            client
                .post(server.url("/auth"))
                .json(&json!({"username": name, "password": PASSWORD}))
                .send()
                .await,
        )
        .await;
        if status == 200 {
            return key_in(&body).unwrap();
        }
        assert_eq!(status, 503, "sign-in of {name}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not sign in {name}");
}

/// Whether `server` says it hears revocations from the other instances (`/metrics`).
async fn listening(client: &reqwest::Client, server: &Server) -> bool {
    let Ok(r) = client.get(server.url("/metrics")).send().await else {
        return false;
    };
    r.text().await.is_ok_and(|t| {
        t.lines()
            .any(|l| l == "killbill_auth_revocation_listener_connected 1")
    })
}

/// Polls `f` every 20 ms until it is true, for at most `limit`.
async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGKILL to the primary's postmaster; Patroni restarts it (crash recovery) and it stays
    /// the primary.
    PrimaryCrash,
    /// A planned switchover to the synchronous standby.
    Switchover,
    /// The primary's node dies (Patroni and postmaster SIGKILLed): the standby takes over once
    /// the leader key expires (`TTL`).
    NodeDeath,
}

/// The common course of the three failover tests: two instances through PgBouncer under load,
/// the fault, and then what the contract promises.
async fn through(fault: Fault) {
    through_with(fault, true).await;
}

/// [`through`], with a failover callback that drops the pooler's clients or only repoints it.
async fn through_with(fault: Fault, kill_clients: bool) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = HaCluster::start_with(1, kill_clients).await;
    let dir = tempfile::tempdir().unwrap();
    let url = cluster.bouncer_url(0);
    // A grace longer than any failover here: cached keys must not fail at all.
    let mut env = vec![("KILLBILL_AUTH_DATABASE_OUTAGE_GRACE", "60s")];
    env.extend_from_slice(&LOAD_ENV);
    let a = start_binary_with_url(dir.path(), &url, &env).await;
    let b = start_binary_with_url(dir.path(), &url, &env).await;
    let log = dir.path().join("server.log");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut keys = Vec::new();
    for i in 0..6 {
        let key = sign_up(&client, &a, &format!("cached_{i}")).await;
        for server in [&a, &b] {
            assert_eq!(validation(&client, &server.url(""), &key).await, 200);
        }
        keys.push(key);
    }

    let load = Load::start(&client, &a, &b, &keys);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = load
        .lock_ledger()
        .writes
        .iter()
        .filter(|w| w.status == 200)
        .count();
    assert!(
        before > 0,
        "no write acknowledged before the fault: {}",
        tail(&log, 40)
    );

    let stop_watch = Arc::new(AtomicBool::new(false));
    let watch = watch_database(url.clone(), stop_watch.clone());
    let leader = cluster.leader().await.unwrap();
    let fault_at = Instant::now();
    match fault {
        Fault::PrimaryCrash => {
            cluster.crash_primary_postmaster().await;
            cluster.wait_for_new_leader(None, Duration::from_secs(60)).await;
        }
        Fault::Switchover => {
            let old = cluster.switchover().await;
            cluster
                .wait_for_new_leader(Some(old), Duration::from_secs(60))
                .await;
        }
        Fault::NodeDeath => {
            cluster.kill_node(leader).await;
            cluster
                .wait_for_new_leader(Some(leader), Duration::from_secs(60))
                .await;
        }
    }
    let new_leader = cluster.leader().await.unwrap();
    // Writes come back: an acknowledged write that started after the database took writes
    // again through PgBouncer.
    let resumed = eventually(Duration::from_secs(30), async || {
        let l = load.lock_ledger();
        l.writes
            .iter()
            .any(|w| w.status == 200 && w.started > fault_at + Duration::from_millis(500))
            && l.writes.last().is_some_and(|w| w.status == 200)
    })
    .await;
    assert!(
        resumed,
        "writes did not resume:\n{}\n{}",
        tail(&log, 60),
        cluster.logs()
    );
    // A little more load on the new primary.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_watch.store(true, Ordering::Relaxed);
    let watched = watch.await.unwrap();
    let ledger = load.stop().await;

    // What the failover cost.
    let since = |t: Instant| t.saturating_duration_since(fault_at).as_secs_f64();
    let last_down = watched.iter().rev().find(|(_, ok)| !ok).map(|(t, _)| *t);
    let database_back =
        last_down.and_then(|down| watched.iter().find(|(t, ok)| *ok && *t > down).map(|(t, _)| *t));
    let unavailable: Vec<&Write> = ledger.writes.iter().filter(|w| w.status == 503).collect();
    let window = match (unavailable.first(), unavailable.last()) {
        (Some(first), Some(last)) => last.ended.saturating_duration_since(first.started).as_secs_f64(),
        _ => 0.0,
    };
    let first_ack_after = |t: Instant| {
        ledger
            .writes
            .iter()
            .filter(|w| w.status == 200 && w.ended > t)
            .map(|w| w.ended)
            .min()
    };
    let resumed_after_database =
        database_back.and_then(|t| first_ack_after(t).map(|w| w.saturating_duration_since(t)));
    eprintln!(
        "failover ({fault:?}, node{} -> node{}): database unavailable through PgBouncer until +{} s; \
         writes answered 503 for {window:.2} s ({} of {} writes, first at +{:.2} s, last at +{:.2} s), \
         resumed {} after the database took writes again; validations of cached keys: {} ok, {} failed",
        leader + 1,
        new_leader + 1,
        database_back.map_or("-".to_owned(), |t| format!("{:.2}", since(t))),
        unavailable.len(),
        ledger.writes.len(),
        unavailable.first().map_or(0.0, |w| since(w.started)),
        unavailable.last().map_or(0.0, |w| since(w.ended)),
        resumed_after_database.map_or("-".to_owned(), |d| format!("{} ms", d.as_millis())),
        ledger.validations - ledger.failed_validations.len() as u64,
        ledger.failed_validations.len(),
    );

    // No validation of a cached key failed, on either instance.
    assert!(
        ledger.failed_validations.is_empty(),
        "{} validations of cached keys failed, the first: {:?} at +{:.2} s\n{}",
        ledger.failed_validations.len(),
        ledger.failed_validations.first().map(|(_, i, s)| (i, s)),
        ledger
            .failed_validations
            .first()
            .map_or(0.0, |(t, _, _)| since(*t)),
        tail(&log, 80)
    );
    // Writes answered 200, or 503 with Retry-After; nothing else.
    for w in &ledger.writes {
        assert!(
            w.status == 200 || (w.status == 503 && w.retry_after),
            "{:?} answered {} (Retry-After: {}) at +{:.2} s\n{}",
            w.kind,
            w.status,
            w.retry_after,
            since(w.started),
            tail(&log, 80)
        );
    }
    // Writes resumed within a few seconds of the database taking them again.
    if let Some(lag) = resumed_after_database {
        assert!(
            lag < Duration::from_secs(5),
            "writes resumed {lag:?} after the database"
        );
    }

    // Every acknowledged write is there, on both instances.
    for name in &ledger.users {
        sign_in(&client, if name.len() % 2 == 0 { &a } else { &b }, name).await;
    }
    for key in &ledger.live {
        for server in [&a, &b] {
            assert_eq!(
                validation(&client, &server.url(""), key).await,
                200,
                "an acknowledged sign-in's key is refused"
            );
        }
    }
    for key in &ledger.signed_out {
        for server in [&a, &b] {
            assert_eq!(
                validation(&client, &server.url(""), key).await,
                403,
                "a signed-out key is accepted"
            );
        }
    }
    eprintln!(
        "  acknowledged and then found: {} sign-ups, {} sign-ins, {} sign-outs",
        ledger.users.len(),
        ledger.live.len(),
        ledger.signed_out.len()
    );

    // Both instances listen again; a sign-out on A after the failover is refused by B within a
    // second.
    for server in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(15), async || listening(&client, server).await).await,
            "an instance does not listen again:\n{}",
            tail(&log, 60)
        );
    }
    let key = sign_in(&client, &a, "cached_0").await;
    assert_eq!(validation(&client, &b.url(""), &key).await, 200);
    let (status, _, _) = answer(client.delete(a.url("/auth")).bearer_auth(&key).send().await).await;
    assert_eq!(status, 200);
    let signed_out = Instant::now();
    assert!(
        eventually(Duration::from_secs(1), async || validation(
            &client,
            &b.url(""),
            &key
        )
        .await
            == 403)
        .await,
        "B still accepts a key signed out on A after the failover ({:?})",
        signed_out.elapsed()
    );
    eprintln!(
        "  a sign-out on A refused by B {} ms later",
        signed_out.elapsed().as_millis()
    );
    drop((a, b));
    drop(cluster);
}

#[tokio::test]
async fn a_primary_crash_costs_no_validation_and_no_acknowledged_write() {
    through(Fault::PrimaryCrash).await;
}

#[tokio::test]
async fn a_planned_switchover_costs_no_validation_and_no_acknowledged_write() {
    through(Fault::Switchover).await;
}

#[tokio::test]
async fn a_node_death_costs_no_validation_and_no_acknowledged_write() {
    through(Fault::NodeDeath).await;
}

/// A pooler repointed without dropping its clients (only `RELOAD`): the service's pooled
/// connections stay bound to the old primary, now a standby, and their writes fail read-only
/// (25006); the service then drops every connection made before that error
/// (`store::postgres::read_only`), so writes resume as soon as the new primary takes them.
#[tokio::test]
async fn a_switchover_behind_a_pooler_that_keeps_its_clients_resumes_writes() {
    through_with(Fault::Switchover, false).await;
}

/// `GET /health/ready` on `server`: its status and `data`.
async fn readiness(client: &reqwest::Client, server: &Server) -> (u16, Value) {
    let (status, _, body) = answer(client.get(server.url("/health/ready")).send().await).await;
    (status, body["data"].clone())
}

/// How a partition cuts an instance's path to the database.
#[derive(Clone, Copy, Debug)]
pub enum Cut {
    /// Connections are refused, open ones reset (a host that is down, a firewall that rejects).
    Refused,
    /// Nothing answers, nothing is refused (packets dropped): every read hangs.
    Unanswered,
}

/// A network partition: instance A loses the database (its own PgBouncer is cut), B does not. A
/// key signed out on B keeps validating on A at most `database.outage_grace` later (A last heard
/// the revocation feed before the cut), after which A answers 503 for every cached key and is not
/// ready; writes on A answer 503; B goes on as usual. When the partition heals, A catches up on
/// the feed and refuses the key, never accepting it again.
async fn partition(cut: Cut) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = HaCluster::start(2).await;
    let dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(3);
    let mut env = vec![("KILLBILL_AUTH_DATABASE_OUTAGE_GRACE", "3s")];
    env.extend_from_slice(&LOAD_ENV);
    let a = start_binary_with_url(dir.path(), &cluster.bouncer_url(0), &env).await;
    let b = start_binary_with_url(dir.path(), &cluster.bouncer_url(1), &env).await;
    let log = dir.path().join("server.log");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let revoked = sign_up(&client, &b, "revoked").await;
    let kept = sign_up(&client, &b, "kept").await;
    for server in [&a, &b] {
        for key in [&revoked, &kept] {
            assert_eq!(validation(&client, &server.url(""), key).await, 200);
        }
    }

    cluster.cut_bouncer(0, cut);
    let cut_at = Instant::now();
    let (status, _, _) = answer(client.delete(b.url("/auth")).bearer_auth(&revoked).send().await).await;
    assert_eq!(status, 200, "B signs out");
    let signed_out = Instant::now();
    assert_eq!(validation(&client, &b.url(""), &revoked).await, 403);
    assert_eq!(validation(&client, &b.url(""), &kept).await, 200);

    // A validates its cached keys until the grace is over, then answers 503.
    let mut last_accepted = None;
    let mut refused = None;
    while cut_at.elapsed() < grace + Duration::from_secs(10) {
        // A decides between sending and answering: the sending time is the earliest it can be.
        let sent = Instant::now();
        let r = client
            .get(a.url("/auth"))
            .bearer_auth(&revoked)
            .send()
            .await
            .unwrap();
        let (status, retry_after) = (r.status().as_u16(), r.headers().contains_key("retry-after"));
        let other = validation(&client, &a.url(""), &kept).await;
        assert!(
            matches!(status, 200 | 503) && matches!(other, 200 | 503),
            "A answered {status} and {other}"
        );
        if status == 200 {
            last_accepted = Some(sent);
        }
        if status == 503 && other == 503 {
            assert!(retry_after, "503 without Retry-After");
            refused = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "{cut:?}: A still validates cached keys {:?} after it lost the database (outage_grace 3s):\n{}",
            cut_at.elapsed(),
            tail(&log, 60)
        )
    });
    let late = last_accepted.map(|t| t.saturating_duration_since(signed_out));
    assert!(
        late.is_none_or(|late| late <= grace),
        "A accepted a key signed out on B {late:?} later (outage_grace {grace:?})"
    );
    assert_eq!(
        readiness(&client, &a).await,
        (503, json!({"ready": false, "database": "unreachable"}))
    );
    assert_eq!(readiness(&client, &b).await.0, 200);
    // Writes on A answer 503; on B they go on.
    let started = Instant::now();
    let (status, retry_after, _) = answer(
        client
            .post(a.url("/auth"))
            .json(&json!({"username": "kept", "password": PASSWORD}))
            .send()
            .await,
    )
    .await;
    let write_refused_after = started.elapsed();
    assert!(
        status == 503 && retry_after,
        "a sign-in on A during the partition: {status}"
    );
    sign_in(&client, &b, "kept").await;

    cluster.heal_bouncer(0, cut);
    let healed = Instant::now();
    let mut caught_up = None;
    while healed.elapsed() < Duration::from_secs(15) {
        match validation(&client, &a.url(""), &revoked).await {
            403 => {
                caught_up = Some(healed.elapsed());
                break;
            }
            503 => {}
            other => panic!("A answered {other} for a key signed out on B, after the partition"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up = caught_up.unwrap_or_else(|| panic!("A did not come back:\n{}", tail(&log, 60)));
    // The feed has been read again. A key read anew may still meet a pooled connection that the
    // partition left hanging (dropped at its next use): within a second it is served.
    assert!(
        eventually(Duration::from_secs(1), async || validation(
            &client,
            &a.url(""),
            &kept
        )
        .await
            == 200)
        .await,
        "A does not validate a live key after the partition:\n{}",
        tail(&log, 60)
    );
    assert_eq!(readiness(&client, &a).await.0, 200);
    eprintln!(
        "partition ({cut:?}): A accepted the key signed out on B for {} ms after (outage_grace 3 s), \
         answered 503 for cached keys from +{} ms after the cut, a sign-in 503 after {} ms, and \
         refused the key {} ms after the partition healed",
        late.map_or(0, |d| d.as_millis()),
        refused.saturating_duration_since(cut_at).as_millis(),
        write_refused_after.as_millis(),
        caught_up.as_millis()
    );
}

#[tokio::test]
async fn a_partitioned_instance_refused_by_the_database_honours_revocations_at_most_the_grace_late() {
    partition(Cut::Refused).await;
}

/// The same when the database does not answer at all (packets dropped).
#[tokio::test]
async fn a_partitioned_instance_unanswered_by_the_database_honours_revocations_at_most_the_grace_late() {
    partition(Cut::Unanswered).await;
}
