//! [`PostgresSessionStore`]: [`SessionStore`] on the `sessions` table.

use std::fmt;

use async_trait::async_trait;
use cairn_core::{Bytes, Error, ErrorKind, Result, StorageBackend, check_scan_limit};
use cairn_stores::artifacts::check_hash;
use cairn_stores::codec::check_id;
use cairn_stores::paging::Page;
use cairn_stores::portable::{
    ExportPage, PortableStore, decode_portable, encode_portable, page_of,
};
use cairn_stores::sessions::{Session, SessionStore, check_session, check_ttl, expiry};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::timestamps::{join, split};
use super::{export_after_id, export_fetch};
use crate::backend::PostgresBackend;
use crate::error;

/// A [`SessionStore`] on PostgreSQL, scoped to the tenant of the [`PostgresBackend`] it was
/// built on.
///
/// # Storage
/// One table, `sessions`, primary key `(tenant_id, id)`: the creation and expiry times (each a
/// `timestamptz` plus its nanoseconds), the creation time to live, the JSON snapshot
/// (`jsonb`) and the linked artifact hashes (`text[]`, in linking order).
///
/// # Expiry
/// Every statement admits only live sessions, `(expires_at, expires_ns) > (now(), 0)` on the
/// server's clock, so an expired session is invisible before any purge. Times written are
/// taken from the client's clock (nanoseconds), as in the generic store. Each operation is
/// one statement in one transaction: concurrent updates of a session serialise on its row
/// (`READ COMMITTED` re-evaluates an update on the newest row version), so no link is lost and
/// a purge never removes a session extended meanwhile.
#[derive(Clone)]
pub struct PostgresSessionStore {
    backend: PostgresBackend,
}

impl fmt::Debug for PostgresSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSessionStore")
            .field("tenant", self.backend.tenant_id())
            .finish_non_exhaustive()
    }
}

/// Every statement of the session store. `$1` is always the tenant id; the columns of a
/// session are always the `columns!()` list, read by [`session_from`].
mod sql {
    /// The columns [`super::session_from`] reads, in order.
    macro_rules! columns {
        () => {
            "id, created_at, created_ns, expires_at, expires_ns, ttl_us, ttl_ns, data, artifacts"
        };
    }

    /// A live session's condition.
    macro_rules! live {
        () => {
            "(expires_at, expires_ns) > (now(), 0)"
        };
    }

    /// `$2` id, `$3`/`$4` creation time, `$5`/`$6` expiry, `$7`/`$8` time to live (µs, ns),
    /// `$9` data. Replaces an expired session of the id; returns no row when a live one has
    /// it.
    pub(super) const CREATE: &str = concat!(
        "INSERT INTO sessions (tenant_id, id, created_at, created_ns, expires_at, expires_ns, \
         ttl_us, ttl_ns, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    created_at = EXCLUDED.created_at, created_ns = EXCLUDED.created_ns,
    expires_at = EXCLUDED.expires_at, expires_ns = EXCLUDED.expires_ns,
    ttl_us = EXCLUDED.ttl_us, ttl_ns = EXCLUDED.ttl_ns,
    data = EXCLUDED.data, artifacts = '{}'
WHERE (sessions.expires_at, sessions.expires_ns) <= (now(), 0)
RETURNING ",
        columns!()
    );

