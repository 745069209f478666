-- 0007_vector_dimensions_event_retention: a vector table per dimension, created on first use,
-- and event retention that drops whole monthly partitions once no tenant has rows in them.
--
-- Applied migrations are immutable (the runner records a SHA-256 of this file): change the
-- schema in a new, higher-numbered file. The runner wraps this file in one transaction.

-- Row-level security must never hide rows from this migration (it moves every tenant's
-- vectors): with row_security off, a statement that RLS would filter fails instead.
SET LOCAL row_security = off;

-- ---------------------------------------------------------------------------------------
-- Creates `vector_embeddings_<dimension>` unless it exists; returns whether it created it.
-- The table has the shape of the 0002 tables (384, 768, 1536, 3072 keep theirs) and their
-- indexes, chosen by dimension exactly as cairn_postgres::PostgresVectorStore expects:
--
--   dimension      HNSW index (one partial index per metric, m = 16, ef_construction = 128)
--   1..=2000       on `embedding` (pgvector indexes `vector` up to 2000 dimensions)
--   2001..=4000    on `embedding::halfvec(N)` (`halfvec` up to 4000); searches re-rank exactly
--   4001..=16000   none: searched by an exact scan of the collection's rows
--
-- It runs as its owner (the migrating user), because cairn_app may not create tables; it
-- takes only an integer and builds and quotes every name itself. Concurrent creators are
-- serialised by a self-conflicting lock on vector_collections (which the new table's foreign
-- key needs anyway), and the existence check is repeated under it; one whose catalog view
-- predates another's commit gets duplicate_table and returns false. Callers run it in a
-- transaction of its own, before they touch vector_collections.
DO $do$
BEGIN
    EXECUTE format($fn$
        CREATE FUNCTION %1$I.cairn_ensure_vector_table(dimension integer)
        RETURNS boolean
        LANGUAGE plpgsql
        SECURITY DEFINER
        SET search_path = pg_catalog, %1$I
        AS $body$
        DECLARE
            table_name text := 'vector_embeddings_' || dimension;
            qualified text := format('%%I.%%I', %1$L, table_name);
            index_expression text;
            ops_prefix text;
            metric_ops record;
        BEGIN
            IF dimension IS NULL OR dimension < 1 OR dimension > 16000 THEN
                RAISE EXCEPTION 'vector dimension must be 1 to 16000, got %%', dimension
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF to_regclass(qualified) IS NOT NULL THEN
                RETURN false;
            END IF;
            EXECUTE format('LOCK TABLE %%I.vector_collections IN SHARE ROW EXCLUSIVE MODE', %1$L);
            IF to_regclass(qualified) IS NOT NULL THEN
                RETURN false;
            END IF;
            IF dimension <= 2000 THEN
                index_expression := 'embedding';
                ops_prefix := 'vector';
            ELSIF dimension <= 4000 THEN
                index_expression := format('(embedding::halfvec(%%s))', dimension);
                ops_prefix := 'halfvec';
            END IF;
            BEGIN
                EXECUTE format($sql$
                    CREATE TABLE %%s (
                        tenant_id     text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
                        collection_id uuid NOT NULL,
                        id            text COLLATE "C" NOT NULL CHECK (id <> ''),
                        metric        text NOT NULL CHECK (metric IN ('cosine', 'l2', 'dot')),
                        embedding     vector(%%s) NOT NULL,
                        metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
                        PRIMARY KEY (tenant_id, collection_id, id),
                        FOREIGN KEY (tenant_id, collection_id)
                            REFERENCES %%I.vector_collections (tenant_id, id) ON DELETE CASCADE
                    )$sql$, qualified, dimension, %1$L);
            EXCEPTION
                -- Created by a transaction that committed after this one's catalog view was
                -- taken: it exists, which is all that was asked.
                WHEN duplicate_table OR unique_violation THEN
                    RETURN false;
            END;
            EXECUTE format('CREATE INDEX %%I ON %%s USING gin (metadata jsonb_path_ops)',
                table_name || '_metadata_idx', qualified);
            IF index_expression IS NOT NULL THEN
                FOR metric_ops IN
                    SELECT * FROM (VALUES ('cosine', 'cosine_ops'), ('l2', 'l2_ops'),
                                          ('dot', 'ip_ops')) AS m(metric, ops)
                LOOP
                    EXECUTE format(
                        'CREATE INDEX %%I ON %%s USING hnsw (%%s %%s) '
                        'WITH (m = 16, ef_construction = 128) WHERE metric = %%L',
                        table_name || '_' || metric_ops.metric || '_hnsw',
                        qualified,
                        index_expression,
                        ops_prefix || '_' || metric_ops.ops,
                        metric_ops.metric);
                END LOOP;
            END IF;
            PERFORM %1$I.cairn_tenant_rls(table_name);
            RETURN true;
        END
        $body$
    $fn$, current_schema());
