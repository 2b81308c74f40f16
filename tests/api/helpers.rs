//! Starts the real application on a random port with a fresh database, and talks to it over
//! HTTP as a client would.

use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::Duration;

use killbill_auth::clock::{Clock, ManualClock};
use killbill_auth::config::Settings;
use killbill_auth::startup::Application;
use killbill_auth::store::drills::FaultDrills;
use killbill_auth::store::Store;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";

static TRACING: Once = Once::new();

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    pub store: Arc<dyn Store>,
    /// The store's fault drills (SQLite's).
    #[allow(dead_code)] // the SQLite tests only
    pub drills: Option<Arc<dyn FaultDrills>>,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
    /// The schema of the OpenAPI document that the body validated against (`None` for an answer
    /// without a JSON body): every answer is checked against the document (`crate::openapi`).
    pub checked: Option<String>,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `data.key` of a successful sign-up or sign-in.
    pub fn key(&self) -> String {
        assert_eq!(self.status, 200, "{}", self.text);
        self.body["data"]["key"].as_str().expect("data.key").to_owned()
    }

    pub fn assert_error(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.body["success"], false, "{}", self.text);
        assert!(self.body["data"].is_null(), "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.text
        );
        self.body["error"].as_str().expect("error is a string")
    }

    pub fn assert_invalid_key(&self) {
        assert_eq!(self.status, 403, "{}", self.text);
        assert_eq!(
            self.text,
            r#"{"success":false,"data":null,"error":"Invalid access key"}"#
        );
        assert_eq!(
            self.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#)
        );
    }
}

/// Settings for a test: port 0, a database in `dir`, the cheapest Argon2 parameters.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut settings = Settings::load_from(None, Vec::new()).expect("default settings");
    settings.server.listen = "127.0.0.1:0".parse().expect("addr");
    settings.database.url = database_url(dir);
    settings.password.argon2_memory_kib = 64;
    settings.password.argon2_iterations = 1;
    settings
}

/// The services without HTTP, on a fresh database and a manual clock: for tests of what a client
/// cannot see directly (what is cached, what is written when).
pub async fn services_with_manual_clock() -> (TempDir, Arc<ManualClock>, killbill_auth::startup::Services) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::starting_now());
    let services = killbill_auth::startup::Services::build(&test_settings(dir.path()), clock.clone())
        .await
        .expect("services");
    (dir, clock, services)
}

/// A client at `ip`, without a user agent.
pub fn client_at(ip: &str) -> killbill_auth::service::Client {
    killbill_auth::service::Client {
        ip: ip.parse().expect("an IP address"),
        user_agent: None,
    }
}

/// For tests about hashing cost: the sign-in throttles out of the way, and the per-address
/// connection cap too (their floods play hundreds of clients, all from 127.0.0.1).
pub fn hashing_only(settings: &mut Settings) {
    settings.server.max_connections_per_address = 10_000;
    settings.throttle.signin_failures_per_account_network = 10_000;
    settings.throttle.signin_failures_per_account = 10_000;
    settings.throttle.signin_failures_per_network = 10_000;
}

