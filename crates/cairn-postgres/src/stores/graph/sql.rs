//! Every statement and fragment of the graph store. `$1` is always the tenant id. Fragments
//! with `{i}` placeholders are assembled by [`QuerySql`](crate::stores::QuerySql), which turns
//! each into a parameter; no caller text is ever spliced in.
//!
//! Writes (`$2` the id, `$3`/`$4` the client's clock in microseconds and nanoseconds) are one
//! statement each, run right after [`LOCK_ENTITY`] or [`LOCK_RELATIONSHIP`] in the same
//! transaction. Their CTEs: `cur`, the current version; `stamp`, the time of the write (the
//! clock, but never before `cur` was recorded, so transaction time never runs backwards within
//! an id); `next`, the version to record, empty when a check fails; `closed`, which sets
//! `cur`'s transaction end to `stamp`; `inserted`, which inserts `next` once `closed` has run
//! (it reads `closed`'s row count first, so the old version has left the unique index of
//! current versions before the new one enters it).

/// The columns [`entity_from`](super::rows::entity_from) reads, in order. Every statement
/// names the table it reads or writes `v`.
macro_rules! entity_columns {
    () => {
        "v.id, v.version, v.entity_type, v.name, v.properties, v.valid_from, v.valid_from_ns, \
         v.valid_to, v.valid_to_ns, v.recorded_at, v.recorded_ns, v.superseded_at, v.superseded_ns"
    };
}

/// The columns [`relationship_from`](super::rows::relationship_from) reads, in order.
macro_rules! relationship_columns {
    () => {
        "v.id, v.version, v.from_id, v.to_id, v.relation_type, v.properties, v.valid_from, \
         v.valid_from_ns, v.valid_to, v.valid_to_ns, v.recorded_at, v.recorded_ns, \
         v.superseded_at, v.superseded_ns"
    };
}

/// Valid at `{0}` (microseconds) `{1}` (nanoseconds): the plain bounds on `valid_from` and
/// `valid_until` (leakproof, so index conditions under row-level security) narrow the
/// candidates, the `(time, ns)` pairs decide exactly.
macro_rules! valid_at {
    () => {
        " AND v.valid_from <= {0}::timestamptz AND v.valid_until >= {0}::timestamptz \
         AND (v.valid_from, v.valid_from_ns) <= ({0}::timestamptz, {1}::int2) \
         AND (v.valid_to IS NULL OR (v.valid_to, v.valid_to_ns) > ({0}::timestamptz, {1}::int2))"
    };
}

/// The current view of table `v` (entities or relationships, whose time columns are alike):
/// the version with an open transaction end (the partial unique index), if it is valid at
/// `{0}`, `{1}` (now).
pub(super) const CURRENT_VIEW: &str = concat!(" AND v.superseded_at IS NULL", valid_at!());

/// The as-of view of table `v`: valid at `{0}`, `{1}` and known at `{2}`, `{3}`, narrowed like
/// [`valid_at!`] by `recorded_at` and `known_until`.
pub(super) const AS_OF_VIEW: &str = concat!(
    valid_at!(),
    " AND v.recorded_at <= {2}::timestamptz AND v.known_until >= {2}::timestamptz \
     AND (v.recorded_at, v.recorded_ns) <= ({2}::timestamptz, {3}::int2) \
     AND (v.superseded_at IS NULL \
          OR (v.superseded_at, v.superseded_ns) > ({2}::timestamptz, {3}::int2))"
);

/// Serialises the writers of one entity id until the transaction ends (`$1` tenant, `$2`
/// id). The key is a 64-bit hash of the table, the tenant (length-prefixed) and the id; two
/// ids sharing a hash only wait for each other.
pub(super) const LOCK_ENTITY: &str = "SELECT pg_advisory_xact_lock(hashtextextended(\
concat_ws('/', 'graph_entities', length($1::text), $1::text, $2::text), 0))";

/// [`LOCK_ENTITY`] for relationship ids.
pub(super) const LOCK_RELATIONSHIP: &str = "SELECT pg_advisory_xact_lock(hashtextextended(\
concat_ws('/', 'graph_relationships', length($1::text), $1::text, $2::text), 0))";

