//! Opens each configured backend once; components on the same backend share it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_core::{Error, ErrorKind, Result, StorageBackend, TenantId};
use cairn_memory::MemoryBackend;

use crate::component::{BackendChoice, Component};
use crate::config::StorageConfig;

/// The backends compiled into this build, for error messages.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut names = vec!["memory"];
    if cfg!(feature = "sled") {
        names.push("sled");
    }
    if cfg!(feature = "postgres") {
        names.push("postgres");
    }
    names
}

/// The backends some component uses, each opened once.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    /// Every opened backend, as the key-value contract.
    pub(crate) backends: BTreeMap<BackendChoice, Arc<dyn StorageBackend>>,
    /// The PostgreSQL backend as its own type, when opened: the native stores are built on it.
    #[cfg(feature = "postgres")]
    pub(crate) postgres: Option<cairn_postgres::PostgresBackend>,
    /// Every opened engine (once each), to list the tenants holding data.
    pub(crate) engines: Vec<Engine>,
}

/// An opened engine as its own type, for the administrative reads the key-value contract
/// does not have.
#[derive(Debug, Clone)]
pub(crate) enum Engine {
    /// An in-memory backend.
    Memory(MemoryBackend),
    /// A sled database.
    #[cfg(feature = "sled")]
    Sled(cairn_sled::SledBackend),
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(cairn_postgres::PostgresBackend),
}

impl Engine {
    /// Every tenant holding data in this engine.
    pub(crate) async fn tenants(&self) -> Result<Vec<TenantId>> {
        match self {
            Engine::Memory(memory) => Ok(memory.tenants()),
            #[cfg(feature = "sled")]
            Engine::Sled(sled) => sled.tenants().await,
            #[cfg(feature = "postgres")]
            Engine::Postgres(postgres) => postgres.tenants().await,
        }
    }

    /// Makes every acknowledged write durable: sled flushes and fsyncs; memory has nothing to
    /// keep and PostgreSQL commits durably.
    pub(crate) async fn flush(&self) -> Result<()> {
        match self {
            Engine::Memory(_) => Ok(()),
            #[cfg(feature = "sled")]
            Engine::Sled(sled) => sled.flush().await,
            #[cfg(feature = "postgres")]
            Engine::Postgres(_) => Ok(()),
        }
    }
}

/// Opens every backend some component of `config` uses, once each.
pub(crate) async fn open_used(config: &StorageConfig) -> Result<Opened> {
    let used: BTreeSet<BackendChoice> = Component::ALL
        .iter()
        .map(|c| config.backend_of(*c))
        .collect();
    let mut opened = Opened::default();
    for choice in used {
        let backend: Arc<dyn StorageBackend> = match choice {
            BackendChoice::Memory => open_memory(&mut opened),
            BackendChoice::Sled => {
                open_sled(config, &shared_sled_path(config), &mut opened).await?
            }
            BackendChoice::Postgres => open_postgres(config, &mut opened).await?,
            // Opened below: it may reuse the shared sled database.
            BackendChoice::Hnsw => continue,
        };
        opened.backends.insert(choice, backend);
    }
    if let Some(hnsw) = config.hnsw() {
        let backend = match &hnsw.path {
            None => open_memory(&mut opened),
            Some(path) if same_path(path, &shared_sled_path(config)) => {
                match opened.backends.get(&BackendChoice::Sled) {
                    Some(shared) => shared.clone(),
                    None => open_sled(config, path, &mut opened).await?,
                }
            }
            Some(path) => open_sled(config, path, &mut opened).await?,
        };
        opened.backends.insert(BackendChoice::Hnsw, backend);
    }
    Ok(opened)
}

/// Where the shared sled database lives: `[storage.sled] path`, else `<storage.path>/sled`.
fn shared_sled_path(config: &StorageConfig) -> PathBuf {
    match config.sled.get("path").and_then(|v| v.as_str()) {
        Some(path) => PathBuf::from(path),
        None => config.path.join("sled"),
    }
}

/// Whether two configured paths name the same directory (compared as absolute paths, so
/// `./data` and `data` match; the directory need not exist yet).
fn same_path(a: &Path, b: &Path) -> bool {
    match (std::path::absolute(a), std::path::absolute(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A new in-memory backend.
fn open_memory(opened: &mut Opened) -> Arc<dyn StorageBackend> {
    let memory = MemoryBackend::new();
    opened.engines.push(Engine::Memory(memory.clone()));
    Arc::new(memory)
}

/// Opens a sled database at `path` with the `[storage.sled]` settings.
#[cfg(feature = "sled")]
async fn open_sled(
    config: &StorageConfig,
    path: &Path,
    opened: &mut Opened,
) -> Result<Arc<dyn StorageBackend>> {
    let mut section = config.sled.clone();
    section.set(
        "path",
        serde_json::Value::String(path.to_string_lossy().into_owned()),
    );
    let sled: cairn_sled::SledConfig = section.parse("sled")?;
    let sled = cairn_sled::SledBackend::open(sled).await?;
    opened.engines.push(Engine::Sled(sled.clone()));
    Ok(Arc::new(sled))
}

#[cfg(not(feature = "sled"))]
async fn open_sled(_: &StorageConfig, _: &Path, _: &mut Opened) -> Result<Arc<dyn StorageBackend>> {
    Err(not_compiled(BackendChoice::Sled))
}

#[cfg(feature = "postgres")]
async fn open_postgres(
    config: &StorageConfig,
    opened: &mut Opened,
) -> Result<Arc<dyn StorageBackend>> {
    let postgres: cairn_postgres::PostgresConfig = config.postgres.clone().parse("postgres")?;
    if postgres.url.trim().is_empty() {
        return Err(Error::new(
            ErrorKind::Config,
            "a component uses postgres but [storage.postgres] url is missing; set it in the \
             configuration file or with CAIRN_STORAGE__POSTGRES__URL",
        ));
    }
    let backend = cairn_postgres::PostgresBackend::connect(postgres).await?;
    opened.postgres = Some(backend.clone());
    opened.engines.push(Engine::Postgres(backend.clone()));
    Ok(Arc::new(backend))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: &StorageConfig, _: &mut Opened) -> Result<Arc<dyn StorageBackend>> {
    Err(not_compiled(BackendChoice::Postgres))
}

#[cfg_attr(
    all(feature = "sled", feature = "postgres"),
    allow(dead_code, reason = "used only when a backend feature is off")
)]
fn not_compiled(choice: BackendChoice) -> Error {
    Error::new(
        ErrorKind::Config,
        format!(
            "backend `{choice}` is not compiled in; enable the cargo feature `{choice}` \
             (compiled in: {})",
            compiled_backends().join(", ")
        ),
    )
}
