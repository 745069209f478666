-- 0001_kv_store: the tenant-scoped key-value table behind cairn_postgres::PostgresBackend.
--
-- Applied migrations are immutable (the runner records a SHA-256 of this file): change the
-- schema in a new, higher-numbered file. The runner wraps this file in one transaction.

-- The application role. Data flows as this role (the backend runs SET ROLE cairn_app on every
-- pooled connection), so row-level security applies to it: it is no superuser, has no
-- BYPASSRLS and owns nothing. LOGIN without a password lets tests and trust-authenticated
-- local setups connect as it directly; password authentication refuses it until an operator
-- sets a password.
--
-- Roles are cluster-global and two databases on one cluster may migrate at the same moment
-- (the runner's advisory lock is per database), so losing the race to create the role is fine.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cairn_app') THEN
        CREATE ROLE cairn_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL; -- another database's migration created it first
END
$$;

-- Keys compare as bytes (COLLATE "C"), so scans order and page identically on every backend.
CREATE TABLE kv_store (
    tenant_id text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    key       text COLLATE "C" NOT NULL CHECK (key <> ''),
    value     bytea NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Every row belongs to the tenant named by the transaction-local setting app.tenant_id,
-- which the backend sets with set_config('app.tenant_id', $1, true) at the start of each
-- transaction. Unset, current_setting(..., true) is NULL or '' and matches no row.
-- FORCE applies the policies to the table owner too.
ALTER TABLE kv_store ENABLE ROW LEVEL SECURITY;
ALTER TABLE kv_store FORCE ROW LEVEL SECURITY;

CREATE POLICY kv_store_tenant_select ON kv_store FOR SELECT
    USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY kv_store_tenant_insert ON kv_store FOR INSERT
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY kv_store_tenant_update ON kv_store FOR UPDATE
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY kv_store_tenant_delete ON kv_store FOR DELETE
    USING (tenant_id = current_setting('app.tenant_id', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON kv_store TO cairn_app;

-- The schema kv_store was created in (normally public): cairn_app needs to look into it.
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO cairn_app', current_schema());
END
$$;
