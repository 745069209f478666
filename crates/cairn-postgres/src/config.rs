//! [`PostgresConfig`]: what the backend needs to reach and use a server.

use std::fmt;
use std::time::Duration;

use cairn_core::{Error, ErrorKind, Result};
use serde::Deserialize;

use crate::backend::PostgresBackend;

/// Settings of a [`PostgresBackend`].
///
/// Deserializes from the `[storage.postgres]` table of the Cairn configuration; unknown keys
/// are an error and every key but `url` has a default. `Debug` never shows the password.
///
/// ```
/// use cairn_postgres::PostgresConfig;
///
/// let mut config = PostgresConfig::new("postgresql://app:s3cret@db.example:5432/cairn");
/// config.pool_size = 16;
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection URL (`postgresql://user:password@host:port/db?options`) or key-value string
    /// (`host=... user=... dbname=...`). Migrations run as this user; data flows as
    /// [`app_role`](Self::app_role). Required.
    pub url: String,
    /// Most connections the pool opens. Default 5.
    pub pool_size: usize,
    /// Longest wait for a TCP connection and the server's startup reply, in milliseconds.
    /// Default 5000.
    pub connect_timeout_ms: u64,
    /// Longest wait for a free pooled connection, in milliseconds; past it an operation fails
    /// with a retryable [`ErrorKind::Timeout`]. Default 5000.
    pub acquire_timeout_ms: u64,
    /// `statement_timeout` of every data connection, in milliseconds; a statement running
    /// longer is cancelled and fails with [`ErrorKind::Timeout`]. `0` disables it. Default 30000.
    pub statement_timeout_ms: u64,
    /// The role data flows as (`SET ROLE` on every pooled connection when the URL's user is a
    /// different role). A plain SQL identifier, `[a-z_][a-z0-9_]*`. Default `cairn_app`, the
    /// role the migrations create.
    pub app_role: String,
    /// Refuse to run when the data role would bypass row-level security (superuser,
    /// `BYPASSRLS`, or owner of `kv_store`). When `false` such a role only logs a warning and
    /// tenants are kept apart by the queries alone. Default `true`.
    pub enforce_tenant_isolation: bool,
    /// Apply pending migrations in [`PostgresBackend::connect`]. Default `true`.
    pub auto_migrate: bool,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: String::new(),
            pool_size: 5,
            connect_timeout_ms: 5_000,
            acquire_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            app_role: "cairn_app".to_owned(),
            enforce_tenant_isolation: true,
            auto_migrate: true,
        }
    }
}

impl PostgresConfig {
    /// The defaults with `url` set.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            ..PostgresConfig::default()
        }
    }

    /// Checks every setting without contacting the server.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the URL is missing or malformed, the pool size or a timeout
    /// is zero, or `app_role` is not a plain SQL identifier.
    pub fn validate(&self) -> Result<()> {
        self.driver_config().map(drop)
    }

    /// Connects a [`PostgresBackend`] with these settings; see [`PostgresBackend::connect`].
    ///
    /// # Errors
    /// As [`PostgresBackend::connect`].
    pub async fn build(self) -> Result<PostgresBackend> {
        PostgresBackend::connect(self).await
    }

    /// The validated driver configuration: the parsed URL plus the connect timeout and, unless
    /// the URL names one, the application name `cairn`.
    pub(crate) fn driver_config(&self) -> Result<tokio_postgres::Config> {
        if self.url.trim().is_empty() {
            return Err(config_error("postgres url is required"));
        }
        if self.pool_size == 0 {
            return Err(config_error("pool_size must be at least 1"));
        }
        for (name, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("acquire_timeout_ms", self.acquire_timeout_ms),
        ] {
            if value == 0 {
                return Err(config_error(format!("{name} must be at least 1")));
            }
        }
        check_role_name(&self.app_role)?;
        let mut config: tokio_postgres::Config = self.url.parse().map_err(|err| {
            config_error("postgres url is malformed")
                .with_context("url", redact_url(&self.url))
                .with_source(err)
        })?;
        config.connect_timeout(Duration::from_millis(self.connect_timeout_ms));
        if config.get_application_name().is_none() {
            config.application_name("cairn");
        }
        Ok(config)
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("app_role", &self.app_role)
            .field("enforce_tenant_isolation", &self.enforce_tenant_isolation)
            .field("auto_migrate", &self.auto_migrate)
            .finish()
    }
}

fn config_error(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Config, message)
}

/// Accepts `[a-z_][a-z0-9_]*` up to PostgreSQL's 63-byte identifier limit, so the name can be
/// spliced into `SET ROLE` without quoting rules to get wrong.
fn check_role_name(role: &str) -> Result<()> {
    let mut chars = role.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid_start && valid_rest && role.len() <= 63 {
        Ok(())
    } else {
        Err(config_error(format!(
            "app_role {role:?} is not a plain SQL identifier ([a-z_][a-z0-9_]*, at most 63 bytes)"
        )))
    }
}

const REDACTED: &str = "<redacted>";

