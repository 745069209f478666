//! Cases for [`PortableStore`]: a component's records copied from one implementation to
//! another (any two: generic on memory, generic on sled, native PostgreSQL) must answer every
//! query as the original, with equal fingerprints, and a second copy must change nothing.
//!
//! Each case takes a *source* and a *target* store of one component, each as the component
//! trait and as [`PortableStore`] (the same object twice), on fresh tenants.

use std::sync::Arc;

use cairn_core::{Bytes, ErrorKind};
use cairn_stores::SessionStore;
use cairn_stores::agent_state::{AgentStateStore, SnapshotInfo};
use cairn_stores::artifacts::{ArtifactInfo, ArtifactStore, PutOptions};
use cairn_stores::episodic::{EpisodicStore, Role, Turn, TurnPage, TurnRecord};
use cairn_stores::event_log::{Event, EventLogStore, EventQuery, EventRecord, TypePattern};
use cairn_stores::hooks::{HookExecution, HookHistoryStore, HookQuery, HookRecord};
use cairn_stores::paging::PageRequest;
use cairn_stores::portable::{CopyStep, PortableStore, copy, encode_portable, fingerprint};
use cairn_stores::procedural::{ProceduralStore, Procedure, StoredProcedure};
use cairn_stores::vectors::{
    CollectionInfo, Metric, SearchHit, SearchRequest, VectorRecord, VectorStore,
    encode_vector_record,
};
use cairn_stores::workflow::{Transition, Workflow, WorkflowStatus, WorkflowStore};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A store of a component as its trait and as [`PortableStore`].
pub type Portable<S> = (Arc<S>, Arc<dyn PortableStore>);

/// Copies `from` into `to` in pages of 2 (so paging and checkpoints are exercised), checks
/// the checkpoints and the fingerprints, copies again and checks nothing changed.
pub async fn copy_and_compare(from: &dyn PortableStore, to: &dyn PortableStore) {
    let mut checkpoints = Vec::new();
    let mut so_far = 0;
    let copied = copy(from, to, None, 2, |step: CopyStep| {
        so_far += step.records;
        if let Some(cursor) = step.next {
            checkpoints.push((cursor, so_far));
        }
        Ok(())
    })
    .await
    .unwrap();
    let source = fingerprint(from, 3).await.unwrap();
    assert_eq!(copied, source.records);
    assert!(
        checkpoints.windows(2).all(|w| w[0].1 < w[1].1),
        "checkpoints advance: {checkpoints:?}"
    );
    assert_eq!(
        fingerprint(to, 5).await.unwrap(),
        source,
        "copied records differ"
    );
    // Resuming from the last checkpoint copies only what follows it.
    if let Some((cursor, done)) = checkpoints.last().cloned() {
        let rest = copy(from, to, Some(cursor), 2, |_| Ok(())).await.unwrap();
        assert_eq!(done + rest, source.records);
    }
    copy(from, to, None, 7, |_| Ok(())).await.unwrap();
    assert_eq!(
        fingerprint(to, 4).await.unwrap(),
        source,
        "a second copy changed data"
    );
}

