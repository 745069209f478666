//! Tenant security on PostgreSQL, on a throwaway server with password authentication (see
//! `common::throwaway`): data never flows as a role that row-level security does not bind,
//! and neither the password nor the URL shows up in `Debug`, error messages or log lines.

mod common;

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_core::{ErrorKind, Key, StorageBackend};
use cairn_postgres::{PostgresBackend, PostgresConfig};
use common::throwaway::ThrowawayServer;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[tokio::test]
async fn owners_and_bypassrls_roles_are_refused_as_the_data_role() {
    let server = ThrowawayServer::start();
    let url = server.url();
    // Migrate, creating kv_store and cairn_app.
    PostgresBackend::connect(PostgresConfig::new(&url))
        .await
        .unwrap();
    let admin = common::client(&url).await;
    admin
        .batch_execute(
            "CREATE ROLE table_owner NOLOGIN;
             CREATE ROLE in_owner_role NOLOGIN IN ROLE table_owner;
             CREATE ROLE bypasser NOLOGIN BYPASSRLS;
             ALTER TABLE kv_store OWNER TO table_owner;",
        )
        .await
        .unwrap();
    for (role, reason) in [
        ("table_owner", "owns kv_store"),
        ("in_owner_role", "owns kv_store"),
        ("bypasser", "BYPASSRLS"),
        (common::throwaway::SUPERUSER, "superuser"),
    ] {
        let mut config = PostgresConfig::new(&url);
        config.app_role = role.to_owned();
        let err = PostgresBackend::connect(config).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{role}: {err}");
        assert!(err.to_string().contains(reason), "{role}: {err}");
        assert!(!err.to_string().contains(server.password()), "{err}");
    }
    // The default data role still works with the table owned by someone else.
    let backend = PostgresBackend::connect(PostgresConfig::new(&url))
        .await
        .unwrap();
    let key = Key::new("k").unwrap();
    backend.set(&key, Bytes::from_static(b"v")).await.unwrap();
}

/// Every `tracing` event and span field, one line each.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<String>>>);

impl CapturedLogs {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for CapturedLogs {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = format!("span {}:", span.metadata().name());
        span.record(&mut Line(&mut line));
        self.push(line);
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut line = String::from("span record:");
        values.record(&mut Line(&mut line));
        self.push(line);
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = format!("{} {}:", meta.level(), meta.target());
        event.record(&mut Line(&mut line));
        self.push(line);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// `text` must show neither `secret` nor `url`.
fn assert_hidden(what: &str, text: &str, secret: &str, url: &str) {
    assert!(!text.contains(secret), "{what} shows the password: {text}");
    assert!(!text.contains(url), "{what} shows the URL: {text}");
}

// A current-thread runtime (the default), so the scoped subscriber sees every task.
#[tokio::test]
async fn the_password_and_url_never_reach_debug_errors_or_logs() {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let server = ThrowawayServer::start();
    let url = server.url();
    let password = server.password().to_owned();

    // A working backend (migrations log what they apply) ...
    let config = PostgresConfig::new(&url);
    assert_hidden(
        "Debug of PostgresConfig",
        &format!("{config:?}"),
        &password,
        &url,
    );
    let backend = PostgresBackend::connect(config).await.unwrap();
    assert_hidden(
        "Debug of PostgresBackend",
        &format!("{backend:?}"),
        &password,
        &url,
    );
    let scoped = backend.tenant(&common::random_tenant());
    assert_hidden(
        "Debug of a tenant scope",
        &format!("{scoped:?}"),
        &password,
        &url,
    );
    let key = Key::new("k").unwrap();
    scoped.set(&key, Bytes::from_static(b"v")).await.unwrap();

    // ... one that only warns because isolation enforcement is off (a logged role problem) ...
    let mut config = PostgresConfig::new(&url);
    config.app_role = common::throwaway::SUPERUSER.to_owned();
    config.enforce_tenant_isolation = false;
    let warned = PostgresBackend::connect(config).await.unwrap();
    warned.set(&key, Bytes::from_static(b"v")).await.unwrap();

    // ... and failures: a wrong password, an unreachable server, a malformed URL.
    let wrong = format!("wrong-{}", common::unique());
    let wrong_url = server.url_with_password(&wrong);
    let err = PostgresBackend::connect(PostgresConfig::new(&wrong_url))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert_hidden("a wrong-password error", &text, &wrong, &wrong_url);
        assert_hidden("a wrong-password error", &text, &password, &url);
    }
    let unreachable = format!("postgresql://postgres:{password}@127.0.0.1:1/postgres");
    let mut config = PostgresConfig::new(&unreachable);
    config.connect_timeout_ms = 1_000;
    let err = PostgresBackend::connect(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert_hidden(
            "an unreachable-server error",
            &text,
            &password,
            &unreachable,
        );
    }
    let malformed = format!("postgresql://postgres:{password}@127.0.0.1:notaport/postgres");
    let err = PostgresConfig::new(&malformed).validate().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert_hidden("a malformed-URL error", &text, &password, &malformed);
    }

    let lines = logs.lines();
    println!(
        "postgres secrets: {} log lines captured, none shows the password or URL",
        lines.len()
    );
    assert!(
        lines.iter().any(|line| line.contains("WARN")),
        "the role warning should have been logged: {lines:?}"
    );
    for line in &lines {
        for (secret, url) in [(&password, &url), (&wrong, &wrong_url)] {
            assert_hidden("a log line", line, secret, url);
        }
    }
}
