//! A dataset of every component, written through the stores, and the answers a storage gives
//! to a fixed set of queries over it: a copy of the data is faithful when its answers equal
//! the original's.
//!
//! [`seed`] writes the dataset (histories, expired sessions, large artifacts included) and
//! returns what the queries need to know about it (instants between graph versions, artifact
//! hashes); [`answers`] runs every query and renders each result as text.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use cairn_core::{Bytes, Result};
use cairn_stores::agent_state::AgentStateStore;
use cairn_stores::artifacts::{ArtifactStore, PutOptions};
use cairn_stores::episodic::{EpisodicStore, Role, Turn, TurnPage};
use cairn_stores::event_log::{Event, EventLogStore, EventQuery, TypePattern};
use cairn_stores::graph::{
    AsOf, Direction, EntityInput, GraphStore, RelationshipInput, TraverseRequest,
};
use cairn_stores::hooks::{HookExecution, HookHistoryStore, HookQuery};
use cairn_stores::paging::PageRequest;
use cairn_stores::procedural::{ProceduralStore, Procedure};
use cairn_stores::sessions::SessionStore;
use cairn_stores::vectors::{Metric, SearchRequest, VectorRecord, VectorStore};
use cairn_stores::workflow::{Transition, WorkflowStatus, WorkflowStore};
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

/// One tenant's ten component stores.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Vector embeddings.
    pub vectors: Arc<dyn VectorStore>,
    /// Episodic memory.
    pub episodic: Arc<dyn EpisodicStore>,
    /// The semantic graph.
    pub graph: Arc<dyn GraphStore>,
    /// Procedural memory.
    pub procedural: Arc<dyn ProceduralStore>,
    /// Agent state.
    pub agent_state: Arc<dyn AgentStateStore>,
    /// Workflow state.
    pub workflows: Arc<dyn WorkflowStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Artifacts.
    pub artifacts: Arc<dyn ArtifactStore>,
    /// The event log.
    pub events: Arc<dyn EventLogStore>,
    /// Hook history.
    pub hooks: Arc<dyn HookHistoryStore>,
}

/// The [`Stores`] of a tenant's storage handle: anything with the ten accessors
/// `vectors()`, `episodic()`, `graph()`, `procedural()`, `agent_state()`, `workflows()`,
/// `sessions()`, `artifacts()`, `events()` and `hooks()` (the registry's `TenantStorage`).
#[macro_export]
macro_rules! stores_of {
    ($view:expr) => {{
        let view = &$view;
        $crate::dataset::Stores {
            vectors: view.vectors(),
            episodic: view.episodic(),
            graph: view.graph(),
            procedural: view.procedural(),
            agent_state: view.agent_state(),
            workflows: view.workflows(),
            sessions: view.sessions(),
            artifacts: view.artifacts(),
            events: view.events(),
            hooks: view.hooks(),
        }
    }};
}

/// How many records of each kind [`seed`] writes; [`Size::large`] writes over 10 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Events.
    pub events: usize,
    /// Hook executions.
    pub hooks: usize,
    /// Conversation sessions of 20 turns.
    pub conversations: usize,
    /// Vectors (16 dimensions, cosine).
    pub vectors: usize,
    /// Graph entities (each updated twice; relationships between neighbours).
    pub entities: usize,
    /// Procedures, workflows and sessions, each.
    pub items: usize,
    /// Artifacts of 1 MiB (besides 20 small ones).
    pub large_artifacts: usize,
}

impl Size {
    /// A few hundred records: quick to move anywhere.
    pub fn small() -> Size {
        Size {
            events: 300,
            hooks: 60,
            conversations: 4,
            vectors: 100,
            entities: 12,
            items: 20,
            large_artifacts: 1,
        }
    }

