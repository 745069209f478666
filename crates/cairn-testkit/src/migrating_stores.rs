//! Cases for the store-level migration wrappers ([`cairn_stores::migrating`]): a component
//! moved from an old to a new store implementation while a live writer keeps creating,
//! updating and deleting through the wrapper.
//!
//! Each `*_moves_live` case seeds records on the old store only, wraps both stores, starts a
//! writer task and, while it runs, switches `DualWrite` → backfill → `ReadNewFallback` →
//! `ReadNew`; it then pauses the writer between two writes, checks that both sides hold the
//! same records (equal [`fingerprint`]s), switches to `NewOnly`, lets the writer go on, stops
//! it, and checks that the new store holds every acknowledged write (and the seeds not
//! overwritten since), read directly from the new store.
//!
//! The stores must be fresh (no records) and may be any two implementations of the
//! component.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use cairn_core::migrating::MigrationPhase;
use cairn_core::{Bytes, ErrorKind, StorageBackend};
use cairn_stores::GenericEpisodicStore;
use cairn_stores::agent_state::AgentStateStore;
use cairn_stores::artifacts::{ArtifactStore, PutOptions};
use cairn_stores::episodic::{EpisodicStore, Role, Turn, TurnPage};
use cairn_stores::event_log::{Event, EventLogStore, EventQuery, EventRecord};
use cairn_stores::graph::{
    Bitemporal, Entity, EntityInput, GraphStore, Relationship, RelationshipInput,
};
use cairn_stores::hooks::{HookExecution, HookHistoryStore, HookQuery, HookRecord};
use cairn_stores::migrating::{
    MigratingAgentStateStore, MigratingArtifactStore, MigratingEpisodicStore,
    MigratingEventLogStore, MigratingGraphStore, MigratingHookHistoryStore,
    MigratingProceduralStore, MigratingSessionStore, MigratingVectorStore, MigratingWorkflowStore,
    StoreMigration,
};
use cairn_stores::portable::fingerprint;
use cairn_stores::procedural::{ProceduralStore, Procedure};
use cairn_stores::sessions::{Session, SessionStore};
use cairn_stores::vectors::{Metadata as VectorMetadata, Metric, VectorRecord, VectorStore};
use cairn_stores::workflow::{Transition, Workflow, WorkflowStore};
use futures::StreamExt;
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::faulty::{FaultyBackend, Op};

/// Writes the writer makes in each phase (and during the backfill).
const STEPS_PER_PHASE: u64 = 12;

/// A live writer: one write per step through the migrating store, checked against and
/// recorded in its model of what the store acknowledged.
#[async_trait]
trait LiveWriter: Send + 'static {
    /// Performs write number `i`.
    async fn step(&mut self, i: u64);
}

/// Waits until the writer made `n` more steps; panics if it stopped (it panicked).
async fn wait_steps(steps: &AtomicU64, n: u64, task: &tokio::task::JoinHandle<impl Sized>) {
    let target = steps.load(Ordering::SeqCst) + n;
    while steps.load(Ordering::SeqCst) < target {
        assert!(!task.is_finished(), "the live writer stopped early");
        tokio::time::sleep(StdDuration::from_millis(1)).await;
    }
}

