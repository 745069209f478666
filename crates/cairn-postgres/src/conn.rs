//! One pooled connection and the tenant transactions that run on it.
//!
//! Every operation is one transaction: `BEGIN`, `set_config('app.tenant_id', $1, true)`, the
//! operation's statement(s), `COMMIT`. The statements are prepared (cached per connection) and
//! their futures are polled together, so tokio-postgres writes all of them before reading any
//! reply: one network round trip per operation. If a statement fails, the server rejects the
//! rest of the transaction and turns the pipelined `COMMIT` into a rollback, so a failed
//! operation changes nothing.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use cairn_core::{Result, TenantId};
use deadpool_postgres::{Object, Pool};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::error;
use crate::sql;

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

/// A connection checked out of the pool for one operation.
///
/// If the operation's future is dropped while a transaction is open on the server, the
/// connection is detached from the pool and closed, so an open transaction never reaches the
/// next user of the pool. What happens to the dropped operation itself: the server rolls back
/// whatever it has not been sent a `COMMIT` for; a one-round-trip operation whose pipeline
/// (including its `COMMIT`) was already written may still commit, exactly as any request
/// whose reply is lost. Either way it applies completely or not at all.
pub(crate) struct Conn {
    /// `Some` until `Drop` takes it.
    object: Option<Object>,
    /// Whether a transaction may be open on the server.
    in_transaction: AtomicBool,
}

impl Conn {
    /// Checks a connection out of the pool.
    pub(crate) async fn checkout(pool: &Pool, operation: &'static str) -> Result<Conn> {
        let object = pool
            .get()
            .await
            .map_err(|err| error::from_pool(operation, err))?;
        Ok(Conn {
            object: Some(object),
            in_transaction: AtomicBool::new(false),
        })
    }

    /// The driver client, for building the futures passed to [`Conn::run`].
    pub(crate) fn client(&self) -> &Client {
        self.object()
    }

    fn object(&self) -> &Object {
        // `object` is `None` only inside `Drop`, after which `self` is never used.
        self.object
            .as_ref()
            .expect("the pooled object is only taken in Drop")
    }

    /// The prepared statement for `sql`, from the connection's cache (every data statement is
    /// prepared when the connection is created, so this does not touch the network).
    /// Statements of the native stores that depend on a table or a query's shape are prepared
    /// on first use and then cached the same way.
    pub(crate) async fn statement(&self, sql: &str, operation: &'static str) -> Result<Statement> {
        self.object()
            .prepare_cached(sql)
            .await
            .map_err(|err| error::from_pg(operation, err))
    }

    /// Runs `body` in one transaction scoped to `tenant` and commits it, pipelined with
    /// `BEGIN`, the tenant setting and `COMMIT`.
    ///
    /// `body` must be built from [`Conn::client`] and not polled yet: its request is queued
    /// after `BEGIN`'s because the futures are polled in order.
    pub(crate) async fn run<T>(
        &self,
        tenant: &TenantId,
        operation: &'static str,
        body: impl Future<Output = PgResult<T>>,
    ) -> Result<T> {
        let begin = self.statement(sql::BEGIN, operation).await?;
        let set_tenant = self.statement(sql::SET_TENANT, operation).await?;
        let commit = self.statement(sql::COMMIT, operation).await?;
        let client = self.client();
        let tenant: [&(dyn ToSql + Sync); 1] = [&tenant.as_str()];
        self.in_transaction.store(true, Ordering::Release);
        let (begun, scoped, value, committed) = futures::join!(
            client.execute(&begin, &[]),
            client.execute(&set_tenant, &tenant),
            body,
            client.execute(&commit, &[]),
        );
        // Every reply has arrived, so the transaction is over (committed or rolled back).
        self.in_transaction.store(false, Ordering::Release);
        // The first failure is the cause; later statements only report the aborted
        // transaction.
        let map = |err| error::from_pg(operation, err);
        begun.map_err(map)?;
        scoped.map_err(map)?;
        let value = value.map_err(map)?;
        committed.map_err(map)?;
        Ok(value)
    }

    /// Runs prepared `statements`, each with its parameters, in order in one transaction
    /// scoped to `tenant` (pipelined: one round trip), as [`Conn::run`] does.
    pub(crate) async fn run_all(
        &self,
        tenant: &TenantId,
        operation: &'static str,
        statements: &[(&Statement, Vec<&(dyn ToSql + Sync)>)],
    ) -> Result<()> {
        let client = self.client();
        let body = futures::future::try_join_all(
            statements
                .iter()
                .map(|(statement, params)| client.execute(*statement, params)),
        );
        self.run(tenant, operation, body).await.map(drop)
    }

