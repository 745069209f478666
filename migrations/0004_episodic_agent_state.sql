-- 0004_episodic_agent_state: the tables of the PostgreSQL-native episodic store
-- (cairn_postgres::PostgresEpisodicStore) and agent-state store
-- (cairn_postgres::PostgresAgentStateStore).
--
-- Applied migrations are immutable (the runner records a SHA-256 of this file): change the
-- schema in a new, higher-numbered file. The runner wraps this file in one transaction.
--
-- Every table below has a tenant_id column, ENABLE + FORCE ROW LEVEL SECURITY and one policy
-- per command on current_setting('app.tenant_id', true), exactly as kv_store in 0001; only
-- cairn_app gets privileges on them.

-- ---------------------------------------------------------------------------------------
-- Episodic memory. One head row per session holds its counter: an append increments it
-- with INSERT ... ON CONFLICT DO UPDATE SET last_seq = last_seq + 1 and inserts the turn
-- with the returned number in the same statement, so the row lock serialises appends to one
-- session and numbers are gap-free. `sort_key` is the session id escaped as in the generic
-- store's keys (`%` as %25, `/` as %2F), so sessions list in the same order on every backend.
CREATE TABLE episodic_sessions (
    tenant_id  text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    session_id text COLLATE "C" NOT NULL CHECK (session_id <> ''),
    sort_key   text COLLATE "C" NOT NULL
        GENERATED ALWAYS AS (replace(replace(session_id, '%', '%25'), '/', '%2F')) STORED,
    last_seq   bigint NOT NULL CHECK (last_seq > 0),
    PRIMARY KEY (tenant_id, session_id)
);

CREATE INDEX episodic_sessions_sort_idx ON episodic_sessions (tenant_id, sort_key);

-- One row per turn. `at` is the turn time rounded down to the microsecond and `at_ns` the
-- remaining nanoseconds (0..999), as in `events`, so times round-trip exactly.
CREATE TABLE episodic_turns (
    tenant_id  text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    session_id text COLLATE "C" NOT NULL CHECK (session_id <> ''),
    seq        bigint NOT NULL CHECK (seq > 0),
    role       text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content    text NOT NULL,
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    at         timestamptz NOT NULL,
    at_ns      smallint NOT NULL CHECK (at_ns BETWEEN 0 AND 999),
    PRIMARY KEY (tenant_id, session_id, seq)
);

-- read_range: by time, then seq. by_role: one role in seq order.
CREATE INDEX episodic_turns_time_idx ON episodic_turns (tenant_id, session_id, at, at_ns, seq);
CREATE INDEX episodic_turns_role_idx ON episodic_turns (tenant_id, session_id, role, seq);

-- ---------------------------------------------------------------------------------------
-- Agent state. One head row per agent holds its latest version; a save increments it (or,
-- with an expected version, updates it only WHERE latest = expected) and inserts the snapshot
-- with the returned version in the same statement.
CREATE TABLE agent_state_heads (
    tenant_id text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    agent_id  text COLLATE "C" NOT NULL CHECK (agent_id <> ''),
    latest    bigint NOT NULL CHECK (latest > 0),
    PRIMARY KEY (tenant_id, agent_id)
);

-- One row per stored version. `payload` is the compact JSON text exactly as hashed (bytea, so
-- the bytes that were checksummed are the bytes loaded); `checksum` its SHA-256 in lowercase
-- hex, computed and verified by Cairn on every load.
CREATE TABLE agent_state_snapshots (
    tenant_id text COLLATE "C" NOT NULL CHECK (tenant_id <> ''),
    agent_id  text COLLATE "C" NOT NULL CHECK (agent_id <> ''),
    version   bigint NOT NULL CHECK (version > 0),
    checksum  text NOT NULL,
    size      bigint NOT NULL CHECK (size >= 0),
    saved_at  timestamptz NOT NULL DEFAULT now(),
    payload   bytea NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, version)
);

-- ---------------------------------------------------------------------------------------
-- Row-level security and grants for every table of this migration (`cairn_tenant_rls`, 0002).
SELECT cairn_tenant_rls(t) FROM unnest(ARRAY[
        'episodic_sessions', 'episodic_turns',
        'agent_state_heads', 'agent_state_snapshots'
    ]) AS t;