/// The database a test binary runs its tests on: `tests/api` on SQLite, `tests/postgres` (the
/// same tests) on the machine's PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use (a database per test is made on it):
/// `KILLBILL_TEST_POSTGRES_URL`, else the local server as this machine kind runs it.
pub fn postgres_admin_url() -> String {
    std::env::var("KILLBILL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The database URL of the test whose files live in `dir`: a SQLite file in `dir`, or a
/// PostgreSQL database named after `dir` (the same directory gives the same database, so that a
/// test can restart its app on the same data), made on first use.
pub fn database_url(dir: &Path) -> String {
    match crate::BACKEND {
        Backend::Sqlite => format!("sqlite://{}", db_path(dir).display()),
        Backend::Postgres => {
            let name = postgres_database_for(dir);
            let admin = postgres_admin_url();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
            format!("{base}/{name}")
        }
    }
}

/// Creates (once) the PostgreSQL database of `dir` and returns its name: `kb_http_<pid>_<n>`,
/// where the process id lets a later run drop what an earlier one left behind.
fn postgres_database_for(dir: &Path) -> String {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static NAMES: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);
    static CLEANED: Once = Once::new();
    CLEANED.call_once(drop_databases_of_finished_runs);
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let names = names.get_or_insert_with(HashMap::new);
    if let Some(name) = names.get(dir) {
        return name.clone();
    }
    let name = format!("kb_http_{}_{}", std::process::id(), names.len());
    run_postgres_admin(format!("CREATE DATABASE \"{name}\""));
    names.insert(dir.to_owned(), name.clone());
    name
}

/// Drops the test databases of test processes that are no longer running.
fn drop_databases_of_finished_runs() {
    let names: Vec<String> = on_postgres_admin(|mut conn| async move {
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'kb\\_http\\_%'")
            .fetch_all(&mut conn)
            .await
    });
    for name in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            run_postgres_admin(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}

fn run_postgres_admin(sql: String) {
    on_postgres_admin(|mut conn| async move { sqlx::query(&sql).execute(&mut conn).await.map(|_| ()) });
}

/// Runs `f` on a connection to the PostgreSQL server, on a thread of its own (callers may be on
/// a runtime's thread, where blocking on another runtime is not allowed).
fn on_postgres_admin<T, F, Fut>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce(sqlx::PgConnection) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            use sqlx::Connection;
            let conn = sqlx::PgConnection::connect(&postgres_admin_url())
                .await
                .expect("PostgreSQL for the tests (see README: Tests)");
            f(conn).await.expect("PostgreSQL administration")
        })
    })
    .join()
    .expect("PostgreSQL administration thread")
}

pub fn db_path(dir: &std::path::Path) -> PathBuf {
    dir.join("killbill-auth.db")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = test_settings(dir.path());
    configure(&mut settings);
    spawn_in(dir, &settings).await
}

