//! `admin` over in-memory and sled storages: tenant listing, a copy whose verification fails,
//! a dump writer that fails, and a selective import.

use std::io::{self, Write};

use cairn_core::{ErrorKind, TenantId};
use cairn_registry::admin::{self, CopyOptions, Quiet, Selection};
use cairn_registry::{Component, Storage, from_toml};
use cairn_stores::dump::Compression;
use cairn_stores::event_log::Event;
use serde_json::json;

async fn memory() -> Storage {
    Storage::open(&from_toml("[storage]\nbackend = \"memory\"").unwrap())
        .await
        .unwrap()
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

async fn append_events(storage: &Storage, tenant: &TenantId, n: usize) {
    let events = (0..n).map(|i| Event::new("e", json!(i))).collect();
    storage
        .tenant(tenant)
        .events()
        .append_batch(events)
        .await
        .unwrap();
}

fn only(components: &[Component]) -> Selection {
    Selection {
        tenants: None,
        components: components.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_every_tenant_with_data_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let config = from_toml(&format!(
        "[storage]\nbackend = \"memory\"\npath = \"{}\"\n[storage.sessions]\nbackend = \"sled\"",
        dir.path().display()
    ))
    .unwrap();
    let storage = Storage::open(&config).await.unwrap();
    assert_eq!(storage.tenants().await.unwrap(), Vec::<TenantId>::new());
    append_events(&storage, &tenant("b"), 1).await;
    storage
        .tenant(&tenant("a"))
        .sessions()
        .create(None, time::Duration::hours(1), json!({}))
        .await
        .unwrap();
    assert_eq!(
        storage.tenants().await.unwrap(),
        [tenant("a"), tenant("b")],
        "a on sled, b in memory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_onto_differing_data_fails_verification_and_marks_the_section_again() {
    let (from, to) = (memory().await, memory().await);
    let t = tenant("t");
    append_events(&from, &t, 25).await;
    append_events(&to, &t, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("copy.checkpoint");
    let options = CopyOptions {
        page: 10,
        checkpoint: Some(checkpoint.clone()),
    };
    let selection = only(&[Component::EventLog, Component::Sessions]);
    let report = admin::copy(&from, &to, &selection, &options, &Quiet)
        .await
        .unwrap();
    assert!(!report.verified());
    let events = &report.sections[0];
    assert_eq!(
        (
            events.component,
            events.copied,
            events.source.records,
            events.target.records
        ),
        (Component::EventLog, 25, 25, 26)
    );
    assert!(report.sections[1].matches(), "empty sessions match");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    let marks = saved["sections"].as_array().unwrap();
    let mark = |name: &str| marks.iter().find(|m| m["component"] == name).unwrap();
    assert_eq!(mark("event_log")["done"], false, "{saved}");
    assert_eq!(mark("event_log")["copied"], 0, "{saved}");
    assert_eq!(mark("sessions")["done"], true, "{saved}");

    // Once the target holds only what the source has, the next run recopies the event log,
    // verifies and removes the checkpoint.
    to.tenant(&t)
        .events()
        .drop_before(time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .await
        .unwrap();
    let report = admin::copy(&from, &to, &selection, &options, &Quiet)
        .await
        .unwrap();
    assert!(report.verified(), "{report:?}");
    assert_eq!(report.sections[0].copied, 25);
    assert_eq!(
        report.sections[1].copied, 0,
        "a done section is only verified"
    );
    assert!(!checkpoint.exists());
}

/// A sink that fails once `room` bytes are written.
#[derive(Debug)]
struct Full {
    room: usize,
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.room {
            return Err(io::Error::other("disk full"));
        }
        self.room -= buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_file_fails_reports_the_write_error() {
    let storage = memory().await;
    append_events(&storage, &tenant("t"), 500).await;
    let err = admin::export(
        &storage,
        &only(&[Component::EventLog]),
        Full { room: 4_000 },
        Compression::None,
        10,
        &Quiet,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.to_string().contains("writing the dump"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_takes_only_the_selected_sections() {
    let (from, to) = (memory().await, memory().await);
    for t in ["a", "b"] {
        append_events(&from, &tenant(t), 30).await;
        from.tenant(&tenant(t))
            .sessions()
            .create(None, time::Duration::hours(1), json!({}))
            .await
            .unwrap();
    }
    let everything = only(&[Component::EventLog, Component::Sessions]);
    let (dump, counts) =
        admin::export(&from, &everything, Vec::new(), Compression::Zstd, 7, &Quiet)
            .await
            .unwrap();
    assert_eq!(counts.iter().map(|c| c.records).sum::<u64>(), 62);
    let selection = Selection {
        tenants: Some(vec![tenant("b")]),
        components: vec![Component::EventLog],
    };
    let imported = admin::import(
        &to,
        || Ok(io::Cursor::new(dump.clone())),
        &selection,
        4,
        &Quiet,
    )
    .await
    .unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(
        (imported[0].tenant.as_str(), imported[0].records),
        ("b", 30)
    );
    let stats = admin::stats(&to, &everything, &Quiet).await.unwrap();
    let held: Vec<_> = stats
        .iter()
        .map(|s| (s.tenant.as_str().to_owned(), s.component, s.records))
        .collect();
    assert_eq!(
        held,
        [
            ("b".to_owned(), Component::EventLog, 30),
            ("b".to_owned(), Component::Sessions, 0)
        ]
    );
}
