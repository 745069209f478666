-- 0003_sessions_hooks: the tables of the PostgreSQL-native session store
-- (cairn_postgres::PostgresSessionStore) and hook history
-- (cairn_postgres::PostgresHookHistoryStore).
--
-- Applied migrations are immutable (the runner records a SHA-256 of this file): change the
-- schema in a new, higher-numbered file. The runner wraps this file in one transaction.
--
-- Times keep their nanoseconds as in `events` (0002): a timestamptz rounded down to the
-- microsecond plus a smallint of the remaining 0..999 ns. Every table has a tenant_id column,
-- ENABLE + FORCE ROW LEVEL SECURITY and one policy per command on
-- current_setting('app.tenant_id', true); only cairn_app gets privileges on them.

-- ---------------------------------------------------------------------------------------
-- Sessions. A session is live while (expires_at, expires_ns) > (now(), 0); every read
-- filters on that, so an expired session is invisible before any purge. `ttl_us`/`ttl_ns`
-- hold the creation time to live (touch renews by it); `artifacts` the linked artifact
-- hashes in linking order, without repeats.
CREATE TABLE sessions (
    tenant_id  text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    id         text COLLATE "C" NOT NULL CHECK (id <> ''),
    created_at timestamptz NOT NULL,
    created_ns smallint NOT NULL CHECK (created_ns BETWEEN 0 AND 999),
    expires_at timestamptz NOT NULL CHECK (expires_at < '10000-01-01 00:00:00+00'),
    expires_ns smallint NOT NULL CHECK (expires_ns BETWEEN 0 AND 999),
    ttl_us     bigint NOT NULL CHECK (ttl_us >= 0),
    ttl_ns     smallint NOT NULL CHECK (ttl_ns BETWEEN 0 AND 999),
    data       jsonb NOT NULL,
    artifacts  text[] COLLATE "C" NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, id),
    CHECK (ttl_us > 0 OR ttl_ns > 0)
);

-- purge_expired: the expired sessions of one tenant.
CREATE INDEX sessions_expiry_idx ON sessions (tenant_id, expires_at);

-- ---------------------------------------------------------------------------------------
-- Hook executions, ordered by (at, at_ns, id). `duration_ns` is exact for any
-- std::time::Duration (numeric, whole nanoseconds). The per-hook index carries the duration
-- and the failure flag, so statistics can be an index-only scan that never reads inputs or
-- outputs.
CREATE TABLE hook_executions (
    tenant_id   text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    at          timestamptz NOT NULL,
    at_ns       smallint NOT NULL CHECK (at_ns BETWEEN 0 AND 999),
    id          uuid NOT NULL,
    hook_name   text COLLATE "C" NOT NULL CHECK (hook_name <> ''),
    input       jsonb NOT NULL,
    output      jsonb,
    error       text,
    duration_ns numeric NOT NULL CHECK (duration_ns >= 0 AND duration_ns = trunc(duration_ns)),
    failed      boolean NOT NULL GENERATED ALWAYS AS (error IS NOT NULL) STORED,
    PRIMARY KEY (tenant_id, at, at_ns, id)
);

CREATE INDEX hook_executions_hook_idx ON hook_executions (tenant_id, hook_name, at, at_ns, id)
    INCLUDE (duration_ns, failed);

-- ---------------------------------------------------------------------------------------
-- Row-level security and grants for every table of this migration (`cairn_tenant_rls`, 0002).
SELECT cairn_tenant_rls(t) FROM unnest(ARRAY['sessions', 'hook_executions']) AS t;