    /// Over 10 000 records and three 1 MiB artifacts.
    pub fn large() -> Size {
        Size {
            events: 6_000,
            hooks: 1_500,
            conversations: 60,
            vectors: 1_000,
            entities: 150,
            items: 200,
            large_artifacts: 3,
        }
    }
}

/// What the queries need to know about a seeded dataset.
#[derive(Debug, Clone)]
pub struct Seeded {
    size: Size,
    /// Instants after each round of graph writes (transaction-time axis).
    graph_instants: Vec<OffsetDateTime>,
    /// Instants of the world the as-of reads look at (valid-time axis): before the second
    /// round's versions, before the third's, and after the closes.
    valid_times: [OffsetDateTime; 3],
    /// Every artifact's hash.
    artifact_hashes: Vec<String>,
    /// When the events start.
    events_from: OffsetDateTime,
}

const COLLECTION: &str = "memories";
const DIMENSION: usize = 16;
const HOOK_NAMES: [&str; 3] = ["pre_tool_use", "post_tool_use", "on_stop"];
const EVENT_TYPES: [&str; 4] = ["agent.turn", "agent.plan", "tool.call", "tool.result"];

/// A deterministic pseudo-random number from `n` (SplitMix64).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic vector for `n`, components in [-1, 1).
fn vector(n: u64) -> Vec<f32> {
    (0..DIMENSION as u64)
        .map(|d| (mix(n * 31 + d) % 2_000) as f32 / 1_000.0 - 1.0)
        .collect()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Bytes of `len` that differ for every `seed`.
fn content(seed: u64, len: usize) -> Bytes {
    let mut bytes = Vec::with_capacity(len);
    let mut n = seed;
    while bytes.len() < len {
        n = mix(n);
        bytes.extend_from_slice(&n.to_le_bytes());
    }
    bytes.truncate(len);
    Bytes::from(bytes)
}

/// Writes the dataset through `stores` (a fresh tenant) and returns what the queries need.
///
/// # Errors
/// The stores' errors.
pub async fn seed(stores: &Stores, size: Size) -> Result<Seeded> {
    let events_from = OffsetDateTime::now_utc() - Duration::days(400);
    seed_events(stores, size, events_from).await?;
    seed_hooks(stores, size).await?;
    seed_conversations(stores, size).await?;
    seed_vectors(stores, size).await?;
    let graph_start = OffsetDateTime::now_utc();
    let graph_instants = seed_graph(stores, size, graph_start).await?;
    seed_items(stores, size).await?;
    let artifact_hashes = seed_artifacts(stores, size).await?;
    let valid_times = [
        graph_start - Duration::days(90),
        graph_start - Duration::days(50),
        graph_instants[2],
    ];
    Ok(Seeded {
        size,
        graph_instants,
        valid_times,
        artifact_hashes,
        events_from,
    })
}

async fn seed_events(stores: &Stores, size: Size, from: OffsetDateTime) -> Result<()> {
    let step = 400 * 86_400 / (size.events.max(1) as i64);
    let events: Vec<Event> = (0..size.events as u64)
        .map(|n| {
            // Spread over 400 days (several monthly partitions), nanoseconds included.
            let at = from + Duration::seconds(n as i64 * step) + Duration::nanoseconds(n as i64);
            Event::new(
                EVENT_TYPES[(n % 4) as usize],
                json!({ "n": n, "text": format!("event {n}") }),
            )
            .at(at)
            .correlated(format!("run-{}", n % 50))
        })
        .collect();
    for chunk in events.chunks(500) {
        stores.events.append_batch(chunk.to_vec()).await?;
    }
    Ok(())
}

async fn seed_hooks(stores: &Stores, size: Size) -> Result<()> {
    let start = OffsetDateTime::now_utc() - Duration::days(10);
    for n in 0..size.hooks as u64 {
        let failed = n % 7 == 0;
        stores
            .hooks
            .record(HookExecution {
                hook_name: HOOK_NAMES[(n % 3) as usize].to_owned(),
                input: json!({ "tool": format!("tool-{}", n % 5) }),
                output: (!failed).then(|| json!({ "allow": n % 2 == 0 })),
                error: failed.then(|| format!("timeout after {n} ms")),
                duration: StdDuration::from_micros(1_000 + mix(n) % 50_000),
                at: Some(start + Duration::seconds(n as i64 * 60) + Duration::nanoseconds(7)),
            })
            .await?;
    }
    Ok(())
}

async fn seed_conversations(stores: &Stores, size: Size) -> Result<()> {
    let start = OffsetDateTime::now_utc() - Duration::days(3);
    for s in 0..size.conversations {
        let session = format!("chat/{s}");
        for n in 0..20u64 {
            let role = Role::ALL[(n % Role::ALL.len() as u64) as usize];
            let turn = Turn::new(role, format!("turn {n} of {session} ✓"))
                .with_metadata("n", json!(n))
                .at(start + Duration::minutes((s as i64) * 30 + n as i64));
            stores.episodic.append(&session, turn).await?;
        }
    }
    Ok(())
}

async fn seed_vectors(stores: &Stores, size: Size) -> Result<()> {
    stores
        .vectors
        .create_collection(COLLECTION, DIMENSION, Metric::Cosine)
        .await?;
    let records: Vec<VectorRecord> = (0..size.vectors as u64)
        .map(|n| VectorRecord {
            id: format!("m{n:05}"),
            vector: vector(n),
            metadata: object(json!({ "kind": if n % 3 == 0 { "fact" } else { "chat" } })),
        })
        .collect();
    for chunk in records.chunks(250) {
        stores
            .vectors
            .upsert_batch(COLLECTION, chunk.to_vec())
            .await?;
    }
    for n in (0..size.vectors as u64).step_by(10) {
        stores
            .vectors
            .delete(COLLECTION, &format!("m{n:05}"))
            .await?;
    }
    Ok(())
}

/// Three rounds of graph writes (create, update, close some), with the instant after each.
async fn seed_graph(
    stores: &Stores,
    size: Size,
    start: OffsetDateTime,
) -> Result<Vec<OffsetDateTime>> {
    let graph = &stores.graph;
    let valid_from = start - Duration::days(100);
    let mut instants = Vec::new();
    for round in 0..3u64 {
        for n in 0..size.entities as u64 {
            let mut input = EntityInput::new(
                format!("e{n}"),
                if n % 2 == 0 { "person" } else { "project" },
                format!("entity {n}"),
            );
            input.properties = object(json!({ "round": round, "score": n * 10 + round }));
            input.valid_from = Some(valid_from + Duration::days(round as i64 * 30));
            graph.upsert_entity(input).await?;
        }
        for n in 0..size.entities as u64 {
            let to = (n + 1) % size.entities as u64;
            let mut input = RelationshipInput::new(
                format!("r{n}"),
                format!("e{n}"),
                if n % 3 == 0 { "knows" } else { "works_on" },
                format!("e{to}"),
            );
            input.properties = object(json!({ "weight": round }));
            if round < 2 {
                graph.upsert_relationship(input).await?;
            }
        }
        if round == 2 {
            for n in (0..size.entities as u64).step_by(5) {
                graph
                    .close_entity(&format!("e{n}"), OffsetDateTime::now_utc())
                    .await?;
                graph
                    .close_relationship(&format!("r{n}"), OffsetDateTime::now_utc())
                    .await?;
            }
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
        instants.push(OffsetDateTime::now_utc());
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    Ok(instants)
}

/// Procedures with outcomes, agent snapshots, workflows in every status, live and expired
/// sessions.
async fn seed_items(stores: &Stores, size: Size) -> Result<()> {
    for n in 0..size.items as u64 {
        let id = format!("skill-{n}");
        stores
            .procedural
            .upsert_procedure(Procedure {
                id: id.clone(),
                name: format!("Skill {n}"),
                category: ["research", "coding", "ops"][(n % 3) as usize].to_owned(),
                description: format!("does {n}"),
                content: json!({ "steps": [n, n + 1] }),
                metadata: Map::new(),
            })
            .await?;
        for outcome in 0..(n % 5) {
            stores
                .procedural
                .record_outcome(&id, outcome % 2 == 0)
                .await?;
        }
    }
    for agent in 0..(size.items / 10).max(1) {
        let mut version = None;
        for step in 0..5 {
            let state = json!({ "agent": agent, "step": step, "notes": format!("plan {step}") });
            version = Some(
                stores
                    .agent_state
                    .save(&format!("agent-{agent}"), &state, version)
                    .await?
                    .version,
            );
        }
    }
    for n in 0..size.items as u64 {
        let id = format!("wf-{n}");
        stores
            .workflows
            .create(Some(&id), "ingest", json!({ "n": n }))
            .await?;
        let steps: &[Transition] = match n % 5 {
            0 => &[],
            1 => &[Transition::Start],
            2 => &[
                Transition::Start,
                Transition::Complete {
                    output: json!({ "ok": n }),
                },
            ],
            3 => &[
                Transition::Start,
                Transition::Fail {
                    error: format!("failed {n}"),
                },
            ],
            _ => &[Transition::Cancel],
        };
        for step in steps {
            stores.workflows.transition(&id, step.clone()).await?;
        }
    }
    for n in 0..size.items as u64 {
        let ttl = if n % 4 == 0 {
            Duration::milliseconds(1)
        } else {
            Duration::hours(24)
        };
        stores
            .sessions
            .create(Some(&format!("sess-{n}")), ttl, json!({ "n": n }))
            .await?;
    }
    tokio::time::sleep(StdDuration::from_millis(10)).await;
    Ok(())
}

async fn seed_artifacts(stores: &Stores, size: Size) -> Result<Vec<String>> {
    let mut hashes = Vec::new();
    for n in 0..20u64 {
        let stored = stores
            .artifacts
            .put(
                content(n, (n as usize) * 97),
                PutOptions::with_content_type("text/plain"),
            )
            .await?;
        if n % 4 == 0 {
            stores
                .artifacts
                .put(content(n, (n as usize) * 97), PutOptions::default())
                .await?;
        }
        hashes.push(stored.hash);
    }
    for n in 0..size.large_artifacts as u64 {
        let stored = stores
            .artifacts
            .put(
                content(1_000 + n, 1 << 20),
                PutOptions::with_content_type("application/octet-stream"),
            )
            .await?;
        hashes.push(stored.hash);
    }
    Ok(hashes)
}

/// Collects the rendered answers.
struct Answers(Vec<(String, String)>);

impl Answers {
    fn add(&mut self, query: impl Into<String>, answer: impl std::fmt::Debug) {
        self.0.push((query.into(), format!("{answer:?}")));
    }
}

/// Runs every query over `stores` and renders each answer as text, in a fixed order. Two
/// storages holding the same data give equal lists. Vector scores are rounded to 4 decimals
/// (engines compute them in different orders).
///
/// # Errors
/// The stores' errors.
pub async fn answers(stores: &Stores, seeded: &Seeded) -> Result<Vec<(String, String)>> {
    let mut out = Answers(Vec::new());
    answer_events(stores, seeded, &mut out).await?;
    answer_hooks(stores, &mut out).await?;
    answer_conversations(stores, seeded, &mut out).await?;
    answer_vectors(stores, seeded, &mut out).await?;
    answer_graph(stores, seeded, &mut out).await?;
    answer_items(stores, seeded, &mut out).await?;
    answer_artifacts(stores, seeded, &mut out).await?;
    Ok(out.0)
}

async fn answer_events(stores: &Stores, seeded: &Seeded, out: &mut Answers) -> Result<()> {
    let from = seeded.events_from + Duration::days(33);
    let queries = [
        ("events: first page", EventQuery::default()),
        (
            "events: a month",
            EventQuery {
                from: Some(from),
                to: Some(from + Duration::days(31)),
                ..EventQuery::default()
            },
        ),
        (
            "events: tool.*",
            EventQuery {
                event_type: Some(TypePattern::parse("tool.*")?),
                limit: 1_000,
                ..EventQuery::default()
            },
        ),
        (
            "events: run-7",
            EventQuery {
                correlation_id: Some("run-7".to_owned()),
                ..EventQuery::default()
            },
        ),
    ];
    for (name, query) in queries {
        out.add(name, stores.events.query(&query).await?);
    }
    Ok(())
}

async fn answer_hooks(stores: &Stores, out: &mut Answers) -> Result<()> {
    for hook in HOOK_NAMES {
        let query = HookQuery {
            hook_name: Some(hook.to_owned()),
            ..HookQuery::default()
        };
        out.add(format!("hooks: {hook}"), stores.hooks.query(&query).await?);
        out.add(
            format!("hooks: stats {hook}"),
            stores.hooks.stats(hook, None, None).await?,
        );
    }
    Ok(())
}

async fn answer_conversations(stores: &Stores, seeded: &Seeded, out: &mut Answers) -> Result<()> {
    let episodic = &stores.episodic;
    out.add(
        "episodic: sessions",
        episodic.list_sessions(None, 1_000).await?,
    );
    for s in (0..seeded.size.conversations).step_by(3) {
        let session = format!("chat/{s}");
        out.add(
            format!("episodic: {session}"),
            episodic.read(&session, TurnPage::first(100)).await?,
        );
        out.add(
            format!("episodic: {session} tool turns"),
            episodic
                .by_role(&session, Role::Tool, TurnPage::first(100))
                .await?,
        );
    }
    Ok(())
}

async fn answer_vectors(stores: &Stores, seeded: &Seeded, out: &mut Answers) -> Result<()> {
    let vectors = &stores.vectors;
    out.add("vectors: collection", vectors.collection(COLLECTION).await?);
    out.add("vectors: count", vectors.count(COLLECTION).await?);
    for n in (0..seeded.size.vectors as u64).step_by(37) {
        out.add(
            format!("vectors: get m{n:05}"),
            vectors.get(COLLECTION, &format!("m{n:05}")).await?,
        );
    }
    for q in 0..5u64 {
        let mut request = SearchRequest::new(vector(10_000 + q), 10);
        request.exact = true;
        let mut filtered = request.clone();
        filtered.filter = object(json!({ "kind": "fact" }));
        for (name, request) in [("search", request), ("filtered search", filtered)] {
            let hits: Vec<(String, String)> = vectors
                .search(COLLECTION, request)
                .await?
                .into_iter()
                .map(|hit| (hit.id, format!("{:.4}", hit.score)))
                .collect();
            out.add(format!("vectors: {name} {q}"), hits);
        }
    }
    Ok(())
}

async fn answer_graph(stores: &Stores, seeded: &Seeded, out: &mut Answers) -> Result<()> {
    let graph = &stores.graph;
    for n in (0..seeded.size.entities as u64).step_by(4) {
        let (entity, rel) = (format!("e{n}"), format!("r{n}"));
        out.add(format!("graph: {entity}"), graph.get_entity(&entity).await?);
        out.add(
            format!("graph: {entity} history"),
            graph.entity_history(&entity).await?,
        );
        out.add(
            format!("graph: {rel} history"),
            graph.relationship_history(&rel).await?,
        );
        for known_at in &seeded.graph_instants {
            for valid_at in seeded.valid_times {
                let as_of = AsOf {
                    valid_at,
                    known_at: *known_at,
                };
                out.add(
                    format!("graph: {entity} as of {as_of:?}"),
                    graph.get_entity_as_of(&entity, as_of).await?,
                );
                out.add(
                    format!("graph: {rel} as of {as_of:?}"),
                    graph.get_relationship_as_of(&rel, as_of).await?,
                );
            }
        }
        out.add(
            format!("graph: {entity} relationships"),
            graph
                .relationships_of(&entity, Direction::Both, None, None)
                .await?,
        );
        let mut traverse = TraverseRequest::outgoing(3);
        traverse.relation_types = Some(vec!["works_on".to_owned()]);
        out.add(
            format!("graph: traverse {entity}"),
            graph.traverse(&entity, traverse.clone()).await?,
        );
        traverse.as_of = Some(AsOf {
            valid_at: seeded.valid_times[1],
            known_at: seeded.graph_instants[0],
        });
        out.add(
            format!("graph: traverse {entity} as of the first round"),
            graph.traverse(&entity, traverse).await?,
        );
    }
    out.add(
        "graph: people",
        graph
            .list_entities(Some("person"), None, PageRequest::first(1_000))
            .await?,
    );
    Ok(())
}

async fn answer_items(stores: &Stores, seeded: &Seeded, out: &mut Answers) -> Result<()> {
    for category in ["research", "coding", "ops"] {
        out.add(
            format!("procedural: {category}"),
            stores
                .procedural
                .list_by_category(category, PageRequest::first(1_000))
                .await?,
        );
        out.add(
            format!("procedural: best {category}"),
            stores
                .procedural
                .top_by_success_rate(Some(category), 10, 1)
                .await?,
        );
    }
    out.add(
        "procedural: most used",
        stores.procedural.top_by_frequency(None, 10).await?,
    );
    for agent in 0..(seeded.size.items / 10).max(1) {
        let agent = format!("agent-{agent}");
        out.add(
            format!("agent state: {agent} latest"),
            stores.agent_state.load_latest(&agent).await?,
        );
        out.add(
            format!("agent state: {agent} versions"),
            stores.agent_state.list_versions(&agent).await?,
        );
    }
    for status in [
        WorkflowStatus::Pending,
        WorkflowStatus::Running,
        WorkflowStatus::Completed,
        WorkflowStatus::Failed,
        WorkflowStatus::Cancelled,
    ] {
        out.add(
            format!("workflows: {status:?}"),
            stores.workflows.list_by_status(status, None, 1_000).await?,
        );
    }
    out.add("sessions: live", stores.sessions.list(None, 1_000).await?);
    for n in 0..4 {
        let id = format!("sess-{n}");
        out.add(format!("sessions: {id}"), stores.sessions.get(&id).await?);
    }
    Ok(())
}

async fn answer_artifacts(stores: &Stores, seeded: &Seeded, out: &mut Answers) -> Result<()> {
    out.add("artifacts: list", stores.artifacts.list(None, 1_000).await?);
    for hash in &seeded.artifact_hashes {
        let artifact = stores.artifacts.get(hash).await?;
        let summary = artifact.map(|a| (a.info, a.content.len(), blake3::hash(&a.content)));
        out.add(format!("artifacts: {hash}"), summary);
    }
    Ok(())
}

/// Asserts that two lists from [`answers`] agree, naming the first query that differs.
///
/// # Panics
/// When they differ.
pub fn assert_same_answers(expected: &[(String, String)], actual: &[(String, String)]) {
    for ((query, want), (asked, got)) in expected.iter().zip(actual) {
        assert_eq!(asked, query, "the queries differ");
        assert!(
            got == want,
            "{query}:\n expected {}\n      got {}",
            clip(want),
            clip(got)
        );
    }
    assert_eq!(actual.len(), expected.len(), "as many answers");
}

/// The first 2000 characters of an answer.
fn clip(text: &str) -> &str {
    let end = text
        .char_indices()
        .nth(2_000)
        .map_or(text.len(), |(at, _)| at);
    &text[..end]
}