/// Runs `writer` through every phase of `migration` (see the [module docs](self)) and
/// returns it, with its model, once stopped.
async fn run_live<W: LiveWriter>(migration: &StoreMigration, writer: W) -> W {
    let pause = Arc::new(tokio::sync::Mutex::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let steps = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn({
        let (pause, stop, steps) = (pause.clone(), stop.clone(), steps.clone());
        async move {
            let mut writer = writer;
            while !stop.load(Ordering::SeqCst) {
                let running = pause.lock().await;
                let i = steps.load(Ordering::SeqCst);
                writer.step(i).await;
                steps.store(i + 1, Ordering::SeqCst);
                drop(running);
                tokio::task::yield_now().await;
            }
            writer
        }
    });

    assert_eq!(migration.phase(), MigrationPhase::DualWrite);
    wait_steps(&steps, STEPS_PER_PHASE, &task).await;
    let before = steps.load(Ordering::SeqCst);
    let report = migration.backfill(2).await.unwrap();
    assert!(report.records > 0, "{report:?}");
    println!(
        "backfill: {} records in {} pages while the writer made {} writes",
        report.records,
        report.pages,
        steps.load(Ordering::SeqCst) - before
    );
    wait_steps(&steps, STEPS_PER_PHASE, &task).await;
    for phase in [MigrationPhase::ReadNewFallback, MigrationPhase::ReadNew] {
        migration.set_phase(phase).unwrap();
        wait_steps(&steps, STEPS_PER_PHASE, &task).await;
    }
    {
        let _paused = pause.lock().await;
        let old = fingerprint(&**migration.old_side(), 7).await.unwrap();
        let new = fingerprint(&**migration.new_side(), 5).await.unwrap();
        assert_eq!(old, new, "the sides differ after the last dual-write phase");
        assert!(old.records > 0);
        migration.set_phase(MigrationPhase::NewOnly).unwrap();
    }
    wait_steps(&steps, STEPS_PER_PHASE, &task).await;
    stop.store(true, Ordering::SeqCst);
    let writer = task.await.expect("the live writer panicked");
    let old = fingerprint(&**migration.old_side(), 7).await.unwrap();
    let new = fingerprint(&**migration.new_side(), 5).await.unwrap();
    assert_ne!(old, new, "new-only writes must not reach the old side");
    writer
}

// ---------------------------------------------------------------------------------------
// Episodic memory

struct EpisodicWriter {
    store: MigratingEpisodicStore,
    /// Contents of each session's turns, in `seq` order.
    model: BTreeMap<String, Vec<String>>,
}

#[async_trait]
impl LiveWriter for EpisodicWriter {
    async fn step(&mut self, i: u64) {
        let session = format!("s{}", i % 5);
        if i % 9 == 8 {
            let deleted = self.store.delete_session(&session).await.unwrap();
            let expected = self.model.remove(&session).map_or(0, |turns| turns.len());
            assert_eq!(deleted, expected as u64, "delete {session} at step {i}");
            return;
        }
        let content = format!("turn {i}");
        let role = Role::ALL[(i % 4) as usize];
        let record = self
            .store
            .append(&session, Turn::new(role, &content))
            .await
            .unwrap();
        let turns = self.model.entry(session.clone()).or_default();
        turns.push(content);
        assert_eq!(record.seq, turns.len() as u64, "append to {session}");
        assert_eq!(
            self.store.count(&session).await.unwrap(),
            turns.len() as u64
        );
    }
}

/// Episodic memory moves with appends (including to sessions only the old side held yet)
/// and session deletes running throughout.
pub async fn episodic_moves_live(old: Arc<dyn EpisodicStore>, new: Arc<dyn EpisodicStore>) {
    let mut model = BTreeMap::<String, Vec<String>>::new();
    for (session, turns) in [("s0", 3), ("s1", 2), ("seed", 4)] {
        for n in 0..turns {
            let content = format!("{session} seeded {n}");
            old.append(session, Turn::new(Role::User, &content))
                .await
                .unwrap();
            model.entry(session.to_owned()).or_default().push(content);
        }
    }
    let store = MigratingEpisodicStore::new(old, new.clone());
    let writer = EpisodicWriter {
        store: store.clone(),
        model,
    };
    let model = run_live(store.migration(), writer).await.model;

    assert!(model.contains_key("seed"));
    for (session, turns) in &model {
        let read = new.read(session, TurnPage::first(1000)).await.unwrap();
        let contents: Vec<&str> = read.iter().map(|t| t.content.as_str()).collect();
        assert_eq!(contents, *turns, "session {session} on the new side");
        let seqs: Vec<u64> = read.iter().map(|t| t.seq).collect();
        assert_eq!(seqs, (1..=turns.len() as u64).collect::<Vec<_>>());
    }
    let listed: Vec<String> = new
        .list_sessions(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(listed, model.keys().cloned().collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------
// Sessions

struct SessionWriter {
    store: MigratingSessionStore,
    model: BTreeMap<String, Session>,
}

#[async_trait]
impl LiveWriter for SessionWriter {
    async fn step(&mut self, i: u64) {
        let id = format!("s{}", i % 5);
        let store = &self.store;
        let Some(session) = self.model.get(&id).cloned() else {
            let created = store
                .create(Some(&id), Duration::hours(1), json!({ "i": i }))
                .await
                .unwrap();
            self.model.insert(id, created);
            return;
        };
        let updated = match (i / 5) % 5 {
            0 => store.update_data(&id, json!({ "i": i })).await.unwrap(),
            1 => store.extend(&id, Duration::hours(2)).await.unwrap(),
            2 => store
                .link_artifact(&id, &format!("{i:064x}"))
                .await
                .unwrap(),
            3 => match session.artifacts.first() {
                Some(hash) => {
                    assert!(store.unlink_artifact(&id, hash).await.unwrap());
                    let mut unlinked = session.clone();
                    unlinked.artifacts.remove(0);
                    unlinked
                }
                None => store.touch(&id).await.unwrap(),
            },
            _ => {
                assert!(store.delete(&id).await.unwrap(), "delete {id}");
                self.model.remove(&id);
                assert_eq!(store.get(&id).await.unwrap(), None);
                return;
            }
        };
        assert_eq!(store.get(&id).await.unwrap().as_ref(), Some(&updated));
        self.model.insert(id, updated);
    }
}

/// Sessions move with creates, data updates, expiry changes, artifact links and deletes
/// running throughout; every session reads back on the new side exactly as the writer was
/// told (times included).
pub async fn sessions_move_live(old: Arc<dyn SessionStore>, new: Arc<dyn SessionStore>) {
    let mut model = BTreeMap::new();
    for id in ["s0", "s1", "seed"] {
        let session = old
            .create(Some(id), Duration::hours(1), json!({ "seeded": id }))
            .await
            .unwrap();
        model.insert(id.to_owned(), session);
    }
    let store = MigratingSessionStore::new(old, new.clone());
    let writer = SessionWriter {
        store: store.clone(),
        model,
    };
    let model = run_live(store.migration(), writer).await.model;

    assert!(model.contains_key("seed"));
    for n in 0..5 {
        let id = format!("s{n}");
        assert_eq!(new.get(&id).await.unwrap().as_ref(), model.get(&id), "{id}");
    }
    assert_eq!(new.get("seed").await.unwrap().as_ref(), model.get("seed"));
    let listed = new.list(None, 100).await.unwrap();
    assert_eq!(listed.items.len(), model.len());
}

// ---------------------------------------------------------------------------------------
// Agent state

struct AgentWriter {
    store: MigratingAgentStateStore,
    /// Each agent's versions and states, oldest first.
    model: BTreeMap<String, Vec<(u64, Value)>>,
}

#[async_trait]
impl LiveWriter for AgentWriter {
    async fn step(&mut self, i: u64) {
        let agent = format!("a{}", i % 4);
        let versions = self.model.entry(agent.clone()).or_default();
        let latest = versions.last().map_or(0, |(v, _)| *v);
        match (i / 4) % 6 {
            4 => {
                let pruned = self.store.prune(&agent, 1).await.unwrap();
                assert_eq!(pruned, versions.len().saturating_sub(1) as u64);
                versions.drain(..versions.len().saturating_sub(1));
            }
            5 => {
                let deleted = self.store.delete_agent(&agent).await.unwrap();
                assert_eq!(deleted, versions.len() as u64);
                versions.clear();
            }
            _ => {
                let state = json!({ "agent": agent, "step": i });
                let info = self.store.save(&agent, &state, Some(latest)).await.unwrap();
                assert_eq!(info.version, latest + 1, "save of {agent}");
                versions.push((info.version, state));
                let stale = self.store.save(&agent, &json!(null), Some(latest)).await;
                assert_eq!(stale.unwrap_err().kind(), ErrorKind::Conflict);
            }
        }
        let loaded = self.store.load_latest(&agent).await.unwrap();
        assert_eq!(
            loaded.map(|s| (s.info.version, s.state)),
            versions.last().cloned()
        );
    }
}

/// Agent state moves with conditional saves (stale ones refused by the deciding side only),
/// prunes and deletes running throughout.
pub async fn agent_state_moves_live(old: Arc<dyn AgentStateStore>, new: Arc<dyn AgentStateStore>) {
    let mut model = BTreeMap::<String, Vec<(u64, Value)>>::new();
    for (agent, saves) in [("a0", 2), ("a1", 1), ("seed", 3)] {
        for n in 0..saves {
            let state = json!({ "seeded": agent, "n": n });
            let info = old.save(agent, &state, None).await.unwrap();
            model
                .entry(agent.to_owned())
                .or_default()
                .push((info.version, state));
        }
    }
    let store = MigratingAgentStateStore::new(old, new.clone());
    let writer = AgentWriter {
        store: store.clone(),
        model,
    };
    let model = run_live(store.migration(), writer).await.model;

    assert_eq!(model["seed"].len(), 3);
    for (agent, versions) in &model {
        let listed: Vec<u64> = new
            .list_versions(agent)
            .await
            .unwrap()
            .iter()
            .map(|info| info.version)
            .collect();
        let expected: Vec<u64> = versions.iter().map(|(v, _)| *v).collect();
        assert_eq!(listed, expected, "versions of {agent} on the new side");
        for (version, state) in versions {
            let snapshot = new.load_version(agent, *version).await.unwrap().unwrap();
            assert_eq!(&snapshot.state, state);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Event log

const EVENTS_FROM: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

struct EventWriter {
    store: MigratingEventLogStore,
    model: Vec<EventRecord>,
}

#[async_trait]
impl LiveWriter for EventWriter {
    async fn step(&mut self, i: u64) {
        let at = EVENTS_FROM + Duration::seconds(i as i64);
        let event = |n: u64| Event::new(format!("kind.{}", n % 3), json!({ "n": n })).at(at);
        match i % 10 {
            9 => {
                let before = at - Duration::seconds(6);
                let dropped = self.store.drop_before(before).await.unwrap();
                let kept = self.model.len();
                self.model.retain(|e| e.at >= before);
                assert_eq!(dropped, (kept - self.model.len()) as u64);
            }
            4 => {
                let records = self
                    .store
                    .append_batch(vec![event(i), event(i + 1000)])
                    .await
                    .unwrap();
                self.model.extend(records);
            }
            _ => {
                let record = self.store.append(event(i)).await.unwrap();
                self.model.push(record);
            }
        }
    }
}

/// All events of `store`, ordered by time, then id.
async fn all_events(store: &dyn EventLogStore) -> Vec<EventRecord> {
    let query = EventQuery {
        limit: 10_000,
        ..EventQuery::default()
    };
    store.query(&query).await.unwrap()
}

/// The event log moves with appends, batch appends and `drop_before` running throughout
/// (seeds older than the first drop disappear from both sides, later ones stay).
pub async fn event_log_moves_live(old: Arc<dyn EventLogStore>, new: Arc<dyn EventLogStore>) {
    let mut model = Vec::new();
    for (n, offset) in [(0, -30), (1, -20), (2, 100_000), (3, 100_001)] {
        let event = Event::new("seeded", json!({ "n": n }))
            .at(EVENTS_FROM + Duration::seconds(offset))
            .correlated("seed");
        model.push(old.append(event).await.unwrap());
    }
    let store = MigratingEventLogStore::new(old, new.clone());
    let writer = EventWriter {
        store: store.clone(),
        model,
    };
    let mut model = run_live(store.migration(), writer).await.model;

    model.sort_by_key(|e| (e.at, e.id));
    assert_eq!(model.iter().filter(|e| e.event_type == "seeded").count(), 2);
    assert_eq!(all_events(&*new).await, model);
}

// ---------------------------------------------------------------------------------------
// Hook history

struct HookWriter {
    store: MigratingHookHistoryStore,
    model: Vec<HookRecord>,
}

#[async_trait]
impl LiveWriter for HookWriter {
    async fn step(&mut self, i: u64) {
        let at = EVENTS_FROM + Duration::seconds(i as i64);
        if i % 10 == 9 {
            let before = at - Duration::seconds(6);
            let dropped = self.store.drop_before(before).await.unwrap();
            let kept = self.model.len();
            self.model.retain(|r| r.at >= before);
            assert_eq!(dropped, (kept - self.model.len()) as u64);
            return;
        }
        let failed = i % 4 == 0;
        let execution = HookExecution {
            hook_name: format!("h{}", i % 3),
            input: json!({ "i": i }),
            output: (!failed).then(|| json!(i)),
            error: failed.then(|| format!("failure {i}")),
            duration: StdDuration::from_millis(i),
            at: Some(at),
        };
        let record = self.store.record(execution).await.unwrap();
        self.model.push(record);
    }
}

/// The hook history moves with recordings and `drop_before` running throughout.
pub async fn hooks_move_live(old: Arc<dyn HookHistoryStore>, new: Arc<dyn HookHistoryStore>) {
    let mut model = Vec::new();
    for (n, offset) in [(0, -30), (1, 100_000), (2, 100_001)] {
        let execution = HookExecution {
            hook_name: "seeded".to_owned(),
            input: json!({ "n": n }),
            output: None,
            error: None,
            duration: StdDuration::from_millis(n),
            at: Some(EVENTS_FROM + Duration::seconds(offset)),
        };
        model.push(old.record(execution).await.unwrap());
    }
    let store = MigratingHookHistoryStore::new(old, new.clone());
    let writer = HookWriter {
        store: store.clone(),
        model,
    };
    let mut model = run_live(store.migration(), writer).await.model;

    model.sort_by_key(|r| (r.at, r.id));
    assert_eq!(model.iter().filter(|r| r.hook_name == "seeded").count(), 2);
    let query = HookQuery {
        limit: 10_000,
        ..HookQuery::default()
    };
    assert_eq!(new.query(&query).await.unwrap(), model);
}

// ---------------------------------------------------------------------------------------
// Procedural memory

fn procedure(id: &str, i: u64) -> Procedure {
    Procedure {
        id: id.to_owned(),
        name: format!("procedure {id} v{i}"),
        category: format!("c{}", i % 2),
        description: String::new(),
        content: json!({ "steps": [i] }),
        metadata: serde_json::Map::new(),
    }
}

struct ProceduralWriter {
    store: MigratingProceduralStore,
    /// Each procedure's definition and (successes, failures).
    model: BTreeMap<String, (Procedure, u64, u64)>,
}

#[async_trait]
impl LiveWriter for ProceduralWriter {
    async fn step(&mut self, i: u64) {
        let id = format!("p{}", i % 4);
        let op = (i / 4) % 5;
        let Some((_, successes, failures)) = self.model.get(&id).cloned() else {
            let stored = self
                .store
                .upsert_procedure(procedure(&id, i))
                .await
                .unwrap();
            self.model.insert(id, (stored.procedure, 0, 0));
            return;
        };
        match op {
            0 => {
                let stored = self
                    .store
                    .upsert_procedure(procedure(&id, i))
                    .await
                    .unwrap();
                assert_eq!(
                    (stored.stats.successes, stored.stats.failures),
                    (successes, failures)
                );
                self.model
                    .insert(id, (stored.procedure, successes, failures));
            }
            4 => {
                assert!(self.store.delete(&id).await.unwrap(), "delete {id}");
                self.model.remove(&id);
            }
            _ => {
                let success = i % 3 != 0;
                let stats = self.store.record_outcome(&id, success).await.unwrap();
                let entry = self.model.get_mut(&id).unwrap();
                if success {
                    entry.1 += 1;
                } else {
                    entry.2 += 1;
                }
                assert_eq!((stats.successes, stats.failures), (entry.1, entry.2));
                let read = self.store.get(&id).await.unwrap().unwrap();
                assert_eq!(read.stats, stats);
            }
        }
    }
}

/// Procedural memory moves with upserts, outcomes (mirrored by reading the procedure back)
/// and deletes running throughout.
pub async fn procedural_moves_live(old: Arc<dyn ProceduralStore>, new: Arc<dyn ProceduralStore>) {
    let mut model = BTreeMap::new();
    for id in ["p0", "p1", "seed"] {
        let stored = old.upsert_procedure(procedure(id, 0)).await.unwrap();
        old.record_outcome(id, true).await.unwrap();
        model.insert(id.to_owned(), (stored.procedure, 1, 0));
    }
    let store = MigratingProceduralStore::new(old, new.clone());
    let writer = ProceduralWriter {
        store: store.clone(),
        model,
    };
    let model = run_live(store.migration(), writer).await.model;

    assert!(model.contains_key("seed"));
    for n in 0..4 {
        let id = format!("p{n}");
        let found = new.get(&id).await.unwrap();
        let found = found.map(|p| (p.procedure, p.stats.successes, p.stats.failures));
        assert_eq!(found.as_ref(), model.get(&id), "{id} on the new side");
    }
}

// ---------------------------------------------------------------------------------------
// Workflow state

struct WorkflowWriter {
    store: MigratingWorkflowStore,
    model: BTreeMap<String, Workflow>,
}

#[async_trait]
impl LiveWriter for WorkflowWriter {
    async fn step(&mut self, i: u64) {
        let store = &self.store;
        let workflow = match i % 4 {
            0 => {
                let id = format!("w{i}");
                store
                    .create(Some(&id), "job", json!({ "i": i }))
                    .await
                    .unwrap()
            }
            1 => store
                .create(None, "anonymous", json!({ "i": i }))
                .await
                .unwrap(),
            2 => {
                let id = if i < 8 {
                    format!("seed{}", i / 4)
                } else {
                    format!("w{}", i - 2)
                };
                store.transition(&id, Transition::Start).await.unwrap()
            }
            _ => {
                let id = format!("w{}", i - 3);
                let transition = if i < 8 {
                    Transition::Cancel
                } else if i % 8 == 3 {
                    Transition::Complete { output: json!(i) }
                } else {
                    Transition::Fail {
                        error: format!("step {i}"),
                    }
                };
                store.transition(&id, transition).await.unwrap()
            }
        };
        assert_eq!(
            store.get(&workflow.id).await.unwrap().as_ref(),
            Some(&workflow)
        );
        self.model.insert(workflow.id.clone(), workflow);
    }
}

/// Workflow state moves with creations (named and generated ids) and transitions, of
/// workflows the old side alone held too, running throughout.
pub async fn workflows_move_live(old: Arc<dyn WorkflowStore>, new: Arc<dyn WorkflowStore>) {
    let mut model = BTreeMap::new();
    for id in ["seed0", "seed1", "seed2"] {
        let workflow = old.create(Some(id), "seeded", json!(id)).await.unwrap();
        model.insert(id.to_owned(), workflow);
    }
    let store = MigratingWorkflowStore::new(old, new.clone());
    let writer = WorkflowWriter {
        store: store.clone(),
        model,
    };
    let model = run_live(store.migration(), writer).await.model;

    assert!(model.len() > 3);
    for (id, workflow) in &model {
        assert_eq!(new.get(id).await.unwrap().as_ref(), Some(workflow), "{id}");
    }
}

// ---------------------------------------------------------------------------------------
// Vectors

/// A vector's components and metadata.
type StoredVector = (Vec<f32>, VectorMetadata);

struct VectorWriter {
    store: MigratingVectorStore,
    /// Each collection's vectors by id.
    model: BTreeMap<String, BTreeMap<String, StoredVector>>,
}

/// The vector record `id` written at step `i`.
fn vector_record(id: &str, i: u64) -> VectorRecord {
    let metadata = json!({ "i": i });
    VectorRecord {
        id: id.to_owned(),
        vector: vec![i as f32, 1.0],
        metadata: metadata.as_object().cloned().unwrap_or_default(),
    }
}

#[async_trait]
impl LiveWriter for VectorWriter {
    async fn step(&mut self, i: u64) {
        let collection = format!("c{}", i % 3);
        let store = &self.store;
        let Some(vectors) = self.model.get_mut(&collection) else {
            let info = store
                .create_collection(&collection, 2, Metric::L2)
                .await
                .unwrap();
            assert_eq!(info.dimension, 2);
            self.model.insert(collection, BTreeMap::new());
            return;
        };
        let id = format!("v{}", (i / 3) % 4);
        match (i / 3) % 7 {
            2 => {
                let records = vec![vector_record(&id, i), vector_record("batch", i + 1000)];
                store
                    .upsert_batch(&collection, records.clone())
                    .await
                    .unwrap();
                for record in records {
                    vectors.insert(record.id, (record.vector, record.metadata));
                }
            }
            0 | 4 => {
                let deleted = store.delete(&collection, &id).await.unwrap();
                assert_eq!(
                    deleted,
                    vectors.remove(&id).is_some(),
                    "delete {collection}/{id}"
                );
            }
            6 => {
                assert!(store.delete_collection(&collection).await.unwrap());
                self.model.remove(&collection);
                assert_eq!(store.collection(&collection).await.unwrap(), None);
                return;
            }
            _ => {
                let record = vector_record(&id, i);
                store
                    .upsert(
                        &collection,
                        &id,
                        record.vector.clone(),
                        record.metadata.clone(),
                    )
                    .await
                    .unwrap();
                vectors.insert(id.clone(), (record.vector, record.metadata));
            }
        }
        let read = store.get(&collection, &id).await.unwrap();
        assert_eq!(
            read.map(|r| (r.vector, r.metadata)).as_ref(),
            vectors.get(&id),
            "{collection}/{id}"
        );
        assert_eq!(
            store.count(&collection).await.unwrap(),
            vectors.len() as u64
        );
    }
}

/// Vectors move with collection creations and deletions, upserts, batch upserts and vector
/// deletes (also in collections only the old side held yet) running throughout; the new side
/// holds every vector as acknowledged, and the collection the writer leaves alone with the
/// old side's creation time.
pub async fn vectors_move_live(old: Arc<dyn VectorStore>, new: Arc<dyn VectorStore>) {
    let mut model = BTreeMap::<String, BTreeMap<String, StoredVector>>::new();
    // The writer's first write deletes a vector of c0, which only the old side holds yet.
    let mut seeded = Vec::new();
    for (collection, count) in [("c0", 3), ("seed", 2)] {
        seeded.push(
            old.create_collection(collection, 2, Metric::L2)
                .await
                .unwrap(),
        );
        let vectors = model.entry(collection.to_owned()).or_default();
        for n in 0..count {
            let record = vector_record(&format!("v{n}"), 100 + n);
            old.upsert(
                collection,
                &record.id,
                record.vector.clone(),
                record.metadata.clone(),
            )
            .await
            .unwrap();
            vectors.insert(record.id, (record.vector, record.metadata));
        }
    }
    let store = MigratingVectorStore::new(old, new.clone());
    let writer = VectorWriter {
        store: store.clone(),
        model,
    };
    let model = run_live(store.migration(), writer).await.model;

    assert_eq!(model["seed"].len(), 2);
    for n in 0..3 {
        let collection = format!("c{n}");
        let info = new.collection(&collection).await.unwrap();
        assert_eq!(
            info.is_some(),
            model.contains_key(&collection),
            "{collection}"
        );
    }
    assert_eq!(
        new.collection("seed").await.unwrap().as_ref(),
        seeded.last()
    );
    for (collection, vectors) in &model {
        assert_eq!(new.count(collection).await.unwrap(), vectors.len() as u64);
        for (id, stored) in vectors {
            let read = new.get(collection, id).await.unwrap().unwrap();
            assert_eq!(&(read.vector, read.metadata), stored, "{collection}/{id}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Artifacts

struct ArtifactWriter {
    store: MigratingArtifactStore,
    /// Each stored artifact's content and reference count, by hash.
    model: BTreeMap<String, (Bytes, u64)>,
}

/// The content number `n` the artifact writer puts and releases.
fn artifact_content(n: u64) -> Bytes {
    Bytes::from(format!("artifact content {n}").into_bytes())
}

#[async_trait]
impl LiveWriter for ArtifactWriter {
    async fn step(&mut self, i: u64) {
        let store = &self.store;
        let released = artifact_content((i / 4) % 6);
        let released = self
            .model
            .keys()
            .find(|hash| self.model[*hash].0 == released)
            .cloned();
        let (hash, expected) = match (i % 4, released) {
            (3, Some(hash)) => {
                let remaining = store.release(&hash).await.unwrap();
                let refcount = &mut self.model.get_mut(&hash).unwrap().1;
                *refcount -= 1;
                assert_eq!(remaining, *refcount, "release of {hash}");
                if remaining == 0 {
                    self.model.remove(&hash);
                }
                (hash, remaining)
            }
            (step, _) => {
                let content = artifact_content(1 + i % 5);
                let stored = if step == 2 {
                    let (head, tail) = content.split_at(5);
                    let pieces = vec![
                        Ok(Bytes::copy_from_slice(head)),
                        Ok(Bytes::copy_from_slice(tail)),
                    ];
                    store
                        .put_stream(futures::stream::iter(pieces).boxed(), PutOptions::default())
                        .await
                        .unwrap()
                } else {
                    store
                        .put(content.clone(), PutOptions::default())
                        .await
                        .unwrap()
                };
                let entry = self
                    .model
                    .entry(stored.hash.clone())
                    .or_insert((content, 0));
                entry.1 += 1;
                assert_eq!(stored.refcount, entry.1, "put of {}", stored.hash);
                (stored.hash, entry.1)
            }
        };
        let stat = store.stat(&hash).await.unwrap();
        assert_eq!(stat.map_or(0, |info| info.refcount), expected, "{hash}");
        assert_eq!(store.exists(&hash).await.unwrap(), expected > 0);
    }
}

/// Artifacts move with puts (whole and streamed) of new and deduplicated content and
/// releases (down to removal, also of artifacts only the old side held yet) running
/// throughout; the new side holds every artifact with the acknowledged reference count.
pub async fn artifacts_move_live(old: Arc<dyn ArtifactStore>, new: Arc<dyn ArtifactStore>) {
    let mut model = BTreeMap::new();
    // The writer's first release removes content 0, which only the old side holds yet.
    for (content, puts) in [(artifact_content(0), 1), (Bytes::from_static(b"seeded"), 2)] {
        for _ in 0..puts {
            let stored = old
                .put(content.clone(), PutOptions::default())
                .await
                .unwrap();
            model.insert(stored.hash, (content.clone(), stored.refcount));
        }
    }
    let store = MigratingArtifactStore::new(old, new.clone());
    let writer = ArtifactWriter {
        store: store.clone(),
        model,
    };
    let model = run_live(store.migration(), writer).await.model;

    assert!(model.values().any(|(content, _)| &content[..] == b"seeded"));
    for (hash, (content, refcount)) in &model {
        let artifact = new.get(hash).await.unwrap().unwrap();
        assert_eq!(&artifact.content, content, "{hash}");
        assert_eq!(artifact.info.refcount, *refcount, "{hash}");
    }
    let listed: Vec<String> = new
        .list(None, 100)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|info| info.hash)
        .collect();
    assert_eq!(listed, model.keys().cloned().collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------
// Semantic graph

/// The entity input the graph writer upserts at step `i`.
fn entity_input(id: &str, i: u64) -> EntityInput {
    let mut input = EntityInput::new(id, "thing", format!("{id} at {i}"));
    input.properties.insert(format!("p{}", i % 3), json!(i));
    input
}

struct GraphWriter {
    store: MigratingGraphStore,
    /// Each entity's versions as the writer was told, oldest first.
    entities: BTreeMap<String, Vec<Entity>>,
    /// Each relationship's versions as the writer was told, oldest first.
    relationships: BTreeMap<String, Vec<Relationship>>,
}

#[async_trait]
impl LiveWriter for GraphWriter {
    async fn step(&mut self, i: u64) {
        let store = &self.store;
        let until = OffsetDateTime::now_utc() + Duration::days(1 + i as i64);
        match i % 6 {
            4 => {
                let id = format!("r{}", (i / 6) % 2);
                let (from, to) = if id == "r0" {
                    ("e0", "e1")
                } else {
                    ("e1", "seed")
                };
                let mut input = RelationshipInput::new(&id, from, "knows", to);
                input.properties.insert("i".to_owned(), json!(i));
                let version = store.upsert_relationship(input).await.unwrap();
                let versions = self.relationships.entry(id.clone()).or_default();
                versions.push(version.clone());
                assert_eq!(version.version, versions.len() as u64, "{id}");
                assert_eq!(store.get_relationship(&id).await.unwrap(), Some(version));
            }
            5 => {
                let id = format!("r{}", (i / 6) % 2);
                let Some(versions) = self.relationships.get_mut(&id) else {
                    return;
                };
                let version = store.close_relationship(&id, until).await.unwrap();
                versions.push(version.clone());
                assert_eq!(version.time.valid_to, Some(until));
                assert_eq!(
                    store.relationship_history(&id).await.unwrap().len(),
                    versions.len()
                );
            }
            step => {
                let id = format!("e{}", i % 4);
                let version = if step == 3 && self.entities.contains_key(&id) {
                    store.close_entity(&id, until).await.unwrap()
                } else {
                    store.upsert_entity(entity_input(&id, i)).await.unwrap()
                };
                let versions = self.entities.entry(id.clone()).or_default();
                versions.push(version.clone());
                assert_eq!(version.version, versions.len() as u64, "{id}");
                assert_eq!(store.get_entity(&id).await.unwrap(), Some(version));
            }
        }
    }
}

/// Checks that `history`, read from a store, holds exactly the versions a writer was `told`,
/// each closed (`superseded_at`) when the next one was recorded.
fn assert_history<T: PartialEq + std::fmt::Debug>(
    id: &str,
    history: &[T],
    told: &[T],
    time: impl Fn(&T) -> &Bitemporal,
    with_time: impl Fn(&T, Bitemporal) -> T,
) {
    assert_eq!(history.len(), told.len(), "versions of {id}");
    for (k, (read, version)) in history.iter().zip(told).enumerate() {
        let mut expected = time(version).clone();
        expected.superseded_at = told.get(k + 1).map(|next| time(next).recorded_at);
        assert_eq!(
            read,
            &with_time(version, expected),
            "{id} version {}",
            k + 1
        );
    }
}

/// The semantic graph moves with entity and relationship upserts and closes (of ids only the
/// old side held yet too) running throughout; the new side holds every version the writer
/// was told, with the deciding side's transaction times.
pub async fn graph_moves_live(old: Arc<dyn GraphStore>, new: Arc<dyn GraphStore>) {
    let mut entities = BTreeMap::<String, Vec<Entity>>::new();
    for (id, n) in [("e0", 0), ("e0", 1), ("e1", 2), ("seed", 3)] {
        let version = old.upsert_entity(entity_input(id, n)).await.unwrap();
        entities.entry(id.to_owned()).or_default().push(version);
    }
    let relationship = old
        .upsert_relationship(RelationshipInput::new("r0", "e0", "knows", "e1"))
        .await
        .unwrap();
    let relationships = BTreeMap::from([("r0".to_owned(), vec![relationship])]);
    let store = MigratingGraphStore::new(old, new.clone());
    let writer = GraphWriter {
        store: store.clone(),
        entities,
        relationships,
    };
    let writer = run_live(store.migration(), writer).await;

    assert_eq!(writer.entities["seed"].len(), 1);
    for (id, told) in &writer.entities {
        let history = new.entity_history(id).await.unwrap();
        assert_history(
            id,
            &history,
            told,
            |e| &e.time,
            |e, time| Entity { time, ..e.clone() },
        );
    }
    for (id, told) in &writer.relationships {
        let history = new.relationship_history(id).await.unwrap();
        assert_history(
            id,
            &history,
            told,
            |r| &r.time,
            |r, time| Relationship { time, ..r.clone() },
        );
    }
}

// ---------------------------------------------------------------------------------------
// Phases and failures

/// Each phase reads and writes the sides the module docs name; leaving `NewOnly` is refused,
/// and so is a backfill in it.
pub async fn phases_route_and_new_only_is_final(
    old: Arc<dyn EpisodicStore>,
    new: Arc<dyn EpisodicStore>,
) {
    for n in 0..3 {
        old.append("old-only", Turn::new(Role::User, format!("{n}")))
            .await
            .unwrap();
    }
    let store = MigratingEpisodicStore::new(old.clone(), new.clone());
    let migration = store.migration();
    let page = TurnPage::first(100);
    assert_eq!(store.count("old-only").await.unwrap(), 3);
    store
        .append("both", Turn::new(Role::User, "dual"))
        .await
        .unwrap();
    assert_eq!(
        (
            old.count("both").await.unwrap(),
            new.count("both").await.unwrap()
        ),
        (1, 1)
    );

    migration
        .set_phase(MigrationPhase::ReadNewFallback)
        .unwrap();
    // Single-record reads fall back to the old side; listings do not.
    assert_eq!(store.count("old-only").await.unwrap(), 3);
    assert!(store.read("old-only", page).await.unwrap().is_empty());
    migration.set_phase(MigrationPhase::ReadNew).unwrap();
    assert_eq!(store.count("old-only").await.unwrap(), 0);
    // Moving back before `NewOnly` is allowed.
    migration.set_phase(MigrationPhase::DualWrite).unwrap();
    assert_eq!(store.count("old-only").await.unwrap(), 3);

    migration.set_phase(MigrationPhase::NewOnly).unwrap();
    store
        .append("both", Turn::new(Role::User, "new only"))
        .await
        .unwrap();
    assert_eq!(
        (
            old.count("both").await.unwrap(),
            new.count("both").await.unwrap()
        ),
        (1, 2)
    );
    for phase in [
        MigrationPhase::DualWrite,
        MigrationPhase::ReadNewFallback,
        MigrationPhase::ReadNew,
    ] {
        let err = migration.set_phase(phase).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{phase:?}");
    }
    migration.set_phase(MigrationPhase::NewOnly).unwrap();
    assert_eq!(migration.phase(), MigrationPhase::NewOnly);
    let err = migration.backfill(10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(new.count("old-only").await.unwrap(), 0);
}

/// The generic episodic store over `backend` behind a fault injector, and the injector.
fn episodic_behind_faults(
    backend: Arc<dyn StorageBackend>,
) -> (FaultyBackend, Arc<dyn EpisodicStore>) {
    let faulty = FaultyBackend::new(backend);
    let store = Arc::new(GenericEpisodicStore::new(Arc::new(faulty.clone())));
    (faulty, store)
}

/// A write the deciding side applied but the other side refused returns the other side's
/// error with the context `migration_side = secondary`; a failing deciding side returns its
/// error unmarked and nothing is mirrored. `old_backend` must be a fresh tenant handle: the
/// case builds the generic episodic store over it behind a fault injector.
pub async fn secondary_failures_carry_their_side(
    old_backend: Arc<dyn StorageBackend>,
    new: Arc<dyn EpisodicStore>,
) {
    let (faulty, old) = episodic_behind_faults(old_backend);
    let store = MigratingEpisodicStore::new(old.clone(), new.clone());
    for op in [Op::WriteBatch, Op::CompareAndSwap, Op::Set, Op::SetBatch] {
        faulty.fail_fatally(op);
    }
    let side = |err: &cairn_core::Error| {
        err.context()
            .iter()
            .find(|(key, _)| *key == "migration_side")
            .map(|(_, value)| value.clone())
    };

    let err = store
        .append("s", Turn::new(Role::User, "refused by old"))
        .await
        .unwrap_err();
    assert_eq!(side(&err), None, "{err}");
    assert_eq!(new.count("s").await.unwrap(), 0);

    store
        .migration()
        .set_phase(MigrationPhase::ReadNew)
        .unwrap();
    let err = store
        .append("s", Turn::new(Role::User, "mirror refused"))
        .await
        .unwrap_err();
    assert_eq!(side(&err).as_deref(), Some("secondary"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Backend);
    let on_new = new.read("s", TurnPage::first(10)).await.unwrap();
    assert_eq!(on_new.len(), 1);
    assert_eq!(on_new[0].content, "mirror refused");
    assert_eq!(old.count("s").await.unwrap(), 0);
}

/// A write issued while a backfill page is being exported and imported waits for the page:
/// the backfill holds the gate exclusively. `old_backend` must be a fresh tenant handle: the
/// case builds the generic episodic store over it behind a fault injector that slows the
/// export down.
pub async fn backfill_pages_hold_writes_back(
    old_backend: Arc<dyn StorageBackend>,
    new: Arc<dyn EpisodicStore>,
) {
    let (faulty, old) = episodic_behind_faults(old_backend);
    old.append("s", Turn::new(Role::User, "seeded"))
        .await
        .unwrap();
    let store = MigratingEpisodicStore::new(old, new.clone());
    faulty.delay(Op::Scan, StdDuration::from_millis(300));
    let backfill = tokio::spawn({
        let store = store.clone();
        async move { store.migration().backfill(10).await.unwrap() }
    });
    // The backfill holds the gate from before its export's scan until its import is done.
    while faulty.calls(Op::Scan) == 0 {
        tokio::time::sleep(StdDuration::from_millis(1)).await;
    }
    assert!(!backfill.is_finished());
    let appended = store
        .append("s", Turn::new(Role::User, "live"))
        .await
        .unwrap();
    // Had the append not waited, it would be done while the slowed export still runs, before
    // the page reached the new side.
    let seeded_on_new = new
        .read("s", TurnPage::first(10))
        .await
        .unwrap()
        .iter()
        .any(|turn| turn.content == "seeded");
    assert!(
        seeded_on_new,
        "the append ran while a backfill page was in flight"
    );
    assert_eq!(appended.seq, 2);
    assert_eq!(backfill.await.unwrap().records, 1);
    let contents: Vec<String> = new
        .read("s", TurnPage::first(10))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.content)
        .collect();
    assert_eq!(contents, ["seeded", "live"]);
}

/// Writers racing on one record apply in the same order on both sides: 16 tasks replace one
/// session's data at once, in `DualWrite` and then in `ReadNew`, and both sides end up holding
/// the same session. (Without the record locks the sides diverge in most runs when one side
/// is PostgreSQL, whose round trips let the tasks overtake each other between the sides.)
pub async fn racing_writers_of_one_record_agree(
    old: Arc<dyn SessionStore>,
    new: Arc<dyn SessionStore>,
) {
    let store = MigratingSessionStore::new(old.clone(), new.clone());
    store
        .create(Some("raced"), Duration::hours(1), json!(null))
        .await
        .unwrap();
    for phase in [MigrationPhase::DualWrite, MigrationPhase::ReadNew] {
        store.migration().set_phase(phase).unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0..25 {
                        let data = json!({ "task": task, "n": n });
                        store.update_data("raced", data).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let on_old = old.get("raced").await.unwrap().unwrap();
        assert_eq!(new.get("raced").await.unwrap(), Some(on_old), "{phase:?}");
    }
    let old_print = fingerprint(&*old, 10).await.unwrap();
    assert_eq!(fingerprint(&*new, 10).await.unwrap(), old_print);
}

/// Puts and releases racing on one artifact leave both sides with the same reference count:
/// 8 tasks each put the content (whole or streamed) and release it again, 10 times, in
/// `DualWrite` and then in `ReadNew`, over one reference held throughout; then the last
/// reference is released and the artifact is gone from both sides.
pub async fn racing_artifact_references_agree(
    old: Arc<dyn ArtifactStore>,
    new: Arc<dyn ArtifactStore>,
) {
    let store = MigratingArtifactStore::new(old.clone(), new.clone());
    let content = Bytes::from_static(b"raced artifact");
    let held = store
        .put(content.clone(), PutOptions::default())
        .await
        .unwrap();
    for phase in [MigrationPhase::DualWrite, MigrationPhase::ReadNew] {
        store.migration().set_phase(phase).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let (store, content) = (store.clone(), content.clone());
                tokio::spawn(async move {
                    for n in 0..10 {
                        let stored = if (task + n) % 2 == 0 {
                            let pieces = vec![Ok(content.clone())];
                            store
                                .put_stream(
                                    futures::stream::iter(pieces).boxed(),
                                    PutOptions::default(),
                                )
                                .await
                                .unwrap()
                        } else {
                            store
                                .put(content.clone(), PutOptions::default())
                                .await
                                .unwrap()
                        };
                        assert!(stored.refcount >= 2);
                        assert!(store.release(&stored.hash).await.unwrap() >= 1);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let on_old = old.stat(&held.hash).await.unwrap().unwrap();
        assert_eq!(on_old.refcount, 1, "{phase:?}");
        assert_eq!(
            new.stat(&held.hash).await.unwrap(),
            Some(on_old),
            "{phase:?}"
        );
    }
    let old_print = fingerprint(&*old, 10).await.unwrap();
    assert_eq!(fingerprint(&*new, 10).await.unwrap(), old_print);
    assert_eq!(store.release(&held.hash).await.unwrap(), 0);
    assert!(!old.exists(&held.hash).await.unwrap());
    assert!(!new.exists(&held.hash).await.unwrap());
}
