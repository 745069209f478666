-- 0005_graph: the tables of the PostgreSQL-native bi-temporal knowledge graph
-- (cairn_postgres::PostgresGraphStore).
--
-- Applied migrations are immutable (the runner records a SHA-256 of this file): change the
-- schema in a new, higher-numbered file. The runner wraps this file in one transaction.
--
-- Every table below has a tenant_id column and is set up by cairn_tenant_rls (0002): ENABLE +
-- FORCE ROW LEVEL SECURITY, one policy per command on current_setting('app.tenant_id', true),
-- privileges for cairn_app only.

-- GiST operator classes for plain scalars (text, timestamptz), so one GiST index can hold the
-- tenant, the id and the ends of both time axes.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- ---------------------------------------------------------------------------------------
-- Entities: one row per version, never deleted. A write closes the current version (sets
-- superseded_at) and inserts the next one in the same statement.
--
-- Times keep their nanoseconds as in the other native stores: each time is a timestamptz
-- rounded down to the microsecond plus a smallint with the remaining 0..999 ns; an open end
-- is NULL in both columns. Exact comparisons use the (time, ns) pairs.
--
-- valid_until and known_until repeat the ends of both axes with an open end as 'infinity',
-- for the as-of index. Its conditions are coarse (microseconds: a point in an end's microsecond
-- may still lie before the end by its nanoseconds), the exact (time, ns) comparisons decide.
-- The index holds plain timestamptz columns (btree_gist), not ranges, because the data role
-- reads through row-level security: PostgreSQL uses a condition as an index condition there
-- only if its operator is leakproof, which timestamptz comparisons are and range operators
-- (@>, &&) are not, so an index over ranges would only ever match on the tenant and the id.
--
-- sort_key is the id escaped as in the generic store's keys (`%` as %25, `/` as %2F), so
-- entities list in the same order on every backend.
CREATE TABLE graph_entities (
    tenant_id     text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    id            text COLLATE "C" NOT NULL CHECK (id <> ''),
    version       bigint NOT NULL CHECK (version > 0),
    sort_key      text COLLATE "C" NOT NULL
        GENERATED ALWAYS AS (replace(replace(id, '%', '%25'), '/', '%2F')) STORED,
    entity_type   text COLLATE "C" NOT NULL CHECK (entity_type <> ''),
    name          text NOT NULL,
    properties    jsonb NOT NULL CHECK (jsonb_typeof(properties) = 'object'),
    valid_from    timestamptz NOT NULL,
    valid_from_ns smallint NOT NULL CHECK (valid_from_ns BETWEEN 0 AND 999),
    valid_to      timestamptz,
    valid_to_ns   smallint CHECK (valid_to_ns BETWEEN 0 AND 999),
    recorded_at   timestamptz NOT NULL,
    recorded_ns   smallint NOT NULL CHECK (recorded_ns BETWEEN 0 AND 999),
    superseded_at timestamptz,
    superseded_ns smallint CHECK (superseded_ns BETWEEN 0 AND 999),
    valid_until   timestamptz NOT NULL
        GENERATED ALWAYS AS (coalesce(valid_to, 'infinity')) STORED,
    known_until   timestamptz NOT NULL
        GENERATED ALWAYS AS (coalesce(superseded_at, 'infinity')) STORED,
    PRIMARY KEY (tenant_id, id, version),
    CHECK ((valid_to IS NULL) = (valid_to_ns IS NULL)),
    CHECK ((superseded_at IS NULL) = (superseded_ns IS NULL)),
    CONSTRAINT graph_entities_valid_interval
        CHECK (valid_to IS NULL OR (valid_to, valid_to_ns) > (valid_from, valid_from_ns)),
    CONSTRAINT graph_entities_known_interval
        CHECK (superseded_at IS NULL OR (superseded_at, superseded_ns) >= (recorded_at, recorded_ns))
);

-- The current view: at most one version per id has an open transaction end.
CREATE UNIQUE INDEX graph_entities_current_idx ON graph_entities (tenant_id, id)
    WHERE superseded_at IS NULL;