/// The URL with its password replaced by `<redacted>`, in both URL and key-value form.
///
/// In URL form the credentials are taken to end at the last `@` before the query, which
/// redacts at least what the driver's parser reads as the password even when the password
/// holds an unescaped `@`; a `password=` query parameter is redacted too.
pub(crate) fn redact_url(url: &str) -> String {
    let scheme_end = ["postgresql://", "postgres://"]
        .into_iter()
        .find(|scheme| url.starts_with(scheme))
        .map(str::len);
    match scheme_end {
        Some(scheme_end) => redact_uri(url, scheme_end),
        None => redact_key_value(url),
    }
}

fn redact_uri(url: &str, scheme_end: usize) -> String {
    let (scheme, rest) = url.split_at(scheme_end);
    let mut out = String::from(scheme);
    let query_start = rest.find('?').unwrap_or(rest.len());
    let rest = match rest[..query_start].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            out.push_str(user);
            if rest[..at].contains(':') {
                out.push(':');
                out.push_str(REDACTED);
            }
            &rest[at..]
        }
        None => rest,
    };
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, _)) if name == "password" => format!("{name}={REDACTED}"),
                    _ => param.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(rest),
    }
    out
}

/// Key-value form: `key = value` pairs, values unquoted (up to whitespace) or single-quoted
/// with backslash escapes.
fn redact_key_value(conninfo: &str) -> String {
    let mut out = String::with_capacity(conninfo.len());
    let mut rest = conninfo;
    while !rest.is_empty() {
        let trimmed = rest.trim_start();
        out.push_str(&rest[..rest.len() - trimmed.len()]);
        rest = trimmed;
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        out.push_str(key);
        rest = &rest[key_end..];
        let after_key = rest.trim_start();
        let Some(after_eq) = after_key.strip_prefix('=') else {
            continue;
        };
        out.push_str(&rest[..rest.len() - after_key.len()]);
        out.push('=');
        let value_start = after_eq.trim_start();
        out.push_str(&after_eq[..after_eq.len() - value_start.len()]);
        let value_len = value_len(value_start);
        if key == "password" {
            out.push_str(REDACTED);
        } else {
            out.push_str(&value_start[..value_len]);
        }
        rest = &value_start[value_len..];
    }
    out
}

fn value_len(value: &str) -> usize {
    if let Some(quoted) = value.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return i + 2,
                _ => {}
            }
        }
        value.len()
    } else {
        value.find(char::is_whitespace).unwrap_or(value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let config = PostgresConfig::new("postgresql://localhost/db");
        assert_eq!(config.pool_size, 5);
        assert_eq!(config.connect_timeout_ms, 5_000);
        assert_eq!(config.acquire_timeout_ms, 5_000);
        assert_eq!(config.statement_timeout_ms, 30_000);
        assert_eq!(config.app_role, "cairn_app");
        assert!(config.enforce_tenant_isolation);
        assert!(config.auto_migrate);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn role_names_must_be_plain_identifiers() {
        for good in ["cairn_app", "_x", "a1_b2"] {
            assert!(check_role_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Cairn",
            "cairn-app",
            "x\"; DROP TABLE kv_store; --",
            "a b",
            &"a".repeat(64),
        ] {
            let err = check_role_name(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let mut config = PostgresConfig::new("");
        assert_eq!(config.validate().unwrap_err().kind(), ErrorKind::Config);
        config.url = "postgresql://localhost/db".to_owned();
        config.pool_size = 0;
        assert_eq!(config.validate().unwrap_err().kind(), ErrorKind::Config);
        config.pool_size = 1;
        config.acquire_timeout_ms = 0;
        assert_eq!(config.validate().unwrap_err().kind(), ErrorKind::Config);
        config.acquire_timeout_ms = 1;
        config.url = "postgresql://u:hunter2@localhost:notaport/db".to_owned();
        let err = config.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn urls_are_redacted() {
        let cases = [
            (
                "postgresql://app:hunter2@db:5432/cairn",
                "postgresql://app:<redacted>@db:5432/cairn",
            ),
            (
                "postgres://app:p%40ss:w@rd@db/cairn",
                "postgres://app:<redacted>@db/cairn",
            ),
            (
                "postgresql://app@db/cairn?password=hunter2&sslmode=disable",
                "postgresql://app@db/cairn?password=<redacted>&sslmode=disable",
            ),
            ("postgresql://db/cairn", "postgresql://db/cairn"),
            (
                "host=db user=app password=hunter2 dbname=cairn",
                "host=db user=app password=<redacted> dbname=cairn",
            ),
            (
                "host=db password = 'hun ter\\'2' dbname=cairn",
                "host=db password = <redacted> dbname=cairn",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
            assert!(!redact_url(url).contains("hunter2"));
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = PostgresConfig::new("postgresql://app:hunter2@db/cairn");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("app:<redacted>@db/cairn"), "{debug}");
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_keys() {
        let config: PostgresConfig =
            serde_json::from_str(r#"{"url": "postgresql://localhost/db", "pool_size": 9}"#)
                .unwrap();
        assert_eq!(config.pool_size, 9);
        assert_eq!(config.app_role, "cairn_app");
        let err = serde_json::from_str::<PostgresConfig>(r#"{"url": "x", "pool_sise": 9}"#);
        assert!(err.is_err());
    }
}