/// Starts an app on an existing directory (e.g. to restart on the same database).
pub async fn spawn_in(dir: TempDir, settings: &Settings) -> TestApp {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            killbill_auth::telemetry::init(killbill_auth::telemetry::Output::Stdout);
        }
    });
    settings.validate().expect("valid test settings");
    let clock = Arc::new(ManualClock::starting_now());
    let app = Application::build(settings, clock.clone() as Arc<dyn Clock>)
        .await
        .expect("build app");
    let addr = app.local_addr().expect("addr");
    let store = app.store();
    let drills = app.fault_drills();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        clock,
        dir,
        store,
        drills,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful shutdown, as on SIGTERM; returns the directory holding the database.
    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("clean shutdown");
        }
        self.dir
    }

    /// A client whose connections come from `ip` (any 127.x.y.z is local on Linux), so that
    /// tests can play clients on different networks.
    pub fn client_from(&self, ip: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().expect("ip"))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// `GET /auth` with `key` from the address `ip`.
    pub async fn validate_from(&self, ip: &str, key: &str) -> TestResponse {
        self.send(self.client_from(ip).get(self.url("/auth")).bearer_auth(key))
            .await
    }

    /// `POST /auth` from the address `ip`.
    pub async fn sign_in_from(&self, ip: &str, username: &str, password: &str) -> TestResponse {
        let body = json!({"username": username, "password": password});
        self.send(self.client_from(ip).post(self.url("/auth")).json(&body))
            .await
    }

    /// Runs `killbill-auth ARGS` (the real binary) on this app's database, with `stdin` as
    /// standard input, while the app is running. The wait happens off the test's runtime thread:
    /// blocking it would freeze the server mid-transaction and hold the database lock.
    pub async fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let db = database_url(self.dir.path());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdin = stdin.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = Command::new(env!("CARGO_BIN_EXE_killbill-auth"))
                .args(&args)
                .env("KILLBILL_AUTH_DATABASE_URL", db)
                .env("KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB", "64")
                .env("KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS", "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn the command line");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(stdin.as_bytes())
                .expect("write stdin");
            child.wait_with_output().expect("command line output")
        })
        .await
        .expect("join the command line")
    }

    /// Sends a request to the app; the answer is checked against the OpenAPI document (its
    /// status documented for the route, its body valid against the schema), and a test fails
    /// with what is wrong if it is not.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> TestResponse {
        let (client, request) = req.build_split();
        let request = request.expect("a request");
        let method = request.method().as_str().to_owned();
        let path = request.url().path().to_owned();
        let response = client.execute(request).await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        let checked = crate::openapi::contract().check(&method, &path, status, &headers, &text);
        TestResponse {
            status,
            headers,
            body,
            text,
            checked,
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    pub async fn sign_up(&self, username: &str, password: &str) -> TestResponse {
        self.request(
            "POST",
            "/users",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> TestResponse {
        self.request(
            "POST",
            "/auth",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    pub async fn validate(&self, key: &str) -> TestResponse {
        self.request("GET", "/auth", Some(key), None).await
    }

    pub async fn keys(&self, key: &str) -> TestResponse {
        self.request("GET", "/auth/keys", Some(key), None).await
    }

    /// Signs up `username` with [`PASSWORD`] and returns the key.
    pub async fn user(&self, username: &str) -> String {
        self.sign_up(username, PASSWORD).await.key()
    }
}

/// The real binary, running as a separate process.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

/// A port that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A program as Debian installs it: on the PATH, or at `fallback`.
pub fn installed(name: &str, fallback: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from(fallback)).filter(|p| p.is_file()))
}

/// Runs the real binary on `dir`, logging to `dir/server.log`.
pub async fn start_binary(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
    start_binary_with(dir, None, extra_env).await
}

/// [`start_binary`] with, if given, an open-file limit (soft and hard, as `ulimit -n` sets them).
/// Runs the real binary on `dir` with the database at `url` (e.g. a PostgreSQL server of the test's own).
#[allow(dead_code)] // the PostgreSQL tests only
pub async fn start_binary_with_url(dir: &Path, url: &str, extra_env: &[(&str, &str)]) -> Server {
    let mut env = vec![("KILLBILL_AUTH_DATABASE_URL", url)];
    env.extend_from_slice(extra_env);
    start_binary_with(dir, None, &env).await
}

pub async fn start_binary_with(dir: &Path, open_files: Option<u64>, extra_env: &[(&str, &str)]) -> Server {
    // The port was free when chosen, but another socket (an outgoing connection of another test,
    // given that ephemeral port) can take it before the server binds it: the server then stops
    // at once saying so, and is started again on another port.
    for _ in 0..4 {
        if let Some(server) = try_start_binary(dir, open_files, extra_env).await {
            return server;
        }
    }
    try_start_binary(dir, open_files, extra_env)
        .await
        .expect("a free port, five times in a row")
}

/// [`start_binary_with`] once: `None` when the port was taken before the server could bind it.
async fn try_start_binary(dir: &Path, open_files: Option<u64>, extra_env: &[(&str, &str)]) -> Option<Server> {
    let port = free_port();
    let log_path = dir.join("server.log");
    let logged_before = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    let binary = env!("CARGO_BIN_EXE_killbill-auth");
    let mut command = match open_files {
        None => Command::new(binary),
        Some(limit) => {
            let mut bash = Command::new("bash");
            bash.arg("-c")
                .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                .arg(binary);
            bash
        }
    };
    let mut child = command
        .arg("serve")
        .env("KILLBILL_AUTH_SERVER_LISTEN", format!("127.0.0.1:{port}"))
        .env("KILLBILL_AUTH_DATABASE_URL", database_url(dir))
        .env("KILLBILL_AUTH_PASSWORD_ARGON2_MEMORY_KIB", "64")
        .env("KILLBILL_AUTH_PASSWORD_ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "debug")
        .envs(extra_env.iter().copied())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    // Up to 30 s: on PostgreSQL a start migrates and connects its listener, and the suite
    // starts many servers at once on 2 cores.
    for _ in 0..600 {
        if client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .is_ok()
        {
            return Some(Server { child, port });
        }
        if let Ok(Some(_)) = child.try_wait() {
            let log = std::fs::read(&log_path).unwrap_or_default();
            let this_start = String::from_utf8_lossy(log.get(logged_before..).unwrap_or_default());
            if this_start.contains("Address already in use") {
                return None;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "server did not start: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

impl Drop for Server {
    /// A test that fails half-way leaves no server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}
