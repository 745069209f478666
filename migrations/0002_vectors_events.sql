-- 0002_vectors_events: the tables of the PostgreSQL-native vector store
-- (cairn_postgres::PostgresVectorStore) and event log (cairn_postgres::PostgresEventLogStore).
--
-- Applied migrations are immutable (the runner records a SHA-256 of this file): change the
-- schema in a new, higher-numbered file. The runner wraps this file in one transaction.
--
-- Every table below has a tenant_id column, ENABLE + FORCE ROW LEVEL SECURITY and one policy
-- per command on current_setting('app.tenant_id', true), exactly as kv_store in 0001; only
-- cairn_app gets privileges on them.

-- pgvector. Creating an extension needs a superuser (or a trusted-extension setup); the
-- runner applies migrations as the URL's user.
CREATE EXTENSION IF NOT EXISTS vector;

-- ---------------------------------------------------------------------------------------
-- Vector collections: one row per (tenant, name). `id` names this incarnation of the
-- collection: vectors reference it, so a collection deleted and created again under the same
-- name never sees the old vectors (they are deleted by the cascade in the same transaction).
CREATE TABLE vector_collections (
    tenant_id  text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    name       text COLLATE "C" NOT NULL CHECK (name <> ''),
    dimension  integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
    metric     text NOT NULL CHECK (metric IN ('cosine', 'l2', 'dot')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- Vectors, one table per indexed dimension plus one for every other dimension:
--
--   table                     column            HNSW index (one partial index per metric)
--   vector_embeddings_384     vector(384)       on the column
--   vector_embeddings_768     vector(768)       on the column
--   vector_embeddings_1536    vector(1536)      on the column
--   vector_embeddings_3072    vector(3072)      on (embedding::halfvec(3072)): pgvector indexes
--                                               `vector` up to 2000 dimensions, `halfvec` up to
--                                               4000; searches re-rank the candidates exactly
--   vector_embeddings_other   vector (any dim)  none: searched by an exact scan of the
--                                               collection's rows
--
-- Each row repeats its collection's metric, so that each HNSW index covers the rows of one
-- metric only (`WHERE metric = '…'`) and is built with that metric's operator class; the
-- search statements name the metric as a constant, which lets the planner use the index.
-- m = 16 and ef_construction = 128 as measured in DESIGN.md §3. A GIN index (jsonb_path_ops)
-- serves the metadata containment filter.
DO $$
DECLARE
    spec record;
    metric_ops record;
BEGIN
    FOR spec IN
        SELECT * FROM (VALUES
            ('384',   'vector(384)',  'embedding',                        'vector'),
            ('768',   'vector(768)',  'embedding',                        'vector'),
            ('1536',  'vector(1536)', 'embedding',                        'vector'),
            ('3072',  'vector(3072)', '(embedding::halfvec(3072))',       'halfvec'),
            ('other', 'vector',       NULL,                               NULL)
        ) AS s(suffix, column_type, index_expression, ops_prefix)
    LOOP
        EXECUTE format($sql$
            CREATE TABLE %1$I (
                tenant_id     text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
                collection_id uuid NOT NULL,
                id            text COLLATE "C" NOT NULL CHECK (id <> ''),
                metric        text NOT NULL CHECK (metric IN ('cosine', 'l2', 'dot')),
                embedding     %2$s NOT NULL,
                metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
                PRIMARY KEY (tenant_id, collection_id, id),
                FOREIGN KEY (tenant_id, collection_id)
                    REFERENCES vector_collections (tenant_id, id) ON DELETE CASCADE
            )$sql$, 'vector_embeddings_' || spec.suffix, spec.column_type);
        EXECUTE format('CREATE INDEX %I ON %I USING gin (metadata jsonb_path_ops)',
            'vector_embeddings_' || spec.suffix || '_metadata_idx',
            'vector_embeddings_' || spec.suffix);
        IF spec.index_expression IS NOT NULL THEN
            FOR metric_ops IN
                SELECT * FROM (VALUES ('cosine', 'cosine_ops'), ('l2', 'l2_ops'), ('dot', 'ip_ops'))
                    AS m(metric, ops)
            LOOP
                EXECUTE format(
                    'CREATE INDEX %I ON %I USING hnsw (%s %s) '
                    'WITH (m = 16, ef_construction = 128) WHERE metric = %L',
                    'vector_embeddings_' || spec.suffix || '_' || metric_ops.metric || '_hnsw',
                    'vector_embeddings_' || spec.suffix,
                    spec.index_expression,
                    spec.ops_prefix || '_' || metric_ops.ops,
                    metric_ops.metric);
            END LOOP;
        END IF;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------
-- The event log, partitioned by month on `at`.
--
-- `at` is the event time rounded down to the microsecond (PostgreSQL's resolution) and
-- `at_ns` the remaining nanoseconds (0..999), so Cairn's nanosecond times round-trip exactly;
-- events order by (at, at_ns, id). The DEFAULT partition takes every event whose month has no
-- partition of its own, so a back-dated or far-future event never fails.
CREATE TABLE events (
    tenant_id      text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    at             timestamptz NOT NULL,
    at_ns          smallint NOT NULL CHECK (at_ns BETWEEN 0 AND 999),
    id             uuid NOT NULL,
    event_type     text COLLATE "C" NOT NULL CHECK (event_type <> ''),
    correlation_id text COLLATE "C" CHECK (correlation_id <> ''),
    payload        jsonb NOT NULL,
    PRIMARY KEY (tenant_id, at, at_ns, id)
) PARTITION BY RANGE (at);

CREATE INDEX events_type_idx ON events (tenant_id, event_type, at, at_ns, id);
CREATE INDEX events_correlation_idx ON events (tenant_id, correlation_id, at, at_ns, id)
    WHERE correlation_id IS NOT NULL;

CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Creates the monthly partition `events_yYYYYmMM` holding `month_of`'s month (UTC) unless it
-- exists; returns whether it created it. The store calls it for the current and the next
-- month at append time (once per month and process). It runs as its owner (the migrating
-- user, who owns `events`), because cairn_app may not create tables; it takes only a
-- timestamptz, builds the name and bounds itself and quotes both.
--
-- Concurrency: a transaction-level advisory lock serialises creators and the existence check
-- is repeated under it, so concurrent appenders create a partition once (one that still
-- finds it missing, its catalog snapshot predating the other's commit, gets duplicate_table
-- and returns false). If the DEFAULT partition already holds rows of that month (events
-- appended for it before the partition existed), PostgreSQL refuses the new partition
-- (check_violation): the month then stays in the DEFAULT partition, where it is still found,
-- and the function returns false.
DO $do$
BEGIN
    EXECUTE format($fn$
        CREATE FUNCTION %1$I.cairn_ensure_event_partition(month_of timestamptz)
        RETURNS boolean
        LANGUAGE plpgsql
        SECURITY DEFINER
        SET search_path = pg_catalog, %1$I
        AS $body$
        DECLARE
            month_start timestamp := date_trunc('month', month_of AT TIME ZONE 'UTC');
            partition_name text := 'events_y' || to_char(month_start, 'YYYY') || 'm'
                || to_char(month_start, 'MM');
            qualified text := format('%%I.%%I', %1$L, partition_name);
        BEGIN
            IF to_regclass(qualified) IS NOT NULL THEN
                RETURN false;
            END IF;
            -- ASCII 'cairn_ev'.
            PERFORM pg_advisory_xact_lock(7161120822694733174);
            IF to_regclass(qualified) IS NOT NULL THEN
                RETURN false;
            END IF;
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %%s PARTITION OF %%I.events FOR VALUES FROM (%%L) TO (%%L)',
                    qualified, %1$L,
                    month_start AT TIME ZONE 'UTC',
                    (month_start + interval '1 month') AT TIME ZONE 'UTC');
            EXCEPTION
                WHEN check_violation THEN
                    RETURN false;
                -- Created by a transaction that committed after this one's catalog snapshot
                -- was taken: it exists, which is all that was asked.
                WHEN duplicate_table OR unique_violation THEN
                    RETURN false;
            END;
            -- No policies and no grants on the partition itself: reading or writing it
            -- directly is refused; data flows through `events` and its policies.
            EXECUTE format('ALTER TABLE %%s ENABLE ROW LEVEL SECURITY', qualified);
            EXECUTE format('ALTER TABLE %%s FORCE ROW LEVEL SECURITY', qualified);
            RETURN true;
        END
        $body$
    $fn$, current_schema());
END
$do$;

REVOKE ALL ON FUNCTION cairn_ensure_event_partition(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cairn_ensure_event_partition(timestamptz) TO cairn_app;

-- ---------------------------------------------------------------------------------------
-- Row-level security for a tenant-scoped table: ENABLE + FORCE, one policy per command on
-- the transaction-local app.tenant_id, and the data privileges for cairn_app only. Later
-- migrations call it for their tables. Only the migration user may run it.
CREATE FUNCTION cairn_tenant_rls(t text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
        'CREATE POLICY %I ON %I FOR SELECT '
        'USING (tenant_id = current_setting(''app.tenant_id'', true))',
        t || '_tenant_select', t);
    EXECUTE format(
        'CREATE POLICY %I ON %I FOR INSERT '
        'WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))',
        t || '_tenant_insert', t);
    EXECUTE format(
        'CREATE POLICY %I ON %I FOR UPDATE '
        'USING (tenant_id = current_setting(''app.tenant_id'', true)) '
        'WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))',
        t || '_tenant_update', t);
    EXECUTE format(
        'CREATE POLICY %I ON %I FOR DELETE '
        'USING (tenant_id = current_setting(''app.tenant_id'', true))',
        t || '_tenant_delete', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO cairn_app', t);
END
$$;
REVOKE ALL ON FUNCTION cairn_tenant_rls(text) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Row-level security and grants, the same for every table of this migration. Partitions
-- (events_default and the monthly ones) get RLS enabled and forced without policies or
-- grants: all access goes through `events`, whose policies apply.
SELECT cairn_tenant_rls(t) FROM unnest(ARRAY[
        'vector_collections',
        'vector_embeddings_384', 'vector_embeddings_768', 'vector_embeddings_1536',
        'vector_embeddings_3072', 'vector_embeddings_other',
        'events'
    ]) AS t;

ALTER TABLE events_default ENABLE ROW LEVEL SECURITY;
ALTER TABLE events_default FORCE ROW LEVEL SECURITY;
