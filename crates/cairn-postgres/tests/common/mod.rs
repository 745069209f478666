//! Helpers shared by the integration tests: where the server is, throwaway names, and
//! connections for checking the database from outside the backend.
//!
//! Every test needs a real PostgreSQL server. Its URL comes from `DATABASE_URL`; when that is
//! missing the tests fail rather than skip. Tests share one database and keep apart by using
//! fresh random tenant ids; tests that need a database of their own create one with
//! [`TempDatabase`].

#![allow(
    dead_code,
    reason = "each test binary compiles this module and uses a different subset of it"
)]

pub(crate) mod throwaway;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_core::TenantId;
use cairn_postgres::{PostgresBackend, PostgresConfig};
use tokio_postgres::{Client, NoTls};

/// The test server's URL (`postgresql://user@host:port/db`, connecting as a superuser).
///
/// # Panics
/// When `DATABASE_URL` is not set: PostgreSQL tests never skip silently.
pub(crate) fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set: run `cargo xtask test` (it starts a PostgreSQL 18 test \
             server and sets DATABASE_URL), or set DATABASE_URL to a PostgreSQL 18 server URL \
             that connects as a superuser"
        ),
    }
}

/// The user `url` connects as (a superuser for `DATABASE_URL`).
pub(crate) fn url_user(url: &str) -> String {
    let config: tokio_postgres::Config = url.parse().expect("a valid URL");
    config.get_user().expect("the URL names a user").to_owned()
}

/// A short random lowercase-hex string, different on every call.
pub(crate) fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}", hasher.finish())
}

/// A tenant id no other test uses.
pub(crate) fn random_tenant() -> TenantId {
    TenantId::new(format!("test-{}", unique())).expect("valid tenant id")
}

/// Settings for tests: the test server, a small pool.
pub(crate) fn test_config(url: &str) -> PostgresConfig {
    let mut config = PostgresConfig::new(url);
    config.pool_size = 4;
    config
}

/// A backend on the shared test database (migrated on connect).
pub(crate) async fn backend() -> PostgresBackend {
    PostgresBackend::connect(test_config(&database_url()))
        .await
        .expect("connect to DATABASE_URL")
}

/// A plain driver connection to `url`.
pub(crate) async fn client(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|err| panic!("connect to the test server: {err}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The URL's parts, for URL-form `DATABASE_URL`s only.
struct UrlParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    database: &'a str,
    query: Option<&'a str>,
}

fn split_url(url: &str) -> UrlParts<'_> {
    let (scheme, rest) = url.split_once("://").unwrap_or_else(|| {
        panic!("tests need DATABASE_URL in URL form (postgresql://user@host:port/db)")
    });
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    let (host, database) = rest.split_once('/').unwrap_or((rest, ""));
    UrlParts {
        scheme,
        userinfo,
        host,
        database,
        query,
    }
}

fn join_url(parts: &UrlParts<'_>, userinfo: Option<&str>, database: &str) -> String {
    let mut url = format!("{}://", parts.scheme);
    if let Some(userinfo) = userinfo {
        url.push_str(userinfo);
        url.push('@');
    }
    url.push_str(parts.host);
    url.push('/');
    url.push_str(database);
    if let Some(query) = parts.query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// `url` connecting as `user` (no password; the test server trusts local connections).
pub(crate) fn with_user(url: &str, user: &str) -> String {
    let parts = split_url(url);
    join_url(&parts, Some(user), parts.database)
}

/// `url` pointing at database `database`.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    let parts = split_url(url);
    join_url(&parts, parts.userinfo, database)
}

/// `url` reaching the server at `host_port` (`host:port`) instead.
pub(crate) fn with_host(url: &str, host_port: &str) -> String {
    let parts = split_url(url);
    let moved = UrlParts {
        host: host_port,
        ..parts
    };
    join_url(&moved, moved.userinfo, moved.database)
}

/// A database of its own for one test, created empty on the test server and dropped (even
/// when the test panics) when this value is dropped.
pub(crate) struct TempDatabase {
    pub(crate) name: String,
    pub(crate) url: String,
}

impl TempDatabase {
    pub(crate) async fn create() -> TempDatabase {
        let server = database_url();
        let name = format!("cairn_test_{}", unique());
        client(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        let url = with_database(&server, &name);
        TempDatabase { name, url }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let server = database_url();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with
        // its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                client(&server)
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}