-- As-of reads on both axes: a version is known at k when recorded_at <= k <= known_until and
-- valid at v when valid_from <= v <= valid_until (coarsely), a box search GiST is made for.
CREATE INDEX graph_entities_as_of_idx ON graph_entities
    USING gist (tenant_id, id, recorded_at, known_until, valid_from, valid_until);
-- Current listings, all types or one type, in sort_key order.
CREATE INDEX graph_entities_list_idx ON graph_entities (tenant_id, sort_key)
    WHERE superseded_at IS NULL;
CREATE INDEX graph_entities_type_idx ON graph_entities (tenant_id, entity_type, sort_key)
    WHERE superseded_at IS NULL;

-- ---------------------------------------------------------------------------------------
-- Relationships: the same version chain and time columns; from_id, to_id and relation_type
-- are fixed when a relationship is created. Endpoints are checked by the writing statement
-- (an entity is never deleted, so no foreign key is needed, and none could reference a
-- versioned id).
CREATE TABLE graph_relationships (
    tenant_id     text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    id            text COLLATE "C" NOT NULL CHECK (id <> ''),
    version       bigint NOT NULL CHECK (version > 0),
    from_id       text COLLATE "C" NOT NULL CHECK (from_id <> ''),
    to_id         text COLLATE "C" NOT NULL CHECK (to_id <> ''),
    relation_type text COLLATE "C" NOT NULL CHECK (relation_type <> ''),
    properties    jsonb NOT NULL CHECK (jsonb_typeof(properties) = 'object'),
    valid_from    timestamptz NOT NULL,
    valid_from_ns smallint NOT NULL CHECK (valid_from_ns BETWEEN 0 AND 999),
    valid_to      timestamptz,
    valid_to_ns   smallint CHECK (valid_to_ns BETWEEN 0 AND 999),
    recorded_at   timestamptz NOT NULL,
    recorded_ns   smallint NOT NULL CHECK (recorded_ns BETWEEN 0 AND 999),
    superseded_at timestamptz,
    superseded_ns smallint CHECK (superseded_ns BETWEEN 0 AND 999),
    valid_until   timestamptz NOT NULL
        GENERATED ALWAYS AS (coalesce(valid_to, 'infinity')) STORED,
    known_until   timestamptz NOT NULL
        GENERATED ALWAYS AS (coalesce(superseded_at, 'infinity')) STORED,
    PRIMARY KEY (tenant_id, id, version),
    CHECK ((valid_to IS NULL) = (valid_to_ns IS NULL)),
    CHECK ((superseded_at IS NULL) = (superseded_ns IS NULL)),
    CONSTRAINT graph_relationships_valid_interval
        CHECK (valid_to IS NULL OR (valid_to, valid_to_ns) > (valid_from, valid_from_ns)),
    CONSTRAINT graph_relationships_known_interval
        CHECK (superseded_at IS NULL OR (superseded_at, superseded_ns) >= (recorded_at, recorded_ns))
);

CREATE UNIQUE INDEX graph_relationships_current_idx ON graph_relationships (tenant_id, id)
    WHERE superseded_at IS NULL;
CREATE INDEX graph_relationships_as_of_idx ON graph_relationships
    USING gist (tenant_id, id, recorded_at, known_until, valid_from, valid_until);
-- Traversal and relationships_of, each way, over every version (as-of reads need the old
-- ones); ordered as relationships_of lists them.
CREATE INDEX graph_relationships_from_idx ON graph_relationships
    (tenant_id, from_id, relation_type, id);
CREATE INDEX graph_relationships_to_idx ON graph_relationships
    (tenant_id, to_id, relation_type, id);

-- ---------------------------------------------------------------------------------------
-- Row-level security and grants for every table of this migration (`cairn_tenant_rls`, 0002).
SELECT cairn_tenant_rls(t) FROM unnest(ARRAY['graph_entities', 'graph_relationships']) AS t;