    /// `$2` id.
    pub(super) const GET: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM sessions WHERE tenant_id = $1 AND id = $2 AND ",
        live!()
    );

    /// `$2` the id to list after (NULL: from the start), `$3` the most rows.
    pub(super) const LIST: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM sessions WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) AND ",
        live!(),
        " ORDER BY id LIMIT $3"
    );

    /// `$2` id, `$3`/`$4` the new expiry.
    pub(super) const EXTEND: &str = concat!(
        "UPDATE sessions SET expires_at = $3, expires_ns = $4
WHERE tenant_id = $1 AND id = $2 AND ",
        live!(),
        " RETURNING ",
        columns!()
    );

    /// `$2` id, `$3`/`$4` the current time: the expiry becomes now plus the creation time to
    /// live (hours and seconds through `make_interval`, so the sum is exact to the
    /// microsecond; the nanoseconds carry). An expiry past the year 9999 fails the table's
    /// CHECK constraint.
    pub(super) const TOUCH: &str = concat!(
        "UPDATE sessions SET
    expires_at = $3::timestamptz
        + make_interval(hours => (ttl_us / 3600000000)::int,
                        secs => (ttl_us % 3600000000)::float8 / 1000000)
        + (($4::int2 + ttl_ns) / 1000) * interval '1 microsecond',
    expires_ns = ($4 + ttl_ns) % 1000
WHERE tenant_id = $1 AND id = $2 AND ",
        live!(),
        " RETURNING ",
        columns!()
    );

    /// `$2` id, `$3` data.
    pub(super) const UPDATE_DATA: &str = concat!(
        "UPDATE sessions SET data = $3 WHERE tenant_id = $1 AND id = $2 AND ",
        live!(),
        " RETURNING ",
        columns!()
    );

    /// `$2` id, `$3` hash (lowercase). Appends the hash unless it is linked already.
    pub(super) const LINK: &str = concat!(
        "UPDATE sessions SET artifacts = CASE WHEN $3 = ANY(artifacts) THEN artifacts
    ELSE array_append(artifacts, $3::text) END
WHERE tenant_id = $1 AND id = $2 AND ",
        live!(),
        " RETURNING ",
        columns!()
    );

    /// `$2` id, `$3` hash (lowercase). Returns whether it was linked.
    pub(super) const UNLINK: &str = concat!(
        "UPDATE sessions SET artifacts = array_remove(artifacts, $3::text)
WHERE tenant_id = $1 AND id = $2 AND ",
        live!(),
        " RETURNING $3 = ANY(old.artifacts)"
    );

    /// `$2` id. Returns whether the deleted session was live.
    pub(super) const DELETE: &str = concat!(
        "DELETE FROM sessions WHERE tenant_id = $1 AND id = $2 RETURNING ",
        live!()
    );

    /// Every session, expired ones included, by id: `$2` the id to read after (NULL: from the
    /// start), `$3` the most rows.
    pub(super) const EXPORT: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM sessions WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3"
    );

    /// Writes whole sessions, replacing those of the same id: `$2` ids, `$3`/`$4` creation
    /// times, `$5`/`$6` expiries, `$7`/`$8` times to live, `$9` data, `$10` the linked hashes
    /// as JSON arrays, all in the same order.
    pub(super) const IMPORT: &str = "\
INSERT INTO sessions (tenant_id, id, created_at, created_ns, expires_at, expires_ns, ttl_us,
    ttl_ns, data, artifacts)
SELECT $1, s.id, s.created_at, s.created_ns, s.expires_at, s.expires_ns, s.ttl_us, s.ttl_ns,
    s.data, ARRAY(SELECT jsonb_array_elements_text(s.artifacts))
FROM unnest($2::text[], $3::timestamptz[], $4::int2[], $5::timestamptz[], $6::int2[],
    $7::int8[], $8::int2[], $9::jsonb[], $10::jsonb[])
    AS s(id, created_at, created_ns, expires_at, expires_ns, ttl_us, ttl_ns, data, artifacts)
ON CONFLICT (tenant_id, id) DO UPDATE SET
    created_at = EXCLUDED.created_at, created_ns = EXCLUDED.created_ns,
    expires_at = EXCLUDED.expires_at, expires_ns = EXCLUDED.expires_ns,
    ttl_us = EXCLUDED.ttl_us, ttl_ns = EXCLUDED.ttl_ns,
    data = EXCLUDED.data, artifacts = EXCLUDED.artifacts";

    /// Deletes the tenant's expired sessions; the bound on `expires_at` alone uses the index.
    pub(super) const PURGE: &str = "\
DELETE FROM sessions WHERE tenant_id = $1 AND expires_at <= now()
    AND (expires_at, expires_ns) <= (now(), 0)";
}

fn not_found(id: &str) -> Error {
    Error::new(ErrorKind::NotFound, "session does not exist or has expired").with_context("id", id)
}

/// A time to live as whole microseconds and the remaining nanoseconds (`ttl` is positive and
/// below 10 000 years, as [`expiry`] checked).
fn split_ttl(ttl: Duration) -> Result<(i64, i16)> {
    let ns = ttl.whole_nanoseconds();
    let us = i64::try_from(ns.div_euclid(1_000))
        .map_err(|_| Error::invalid_input("a session's time to live is out of range"))?;
    // `rem_euclid(1000)` lies in 0..1000.
    Ok((us, ns.rem_euclid(1_000) as i16))
}

