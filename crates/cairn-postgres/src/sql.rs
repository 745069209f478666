//! Every SQL statement the key-value backend runs, in one place.
//!
//! All values travel as parameters; nothing here is ever built with `format!`, except the two
//! connection-setup commands in [`crate::pool`], whose only inputs are a validated role name
//! and an integer.
//!
//! Parameter `$1` is always the tenant id. Statements filter on it explicitly although
//! row-level security filters on `app.tenant_id` too: the explicit filter keeps the
//! primary-key index in use and keeps tenants apart even when isolation enforcement is off.

/// Opens a transaction (prepared, so it can be pipelined with the statements after it).
pub(crate) const BEGIN: &str = "BEGIN";

/// Commits a transaction; on a transaction that already failed PostgreSQL rolls back instead.
pub(crate) const COMMIT: &str = "COMMIT";

/// Rolls a transaction back.
pub(crate) const ROLLBACK: &str = "ROLLBACK";

/// Sets the tenant that row-level security admits, for the current transaction only
/// (`is_local = true`, the function form of `SET LOCAL`, which takes no parameters).
pub(crate) const SET_TENANT: &str = "SELECT set_config('app.tenant_id', $1, true)";

/// Facts about the role that data flows as; checked on every new pooled connection.
pub(crate) const ROLE_INFO: &str = "\
SELECT current_user::text, r.rolsuper, r.rolbypassrls,
       COALESCE(pg_has_role(current_user, c.relowner, 'MEMBER'), false)
FROM pg_catalog.pg_roles r
LEFT JOIN pg_catalog.pg_class c ON c.oid = to_regclass('kv_store')
WHERE r.rolname = current_user";

/// `$2` key.
pub(crate) const GET: &str = "SELECT value FROM kv_store WHERE tenant_id = $1 AND key = $2";

/// `$2` key.
pub(crate) const EXISTS: &str =
    "SELECT EXISTS (SELECT 1 FROM kv_store WHERE tenant_id = $1 AND key = $2)";

/// `$2` key, `$3` value.
pub(crate) const UPSERT: &str = "\
INSERT INTO kv_store (tenant_id, key, value) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value";

/// `$2` key.
pub(crate) const DELETE: &str = "DELETE FROM kv_store WHERE tenant_id = $1 AND key = $2";

/// `$2` distinct keys.
pub(crate) const GET_MANY: &str =
    "SELECT key, value FROM kv_store WHERE tenant_id = $1 AND key = ANY($2::text[])";

/// `$2` distinct keys, sorted (a fixed lock order keeps concurrent batches from deadlocking),
/// `$3` their values.
pub(crate) const UPSERT_MANY: &str = "\
INSERT INTO kv_store (tenant_id, key, value)
SELECT $1, e.key, e.value FROM unnest($2::text[], $3::bytea[]) AS e(key, value)
ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value";

/// `$2` distinct keys.
pub(crate) const DELETE_MANY: &str =
    "DELETE FROM kv_store WHERE tenant_id = $1 AND key = ANY($2::text[])";

/// Removes the whole tenant.
pub(crate) const CLEAR: &str = "DELETE FROM kv_store WHERE tenant_id = $1";

/// Create-only write: `$2` key, `$3` value; zero rows affected means the key exists.
pub(crate) const CREATE: &str = "\
INSERT INTO kv_store (tenant_id, key, value) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, key) DO NOTHING";

/// Swap: `$2` key, `$3` new value, `$4` expected value; zero rows means the value differed.
pub(crate) const SWAP: &str =
    "UPDATE kv_store SET value = $3 WHERE tenant_id = $1 AND key = $2 AND value = $4";

/// Conditional delete: `$2` key, `$3` expected value; zero rows means the value differed.
pub(crate) const DELETE_IF: &str =
    "DELETE FROM kv_store WHERE tenant_id = $1 AND key = $2 AND value = $3";

/// Locks the absence of keys for a batch's `expected = None` checks: inserts an empty
/// placeholder row per sorted key `$2` and returns the keys it inserted. A key not returned
/// exists (or a concurrent transaction created it and committed: the insert waits for it on
/// the primary key). An inserted placeholder holds the key until commit, so a concurrent
/// writer of that key waits instead of slipping in between the check and the write.
pub(crate) const LOCK_ABSENT: &str = "\
INSERT INTO kv_store (tenant_id, key, value)
SELECT $1, c.key, ''::bytea FROM unnest($2::text[]) AS c(key)
ON CONFLICT (tenant_id, key) DO NOTHING
RETURNING key";

