//! Components really land on the backend their configuration names, sharing one engine each.

use cairn_core::{Bytes, ErrorKind, Key, StorageBackendType, TenantId};
use cairn_registry::{BackendChoice, Component, Storage, from_toml};

fn mixed_config(dir: &std::path::Path) -> cairn_registry::StorageConfig {
    from_toml(&format!(
        r#"
        [storage]
        backend = "sled"
        path = "{}"
        [storage.vector_embeddings]
        backend = "memory"
        "#,
        dir.display()
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_in_memory_everything_else_in_sled() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new("probe").unwrap();
    let tenant = TenantId::new("acme").unwrap();
    {
        let storage = Storage::open(&mixed_config(dir.path())).await.unwrap();
        for component in Component::ALL {
            let expected = if component == Component::VectorEmbeddings {
                BackendChoice::Memory
            } else {
                BackendChoice::Sled
            };
            assert_eq!(storage.backend_choice(component), expected, "{component}");
        }
        let acme = storage.tenant(&tenant);
        let vectors = acme.backend(Component::VectorEmbeddings);
        assert_eq!(vectors.backend_type(), StorageBackendType::Memory);
        vectors
            .set(&key, Bytes::from_static(b"vector"))
            .await
            .unwrap();
        let episodic = acme.backend(Component::EpisodicMemory);
        assert_eq!(episodic.backend_type(), StorageBackendType::Sled);
        episodic
            .set(&key, Bytes::from_static(b"turn"))
            .await
            .unwrap();
        // Components on sled share one database: the event log sees the same engine.
        let events = acme.backend(Component::EventLog);
        assert_eq!(
            events.get(&key).await.unwrap(),
            Some(Bytes::from_static(b"turn"))
        );
        assert_eq!(
            vectors.get(&key).await.unwrap(),
            Some(Bytes::from_static(b"vector"))
        );
    }
    // Reopen: what was in sled is still there, what was in memory is gone.
    let storage = Storage::open(&mixed_config(dir.path())).await.unwrap();
    let acme = storage.tenant(&tenant);
    assert_eq!(
        acme.backend(Component::EpisodicMemory)
            .get(&key)
            .await
            .unwrap(),
        Some(Bytes::from_static(b"turn"))
    );
    assert_eq!(
        acme.backend(Component::VectorEmbeddings)
            .get(&key)
            .await
            .unwrap(),
        None
    );
    assert!(dir.path().join("sled").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_url_is_a_config_error() {
    let config = from_toml("[storage]\nbackend = \"postgres\"").unwrap();
    let err = Storage::open(&config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string().contains("CAIRN_STORAGE__POSTGRES__URL"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backend_settings_name_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let config = from_toml(&format!(
        "[storage]\npath = \"{}\"\n[storage.sled]\nmode = \"reckless\"",
        dir.path().display()
    ))
    .unwrap();
    let err = Storage::open(&config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("[storage.sled]"), "{err}");
}