fn session_from(row: &Row) -> Result<Session> {
    const OP: &str = "session_read";
    let map = |err| error::from_pg(OP, err);
    let ttl_us: i64 = row.try_get(5).map_err(map)?;
    let ttl_ns: i16 = row.try_get(6).map_err(map)?;
    Ok(Session {
        id: row.try_get(0).map_err(map)?,
        created_at: join(row.try_get(1).map_err(map)?, row.try_get(2).map_err(map)?)?,
        expires_at: join(row.try_get(3).map_err(map)?, row.try_get(4).map_err(map)?)?,
        ttl: Duration::microseconds(ttl_us) + Duration::nanoseconds(i64::from(ttl_ns)),
        data: row.try_get::<_, Value>(7).map_err(map)?,
        artifacts: row.try_get(8).map_err(map)?,
    })
}

impl PostgresSessionStore {
    /// A session store on `backend`'s pool and tenant. The table comes from the embedded
    /// migrations (`auto_migrate`, or `cargo xtask migrate up`).
    pub fn new(backend: &PostgresBackend) -> PostgresSessionStore {
        PostgresSessionStore {
            backend: backend.clone(),
        }
    }

    fn tenant(&self) -> &str {
        self.backend.tenant_id().as_str()
    }

    /// Runs one statement in a tenant transaction and returns its rows.
    async fn query(
        &self,
        op: &'static str,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let conn = self.backend.conn(op).await?;
        let stmt = conn.statement(statement, op).await?;
        conn.run(
            self.backend.tenant_id(),
            op,
            conn.client().query(&stmt, params),
        )
        .await
    }