END
$do$;

REVOKE ALL ON FUNCTION cairn_ensure_vector_table(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cairn_ensure_vector_table(integer) TO cairn_app;

-- Vectors of dimensions without a table of their own lived in vector_embeddings_other (0002):
-- move them to their dimension's table, then drop it.
DO $$
DECLARE
    dimension integer;
BEGIN
    FOR dimension IN
        SELECT DISTINCT vector_dims(embedding) FROM vector_embeddings_other ORDER BY 1
    LOOP
        PERFORM cairn_ensure_vector_table(dimension);
        EXECUTE format(
            'INSERT INTO %I (tenant_id, collection_id, id, metric, embedding, metadata) '
            'SELECT tenant_id, collection_id, id, metric, embedding::vector(%s), metadata '
            'FROM vector_embeddings_other WHERE vector_dims(embedding) = %s',
            'vector_embeddings_' || dimension, dimension, dimension);
    END LOOP;
END
$$;

DROP TABLE vector_embeddings_other;

-- ---------------------------------------------------------------------------------------
-- Drops every monthly event partition that lies wholly before `cutoff` and before the
-- current month and holds no row of any tenant; returns how many it dropped. The DEFAULT
-- partition and the partitions of the current and later months (created ahead of time by
-- cairn_ensure_event_partition) are never dropped.
-- PostgresEventLogStore::drop_before deletes the calling tenant's old rows first (in its own
-- transaction, under row-level security) and then calls this, so a partition goes once the
-- last tenant with rows in it has applied retention; other tenants' rows are never touched.
--
-- It runs as its owner, with row_security off, so it sees every tenant's rows (or fails,
-- never wrongly finds a partition empty). Dropping a partition needs an ACCESS EXCLUSIVE lock
-- on `events`: it is taken before the emptiness check, so no row can arrive between the check
-- and the drop, and waited for at most lock_timeout (2 s); a partition whose lock is not
-- granted in time is left for the next call.
DO $do$
BEGIN
    EXECUTE format($fn$
        CREATE FUNCTION %1$I.cairn_drop_event_partitions_before(cutoff timestamptz)
        RETURNS integer
        LANGUAGE plpgsql
        SECURITY DEFINER
        SET search_path = pg_catalog, %1$I
        SET row_security = off
        SET lock_timeout = '2s'
        AS $body$
        DECLARE
            part record;
            dropped integer := 0;
            is_empty boolean;
        BEGIN
            FOR part IN
                SELECT c.relname,
                       make_timestamptz(substr(c.relname, 9, 4)::int,
                                        substr(c.relname, 14, 2)::int, 1, 0, 0, 0, 'UTC')
                           + interval '1 month' AS upper_bound
                FROM pg_inherits i
                JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = format('%%I.events', %1$L)::regclass
                  AND c.relname ~ '^events_y[0-9]{4}m[0-9]{2}$'
                ORDER BY c.relname
            LOOP
                CONTINUE WHEN part.upper_bound > least(cutoff, now());
                BEGIN
                    EXECUTE format('LOCK TABLE %%I.events IN ACCESS EXCLUSIVE MODE', %1$L);
                    EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %%I.%%I)', %1$L,
                        part.relname) INTO is_empty;
                    IF is_empty THEN
                        EXECUTE format('DROP TABLE %%I.%%I', %1$L, part.relname);
                        dropped := dropped + 1;
                    END IF;
                EXCEPTION
                    WHEN lock_not_available OR deadlock_detected THEN
                        NULL;
                END;
            END LOOP;
            RETURN dropped;
        END
        $body$
    $fn$, current_schema());
END
$do$;

REVOKE ALL ON FUNCTION cairn_drop_event_partitions_before(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cairn_drop_event_partitions_before(timestamptz) TO cairn_app;