/// Locks the rows of a batch's `expected = Some(_)` checks, in key order, and returns their
/// current values. `$2` distinct keys.
pub(crate) const LOCK_PRESENT: &str = "\
SELECT key, value FROM kv_store WHERE tenant_id = $1 AND key = ANY($2::text[])
ORDER BY key FOR UPDATE";

/// `$2` prefix, `$3` upper bound of the prefix range.
pub(crate) const LIST_KEYS_RANGE: &str = "\
SELECT key FROM kv_store WHERE tenant_id = $1 AND key >= $2 AND key < $3 ORDER BY key";

/// `$2` prefix that has no upper bound (empty, or only U+10FFFF characters).
pub(crate) const LIST_KEYS_FROM: &str =
    "SELECT key FROM kv_store WHERE tenant_id = $1 AND key >= $2 ORDER BY key";

/// `$2` inclusive lower bound, `$3` exclusive upper bound, `$4` limit.
pub(crate) const SCAN_FROM_BOUNDED: &str = "\
SELECT key, value FROM kv_store WHERE tenant_id = $1 AND key >= $2 AND key < $3
ORDER BY key LIMIT $4";

/// `$2` exclusive lower bound, `$3` exclusive upper bound, `$4` limit.
pub(crate) const SCAN_AFTER_BOUNDED: &str = "\
SELECT key, value FROM kv_store WHERE tenant_id = $1 AND key > $2 AND key < $3
ORDER BY key LIMIT $4";

/// `$2` inclusive lower bound, `$3` limit.
pub(crate) const SCAN_FROM: &str = "\
SELECT key, value FROM kv_store WHERE tenant_id = $1 AND key >= $2 ORDER BY key LIMIT $3";

/// `$2` exclusive lower bound, `$3` limit.
pub(crate) const SCAN_AFTER: &str = "\
SELECT key, value FROM kv_store WHERE tenant_id = $1 AND key > $2 ORDER BY key LIMIT $3";

/// Every statement above that a data connection runs; each new pooled connection prepares
/// them all in one pipelined round trip, so operations never wait for a `Parse`.
pub(crate) const DATA_STATEMENTS: [&str; 23] = [
    BEGIN,
    COMMIT,
    ROLLBACK,
    SET_TENANT,
    GET,
    EXISTS,
    UPSERT,
    DELETE,
    GET_MANY,
    UPSERT_MANY,
    DELETE_MANY,
    CLEAR,
    CREATE,
    SWAP,
    DELETE_IF,
    LOCK_ABSENT,
    LOCK_PRESENT,
    LIST_KEYS_RANGE,
    LIST_KEYS_FROM,
    SCAN_FROM_BOUNDED,
    SCAN_AFTER_BOUNDED,
    SCAN_FROM,
    SCAN_AFTER,
];

/// The migration runner's statements; they run as the URL's user on a dedicated connection.
pub(crate) mod migrate {
    /// Key of the session advisory lock that serialises migration runs on one database
    /// (ASCII `cairn_mg`).
    pub(crate) const LOCK_KEY: i64 = 0x6361_6972_6e5f_6d67;

    /// Waits for and takes the migration lock; `$1` is [`LOCK_KEY`].
    pub(crate) const LOCK: &str = "SELECT pg_advisory_lock($1)";

    /// Releases the migration lock; `$1` is [`LOCK_KEY`].
    pub(crate) const UNLOCK: &str = "SELECT pg_advisory_unlock($1)";

    /// The tracking table: one row per applied migration.
    pub(crate) const CREATE_TRACKING: &str = "\
CREATE TABLE IF NOT EXISTS cairn_schema_migrations (
    version    bigint      PRIMARY KEY,
    name       text        NOT NULL,
    checksum   bytea       NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

    /// Whether the tracking table exists (status must not create it).
    pub(crate) const TRACKING_EXISTS: &str =
        "SELECT to_regclass('cairn_schema_migrations') IS NOT NULL";

    /// Every recorded migration.
    pub(crate) const APPLIED: &str = "\
SELECT version, name, checksum, applied_at FROM cairn_schema_migrations ORDER BY version";

    /// Records a migration: `$1` version, `$2` name, `$3` checksum.
    pub(crate) const RECORD: &str = "\
INSERT INTO cairn_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)
RETURNING applied_at";
}

/// The tables of the current schema with a `tenant_id` column (partitions excluded: their
/// parent covers them), each name quoted as an identifier.
pub(crate) const TENANT_TABLES: &str = "\
SELECT format('%I', c.relname) FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
              AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY 1";
