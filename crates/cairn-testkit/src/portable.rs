//! Cases for [`PortableStore`]: a component's records copied from one implementation to
//! another (any two: generic on memory, generic on sled, native PostgreSQL) must answer every
//! query as the original, with equal fingerprints, and a second copy must change nothing.
//!
//! Each case takes a *source* and a *target* store of one component, each as the component
//! trait and as [`PortableStore`] (the same object twice), on fresh tenants.

use std::sync::Arc;

use cairn_stores::SessionStore;
use cairn_stores::portable::{PortableStore, copy, fingerprint};
use serde_json::json;
use time::Duration;

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
