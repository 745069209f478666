//! `cairn demo`: one agent session through all ten component stores.
//!
//! Every run uses ids derived from the current time, so the demo runs again on the data an
//! earlier run left behind; the procedure counters and agent-state versions it reuses grow
//! from run to run.

use std::time::Duration as StdDuration;

use cairn::stores::episodic::{Role, Turn, TurnPage};
use cairn::stores::event_log::{Event, EventQuery, TypePattern};
use cairn::stores::hooks::HookExecution;
use cairn::stores::workflow::{Transition, WorkflowStatus};
use cairn::stores::{
    AsOf, EntityInput, Metric, Procedure, PutOptions, RelationshipInput, SearchRequest,
    TraverseRequest,
};
use cairn::{Bytes, Component, Error, Result, Storage, StorageConfig, TenantId, TenantStorage};
use clap::Args;
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};

use crate::steps::step;

/// Options of `cairn demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Tenant the demo writes as.
    #[arg(long, default_value = "demo")]
    tenant: String,

    /// Time to live of the demo session, in milliseconds; the demo waits it out to show the
    /// session expire.
    #[arg(long, default_value_t = 600, value_name = "MS")]
    session_ttl_ms: u64,
}

/// Runs the demo on the backends `config` selects.
pub(crate) async fn run(config: &StorageConfig, args: &DemoArgs) -> Result<()> {
    let tenant = TenantId::new(args.tenant.as_str())?;
    let storage = Storage::open(config).await?;
    print_placement(config, &storage);
    let store = storage.tenant(&tenant);
    let run = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    println!("\nagent session run-{run} as tenant {tenant}:");

    step("conversation", conversation(&store, run)).await?;
    step("facts over time", facts_over_time(&store, run)).await?;
    step("similarity search", similarity_search(&store, run)).await?;
    step("procedure outcomes", procedures(&store)).await?;
    step("agent state snapshot", agent_state(&store)).await?;
    step("workflow run", workflow(&store, run)).await?;
    let ttl = StdDuration::from_millis(args.session_ttl_ms);
    step("session that expires", session(&store, run, ttl)).await?;
    step("artifact stored twice", artifact(&store, run)).await?;
    step("events", events(&store, run)).await?;
    step("hook records", hooks(&store, run)).await?;
    println!("\ndone");
    Ok(())
}

fn print_placement(config: &StorageConfig, storage: &Storage) {
    println!("cairn demo — data directory {}", config.path.display());
    for component in Component::ALL {
        println!(
            "  {:<18} on {}",
            component.name(),
            storage.backend_choice(component)
        );
    }
}

fn unexpected(what: &str) -> Error {
    Error::new(
        cairn::ErrorKind::Backend,
        format!("demo check failed: {what}"),
    )
}

async fn conversation(store: &TenantStorage, run: i128) -> Result<String> {
    let episodic = store.episodic();
    let session = format!("chat-{run}");
    let turns = [
        (Role::User, "What did we decide about the storage layer?"),
        (Role::Assistant, "Let me check the design notes."),
        (
            Role::Tool,
            "design.md: one trait, three backends, ten stores",
        ),
        (
            Role::Assistant,
            "One trait, three backends and ten component stores.",
        ),
    ];
    for (role, content) in turns {
        episodic.append(&session, Turn::new(role, content)).await?;
    }
    let read = episodic.read(&session, TurnPage::first(10)).await?;
    let tool_turns = episodic
        .by_role(&session, Role::Tool, TurnPage::first(10))
        .await?;
    if read.len() != turns.len() || tool_turns.len() != 1 {
        return Err(unexpected("turns did not read back"));
    }
    Ok(format!(
        "{} turns appended and read back in order (seq {}..{}), {} tool turn",
        read.len(),
        read[0].seq,
        read[read.len() - 1].seq,
        tool_turns.len()
    ))
}