/// The `cur` and `stamp` CTEs of a write to `$table`.
macro_rules! write_head {
    ($table:literal) => {
        concat!(
            "WITH cur AS (
    SELECT * FROM ",
            $table,
            " WHERE tenant_id = $1 AND id = $2 AND superseded_at IS NULL
),
stamp AS (
    SELECT t.at, t.ns FROM (
        SELECT $3::timestamptz, $4::int2
        UNION ALL SELECT recorded_at, recorded_ns FROM cur
    ) t (at, ns)
    ORDER BY t.at DESC, t.ns DESC LIMIT 1
),"
        )
    };
}

/// The `closed` and `inserted` CTEs of a write to `$table`, `next` holding the inserted
/// `$columns` in order; `inserted` returns `$returning`.
macro_rules! write_tail {
    ($table:literal, $columns:expr, $returning:expr) => {
        concat!(
            "
closed AS (
    UPDATE ",
            $table,
            " t SET superseded_at = next.recorded_at, superseded_ns = next.recorded_ns
    FROM next WHERE t.tenant_id = $1 AND t.id = $2 AND t.superseded_at IS NULL
    RETURNING t.version
),
inserted AS (
    INSERT INTO ",
            $table,
            " AS v (",
            $columns,
            ")
    SELECT next.* FROM next, (SELECT count(*) FROM closed) closed_first
    RETURNING ",
            $returning,
            "
)"
        )
    };
}

/// Keeps a version `n` only if its validity interval is not empty.
macro_rules! interval_ok {
    () => {
        "WHERE n.valid_to IS NULL OR (n.valid_to, n.valid_to_ns) > (n.valid_from, n.valid_from_ns)"
    };
}

macro_rules! entity_insert_columns {
    () => {
        "tenant_id, id, version, entity_type, name, properties, valid_from, valid_from_ns, \
         valid_to, valid_to_ns, recorded_at, recorded_ns"
    };
}

macro_rules! relationship_insert_columns {
    () => {
        "tenant_id, id, version, from_id, to_id, relation_type, properties, valid_from, \
         valid_from_ns, valid_to, valid_to_ns, recorded_at, recorded_ns"
    };
}

