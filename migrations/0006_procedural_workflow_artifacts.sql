-- 0006_procedural_workflow_artifacts: the tables of the PostgreSQL-native procedural store
-- (cairn_postgres::PostgresProceduralStore), workflow store (cairn_postgres::PostgresWorkflowStore)
-- and artifact store (cairn_postgres::PostgresArtifactStore).
--
-- Applied migrations are immutable (the runner records a SHA-256 of this file): change the
-- schema in a new, higher-numbered file. The runner wraps this file in one transaction.
--
-- Times keep their nanoseconds as in `events` (0002): a timestamptz rounded down to the
-- microsecond plus a smallint of the remaining 0..999 ns. `sort_key` columns hold an id escaped
-- as in the generic stores' keys (`%` as %25, `/` as %2F), so listings page in the same order
-- on every backend. Every table has a tenant_id column and is set up by cairn_tenant_rls (0002).

-- ---------------------------------------------------------------------------------------
-- Procedures. The counters change only by `UPDATE ... SET successes = successes + 1` (or
-- failures), so concurrent outcomes serialise on the row and none is lost. `uses` and
-- `rate_key` are generated from them: `rate_key` is floor(successes * 10^40 / uses), which
-- orders exactly as the fractions successes / uses do (two different fractions of counters
-- below 2^63 differ by more than 10^-39), so rankings are index scans in SQL.
CREATE TABLE procedures (
    tenant_id    text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    id           text COLLATE "C" NOT NULL CHECK (id <> ''),
    sort_key     text COLLATE "C" NOT NULL
        GENERATED ALWAYS AS (replace(replace(id, '%', '%25'), '/', '%2F')) STORED,
    category     text COLLATE "C" NOT NULL CHECK (category <> ''),
    name         text NOT NULL CHECK (name <> ''),
    description  text NOT NULL,
    content      jsonb NOT NULL,
    metadata     jsonb NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
    successes    bigint NOT NULL DEFAULT 0 CHECK (successes >= 0),
    failures     bigint NOT NULL DEFAULT 0 CHECK (failures >= 0),
    uses         numeric NOT NULL GENERATED ALWAYS AS (successes::numeric + failures) STORED,
    rate_key     numeric GENERATED ALWAYS AS (
        CASE WHEN successes + failures::numeric > 0
            THEN div(successes::numeric * 1e40, successes::numeric + failures) END) STORED,
    last_used_at timestamptz,
    last_used_ns smallint CHECK (last_used_ns BETWEEN 0 AND 999),
    created_at   timestamptz NOT NULL,
    created_ns   smallint NOT NULL CHECK (created_ns BETWEEN 0 AND 999),
    updated_at   timestamptz NOT NULL,
    updated_ns   smallint NOT NULL CHECK (updated_ns BETWEEN 0 AND 999),
    PRIMARY KEY (tenant_id, id),
    CHECK ((last_used_at IS NULL) = (last_used_ns IS NULL))
);

-- list_by_category.
CREATE INDEX procedures_category_idx ON procedures (tenant_id, category, sort_key);
-- Rankings (used procedures only): by success rate (ties: more uses, then id) and by
-- frequency (ties: id), over all categories and within one.
CREATE INDEX procedures_rate_idx ON procedures (tenant_id, rate_key DESC, uses DESC, id)
    WHERE uses > 0;
CREATE INDEX procedures_category_rate_idx
    ON procedures (tenant_id, category, rate_key DESC, uses DESC, id) WHERE uses > 0;
CREATE INDEX procedures_uses_idx ON procedures (tenant_id, uses DESC, id) WHERE uses > 0;
CREATE INDEX procedures_category_uses_idx ON procedures (tenant_id, category, uses DESC, id)
    WHERE uses > 0;

-- ---------------------------------------------------------------------------------------
-- Workflow runs. A move is `UPDATE ... WHERE status = ANY(<the statuses it may leave>)` after
-- the row is locked, so the state machine holds under concurrency; the CHECK constraints
-- below hold the fields each status implies.
CREATE TABLE workflows (
    tenant_id   text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    id          text COLLATE "C" NOT NULL CHECK (id <> ''),
    sort_key    text COLLATE "C" NOT NULL
        GENERATED ALWAYS AS (replace(replace(id, '%', '%25'), '/', '%2F')) STORED,
    name        text COLLATE "C" NOT NULL CHECK (name <> ''),
    status      text NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    created_at  timestamptz NOT NULL,
    created_ns  smallint NOT NULL CHECK (created_ns BETWEEN 0 AND 999),
    started_at  timestamptz,
    started_ns  smallint CHECK (started_ns BETWEEN 0 AND 999),
    finished_at timestamptz,
    finished_ns smallint CHECK (finished_ns BETWEEN 0 AND 999),
    error       text,
    input       jsonb NOT NULL,
    output      jsonb,
    PRIMARY KEY (tenant_id, id),
    CHECK ((started_at IS NULL) = (started_ns IS NULL)),
    CHECK ((finished_at IS NULL) = (finished_ns IS NULL)),
    CHECK ((finished_at IS NOT NULL) = (status IN ('completed', 'failed', 'cancelled'))),
    CHECK (started_at IS NOT NULL OR status IN ('pending', 'cancelled')),
    CHECK ((error IS NOT NULL) = (status = 'failed')),
    CHECK ((output IS NOT NULL) = (status = 'completed'))
);

-- list_by_status.
CREATE INDEX workflows_status_idx ON workflows (tenant_id, status, sort_key);

-- ---------------------------------------------------------------------------------------
-- Artifacts. One row per (tenant, content hash): the primary key is the deduplication index,
-- so two tenants storing the same content get a row (and a reference count) each. The hash
-- is BLAKE3 of the content, computed by Cairn and re-verified on every read. The content
-- lives in `artifact_chunks` under `blob_id`, the id of the upload that stored it: a streamed
-- put writes its chunks before the hash is known, in the same transaction that then inserts
-- or joins the artifact row.
CREATE TABLE artifacts (
    tenant_id    text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    content_hash text COLLATE "C" NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    blob_id      uuid NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    chunk_size   bigint NOT NULL CHECK (chunk_size > 0),
    chunks       bigint NOT NULL CHECK (chunks >= 0),
    content_type text NOT NULL CHECK (content_type <> ''),
    metadata     jsonb NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
    refcount     bigint NOT NULL CHECK (refcount > 0),
    created_at   timestamptz NOT NULL,
    created_ns   smallint NOT NULL CHECK (created_ns BETWEEN 0 AND 999),
    PRIMARY KEY (tenant_id, content_hash),
    UNIQUE (tenant_id, blob_id)
);

-- Chunk `seq` of a blob: every chunk but the last holds exactly the artifact's chunk_size
-- bytes. The foreign key is checked at commit (a put inserts its chunks before the artifact
-- row), so a transaction can never commit chunks that no artifact owns; deleting an artifact
-- deletes its chunks in the same statement.
CREATE TABLE artifact_chunks (
    tenant_id text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    blob_id   uuid NOT NULL,
    seq       bigint NOT NULL CHECK (seq >= 0),
    data      bytea NOT NULL,
    PRIMARY KEY (tenant_id, blob_id, seq),
    FOREIGN KEY (tenant_id, blob_id) REFERENCES artifacts (tenant_id, blob_id)
        ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);

-- ---------------------------------------------------------------------------------------
-- Row-level security and grants for every table of this migration (`cairn_tenant_rls`, 0002).
SELECT cairn_tenant_rls(t) FROM unnest(ARRAY[
        'procedures', 'workflows', 'artifacts', 'artifact_chunks'
    ]) AS t;