    /// Runs an update of the live session `id` and returns the session it leaves.
    async fn modify(
        &self,
        op: &'static str,
        statement: &str,
        id: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Session> {
        let rows = self.query(op, statement, params).await?;
        rows.first()
            .map_or_else(|| Err(not_found(id)), session_from)
    }
}

#[async_trait]
impl SessionStore for PostgresSessionStore {
    async fn create(&self, id: Option<&str>, ttl: Duration, data: Value) -> Result<Session> {
        let id = match id {
            Some(id) => {
                check_id("session id", id)?;
                id.to_owned()
            }
            None => Uuid::now_v7().to_string(),
        };
        let now = OffsetDateTime::now_utc();
        let expires = expiry(now, ttl)?;
        let (created_at, created_ns) = split(now);
        let (expires_at, expires_ns) = split(expires);
        let (ttl_us, ttl_ns) = split_ttl(ttl)?;
        let tenant = self.tenant();
        let rows = self
            .query(
                "session_create",
                sql::CREATE,
                &[
                    &tenant,
                    &id,
                    &created_at,
                    &created_ns,
                    &expires_at,
                    &expires_ns,
                    &ttl_us,
                    &ttl_ns,
                    &data,
                ],
            )
            .await?;
        match rows.first() {
            Some(row) => session_from(row),
            None => Err(Error::conflict("an unexpired session has this id").with_context("id", id)),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Session>> {
        check_id("session id", id)?;
        let tenant = self.tenant();
        let rows = self.query("session_get", sql::GET, &[&tenant, &id]).await?;
        rows.first().map(session_from).transpose()
    }

    async fn list(&self, after: Option<&str>, limit: usize) -> Result<Page<Session>> {
        check_scan_limit(limit)?;
        if let Some(after) = after {
            check_id("session id", after)?;
        }
        let tenant = self.tenant();
        // One row more than asked tells whether another page follows.
        let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
        let rows = self
            .query("session_list", sql::LIST, &[&tenant, &after, &fetch])
            .await?;
        let more = rows.len() > limit;
        let items = rows
            .iter()
            .take(limit)
            .map(session_from)
            .collect::<Result<Vec<_>>>()?;
        let next_after = more.then(|| items.last().map(|s| s.id.clone())).flatten();
        Ok(Page { items, next_after })
    }

    async fn extend(&self, id: &str, ttl: Duration) -> Result<Session> {
        check_ttl(ttl)?;
        check_id("session id", id)?;
        let (expires_at, expires_ns) = split(expiry(OffsetDateTime::now_utc(), ttl)?);
        let tenant = self.tenant();
        self.modify(
            "session_extend",
            sql::EXTEND,
            id,
            &[&tenant, &id, &expires_at, &expires_ns],
        )
        .await
    }

    async fn touch(&self, id: &str) -> Result<Session> {
        check_id("session id", id)?;
        let (now_at, now_ns) = split(OffsetDateTime::now_utc());
        let tenant = self.tenant();
        self.modify(
            "session_touch",
            sql::TOUCH,
            id,
            &[&tenant, &id, &now_at, &now_ns],
        )
        .await
    }

    async fn update_data(&self, id: &str, data: Value) -> Result<Session> {
        check_id("session id", id)?;
        let tenant = self.tenant();
        self.modify(
            "session_update_data",
            sql::UPDATE_DATA,
            id,
            &[&tenant, &id, &data],
        )
        .await
    }

    async fn link_artifact(&self, id: &str, hash: &str) -> Result<Session> {
        let hash = check_hash(hash)?;
        check_id("session id", id)?;
        let tenant = self.tenant();
        self.modify("session_link", sql::LINK, id, &[&tenant, &id, &hash])
            .await
    }

    async fn unlink_artifact(&self, id: &str, hash: &str) -> Result<bool> {
        const OP: &str = "session_unlink";
        let hash = check_hash(hash)?;
        check_id("session id", id)?;
        let tenant = self.tenant();
        let rows = self.query(OP, sql::UNLINK, &[&tenant, &id, &hash]).await?;
        let row = rows.first().ok_or_else(|| not_found(id))?;
        row.try_get(0).map_err(|err| error::from_pg(OP, err))
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        const OP: &str = "session_delete";
        check_id("session id", id)?;
        let tenant = self.tenant();
        let rows = self.query(OP, sql::DELETE, &[&tenant, &id]).await?;
        match rows.first() {
            Some(row) => row.try_get(0).map_err(|err| error::from_pg(OP, err)),
            None => Ok(false),
        }
    }

    async fn purge_expired(&self) -> Result<u64> {
        const OP: &str = "session_purge";
        let conn = self.backend.conn(OP).await?;
        let stmt = conn.statement(sql::PURGE, OP).await?;
        let tenant = self.tenant();
        conn.run(
            self.backend.tenant_id(),
            OP,
            conn.client().execute(&stmt, &[&tenant]),
        )
        .await
    }
}

/// The portable record of a session is the [`Session`] itself, expired ones included, in id
/// order; the cursor is the last id.
#[async_trait]
impl PortableStore for PostgresSessionStore {
    async fn export_page(&self, after: Option<&[u8]>, limit: usize) -> Result<ExportPage> {
        let fetch = export_fetch(limit)?;
        let after = export_after_id(after)?;
        let tenant = self.tenant();
        let rows = self
            .query("session_export", sql::EXPORT, &[&tenant, &after, &fetch])
            .await?;
        let sessions = rows.iter().map(session_from).collect::<Result<Vec<_>>>()?;
        page_of(
            sessions,
            limit,
            |session| encode_portable(session, &[]),
            |last| Ok(last.id.as_bytes().to_vec()),
        )
    }

    async fn import(&self, records: &[Bytes]) -> Result<()> {
        let mut sessions = std::collections::BTreeMap::new();
        for record in records {
            let (session, _): (Session, _) = decode_portable(record)?;
            check_session(&session)?;
            sessions.insert(session.id.clone(), session);
        }
        if sessions.is_empty() {
            return Ok(());
        }
        let n = sessions.len();
        let (mut ids, mut created_at, mut created_ns) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut expires_at, mut expires_ns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut ttl_us, mut ttl_ns) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut data, mut artifacts) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for session in sessions.into_values() {
            let (at, ns) = split(session.created_at);
            created_at.push(at);
            created_ns.push(ns);
            let (at, ns) = split(session.expires_at);
            expires_at.push(at);
            expires_ns.push(ns);
            let (us, ns) = split_ttl(session.ttl)?;
            ttl_us.push(us);
            ttl_ns.push(ns);
            artifacts.push(Value::from(session.artifacts));
            data.push(session.data);
            ids.push(session.id);
        }
        let tenant = self.tenant();
        self.query(
            "session_import",
            sql::IMPORT,
            &[
                &tenant,
                &ids,
                &created_at,
                &created_ns,
                &expires_at,
                &expires_ns,
                &ttl_us,
                &ttl_ns,
                &data,
                &artifacts,
            ],
        )
        .await?;
        Ok(())
    }
}