/// `$5` type, `$6` name, `$7` properties (merged over `cur`'s, input keys winning), `$8`/`$9`
/// valid_from (NULL: the time of the write), `$10`/`$11` valid_to (NULL: open). Returns the
/// new version; no row when valid_to is not after the defaulted valid_from.
pub(super) const UPSERT_ENTITY: &str = concat!(
    write_head!("graph_entities"),
    "
next AS (
    SELECT n.* FROM (
        SELECT $1::text, $2::text, coalesce((SELECT version FROM cur), 0) + 1, $5::text,
            $6::text, coalesce((SELECT properties FROM cur), '{}') || $7::jsonb,
            coalesce($8::timestamptz, stamp.at),
            CASE WHEN $8::timestamptz IS NULL THEN stamp.ns ELSE $9::int2 END,
            $10::timestamptz, $11::int2, stamp.at, stamp.ns
        FROM stamp
    ) n (",
    entity_insert_columns!(),
    ")
    ",
    interval_ok!(),
    "
),",
    write_tail!(
        "graph_entities",
        entity_insert_columns!(),
        entity_columns!()
    ),
    "
SELECT * FROM inserted"
);

/// `$5`/`$6` valid_to. Returns one row: whether the id has a current version, then the new
/// version's columns (NULL when nothing was written).
pub(super) const CLOSE_ENTITY: &str = concat!(
    write_head!("graph_entities"),
    "
next AS (
    SELECT n.* FROM (
        SELECT $1::text, $2::text, cur.version + 1, cur.entity_type, cur.name, cur.properties,
            cur.valid_from, cur.valid_from_ns, $5::timestamptz, $6::int2, stamp.at, stamp.ns
        FROM cur, stamp
    ) n (",
    entity_insert_columns!(),
    ")
    ",
    interval_ok!(),
    "
),",
    write_tail!(
        "graph_entities",
        entity_insert_columns!(),
        entity_columns!()
    ),
    "
SELECT EXISTS (SELECT 1 FROM cur), inserted.* FROM (SELECT 1) one LEFT JOIN inserted ON true"
);

/// `$5` from, `$6` to, `$7` type, `$8` properties, `$9`/`$10` valid_from, `$11`/`$12`
/// valid_to. Returns one row: whether `from` and `to` exist as entities, whether an existing
/// relationship has the same ends and type, then the new version's columns (NULL when nothing
/// was written).
pub(super) const UPSERT_RELATIONSHIP: &str = concat!(
    write_head!("graph_relationships"),
    "
checks AS (
    SELECT
        EXISTS (SELECT 1 FROM graph_entities WHERE tenant_id = $1 AND id = $5::text) AS from_found,
        EXISTS (SELECT 1 FROM graph_entities WHERE tenant_id = $1 AND id = $6::text) AS to_found,
        NOT EXISTS (
            SELECT 1 FROM cur
            WHERE (from_id, to_id, relation_type) IS DISTINCT FROM ($5::text, $6::text, $7::text)
        ) AS same_ends
),
next AS (
    SELECT n.* FROM (
        SELECT $1::text, $2::text, coalesce((SELECT version FROM cur), 0) + 1, $5::text,
            $6::text, $7::text, coalesce((SELECT properties FROM cur), '{}') || $8::jsonb,
            coalesce($9::timestamptz, stamp.at),
            CASE WHEN $9::timestamptz IS NULL THEN stamp.ns ELSE $10::int2 END,
            $11::timestamptz, $12::int2, stamp.at, stamp.ns
        FROM stamp, checks
        WHERE checks.from_found AND checks.to_found AND checks.same_ends
    ) n (",
    relationship_insert_columns!(),
    ")
    ",
    interval_ok!(),
    "
),",
    write_tail!(
        "graph_relationships",
        relationship_insert_columns!(),
        relationship_columns!()
    ),
    "
SELECT checks.from_found, checks.to_found, checks.same_ends, inserted.*
FROM checks LEFT JOIN inserted ON true"
);

/// `$5`/`$6` valid_to. Returns what [`CLOSE_ENTITY`] returns, for a relationship.
pub(super) const CLOSE_RELATIONSHIP: &str = concat!(
    write_head!("graph_relationships"),
    "
next AS (
    SELECT n.* FROM (
        SELECT $1::text, $2::text, cur.version + 1, cur.from_id, cur.to_id, cur.relation_type,
            cur.properties, cur.valid_from, cur.valid_from_ns, $5::timestamptz, $6::int2,
            stamp.at, stamp.ns
        FROM cur, stamp
    ) n (",
    relationship_insert_columns!(),
    ")
    ",
    interval_ok!(),
    "
),",
    write_tail!(
        "graph_relationships",
        relationship_insert_columns!(),
        relationship_columns!()
    ),
    "
SELECT EXISTS (SELECT 1 FROM cur), inserted.* FROM (SELECT 1) one LEFT JOIN inserted ON true"
);

/// `$2` the id: every version, oldest first (primary key order).
pub(super) const ENTITY_HISTORY: &str = concat!(
    "SELECT ",
    entity_columns!(),
    " FROM graph_entities v WHERE v.tenant_id = $1 AND v.id = $2 ORDER BY v.version"
);

/// [`ENTITY_HISTORY`] for a relationship.
pub(super) const RELATIONSHIP_HISTORY: &str = concat!(
    "SELECT ",
    relationship_columns!(),
    " FROM graph_relationships v WHERE v.tenant_id = $1 AND v.id = $2 ORDER BY v.version"
);

/// The start of every entity query; a view fragment follows.
pub(super) const SELECT_ENTITIES: &str = concat!(
    "SELECT ",
    entity_columns!(),
    " FROM graph_entities v WHERE v.tenant_id = $1"
);

/// The start of every relationship query; a view fragment follows.
pub(super) const SELECT_RELATIONSHIPS: &str = concat!(
    "SELECT ",
    relationship_columns!(),
    " FROM graph_relationships v WHERE v.tenant_id = $1"
);

/// `{0}` the entity id.
pub(super) const ENTITY_ID: &str = " AND v.id = {0}::text";
/// `{0}` the relationship id.
pub(super) const RELATIONSHIP_ID: &str = " AND v.id = {0}::text";
/// `{0}` the entity type.
pub(super) const ENTITY_TYPE: &str = " AND v.entity_type = {0}::text";
/// `{0}` the id to list after, escaped here as `sort_key` is.
pub(super) const ENTITY_AFTER: &str =
    " AND v.sort_key > replace(replace({0}::text, '%', '%25'), '/', '%2F')";
/// `{0}` the most rows.
pub(super) const ENTITY_ORDER_LIMIT: &str = " ORDER BY v.sort_key LIMIT {0}::bigint";

/// Relationships of entity `{0}` by direction: outgoing, incoming, both (a self-loop matches
/// once).
pub(super) const RELATIONSHIP_ENDS: [&str; 3] = [
    " AND v.from_id = {0}::text",
    " AND v.to_id = {0}::text",
    " AND (v.from_id = {0}::text OR v.to_id = {0}::text)",
];
/// `{0}` one relation type.
pub(super) const RELATION_TYPE: &str = " AND v.relation_type = {0}::text";
/// `{0}` a list of relation types.
pub(super) const RELATION_TYPES: &str = " AND v.relation_type = ANY({0}::text[])";
pub(super) const RELATIONSHIP_ORDER: &str = " ORDER BY v.relation_type, v.id";

/// The traversal: one recursive statement, breadth first, assembled as
///
/// ```text
/// TRAVERSE_START <entity view>        the start, `{0}` its id
/// TRAVERSE_STEP <entity view>         whether an id reached is valid in the view
/// TRAVERSE_LEVEL                      one step from each entity of the last level:
///   TRAVERSE_OUT <types> <relationship view>    along relationships leaving it
///   TRAVERSE_UNION                              (both directions)
///   TRAVERSE_IN <types> <relationship view>     along relationships entering it
/// TRAVERSE_NEXT                       `{0}` the max depth
/// TRAVERSE_HITS <entity view>         the entities reached, in their version of the view
/// TRAVERSE_ORDER
/// ```
///
/// Each recursion is one level: a row per entity found at that depth, plus one *carrier* row
/// (`id` NULL) holding `seen`, the set of every id found so far as the keys of a `jsonb`
/// object, so the set is stored once per level, not once per row, and a lookup (`?`) is a
/// binary search. A step never enters an id in `seen`, which is the cycle protection; the
/// level's new ids are added to the next carrier. Of the steps reaching one id, the one from
/// the smallest parent id, then the smallest relationship id, is kept (`row_number`), which is
/// the generic store's choice. An id reached through a valid relationship but not valid itself
/// in the view is marked seen and neither listed nor expanded, as in the generic store. The
/// recursion ends when a level finds nothing new (no carrier follows) or at the max depth.
///
/// Inside a level, from the innermost query out: `p` steps from every row of the last level
/// (the carrier, and entities not to expand, get one row with no step) and numbers the steps
/// reaching each id; `l` gives every row the carrier's set (`first_value`, the carrier sorting
/// first); `m` marks the first step to each id not seen (`keep`), behind `OFFSET 0` so the
/// planner computes it there instead of carrying the set into the next window's buffer; `n`
/// builds the next set on the carrier's row only and counts the new ids; the outer query emits
/// the kept rows and, when there are any, the new carrier.
pub(super) const TRAVERSE_START: &str =
    "WITH RECURSIVE walk (depth, id, path, rels, seen, valid) AS (
    SELECT 0, CASE WHEN k.carrier THEN NULL ELSE v.id END,
        CASE WHEN k.carrier THEN NULL ELSE ARRAY[v.id] END, '{}'::text[] COLLATE \"C\",
        CASE WHEN k.carrier THEN jsonb_build_object(v.id, true) END, NOT k.carrier
    FROM graph_entities v CROSS JOIN (VALUES (false), (true)) k (carrier)
    WHERE v.tenant_id = $1 AND v.id = {0}::text";

/// See [`TRAVERSE_START`]: the next level, with whether each id is valid in the view.
pub(super) const TRAVERSE_STEP: &str = "
  UNION ALL
    SELECT n.depth, CASE WHEN k.carrier THEN NULL ELSE n.id END,
        CASE WHEN k.carrier THEN NULL ELSE n.path END,
        CASE WHEN k.carrier THEN NULL ELSE n.rels END,
        CASE WHEN k.carrier THEN n.seen END,
        NOT k.carrier AND EXISTS (
            SELECT 1 FROM graph_entities v WHERE v.tenant_id = $1 AND v.id = n.id";

/// See [`TRAVERSE_START`]. Ends the validity check of the reached id and opens the level.
pub(super) const TRAVERSE_LEVEL: &str = ")
    FROM (
        SELECT m.depth, m.id, m.path, m.rels, m.keep, m.carries,
            CASE WHEN m.carries
                THEN m.seen || jsonb_object_agg(m.id, true) FILTER (WHERE m.keep) OVER ()
            END AS seen,
            count(*) FILTER (WHERE m.keep) OVER () AS found
        FROM (
            SELECT l.depth, l.id, l.path, l.rels, l.seen, l.carries,
                l.id IS NOT NULL AND l.pick = 1 AND NOT l.seen_all ? l.id AS keep
            FROM (
                SELECT p.*, p.seen IS NOT NULL AS carries,
                    first_value(p.seen) OVER (ORDER BY p.seen IS NULL) AS seen_all
                FROM (
                    SELECT w.depth + 1 AS depth, x.next AS id, w.path || x.next AS path,
                        w.rels || x.rel AS rels, w.seen,
                        row_number() OVER (PARTITION BY x.next ORDER BY w.id, x.rel) AS pick
                    FROM walk w LEFT JOIN LATERAL (";

/// See [`TRAVERSE_START`]: steps along relationships leaving `w`.
pub(super) const TRAVERSE_OUT: &str = "
            SELECT v.to_id, v.id FROM graph_relationships v
            WHERE v.tenant_id = $1 AND v.from_id = w.id";

/// See [`TRAVERSE_START`]: steps along relationships entering `w`.
pub(super) const TRAVERSE_IN: &str = "
            SELECT v.from_id, v.id FROM graph_relationships v
            WHERE v.tenant_id = $1 AND v.to_id = w.id";

/// See [`TRAVERSE_START`]: between the outgoing and the incoming steps.
pub(super) const TRAVERSE_UNION: &str = "
            UNION ALL";

/// See [`TRAVERSE_START`]. `{0}` the max depth.
pub(super) const TRAVERSE_NEXT: &str = "
                    ) x (next, rel) ON w.valid AND w.depth < {0}::int
                ) p
            ) l
            OFFSET 0
        ) m
    ) n CROSS JOIN (VALUES (false), (true)) k (carrier)
    WHERE (NOT k.carrier AND n.keep) OR (k.carrier AND n.carries AND n.found > 0)
)
SELECT w.depth, w.path, w.rels, ";

/// See [`TRAVERSE_START`]: the reached entities in their version of the view.
pub(super) const TRAVERSE_HITS: &str = concat!(
    entity_columns!(),
    "
FROM walk w JOIN graph_entities v ON v.tenant_id = $1 AND v.id = w.id
WHERE w.depth > 0"
);

/// See [`TRAVERSE_START`].
pub(super) const TRAVERSE_ORDER: &str = " ORDER BY w.depth, w.id";

/// `$2`/`$3` the (id, version) to export after (`$2` NULL: from the start), `$4` the most
/// rows: every entity version in (id, version) order (primary key order).
pub(super) const EXPORT_ENTITIES: &str = concat!(
    "SELECT ",
    entity_columns!(),
    " FROM graph_entities v WHERE v.tenant_id = $1 \
     AND ($2::text IS NULL OR (v.id, v.version) > ($2::text, $3::int8)) \
     ORDER BY v.id, v.version LIMIT $4"
);

/// [`EXPORT_ENTITIES`] for relationship versions.
pub(super) const EXPORT_RELATIONSHIPS: &str = concat!(
    "SELECT ",
    relationship_columns!(),
    " FROM graph_relationships v WHERE v.tenant_id = $1 \
     AND ($2::text IS NULL OR (v.id, v.version) > ($2::text, $3::int8)) \
     ORDER BY v.id, v.version LIMIT $4"
);

/// The time columns of an import's `SET` list, from `EXCLUDED`.
macro_rules! import_times {
    () => {
        "valid_from = EXCLUDED.valid_from, valid_from_ns = EXCLUDED.valid_from_ns, \
         valid_to = EXCLUDED.valid_to, valid_to_ns = EXCLUDED.valid_to_ns, \
         recorded_at = EXCLUDED.recorded_at, recorded_ns = EXCLUDED.recorded_ns, \
         superseded_at = EXCLUDED.superseded_at, superseded_ns = EXCLUDED.superseded_ns"
    };
}

/// Writes entity versions, replacing those of the same (id, version): `$2` ids, `$3`
/// versions, `$4` types, `$5` names, `$6` properties, `$7`..`$14` the four times with their
/// nanoseconds (valid from, valid to, recorded, superseded), all in the same order, which is
/// the order the rows are written in (an id's closed versions before its open one, so the
/// unique index of current versions never sees two).
pub(super) const IMPORT_ENTITIES: &str = concat!(
    "INSERT INTO graph_entities (tenant_id, id, version, entity_type, name, properties, \
     valid_from, valid_from_ns, valid_to, valid_to_ns, recorded_at, recorded_ns, superseded_at, \
     superseded_ns)
SELECT $1, e.id, e.version, e.entity_type, e.name, e.properties, e.valid_from, e.valid_from_ns,
    e.valid_to, e.valid_to_ns, e.recorded_at, e.recorded_ns, e.superseded_at, e.superseded_ns
FROM unnest($2::text[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[],
    $8::int2[], $9::timestamptz[], $10::int2[], $11::timestamptz[], $12::int2[],
    $13::timestamptz[], $14::int2[]) WITH ORDINALITY
    AS e(id, version, entity_type, name, properties, valid_from, valid_from_ns, valid_to,
        valid_to_ns, recorded_at, recorded_ns, superseded_at, superseded_ns, n)
ORDER BY e.n
ON CONFLICT (tenant_id, id, version) DO UPDATE SET
    entity_type = EXCLUDED.entity_type, name = EXCLUDED.name,
    properties = EXCLUDED.properties, ",
    import_times!()
);

/// [`IMPORT_ENTITIES`] for relationship versions: `$2` ids, `$3` versions, `$4` from, `$5`
/// to, `$6` types, `$7` properties, `$8`..`$15` the times.
pub(super) const IMPORT_RELATIONSHIPS: &str = concat!(
    "INSERT INTO graph_relationships (tenant_id, id, version, from_id, to_id, relation_type, \
     properties, valid_from, valid_from_ns, valid_to, valid_to_ns, recorded_at, recorded_ns, \
     superseded_at, superseded_ns)
SELECT $1, r.id, r.version, r.from_id, r.to_id, r.relation_type, r.properties, r.valid_from,
    r.valid_from_ns, r.valid_to, r.valid_to_ns, r.recorded_at, r.recorded_ns, r.superseded_at,
    r.superseded_ns
FROM unnest($2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::jsonb[],
    $8::timestamptz[], $9::int2[], $10::timestamptz[], $11::int2[], $12::timestamptz[],
    $13::int2[], $14::timestamptz[], $15::int2[]) WITH ORDINALITY
    AS r(id, version, from_id, to_id, relation_type, properties, valid_from, valid_from_ns,
        valid_to, valid_to_ns, recorded_at, recorded_ns, superseded_at, superseded_ns, n)
ORDER BY r.n
ON CONFLICT (tenant_id, id, version) DO UPDATE SET
    from_id = EXCLUDED.from_id, to_id = EXCLUDED.to_id,
    relation_type = EXCLUDED.relation_type, properties = EXCLUDED.properties, ",
    import_times!()
);