async fn facts_over_time(store: &TenantStorage, run: i128) -> Result<String> {
    let graph = store.graph();
    let user = format!("user-{run}");
    let project = format!("project-{run}");
    let mut lisbon = EntityInput::new(&user, "person", "Ada");
    lisbon.properties = object(json!({ "city": "Lisbon" }));
    lisbon.valid_from = Some(OffsetDateTime::now_utc() - Duration::days(30));
    graph.upsert_entity(lisbon).await?;
    graph
        .upsert_entity(EntityInput::new(&project, "project", "Cairn"))
        .await?;
    graph
        .upsert_relationship(RelationshipInput::new(
            format!("works-on-{run}"),
            &user,
            "works_on",
            &project,
        ))
        .await?;
    let before_move = OffsetDateTime::now_utc();
    let mut porto = EntityInput::new(&user, "person", "Ada");
    porto.properties = object(json!({ "city": "Porto" }));
    graph.upsert_entity(porto).await?;

    let now = graph
        .get_entity(&user)
        .await?
        .ok_or_else(|| unexpected("entity missing"))?;
    let as_known_before = graph
        .get_entity_as_of(
            &user,
            AsOf {
                valid_at: before_move,
                known_at: before_move,
            },
        )
        .await?
        .ok_or_else(|| unexpected("as-of read found nothing"))?;
    let history = graph.entity_history(&user).await?;
    let reachable = graph.traverse(&user, TraverseRequest::outgoing(2)).await?;
    Ok(format!(
        "city now {}, as known before the move {}; {} versions kept; {} entity reachable",
        now.properties["city"],
        as_known_before.properties["city"],
        history.len(),
        reachable.len()
    ))
}

async fn similarity_search(store: &TenantStorage, run: i128) -> Result<String> {
    let vectors = store.vectors();
    let collection = "demo-notes";
    vectors
        .create_collection(collection, 4, Metric::Cosine)
        .await?;
    let notes = [
        ("storage", [0.9, 0.1, 0.0, 0.1]),
        ("postgres", [0.8, 0.3, 0.1, 0.0]),
        ("cooking", [0.0, 0.1, 0.9, 0.2]),
        ("travel", [0.1, 0.0, 0.2, 0.9]),
    ];
    for (topic, vector) in notes {
        let metadata = object(json!({ "run": run.to_string(), "topic": topic }));
        vectors
            .upsert(
                collection,
                &format!("{topic}-{run}"),
                vector.to_vec(),
                metadata,
            )
            .await?;
    }
    let mut request = SearchRequest::new(vec![1.0, 0.2, 0.0, 0.0], 2);
    request.filter = object(json!({ "run": run.to_string() }));
    let hits = vectors.search(collection, request).await?;
    let found: Vec<String> = hits
        .iter()
        .map(|h| format!("{} ({:.3})", h.metadata["topic"], h.score))
        .collect();
    Ok(format!(
        "top 2 of {} notes: {}",
        notes.len(),
        found.join(", ")
    ))
}

async fn procedures(store: &TenantStorage) -> Result<String> {
    let procedural = store.procedural();
    for (id, name) in [
        ("summarize-thread", "Summarize a thread"),
        ("search-web", "Search the web"),
    ] {
        if procedural.get(id).await?.is_none() {
            procedural
                .upsert_procedure(Procedure {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    category: "research".to_owned(),
                    description: name.to_owned(),
                    content: json!({ "steps": ["plan", "act", "check"] }),
                    metadata: Map::new(),
                })
                .await?;
        }
    }
    for success in [true, true, false] {
        procedural
            .record_outcome("summarize-thread", success)
            .await?;
    }
    procedural.record_outcome("search-web", true).await?;
    let best = procedural
        .top_by_success_rate(Some("research"), 1, 1)
        .await?;
    let best = best
        .first()
        .ok_or_else(|| unexpected("no ranked procedure"))?;
    Ok(format!(
        "best by success rate: {} ({} ok / {} failed over all runs)",
        best.procedure.id, best.stats.successes, best.stats.failures
    ))
}

async fn agent_state(store: &TenantStorage) -> Result<String> {
    let states = store.agent_state();
    let agent = "planner";
    let latest = states.load_latest(agent).await?;
    let version = latest.as_ref().map(|s| s.info.version);
    let state = json!({ "goal": "answer the user", "plan_step": version.unwrap_or(0) + 1 });
    let saved = states.save(agent, &state, version).await?;
    let loaded = states
        .load_latest(agent)
        .await?
        .ok_or_else(|| unexpected("snapshot missing"))?;
    if loaded.state != state {
        return Err(unexpected("snapshot changed"));
    }
    Ok(format!(
        "saved version {} (sha256 {}…), loaded with checksum verified",
        saved.version,
        &saved.checksum[..12]
    ))
}