    /// Like [`Conn::run`], but commits only when `commit_if` approves `body`'s result;
    /// otherwise rolls back. Returns the result and whether it was committed.
    ///
    /// Two round trips: `BEGIN`, the tenant setting and `body` pipelined, then the decision.
    pub(crate) async fn run_if<T>(
        &self,
        tenant: &TenantId,
        operation: &'static str,
        body: impl Future<Output = PgResult<T>>,
        commit_if: impl FnOnce(&T) -> bool,
    ) -> Result<(T, bool)> {
        let begin = self.statement(sql::BEGIN, operation).await?;
        let set_tenant = self.statement(sql::SET_TENANT, operation).await?;
        let commit = self.statement(sql::COMMIT, operation).await?;
        let rollback = self.statement(sql::ROLLBACK, operation).await?;
        let client = self.client();
        let tenant: [&(dyn ToSql + Sync); 1] = [&tenant.as_str()];
        let map = |err| error::from_pg(operation, err);
        self.in_transaction.store(true, Ordering::Release);
        let (begun, scoped, value) = futures::join!(
            client.execute(&begin, &[]),
            client.execute(&set_tenant, &tenant),
            body,
        );
        let value = match begun.and(scoped).and(value) {
            Ok(value) => value,
            Err(err) => {
                // If even the rollback fails the connection stays marked and `Drop` discards it.
                if client.execute(&rollback, &[]).await.is_ok() {
                    self.in_transaction.store(false, Ordering::Release);
                }
                return Err(map(err));
            }
        };
        let commit_it = commit_if(&value);
        let end = if commit_it { &commit } else { &rollback };
        let ended = client.execute(end, &[]).await;
        self.in_transaction.store(false, Ordering::Release);
        ended.map_err(map)?;
        Ok((value, commit_it))
    }
}

/// Transactions whose statements depend on data that arrives while they are open (a
/// streamed artifact upload): [`Conn::begin_with`], more statements run on [`Conn::client`],
/// then [`Conn::commit_with`] or [`Conn::rollback`]. A `Conn` dropped in between is discarded
/// with its open transaction, as for [`Conn::run`].
impl Conn {
    /// Opens a transaction scoped to `tenant` and runs `body` (built from [`Conn::client`],
    /// not polled yet) in it, pipelined with `BEGIN` and the tenant setting: one round trip.
    /// The transaction stays open, also when `body` fails.
    pub(crate) async fn begin_with<T>(
        &self,
        tenant: &TenantId,
        operation: &'static str,
        body: impl Future<Output = PgResult<T>>,
    ) -> Result<T> {
        let begin = self.statement(sql::BEGIN, operation).await?;
        let set_tenant = self.statement(sql::SET_TENANT, operation).await?;
        let client = self.client();
        let tenant: [&(dyn ToSql + Sync); 1] = [&tenant.as_str()];
        self.in_transaction.store(true, Ordering::Release);
        let (begun, scoped, value) = futures::join!(
            client.execute(&begin, &[]),
            client.execute(&set_tenant, &tenant),
            body,
        );
        let map = |err| error::from_pg(operation, err);
        begun.map_err(map)?;
        scoped.map_err(map)?;
        value.map_err(map)
    }

    /// Runs `body` (built from [`Conn::client`], not polled yet) in the transaction
    /// [`Conn::begin_with`] opened and commits, pipelined: one round trip.
    pub(crate) async fn commit_with<T>(
        &self,
        operation: &'static str,
        body: impl Future<Output = PgResult<T>>,
    ) -> Result<T> {
        let commit = self.statement(sql::COMMIT, operation).await?;
        let (value, committed) = futures::join!(body, self.client().execute(&commit, &[]));
        self.in_transaction.store(false, Ordering::Release);
        let map = |err| error::from_pg(operation, err);
        let value = value.map_err(map)?;
        committed.map_err(map)?;
        Ok(value)
    }

    /// Rolls back the transaction [`Conn::begin_with`] opened.
    pub(crate) async fn rollback(&self, operation: &'static str) -> Result<()> {
        let rollback = self.statement(sql::ROLLBACK, operation).await?;
        self.client()
            .execute(&rollback, &[])
            .await
            .map_err(|err| error::from_pg(operation, err))?;
        self.in_transaction.store(false, Ordering::Release);
        Ok(())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.in_transaction.load(Ordering::Acquire) {
            if let Some(object) = self.object.take() {
                // Detach from the pool; dropping the client closes the connection and the
                // server rolls the open transaction back.
                drop(Object::take(object));
            }
        }
    }
}