/// Sessions: live and expired sessions, data, linked artifacts and exact times survive a copy;
/// the copy lists, reads and hides expired sessions as the source does.
pub async fn sessions_copy_faithfully(
    source: Portable<dyn SessionStore>,
    target: Portable<dyn SessionStore>,
) {
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let hash = blake3::hash(b"a").to_hex().to_string();
    for n in 0..5 {
        from.create(Some(&format!("s{n}")), Duration::hours(1), json!({"n": n}))
            .await
            .unwrap();
    }
    from.link_artifact("s1", &hash).await.unwrap();
    from.create(Some("expired"), Duration::milliseconds(1), json!("gone"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    let listed =
        |store: Arc<dyn SessionStore>| async move { store.list(None, 100).await.unwrap().items };
    let expected = listed(Arc::clone(&from)).await;
    assert_eq!(expected.len(), 5);
    assert_eq!(listed(Arc::clone(&to)).await, expected);
    assert_eq!(to.get("s1").await.unwrap().unwrap().artifacts, [hash]);
    assert_eq!(to.get("expired").await.unwrap(), None);
    assert_eq!(
        to.purge_expired().await.unwrap(),
        1,
        "the expired session was copied"
    );
}

/// Imports `records` into `store` expecting an error of `kind`, and checks that nothing of
/// the call was written (`valid`, a good record of the same call, stays absent).
async fn refused(store: &dyn PortableStore, valid: Bytes, bad: Bytes, kind: ErrorKind) {
    let before = fingerprint(store, 10).await.unwrap();
    let err = store.import(&[valid, bad]).await.unwrap_err();
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(
        fingerprint(store, 10).await.unwrap(),
        before,
        "a refused import wrote something"
    );
}

/// Every turn of `session`, in `seq` order.
async fn turns(store: &Arc<dyn EpisodicStore>, session: &str) -> Vec<TurnRecord> {
    store.read(session, TurnPage::first(1_000)).await.unwrap()
}

/// Episodic memory: every turn of every session (ids with `/` and `%`, every role, empty and
/// non-ASCII content, nested metadata, nanosecond times before 1970 and now) survives a copy;
/// a deleted session stays deleted; the copy reads, ranges, filters by role, counts and lists
/// sessions as the source does, and appends continue each session's numbering.
pub async fn episodic_copy_faithfully(
    source: Portable<dyn EpisodicStore>,
    target: Portable<dyn EpisodicStore>,
) {
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let t0 = datetime!(1969-12-31 23:59:59.123456789 UTC);
    let sessions = ["s/1", "a%2Fb", "plain", "ünï"];
    for (i, session) in sessions.iter().enumerate() {
        for (n, role) in Role::ALL.into_iter().enumerate() {
            let turn = Turn::new(
                role,
                if n == 2 {
                    String::new()
                } else {
                    format!("{session} ✓ {n}")
                },
            )
            .with_metadata("n", json!(n))
            .with_metadata(
                "nested",
                json!({"list": [1, 2.5, null, "x"], "flag": i % 2 == 0}),
            );
            let turn = if n == 3 {
                turn
            } else {
                turn.at(t0 + Duration::nanoseconds(i64::try_from(i * 10 + n).unwrap() * 1_001))
            };
            from.append(session, turn).await.unwrap();
        }
    }
    from.append("gone", Turn::new(Role::User, "deleted"))
        .await
        .unwrap();
    from.delete_session("gone").await.unwrap();
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    let listed = |store: Arc<dyn EpisodicStore>| async move {
        store.list_sessions(None, 100).await.unwrap()
    };
    let expected = listed(Arc::clone(&from)).await;
    assert_eq!(expected.len(), sessions.len());
    assert_eq!(listed(Arc::clone(&to)).await, expected);
    for session in sessions {
        let original = turns(&from, session).await;
        assert_eq!(original.len(), 4);
        assert_eq!(turns(&to, session).await, original);
        assert_eq!(to.count(session).await.unwrap(), 4);
        let (start, end) = (t0, t0 + Duration::seconds(1));
        assert_eq!(
            to.read_range(session, start, end, 100).await.unwrap(),
            from.read_range(session, start, end, 100).await.unwrap()
        );
        for role in Role::ALL {
            assert_eq!(
                to.by_role(session, role, TurnPage::first(10))
                    .await
                    .unwrap(),
                from.by_role(session, role, TurnPage::first(10))
                    .await
                    .unwrap()
            );
        }
    }
    assert_eq!(to.count("gone").await.unwrap(), 0);
    let next = to
        .append("s/1", Turn::new(Role::User, "after"))
        .await
        .unwrap();
    assert_eq!(next.seq, 5, "appends continue the copied numbering");

    let original = turns(&from, "plain").await.remove(0);
    let valid = encode_portable(
        &TurnRecord {
            seq: 9,
            ..original.clone()
        },
        &[],
    )
    .unwrap();
    for bad in [
        TurnRecord {
            seq: 0,
            ..original.clone()
        },
        TurnRecord {
            session_id: String::new(),
            ..original.clone()
        },
        TurnRecord {
            at: datetime!(2026-01-01 0:00 +1),
            ..original.clone()
        },
    ] {
        let bad = encode_portable(&bad, &[]).unwrap();
        refused(
            to_portable.as_ref(),
            valid.clone(),
            bad,
            ErrorKind::InvalidInput,
        )
        .await;
    }
}

/// Agent state: every version of every agent (pruned and deleted agents included as they
/// are) survives a copy with its exact payload bytes, checksum, size and save time; the copy
/// lists, loads and verifies every version as the source does, keeps the latest pointer, and
/// saves continue each agent's numbering with optimistic concurrency intact.
pub async fn agent_state_copy_faithfully(
    source: Portable<dyn AgentStateStore>,
    target: Portable<dyn AgentStateStore>,
) {
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let agents = ["a", "b/c", "ünï%"];
    for (i, agent) in agents.iter().enumerate() {
        for step in 1..=4 {
            let state = json!({
                "step": step, "agent": agent, "plan": ["look", "act"],
                "memo": {"k": null, "x": 1.5, "big": u64::MAX, "neg": -7}, "i": i,
            });
            from.save(agent, &state, None).await.unwrap();
        }
    }
    from.prune("a", 2).await.unwrap();
    from.save("gone", &json!(1), None).await.unwrap();
    from.delete_agent("gone").await.unwrap();
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    for agent in agents {
        let versions = from.list_versions(agent).await.unwrap();
        assert!(!versions.is_empty());
        assert_eq!(to.list_versions(agent).await.unwrap(), versions);
        for info in &versions {
            let loaded = to.load_version(agent, info.version).await.unwrap().unwrap();
            assert_eq!(
                Some(loaded),
                from.load_version(agent, info.version).await.unwrap()
            );
        }
        assert_eq!(
            to.load_latest(agent).await.unwrap(),
            from.load_latest(agent).await.unwrap()
        );
    }
    assert_eq!(
        to.list_versions("a")
            .await
            .unwrap()
            .iter()
            .map(|i| i.version)
            .collect::<Vec<_>>(),
        [3, 4]
    );
    assert!(to.list_versions("gone").await.unwrap().is_empty());
    let stale = to.save("a", &json!("late"), Some(3)).await.unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    let next = to.save("a", &json!("next"), Some(4)).await.unwrap();
    assert_eq!(next.version, 5, "saves continue the copied numbering");

    let info = from.list_versions("b/c").await.unwrap().remove(0);
    let payload = br#"{"other":true}"#;
    let valid = encode_portable(
        &SnapshotInfo {
            agent_id: "new".into(),
            checksum: cairn_stores::agent_state::sha256_hex(payload),
            size: payload.len() as u64,
            ..info.clone()
        },
        payload,
    )
    .unwrap();
    let good_payload = to.load_version("b/c", 1).await.unwrap().unwrap();
    let good_bytes = serde_json::to_vec(&good_payload.state).unwrap();
    for (bad, kind) in [
        (
            SnapshotInfo {
                version: 0,
                ..info.clone()
            },
            ErrorKind::InvalidInput,
        ),
        (
            SnapshotInfo {
                agent_id: String::new(),
                ..info.clone()
            },
            ErrorKind::InvalidInput,
        ),
        (
            SnapshotInfo {
                checksum: "0".repeat(64),
                ..info.clone()
            },
            ErrorKind::Corruption,
        ),
    ] {
        let bad = encode_portable(&bad, &good_bytes).unwrap();
        refused(to_portable.as_ref(), valid.clone(), bad, kind).await;
    }
}

/// Every event `store` holds, in order, paged with cursors.
async fn all_events(store: &Arc<dyn EventLogStore>, query: EventQuery) -> Vec<EventRecord> {
    let mut out: Vec<EventRecord> = Vec::new();
    loop {
        let page = store
            .query(&EventQuery {
                limit: 3,
                after: out.last().map(Into::into),
                ..query.clone()
            })
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The event log: every event (ids kept; nanosecond, tied, back-dated and far-future times;
/// dotted types; correlated and not) survives a copy; the copy answers queries by time, exact
/// type, `prefix.*` pattern and correlation id, and retention, as the source does.
pub async fn event_log_copy_faithfully(
    source: Portable<dyn EventLogStore>,
    target: Portable<dyn EventLogStore>,
) {
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let t0 = datetime!(2026-05-10 08:00:00.000000001 UTC);
    let types = ["tool.call.started", "tool.call", "tool", "tools.x", "run"];
    let mut events = Vec::new();
    for (n, event_type) in types.iter().cycle().take(15).enumerate() {
        let n = i64::try_from(n).unwrap();
        let event = Event::new(*event_type, json!({"n": n, "deep": {"list": [n, null]}}))
            .at(t0 + Duration::nanoseconds(n / 3 * 1_001));
        events.push(if n % 2 == 0 {
            event.correlated(format!("run/{}", n % 4))
        } else {
            event
        });
    }
    from.append_batch(events).await.unwrap();
    for at in [
        datetime!(1999-01-01 0:00 UTC),
        datetime!(2100-12-31 23:59:59.999999999 UTC),
    ] {
        from.append(
            Event::new("tool.old", json!("edge"))
                .at(at)
                .correlated("run/0"),
        )
        .await
        .unwrap();
    }
    from.append(Event::new("run", json!(null))).await.unwrap();
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    let everything = all_events(&from, EventQuery::default()).await;
    assert_eq!(everything.len(), 18);
    let queries = [
        EventQuery::default(),
        EventQuery {
            event_type: Some(TypePattern::parse("tool.call").unwrap()),
            ..EventQuery::default()
        },
        EventQuery {
            event_type: Some(TypePattern::parse("tool.*").unwrap()),
            ..EventQuery::default()
        },
        EventQuery {
            correlation_id: Some("run/0".into()),
            ..EventQuery::default()
        },
        EventQuery {
            correlation_id: Some("run/2".into()),
            event_type: Some(TypePattern::parse("tool.*").unwrap()),
            ..EventQuery::default()
        },
        EventQuery {
            from: Some(t0 + Duration::nanoseconds(1_001)),
            to: Some(t0 + Duration::nanoseconds(3_003)),
            ..EventQuery::default()
        },
    ];
    for query in queries {
        let expected = all_events(&from, query.clone()).await;
        assert!(!expected.is_empty(), "{query:?}");
        assert_eq!(all_events(&to, query.clone()).await, expected, "{query:?}");
    }
    let cutoff = datetime!(2000-01-01 0:00 UTC);
    assert_eq!(to.drop_before(cutoff).await.unwrap(), 1);
    assert_eq!(from.drop_before(cutoff).await.unwrap(), 1);

    let original = everything[1].clone();
    let moved = EventRecord {
        at: original.at + Duration::seconds(1),
        ..original.clone()
    };
    let valid = encode_portable(&moved, &[]).unwrap();
    for bad in [
        EventRecord {
            event_type: "a..b".into(),
            ..original.clone()
        },
        EventRecord {
            correlation_id: Some(String::new()),
            ..original.clone()
        },
        EventRecord {
            at: datetime!(2026-01-01 0:00 -5),
            ..original.clone()
        },
    ] {
        let bad = encode_portable(&bad, &[]).unwrap();
        refused(
            to_portable.as_ref(),
            valid.clone(),
            bad,
            ErrorKind::InvalidInput,
        )
        .await;
    }
}

/// Every hook record matching `query`, in order, paged with cursors.
async fn all_runs(store: &Arc<dyn HookHistoryStore>, query: HookQuery) -> Vec<HookRecord> {
    let mut out: Vec<HookRecord> = Vec::new();
    loop {
        let page = store
            .query(&HookQuery {
                limit: 4,
                after: out.last().map(Into::into),
                ..query.clone()
            })
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Hook history: every execution (ids kept; outputs, errors, nanosecond durations and times)
/// survives a copy; the copy answers queries per hook and time and the statistics exactly as
/// the source does.
pub async fn hooks_copy_faithfully(
    source: Portable<dyn HookHistoryStore>,
    target: Portable<dyn HookHistoryStore>,
) {
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let t0 = datetime!(2026-07-01 00:00:00.000000007 UTC);
    let hooks = ["lint", "pre/commit", "ünï"];
    for n in 0..15u32 {
        let hook = hooks[n as usize % hooks.len()];
        let failed = n % 4 == 1;
        from.record(HookExecution {
            hook_name: hook.into(),
            input: json!({"n": n, "args": ["--fix", null]}),
            output: (!failed && n % 5 != 0).then(|| json!({"ok": n, "x": 0.25})),
            error: failed.then(|| format!("failure {n}")),
            duration: std::time::Duration::new(u64::from(n % 3), n * 1_000_003),
            at: Some(t0 + Duration::nanoseconds(i64::from(n / 2) * 999)),
        })
        .await
        .unwrap();
    }
    from.record(HookExecution {
        hook_name: "lint".into(),
        input: json!(null),
        output: None,
        error: None,
        duration: std::time::Duration::ZERO,
        at: Some(datetime!(1990-01-01 0:00 UTC)),
    })
    .await
    .unwrap();
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    let window = (
        Some(t0 + Duration::nanoseconds(999)),
        Some(t0 + Duration::nanoseconds(4 * 999)),
    );
    let mut queries = vec![
        HookQuery::default(),
        HookQuery {
            from: window.0,
            to: window.1,
            ..HookQuery::default()
        },
    ];
    for hook in hooks {
        queries.push(HookQuery {
            hook_name: Some(hook.into()),
            ..HookQuery::default()
        });
        queries.push(HookQuery {
            hook_name: Some(hook.into()),
            from: window.0,
            to: window.1,
            ..HookQuery::default()
        });
        for (start, end) in [(None, None), window] {
            assert_eq!(
                to.stats(hook, start, end).await.unwrap(),
                from.stats(hook, start, end).await.unwrap(),
                "{hook} {start:?}..{end:?}"
            );
        }
    }
    for query in queries {
        let expected = all_runs(&from, query.clone()).await;
        assert!(!expected.is_empty(), "{query:?}");
        assert_eq!(all_runs(&to, query.clone()).await, expected, "{query:?}");
    }
    let cutoff = datetime!(2000-01-01 0:00 UTC);
    assert_eq!(to.drop_before(cutoff).await.unwrap(), 1);

    let original = all_runs(&from, HookQuery::default()).await.remove(2);
    let valid = encode_portable(
        &HookRecord {
            hook_name: "new".into(),
            at: original.at + Duration::seconds(1),
            ..original.clone()
        },
        &[],
    )
    .unwrap();
    for bad in [
        HookRecord {
            hook_name: String::new(),
            ..original.clone()
        },
        HookRecord {
            hook_name: "a\0b".into(),
            ..original.clone()
        },
        HookRecord {
            at: OffsetDateTime::UNIX_EPOCH.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap()),
            ..original.clone()
        },
    ] {
        let bad = encode_portable(&bad, &[]).unwrap();
        refused(
            to_portable.as_ref(),
            valid.clone(),
            bad,
            ErrorKind::InvalidInput,
        )
        .await;
    }
}

/// Every procedure of `category`, read in pages of 2.
async fn in_category(store: &Arc<dyn ProceduralStore>, category: &str) -> Vec<StoredProcedure> {
    let mut out = Vec::new();
    let mut request = PageRequest::first(2);
    loop {
        let page = store
            .list_by_category(category, request.clone())
            .await
            .unwrap();
        out.extend(page.items);
        match request.next(page.next_after.as_deref()) {
            Some(next) => request = next,
            None => return out,
        }
    }
}

/// Procedural memory: every procedure (ids with `/` and `%`, non-ASCII text, nested content
/// and metadata, one moved to another category, used and unused ones) survives a copy with
/// its counters and exact times; the copy reads, lists by category and ranks (by success rate
/// and by frequency, overall and per category) as the source does, and counts on from the
/// copied counters. A re-import that changes a category moves the procedure in the listings.
pub async fn procedural_copy_faithfully(
    source: Portable<dyn ProceduralStore>,
    target: Portable<dyn ProceduralStore>,
) {
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let categories = ["build", "a/b%c", "ünï"];
    let mut ids = Vec::new();
    for n in 0..12u32 {
        let id = match n % 4 {
            0 => format!("p{n}"),
            1 => format!("dir/p{n}"),
            2 => format!("100%/p{n}"),
            _ => format!("ß{n}"),
        };
        let category = categories[n as usize % categories.len()];
        let mut metadata = serde_json::Map::new();
        metadata.insert("n".into(), json!(n));
        metadata.insert("tags".into(), json!(["x", {"deep": [1.5, null]}]));
        from.upsert_procedure(Procedure {
            id: id.clone(),
            name: format!("procedure {n}"),
            category: category.into(),
            description: if n % 2 == 0 {
                String::new()
            } else {
                "dö it".into()
            },
            content: json!({"steps": [n, "run", {"if": n % 3 == 0}]}),
            metadata,
        })
        .await
        .unwrap();
        // Uses 0 to 5, with varied rates and ties.
        for k in 0..(n % 6) {
            from.record_outcome(&id, (n + k) % 3 != 0).await.unwrap();
        }
        ids.push(id);
    }
    // Moving one keeps its counters.
    let moved = from.get(&ids[4]).await.unwrap().unwrap();
    from.upsert_procedure(Procedure {
        category: "moved".into(),
        ..moved.procedure.clone()
    })
    .await
    .unwrap();
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    for id in &ids {
        assert_eq!(
            to.get(id).await.unwrap(),
            from.get(id).await.unwrap(),
            "{id}"
        );
    }
    for category in categories.into_iter().chain(["moved"]) {
        let expected = in_category(&from, category).await;
        assert!(!expected.is_empty(), "{category}");
        assert_eq!(in_category(&to, category).await, expected, "{category}");
        for (limit, min_uses) in [(3, 0), (10, 2), (10, 5)] {
            assert_eq!(
                to.top_by_success_rate(Some(category), limit, min_uses)
                    .await
                    .unwrap(),
                from.top_by_success_rate(Some(category), limit, min_uses)
                    .await
                    .unwrap(),
                "{category} {limit} {min_uses}"
            );
        }
        assert_eq!(
            to.top_by_frequency(Some(category), 10).await.unwrap(),
            from.top_by_frequency(Some(category), 10).await.unwrap(),
            "{category}"
        );
    }
    for (limit, min_uses) in [(1, 0), (5, 1), (100, 3)] {
        let expected = from
            .top_by_success_rate(None, limit, min_uses)
            .await
            .unwrap();
        assert!(!expected.is_empty());
        assert_eq!(
            to.top_by_success_rate(None, limit, min_uses).await.unwrap(),
            expected,
            "{limit} {min_uses}"
        );
    }
    assert_eq!(
        to.top_by_frequency(None, 100).await.unwrap(),
        from.top_by_frequency(None, 100).await.unwrap()
    );
    let before = from.get(&ids[5]).await.unwrap().unwrap().stats;
    let after = to.record_outcome(&ids[5], false).await.unwrap();
    assert_eq!(
        (after.successes, after.failures),
        (before.successes, before.failures + 1)
    );

    // A re-import moving a procedure to another category moves its listing entry.
    let original = from.get(&ids[0]).await.unwrap().unwrap();
    let recategorised = StoredProcedure {
        procedure: Procedure {
            category: "elsewhere".into(),
            ..original.procedure.clone()
        },
        ..original.clone()
    };
    to_portable
        .import(&[encode_portable(&recategorised, &[]).unwrap()])
        .await
        .unwrap();
    assert_eq!(in_category(&to, "elsewhere").await, vec![recategorised]);
    assert!(
        !in_category(&to, categories[0])
            .await
            .iter()
            .any(|p| p.procedure.id == ids[0])
    );

    let valid = encode_portable(
        &StoredProcedure {
            procedure: Procedure {
                id: "new".into(),
                ..original.procedure.clone()
            },
            ..original.clone()
        },
        &[],
    )
    .unwrap();
    let with = |edit: fn(&mut StoredProcedure)| {
        let mut bad = original.clone();
        edit(&mut bad);
        bad
    };
    for bad in [
        with(|p| p.procedure.name = String::new()),
        with(|p| p.procedure.category = String::new()),
        with(|p| p.procedure.id = "a\0b".into()),
        with(|p| p.stats.successes = u64::MAX),
        with(|p| p.stats.failures = i64::MAX as u64 + 1),
        with(|p| {
            p.created_at = p
                .created_at
                .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        }),
        with(|p| p.stats.last_used_at = Some(datetime!(2026-01-01 0:00 -1))),
    ] {
        let bad = encode_portable(&bad, &[]).unwrap();
        refused(
            to_portable.as_ref(),
            valid.clone(),
            bad,
            ErrorKind::InvalidInput,
        )
        .await;
    }
}

/// Every workflow in `status`, listed in pages of 2.
async fn in_status(store: &Arc<dyn WorkflowStore>, status: WorkflowStatus) -> Vec<Workflow> {
    let mut out: Vec<Workflow> = Vec::new();
    loop {
        let after = out.last().map(|w| w.id.clone());
        let page = store
            .list_by_status(status, after.as_deref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Workflow state: every workflow (generated ids and ids with `/` and `%`, every status, inputs,
/// outputs including JSON `null`, errors, exact times) survives a copy; the copy reads and lists
/// by status as the source does, with the same durations, and its runs move on through the state
/// machine. A re-import that changes a status moves the workflow in the listings.
pub async fn workflow_copy_faithfully(
    source: Portable<dyn WorkflowStore>,
    target: Portable<dyn WorkflowStore>,
) {
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let mut ids = Vec::new();
    for n in 0..15u32 {
        let id = match n % 3 {
            0 => None,
            1 => Some(format!("run/{n}")),
            _ => Some(format!("100%-ü{n}")),
        };
        let created = from
            .create(
                id.as_deref(),
                &format!("flow {}", n % 4),
                json!({"n": n, "x": [0.5, null]}),
            )
            .await
            .unwrap();
        let id = created.id;
        let moves: Vec<Transition> = match n % 6 {
            0 => vec![],
            1 => vec![Transition::Start],
            2 => vec![
                Transition::Start,
                Transition::Complete {
                    output: json!({"ok": n}),
                },
            ],
            3 => vec![
                Transition::Start,
                Transition::Fail {
                    error: format!("failure ü {n}"),
                },
            ],
            4 => vec![Transition::Cancel],
            _ => vec![
                Transition::Start,
                if n % 2 == 0 {
                    Transition::Cancel
                } else {
                    Transition::Complete {
                        output: json!(null),
                    }
                },
            ],
        };
        for step in moves {
            from.transition(&id, step).await.unwrap();
        }
        ids.push(id);
    }
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    for id in &ids {
        let expected = from.get(id).await.unwrap().unwrap();
        let copied = to.get(id).await.unwrap().unwrap();
        assert_eq!(copied.duration(), expected.duration(), "{id}");
        assert_eq!(copied, expected, "{id}");
    }
    for status in WorkflowStatus::ALL {
        let expected = in_status(&from, status).await;
        assert!(!expected.is_empty(), "{status:?}");
        assert_eq!(in_status(&to, status).await, expected, "{status:?}");
    }
    let pending = in_status(&to, WorkflowStatus::Pending).await.remove(0);
    to.transition(&pending.id, Transition::Start).await.unwrap();
    let running = in_status(&from, WorkflowStatus::Running).await.remove(0);
    let done = to
        .transition(
            &running.id,
            Transition::Complete {
                output: json!("late"),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.started_at, running.started_at);
    let failed = in_status(&from, WorkflowStatus::Failed).await.remove(0);
    let err = to
        .transition(&failed.id, Transition::Start)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    // A re-import moving a workflow to another status moves its listing entry.
    let cancelled = Workflow {
        status: WorkflowStatus::Cancelled,
        finished_at: running.started_at,
        ..running.clone()
    };
    to_portable
        .import(&[encode_portable(&cancelled, &[]).unwrap()])
        .await
        .unwrap();
    assert_eq!(to.get(&running.id).await.unwrap(), Some(cancelled.clone()));
    assert!(
        in_status(&to, WorkflowStatus::Cancelled)
            .await
            .contains(&cancelled)
    );
    assert!(
        !in_status(&to, WorkflowStatus::Completed)
            .await
            .iter()
            .any(|w| w.id == running.id)
    );

    let valid = encode_portable(
        &Workflow {
            id: "new".into(),
            ..failed.clone()
        },
        &[],
    )
    .unwrap();
    let with = |edit: fn(&mut Workflow)| {
        let mut bad = failed.clone();
        edit(&mut bad);
        bad
    };
    for bad in [
        with(|w| w.id = String::new()),
        with(|w| w.name = "a\0b".into()),
        with(|w| w.error = None),
        with(|w| w.output = Some(json!(1))),
        with(|w| w.finished_at = None),
        with(|w| w.status = WorkflowStatus::Running),
        with(|w| {
            w.status = WorkflowStatus::Pending;
            w.finished_at = None;
            w.error = None;
        }),
        with(|w| w.started_at = None),
        with(|w| w.created_at = datetime!(2026-01-01 0:00 +1)),
        with(|w| {
            w.finished_at = w
                .finished_at
                .map(|at| at.to_offset(time::UtcOffset::from_hms(-3, 0, 0).unwrap()));
        }),
    ] {
        let bad = encode_portable(&bad, &[]).unwrap();
        refused(
            to_portable.as_ref(),
            valid.clone(),
            bad,
            ErrorKind::InvalidInput,
        )
        .await;
    }
}

/// Every version of every entity and relationship of `store`, as exported.
async fn graph_records(store: &dyn PortableStore) -> Vec<cairn_stores::graph::GraphRecord> {
    use cairn_stores::portable::decode_portable;
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.export_page(after.as_deref(), 3).await.unwrap();
        for record in &page.records {
            out.push(decode_portable(record).unwrap().0);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// `value`, a JSON object, as properties.
fn properties(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Semantic graph: every version of every entity and relationship (updated several times, a
/// type changed, closed ones, a cycle, a self-loop, ids with `/` and `%`, nanosecond times)
/// survives a copy with its exact valid and transaction times, including relationships imported
/// before their endpoint entities; the copy answers current reads, as-of reads on both axes,
/// histories, neighbours and traversals as the source does.
pub async fn graph_copy_faithfully(
    source: Portable<dyn cairn_stores::GraphStore>,
    target: Portable<dyn cairn_stores::GraphStore>,
) {
    use cairn_stores::graph::{
        AsOf, Direction, Entity, EntityInput, GraphRecord, RelationshipInput, TraversalHit,
        TraverseRequest,
    };
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let t0 = datetime!(2001-02-03 04:05:06.123456789 UTC);
    let days = Duration::days;
    let entities = ["alice", "bob", "carol", "a/b%c", "ghost"];
    for (id, entity_type) in entities
        .into_iter()
        .zip(["person", "person", "person", "company", "person"])
    {
        from.upsert_entity(EntityInput {
            properties: properties(json!({"n": 1})),
            valid_from: Some(t0),
            ..EntityInput::new(id, entity_type, id)
        })
        .await
        .unwrap();
    }
    let mut known = vec![OffsetDateTime::now_utc()];
    let rels = [
        ("knows-1", "alice", "knows", "bob"),
        ("knows-2", "bob", "knows", "carol"),
        ("knows-3", "carol", "knows", "alice"),
        ("works/1%", "alice", "works_at", "a/b%c"),
        ("old", "bob", "knows", "ghost"),
        ("self", "carol", "likes", "carol"),
    ];
    for (id, start, relation_type, end) in rels {
        from.upsert_relationship(RelationshipInput {
            properties: properties(json!({"since": 2001})),
            valid_from: Some(t0 + days(1)),
            ..RelationshipInput::new(id, start, relation_type, end)
        })
        .await
        .unwrap();
    }
    known.push(OffsetDateTime::now_utc());
    for n in 2..=4i64 {
        from.upsert_entity(EntityInput {
            properties: properties(json!({"n": n, "deep": {"x": [n, null, "ü"]}})),
            valid_from: Some(t0 + days(n)),
            ..EntityInput::new("alice", "person", format!("Alice {n}"))
        })
        .await
        .unwrap();
        from.upsert_relationship(RelationshipInput {
            properties: properties(json!({"weight": n})),
            valid_from: Some(t0 + days(n)),
            ..RelationshipInput::new("knows-1", "alice", "knows", "bob")
        })
        .await
        .unwrap();
        known.push(OffsetDateTime::now_utc());
    }
    from.upsert_entity(EntityInput {
        valid_from: Some(t0 + days(10)),
        ..EntityInput::new("bob", "robot", "Bob 2")
    })
    .await
    .unwrap();
    from.close_entity("ghost", t0 + days(20)).await.unwrap();
    from.close_relationship("old", t0 + days(15)).await.unwrap();
    from.close_relationship("knows-2", t0 + days(30))
        .await
        .unwrap();
    known.push(OffsetDateTime::now_utc());

    // Relationships arriving before their endpoint entities are accepted.
    let early: Vec<Bytes> = graph_records(from_portable.as_ref())
        .await
        .into_iter()
        .filter(|record| matches!(record, GraphRecord::Relationship(_)))
        .map(|record| encode_portable(&record, &[]).unwrap())
        .collect();
    assert_eq!(early.len(), rels.len() + 3 + 2);
    to_portable.import(&early).await.unwrap();
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    assert_eq!(from.entity_history("alice").await.unwrap().len(), 4);
    assert_eq!(from.relationship_history("knows-1").await.unwrap().len(), 4);
    for id in entities {
        assert_eq!(
            to.get_entity(id).await.unwrap(),
            from.get_entity(id).await.unwrap(),
            "{id}"
        );
        assert_eq!(
            to.entity_history(id).await.unwrap(),
            from.entity_history(id).await.unwrap(),
            "{id}"
        );
    }
    for (id, ..) in rels {
        assert_eq!(
            to.get_relationship(id).await.unwrap(),
            from.get_relationship(id).await.unwrap(),
            "{id}"
        );
        assert_eq!(
            to.relationship_history(id).await.unwrap(),
            from.relationship_history(id).await.unwrap(),
            "{id}"
        );
    }
    assert_eq!(to.get_entity("ghost").await.unwrap(), None);

    let now = OffsetDateTime::now_utc();
    let valid = [
        t0 - Duration::nanoseconds(1),
        t0,
        t0 + days(1),
        t0 + days(3) + Duration::nanoseconds(1),
        t0 + days(12),
        t0 + days(25),
        now,
    ];
    let mut instants = Vec::new();
    for known_at in known.iter().copied().chain([now]) {
        for valid_at in valid {
            instants.push(AsOf { valid_at, known_at });
        }
    }
    for as_of in &instants {
        for id in entities {
            assert_eq!(
                to.get_entity_as_of(id, *as_of).await.unwrap(),
                from.get_entity_as_of(id, *as_of).await.unwrap(),
                "{id} {as_of:?}"
            );
        }
        for (id, ..) in rels {
            assert_eq!(
                to.get_relationship_as_of(id, *as_of).await.unwrap(),
                from.get_relationship_as_of(id, *as_of).await.unwrap(),
                "{id} {as_of:?}"
            );
        }
    }
    // What the store knew after the first writes: alice's first version.
    let first = AsOf {
        valid_at: t0 + days(12),
        known_at: known[0],
    };
    let alice = to.get_entity_as_of("alice", first).await.unwrap().unwrap();
    assert_eq!((alice.version, alice.name.as_str()), (1, "alice"));

    let as_ofs = [
        None,
        Some(first),
        Some(AsOf::valid_at(t0 + days(12))),
        Some(AsOf::valid_at(t0 + days(25))),
        Some(AsOf {
            valid_at: t0 + days(12),
            known_at: known[2],
        }),
    ];
    for as_of in as_ofs {
        let as_of = as_of.map(|a| AsOf {
            known_at: a.known_at.min(now),
            ..a
        });
        for id in entities {
            assert_eq!(
                to.relationships_of(id, Direction::Both, None, as_of)
                    .await
                    .unwrap(),
                from.relationships_of(id, Direction::Both, None, as_of)
                    .await
                    .unwrap(),
                "{id} {as_of:?}"
            );
        }
        for entity_type in [None, Some("person"), Some("robot")] {
            assert_eq!(
                to.list_entities(entity_type, as_of, PageRequest::first(100))
                    .await
                    .unwrap(),
                from.list_entities(entity_type, as_of, PageRequest::first(100))
                    .await
                    .unwrap(),
                "{entity_type:?} {as_of:?}"
            );
        }
        for direction in [Direction::Outgoing, Direction::Both] {
            let request = TraverseRequest {
                max_depth: 3,
                relation_types: Some(vec!["knows".into(), "works_at".into()]),
                direction,
                as_of,
            };
            assert_eq!(
                to.traverse("alice", request.clone()).await.unwrap(),
                from.traverse("alice", request).await.unwrap(),
                "{direction:?} {as_of:?}"
            );
        }
    }
    let reached = |hits: Vec<TraversalHit>| -> Vec<String> {
        hits.into_iter().map(|hit| hit.entity.id).collect()
    };
    let request = |as_of| TraverseRequest {
        max_depth: 3,
        relation_types: Some(vec!["knows".into(), "works_at".into()]),
        direction: Direction::Outgoing,
        as_of,
    };
    assert_eq!(
        reached(to.traverse("alice", request(None)).await.unwrap()),
        ["a/b%c", "bob"]
    );
    assert_eq!(
        reached(
            to.traverse("alice", request(Some(AsOf::valid_at(t0 + days(12)))))
                .await
                .unwrap()
        ),
        ["a/b%c", "bob", "carol", "ghost"]
    );

    for store in [&from_portable, &to_portable] {
        let err = store.export_page(Some(b"kg/zz"), 2).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }

    let template = to.entity_history("alice").await.unwrap().remove(1);
    let valid = encode_portable(
        &GraphRecord::Entity(Entity {
            id: "new".into(),
            ..template.clone()
        }),
        &[],
    )
    .unwrap();
    let with = |edit: fn(&mut Entity)| {
        let mut bad = template.clone();
        edit(&mut bad);
        GraphRecord::Entity(bad)
    };
    let mut relationship = to.relationship_history("knows-1").await.unwrap().remove(0);
    relationship.from = String::new();
    for bad in [
        with(|e| e.id = String::new()),
        with(|e| e.entity_type = "a\0b".into()),
        with(|e| e.version = 0),
        with(|e| e.version = i64::MAX as u64 + 1),
        with(|e| e.time.valid_to = Some(e.time.valid_from)),
        with(|e| {
            e.time.superseded_at = Some(e.time.recorded_at - Duration::nanoseconds(1));
        }),
        with(|e| {
            e.time.recorded_at = e
                .time
                .recorded_at
                .to_offset(time::UtcOffset::from_hms(1, 0, 0).unwrap());
        }),
        with(|e| e.time.valid_to = Some(datetime!(2030-01-01 0:00 -2))),
        GraphRecord::Relationship(relationship),
    ] {
        let bad = encode_portable(&bad, &[]).unwrap();
        refused(
            to_portable.as_ref(),
            valid.clone(),
            bad,
            ErrorKind::InvalidInput,
        )
        .await;
    }
}

/// A deterministic vector of `dimension` components in (-1, 1) for `seed`, never zero.
fn sample_vector(seed: u64, dimension: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dimension)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0 + 1e-3
        })
        .collect()
}

/// Every component's bits, for bit-exact comparisons (`-0.0 == 0.0` as floats).
fn bits(vector: &[f32]) -> Vec<u32> {
    vector.iter().map(|x| x.to_bits()).collect()
}

/// The exact and filtered searches compared after a vector copy: ids exactly, scores up to
/// the rounding of each implementation's arithmetic.
async fn same_searches(
    from: &Arc<dyn VectorStore>,
    to: &Arc<dyn VectorStore>,
    collection: &str,
    dimension: usize,
) {
    for seed in [1_000u64, 2_000] {
        let mut request = SearchRequest::new(sample_vector(seed, dimension), 5);
        request.exact = true;
        let mut filtered = request.clone();
        filtered.filter.insert("even".into(), json!(true));
        for request in [request, filtered] {
            let expected = from.search(collection, request.clone()).await.unwrap();
            let copied = to.search(collection, request).await.unwrap();
            assert!(!expected.is_empty(), "{collection}");
            let ids = |hits: &[SearchHit]| {
                hits.iter()
                    .map(|hit| (hit.id.clone(), hit.metadata.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&copied), ids(&expected), "{collection}");
            for (a, b) in copied.iter().zip(&expected) {
                let tolerance = 1e-4 * b.score.abs().max(1.0);
                assert!((a.score - b.score).abs() <= tolerance, "{a:?} vs {b:?}");
            }
        }
    }
}

/// Vectors: collections of 3, 384 and 2500 dimensions (cosine, L2, dot) and an empty one,
/// vectors with metadata (ids with `/`, `%` and non-ASCII; components with `-0.0`, a
/// subnormal and a large value) some of them deleted, survive a copy bit-exactly; the copy
/// reads, counts and searches (exactly, and filtered) as the source does. An import refuses a
/// vector of the wrong length, a NaN, a blob of partial `f32`s and records for an existing
/// collection of another dimension or metric, writing nothing.
pub async fn vectors_copy_faithfully(
    source: Portable<dyn VectorStore>,
    target: Portable<dyn VectorStore>,
) {
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let collections = [
        ("small", 3, Metric::Cosine, 9u64),
        ("mid/384", 384, Metric::L2, 12),
        ("wide ü%", 2500, Metric::Dot, 5),
    ];
    for (name, dimension, metric, n) in collections {
        from.create_collection(name, dimension, metric)
            .await
            .unwrap();
        let records = (0..n)
            .map(|i| {
                let mut vector = sample_vector(i + 1, dimension);
                if i == 0 {
                    vector[0] = -0.0;
                    vector[1] = 1e-40;
                }
                if i == 2 && metric != Metric::Dot {
                    vector[0] = 3.0e4;
                }
                VectorRecord {
                    id: match i % 3 {
                        0 => format!("v{i}"),
                        1 => format!("a/{i}"),
                        _ => format!("ü%{i}"),
                    },
                    vector,
                    metadata: json!({"n": i, "even": i % 2 == 0, "tags": ["x", i]})
                        .as_object()
                        .cloned()
                        .unwrap(),
                }
            })
            .collect();
        from.upsert_batch(name, records).await.unwrap();
        assert!(from.delete(name, "a/1").await.unwrap());
        assert!(from.delete(name, "v3").await.unwrap());
    }
    from.create_collection("empty", 5, Metric::Cosine)
        .await
        .unwrap();
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    for (name, dimension, _, n) in collections
        .into_iter()
        .chain([("empty", 5, Metric::Cosine, 0)])
    {
        assert_eq!(
            to.collection(name).await.unwrap(),
            from.collection(name).await.unwrap()
        );
        assert_eq!(
            to.count(name).await.unwrap(),
            from.count(name).await.unwrap()
        );
        for i in 0..n {
            for id in [format!("v{i}"), format!("a/{i}"), format!("ü%{i}")] {
                let expected = from.get(name, &id).await.unwrap();
                let copied = to.get(name, &id).await.unwrap();
                assert_eq!(copied, expected, "{name} {id}");
                if let (Some(a), Some(b)) = (copied, expected) {
                    assert_eq!(bits(&a.vector), bits(&b.vector), "{name} {id}");
                }
            }
        }
        if n > 0 {
            same_searches(&from, &to, name, dimension).await;
        }
    }
    assert_eq!(to.count("small").await.unwrap(), 7);
    assert_eq!(to.get("small", "a/1").await.unwrap(), None);

    let info = to.collection("small").await.unwrap().unwrap();
    let record = |info: &CollectionInfo, vector: Vec<f32>| {
        let record = VectorRecord {
            id: "new".into(),
            vector,
            metadata: Default::default(),
        };
        encode_vector_record(info, Some(&record)).unwrap()
    };
    let fresh = CollectionInfo {
        name: "fresh".into(),
        ..info.clone()
    };
    let valid = record(&fresh, vec![1.0, 2.0, 3.0]);
    let other_dimension = CollectionInfo {
        dimension: 2,
        ..info.clone()
    };
    let other_metric = CollectionInfo {
        metric: Metric::L2,
        ..info.clone()
    };
    for bad in [
        record(&info, vec![1.0, 2.0]),
        record(&info, vec![1.0, f32::NAN, 3.0]),
        record(&other_dimension, vec![1.0, 2.0]),
        record(&other_metric, vec![1.0, 2.0, 3.0]),
    ] {
        refused(
            to_portable.as_ref(),
            valid.clone(),
            bad,
            ErrorKind::InvalidInput,
        )
        .await;
    }
    let partial = encode_portable(
        &cairn_stores::vectors::PortableVector {
            collection: info.clone(),
            vector: Some(cairn_stores::vectors::PortableVectorMeta {
                id: "new".into(),
                metadata: Default::default(),
            }),
        },
        &[0; 13],
    )
    .unwrap();
    refused(to_portable.as_ref(), valid, partial, ErrorKind::Corruption).await;
    assert_eq!(to.collection("fresh").await.unwrap(), None);
}

/// Every artifact `store` lists, paged two at a time.
async fn all_artifacts(store: &Arc<dyn ArtifactStore>) -> Vec<ArtifactInfo> {
    let mut out: Vec<ArtifactInfo> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(after.as_deref(), 2).await.unwrap();
        out.extend(page.items);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// Artifacts: small, empty and multi-chunk (over 1 MiB, stored from a stream) content, one
/// with three references and one with one left after a release, survive a copy with their
/// descriptions (content type, metadata, reference count, creation time); the copy lists,
/// stats and reads them (whole and streamed) as the source does, and releases count down from
/// the copied reference counts. An import refuses content that does not match its hash or
/// size (`Corruption`) and a reference count of 0 or an empty content type (`InvalidInput`),
/// writing nothing.
pub async fn artifacts_copy_faithfully(
    source: Portable<dyn ArtifactStore>,
    target: Portable<dyn ArtifactStore>,
) {
    let (from, from_portable) = source;
    let (to, to_portable) = target;
    let mut options = PutOptions::with_content_type("text/plain; charset=utf-8");
    options.metadata.insert("lang".into(), json!("en"));
    options
        .metadata
        .insert("nested".into(), json!({"a": [1, null]}));
    let mut hashes = Vec::new();
    for _ in 0..3 {
        let hello = from
            .put(Bytes::from_static(b"hello"), options.clone())
            .await
            .unwrap();
        hashes.push(hello.hash);
    }
    let empty = from.put(Bytes::new(), PutOptions::default()).await.unwrap();
    let big: Vec<u8> = (0..(3 << 19) + 17u32)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    let pieces: Vec<cairn_core::Result<Bytes>> = big
        .chunks(100_000)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    let large = from
        .put_stream(
            futures::stream::iter(pieces).boxed(),
            PutOptions::with_content_type("application/x-big"),
        )
        .await
        .unwrap();
    assert_eq!(large.size, big.len() as u64);
    let twice = from
        .put(Bytes::from_static(b"twice"), PutOptions::default())
        .await
        .unwrap();
    from.put(Bytes::from_static(b"twice"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(from.release(&twice.hash).await.unwrap(), 1);
    let gone = from
        .put(Bytes::from_static(b"gone"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(from.release(&gone.hash).await.unwrap(), 0);
    copy_and_compare(from_portable.as_ref(), to_portable.as_ref()).await;

    let listed = all_artifacts(&from).await;
    assert_eq!(listed.len(), 4);
    assert_eq!(all_artifacts(&to).await, listed);
    for info in &listed {
        assert_eq!(to.stat(&info.hash).await.unwrap().as_ref(), Some(info));
        let expected = from.get(&info.hash).await.unwrap().unwrap();
        let copied = to.get(&info.hash).await.unwrap().unwrap();
        assert_eq!(copied, expected);
        let reader = to.open(&info.hash).await.unwrap().unwrap();
        assert_eq!(&reader.info, info);
        let streamed: Vec<Bytes> = reader.chunks.try_collect().await.unwrap();
        assert_eq!(streamed.concat(), expected.content.to_vec());
    }
    assert_eq!(to.get(&large.hash).await.unwrap().unwrap().content, big);
    assert_eq!(to.stat(&empty.hash).await.unwrap().unwrap().size, 0);
    assert!(!to.exists(&gone.hash).await.unwrap());
    assert_eq!(to.release(&hashes[0]).await.unwrap(), 2);
    assert_eq!(to.release(&twice.hash).await.unwrap(), 0);

    let hello = from.stat(&hashes[0]).await.unwrap().unwrap();
    let fresh = ArtifactInfo {
        hash: blake3::hash(b"fresh").to_hex().to_string(),
        ..hello.clone()
    };
    let valid = encode_portable(&fresh, b"fresh").unwrap();
    for (bad, content, kind) in [
        (hello.clone(), &b"hellp"[..], ErrorKind::Corruption),
        (hello.clone(), &b"hello!"[..], ErrorKind::Corruption),
        (
            ArtifactInfo {
                refcount: 0,
                ..hello.clone()
            },
            &b"hello"[..],
            ErrorKind::InvalidInput,
        ),
        (
            ArtifactInfo {
                content_type: String::new(),
                ..hello.clone()
            },
            &b"hello"[..],
            ErrorKind::InvalidInput,
        ),
    ] {
        let bad = encode_portable(&bad, content).unwrap();
        refused(to_portable.as_ref(), valid.clone(), bad, kind).await;
    }
    assert!(!to.exists(&fresh.hash).await.unwrap());
}
