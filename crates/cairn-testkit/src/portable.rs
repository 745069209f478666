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
use cairn_stores::episodic::{EpisodicStore, Role, Turn, TurnPage, TurnRecord};
use cairn_stores::event_log::{Event, EventLogStore, EventQuery, EventRecord, TypePattern};
use cairn_stores::hooks::{HookExecution, HookHistoryStore, HookQuery, HookRecord};
use cairn_stores::portable::{PortableStore, copy, encode_portable, fingerprint};
use serde_json::json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A store of a component as its trait and as [`PortableStore`].
pub type Portable<S> = (Arc<S>, Arc<dyn PortableStore>);

/// Copies `from` into `to` in pages of 2 (so paging and checkpoints are exercised), checks
/// the checkpoints and the fingerprints, copies again and checks nothing changed.
pub async fn copy_and_compare(from: &dyn PortableStore, to: &dyn PortableStore) {
    let mut checkpoints = Vec::new();
    let copied = copy(from, to, None, 2, |cursor, copied| {
        checkpoints.push((cursor.to_vec(), copied));
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
        let rest = copy(from, to, Some(cursor), 2, |_, _| Ok(()))
            .await
            .unwrap();
        assert_eq!(done + rest, source.records);
    }
    copy(from, to, None, 7, |_, _| Ok(())).await.unwrap();
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
