//! Fresh databases for tests: one per test (`kb_test_<uuid>`), dropped at the end.

use secrecy::SecretString;
use sqlx::Connection;

/// The server tests use: `KILLBILL_TEST_POSTGRES_URL`, else the local one.
pub(crate) fn server_url() -> String {
    std::env::var("KILLBILL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database created for one test, dropped (best effort) when this is dropped, even after
/// a failed assertion.
pub(crate) struct TestDatabase {
    pub(crate) name: String,
    pub(crate) url: SecretString,
}

impl TestDatabase {
    pub(crate) async fn create() -> Self {
        let name = format!("kb_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&server_url())
            .await
            .expect("PostgreSQL for the tests (KILLBILL_TEST_POSTGRES_URL)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let base = server_url();
        let root = base.rsplit_once('/').map_or(base.as_str(), |(root, _)| root);
        Self {
            url: SecretString::from(format!("{root}/{name}")),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A destructor cannot await: drop it from a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&server_url()).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