async fn workflow(store: &TenantStorage, run: i128) -> Result<String> {
    let workflows = store.workflows();
    let id = format!("ingest-{run}");
    workflows
        .create(Some(&id), "ingest documents", json!({ "documents": 3 }))
        .await?;
    workflows.transition(&id, Transition::Start).await?;
    tokio::time::sleep(StdDuration::from_millis(5)).await;
    let done = workflows
        .transition(
            &id,
            Transition::Complete {
                output: json!({ "indexed": 3 }),
            },
        )
        .await?;
    let illegal = workflows.transition(&id, Transition::Start).await;
    if illegal.is_ok() {
        return Err(unexpected("a completed workflow restarted"));
    }
    let completed = workflows
        .list_by_status(WorkflowStatus::Completed, None, 1000)
        .await?;
    let ms = done.duration().map_or(0.0, |d| d.as_seconds_f64() * 1000.0);
    Ok(format!(
        "pending → running → completed in {ms:.1} ms; restart refused; {} completed runs listed",
        completed.len()
    ))
}

async fn session(store: &TenantStorage, run: i128, ttl: StdDuration) -> Result<String> {
    let sessions = store.sessions();
    let id = format!("session-{run}");
    let ttl =
        Duration::try_from(ttl).map_err(|e| Error::invalid_input("TTL too long").with_source(e))?;
    sessions
        .create(Some(&id), ttl, json!({ "user": "ada", "channel": "cli" }))
        .await?;
    let alive = sessions.get(&id).await?.is_some();
    tokio::time::sleep(ttl.unsigned_abs() + StdDuration::from_millis(100)).await;
    let after = sessions.get(&id).await?.is_some();
    let purged = sessions.purge_expired().await?;
    if !alive || after {
        return Err(unexpected("session expiry"));
    }
    Ok(format!(
        "visible, then invisible after its {} ms TTL; purge_expired removed {purged}",
        ttl.whole_milliseconds()
    ))
}

async fn artifact(store: &TenantStorage, run: i128) -> Result<String> {
    let artifacts = store.artifacts();
    let content = Bytes::from(format!(
        "# Report {run}\n\nThe agent indexed 3 documents.\n"
    ));
    let options = PutOptions::with_content_type("text/markdown");
    let first = artifacts.put(content.clone(), options.clone()).await?;
    let second = artifacts.put(content.clone(), options).await?;
    let read = artifacts
        .get(&second.hash)
        .await?
        .ok_or_else(|| unexpected("artifact missing"))?;
    if first.hash != second.hash || read.content != content {
        return Err(unexpected("artifact not deduplicated"));
    }
    Ok(format!(
        "blake3 {}…, stored once, refcount {}, hash re-verified on read",
        &second.hash[..12],
        second.refcount
    ))
}

async fn events(store: &TenantStorage, run: i128) -> Result<String> {
    let log = store.events();
    let correlation = format!("run-{run}");
    let batch = ["agent.turn.started", "tool.call", "agent.turn.finished"]
        .map(|t| Event::new(t, json!({ "run": run.to_string() })).correlated(&correlation));
    log.append_batch(batch.to_vec()).await?;
    let query = EventQuery {
        event_type: Some(TypePattern::parse("agent.*")?),
        correlation_id: Some(correlation),
        ..EventQuery::default()
    };
    let agent_events = log.query(&query).await?;
    let types: Vec<&str> = agent_events.iter().map(|e| e.event_type.as_str()).collect();
    Ok(format!(
        "3 appended in one batch; agent.* → {}",
        types.join(", ")
    ))
}

async fn hooks(store: &TenantStorage, run: i128) -> Result<String> {
    let history = store.hooks();
    let hook = format!("pre_tool_use-{run}");
    for (ms, error) in [(12, None), (20, None), (35, Some("timeout"))] {
        history
            .record(HookExecution {
                hook_name: hook.clone(),
                input: json!({ "tool": "search" }),
                output: error.is_none().then(|| json!({ "allow": true })),
                error: error.map(str::to_owned),
                duration: StdDuration::from_millis(ms),
                at: None,
            })
            .await?;
    }
    let stats = history.stats(&hook, None, None).await?;
    Ok(format!(
        "{} executions, {} failed, mean {:.1} ms, p95 {:.1} ms",
        stats.count,
        stats.failures,
        stats.mean_ms.unwrap_or_default(),
        stats.p95_ms.unwrap_or_default()
    ))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
