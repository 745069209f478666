-- 0008_concurrent_event_retention: event retention called by several tenants at once.
--
-- Applied migrations are immutable (the runner records a SHA-256 of this file): change the
-- schema in a new, higher-numbered file. The runner wraps this file in one transaction.
--
-- cairn_drop_event_partitions_before (0007) lists the past partitions, then takes the lock
-- on `events` for each. Two calls at once could both list a partition; the first dropped it
-- and the second, granted the lock next, failed reading a table that was gone (42P01). The
-- same function, with one change: once the lock is held (so no other call can drop or create
-- a partition), a partition that no longer exists is skipped. Owner and grants are kept by
-- CREATE OR REPLACE.
DO $do$
BEGIN
    EXECUTE format($fn$
        CREATE OR REPLACE FUNCTION %1$I.cairn_drop_event_partitions_before(cutoff timestamptz)
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
                    IF to_regclass(format('%%I.%%I', %1$L, part.relname)) IS NOT NULL THEN
                        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %%I.%%I)', %1$L,
                            part.relname) INTO is_empty;
                        IF is_empty THEN
                            EXECUTE format('DROP TABLE %%I.%%I', %1$L, part.relname);
                            dropped := dropped + 1;
                        END IF;
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
