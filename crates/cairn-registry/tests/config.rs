//! Loading, layering and the errors a user can act on.

use std::path::Path;

use cairn_core::ErrorKind;
use cairn_registry::{BackendChoice, CONFIG_ENV, Component, from_toml, load};

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/examples")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_example_loads_with_its_placement() {
    let memory = from_toml(&example("memory-tests.toml")).unwrap();
    assert!(
        Component::ALL
            .iter()
            .all(|c| memory.backend_of(*c) == BackendChoice::Memory)
    );

    let laptop = from_toml(&example("sled-laptop.toml")).unwrap();
    assert!(
        Component::ALL
            .iter()
            .all(|c| laptop.backend_of(*c) == BackendChoice::Sled)
    );

    let production = from_toml(&example("postgres-production.toml")).unwrap();
    assert_eq!(
        production.backend_of(Component::Artifacts),
        BackendChoice::Postgres
    );

    let mixed = from_toml(&example("mixed.toml")).unwrap();
    assert_eq!(
        mixed.backend_of(Component::VectorEmbeddings),
        BackendChoice::Memory
    );
    assert_eq!(mixed.backend_of(Component::Sessions), BackendChoice::Sled);
    assert_eq!(
        mixed.backend_of(Component::HookHistory),
        BackendChoice::Sled
    );
    assert_eq!(
        mixed.backend_of(Component::SemanticGraph),
        BackendChoice::Postgres
    );
}

#[test]
fn hnsw_example_loads_with_its_engine_settings() {
    let hnsw = from_toml(&example("hnsw-laptop.toml")).unwrap();
    assert_eq!(
        hnsw.backend_of(Component::VectorEmbeddings),
        BackendChoice::Hnsw
    );
    assert_eq!(hnsw.backend_of(Component::Sessions), BackendChoice::Sled);
    let section = hnsw.hnsw().expect("vector embeddings use hnsw");
    assert_eq!(
        section.path.as_deref(),
        Some(Path::new("./cairn-data/sled"))
    );
    let params = section.hnsw_params().unwrap();
    assert_eq!(
        (
            params.m,
            params.ef_construction,
            params.ef_search,
            params.seal_threshold
        ),
        (32, 128, 100, 4096)
    );
}

#[test]
fn bad_hnsw_settings_are_config_errors() {
    let cases = [
        ("m = 16", "m must be 32"),
        ("ef_construction = 0", "ef_construction"),
        ("ef_search = 1001", "ef_search"),
        ("seal_threshold = 0", "seal_threshold"),
        ("ef = 10", "ef"),
        ("ef_search = -3", "ef_search"),
    ];
    for (setting, named) in cases {
        let text = format!("[storage.vector_embeddings]\nbackend = \"hnsw\"\n{setting}");
        let err = from_toml(&text).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{setting}");
        assert!(err.to_string().contains(named), "{setting}: {err}");
    }
    let misplaced = [
        "[storage]\nbackend = \"hnsw\"",
        "[storage.sessions]\nbackend = \"hnsw\"",
        "[storage.vector_embeddings]\nbackend = \"memory\"\nef_search = 50",
        "[storage.event_log]\nbackend = \"sled\"\npath = \"/tmp/x\"",
    ];
    for text in misplaced {
        let err = from_toml(text).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{text}");
        assert!(err.to_string().contains("hnsw"), "{text}: {err}");
    }
}

#[test]
fn unknown_backend_lists_the_valid_names() {
    let err = from_toml("[storage]\nbackend = \"redis\"").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let text = err.to_string();
    for name in ["redis", "memory", "sled", "postgres", "hnsw"] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn typo_in_a_key_fails_loudly() {
    let err = from_toml("[storage]\nbackned = \"sled\"").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("backned"), "{err}");
}

#[test]
fn unknown_component_lists_the_valid_components() {
    let err = from_toml("[storage.vector_embedings]\nbackend = \"memory\"").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let text = err.to_string();
    assert!(text.contains("vector_embedings"), "{text}");
    for component in Component::ALL {
        assert!(
            text.contains(component.name()),
            "{component} missing from: {text}"
        );
    }
}

#[test]
fn postgres_url_never_appears_in_debug() {
    let config = from_toml(
        "[storage.postgres]\nurl = \"postgresql://app:hunter2@db:5432/cairn\"\npool_size = 3",
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("url"), "{debug}");
}

#[test]
#[allow(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closure's error type"
)]
fn layers_apply_in_order_defaults_file_environment() {
    figment::Jail::expect_with(|jail| {
        let defaults = load(None).unwrap();
        assert_eq!(defaults.backend, BackendChoice::Sled);
        assert_eq!(defaults.path, Path::new("./cairn-data"));

        jail.create_file(
            "user.toml",
            "[storage]\nbackend = \"memory\"\npath = \"/tmp/x\"",
        )?;
        jail.set_env(CONFIG_ENV, "user.toml");
        let from_file = load(None).unwrap();
        assert_eq!(from_file.backend, BackendChoice::Memory);
        assert_eq!(from_file.path, Path::new("/tmp/x"));

        jail.set_env("CAIRN_STORAGE__BACKEND", "postgres");
        jail.set_env("CAIRN_STORAGE__POSTGRES__URL", "postgresql://u@h/db");
        jail.set_env("CAIRN_STORAGE__EVENT_LOG__BACKEND", "sled");
        jail.set_env("CAIRN_REQUIRE_POSTGRES", "1"); // not a storage key: ignored
        let from_env = load(None).unwrap();
        assert_eq!(from_env.backend, BackendChoice::Postgres);
        assert_eq!(from_env.path, Path::new("/tmp/x"));
        assert_eq!(
            from_env.backend_of(Component::EventLog),
            BackendChoice::Sled
        );

        jail.set_env("CAIRN_STORAGE__BAKEND", "sled");
        assert_eq!(load(None).unwrap_err().kind(), ErrorKind::Config);
        Ok(())
    });
}

#[test]
#[allow(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closure's error type"
)]
fn hnsw_settings_come_from_the_environment_too() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("CAIRN_STORAGE__VECTOR_EMBEDDINGS__BACKEND", "hnsw");
        jail.set_env("CAIRN_STORAGE__VECTOR_EMBEDDINGS__EF_SEARCH", "50");
        let config = load(None).unwrap();
        let section = config.hnsw().expect("hnsw from the environment");
        assert_eq!(section.hnsw_params().unwrap().ef_search, 50);
        assert_eq!(section.path, None);
        jail.set_env("CAIRN_STORAGE__VECTOR_EMBEDDINGS__M", "8");
        assert_eq!(load(None).unwrap_err().kind(), ErrorKind::Config);
        Ok(())
    });
}

#[test]
fn missing_user_file_is_an_error() {
    let err = load(Some(Path::new("/nonexistent/cairn.toml"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("/nonexistent/cairn.toml"), "{err}");
}
