//! The connection pool and what every new pooled connection does before its first use.
//!
//! A new connection (deadpool `post_create` hook):
//! 1. switches to the data role with `SET ROLE <app_role>` when the URL's user is another
//!    role, and sets `statement_timeout`, both for the session;
//! 2. checks that the role it now runs as is subject to row-level security: not a superuser,
//!    no `BYPASSRLS`, not (a member of) the owner of `kv_store`;
//! 3. prepares every data statement in one pipelined round trip, so operations never wait
//!    for a `Parse`.
//!
//! The tenant is never set on the session: each transaction sets it locally (see
//! [`crate::conn`]).

use std::time::Duration;

use cairn_core::{Error, ErrorKind, Result};
use deadpool_postgres::{
    ClientWrapper, Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime,
};
use futures::future::try_join_all;
use tokio_postgres::NoTls;

use crate::config::PostgresConfig;
use crate::sql;

/// Builds the pool; opens no connection yet.
pub(crate) fn build(config: &PostgresConfig, driver: tokio_postgres::Config) -> Result<Pool> {
    let setup = SessionSetup {
        set_role: (driver.get_user() != Some(config.app_role.as_str()))
            .then(|| config.app_role.clone()),
        statement_timeout_ms: config.statement_timeout_ms,
        enforce_tenant_isolation: config.enforce_tenant_isolation,
    };
    let manager = Manager::from_config(
        driver,
        NoTls,
        ManagerConfig {
            // Only `is_closed()` on checkout: a connection is clean whenever it is returned,
            // because `Conn` detaches one dropped mid-transaction.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let acquire = Duration::from_millis(config.acquire_timeout_ms);
    // Opening a connection includes the setup queries, so allow the connect timeout plus
    // the same again for them.
    let create = Duration::from_millis(config.connect_timeout_ms.saturating_mul(2));
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(acquire))
        .create_timeout(Some(create))
        .recycle_timeout(Some(acquire))
        .post_create(Hook::async_fn(move |client, _metrics| {
            let setup = setup.clone();
            Box::pin(async move { setup.run(client).await })
        }))
        .build()
        .map_err(|err| {
            Error::new(ErrorKind::Config, "cannot build the connection pool").with_source(err)
        })
}

#[derive(Clone)]
struct SessionSetup {
    /// The role to `SET ROLE` to; `None` when the URL's user already is that role.
    set_role: Option<String>,
    statement_timeout_ms: u64,
    enforce_tenant_isolation: bool,
}

impl SessionSetup {
    async fn run(&self, client: &mut ClientWrapper) -> Result<(), HookError> {
        let mut commands = String::new();
        if let Some(role) = &self.set_role {
            // `role` passed `check_role_name` ([a-z_][a-z0-9_]*), so quoting it is exact.
            commands.push_str(&format!("SET ROLE \"{role}\"; "));
        }
        commands.push_str(&format!(
            "SET statement_timeout = {}",
            self.statement_timeout_ms
        ));
        client
            .batch_execute(&commands)
            .await
            .map_err(HookError::Backend)?;

        let row = client
            .query_one(sql::ROLE_INFO, &[])
            .await
            .map_err(HookError::Backend)?;
        let role: String = row.try_get(0).map_err(HookError::Backend)?;
        let superuser: bool = row.try_get(1).map_err(HookError::Backend)?;
        let bypass_rls: bool = row.try_get(2).map_err(HookError::Backend)?;
        let owns_table: bool = row.try_get(3).map_err(HookError::Backend)?;
        let reason = if superuser {
            Some("is a superuser")
        } else if bypass_rls {
            Some("has BYPASSRLS")
        } else if owns_table {
            Some("owns kv_store")
        } else {
            None
        };
        if let Some(reason) = reason {
            let message = format!(
                "data role {role:?} {reason}, so row-level security would not separate tenants; \
                 set app_role to a plain role such as cairn_app, or set \
                 enforce_tenant_isolation = false to accept this"
            );
            if self.enforce_tenant_isolation {
                // The only `HookError::Message` this hook returns; `crate::error` maps it to
                // `PermissionDenied`.
                return Err(HookError::message(message));
            }
            tracing::warn!(role = %role, "{message}");
        }

        try_join_all(
            sql::DATA_STATEMENTS
                .iter()
                .map(|statement| client.prepare_cached(statement)),
        )
        .await
        .map_err(HookError::Backend)?;
        Ok(())
    }
}
