//! Layered loading with figment: built-in defaults < `config/default.toml` (embedded) < a
//! user file < `CAIRN_STORAGE__...` environment variables.

use std::path::{Path, PathBuf};

use cairn_core::{Error, ErrorKind, Result};
use figment::Figment;
use figment::providers::{Env, Format, Toml};

use crate::config::{CairnConfig, StorageConfig};

/// The shipped `config/default.toml`, embedded so the binary works from any directory.
const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Environment variable naming the user's configuration file.
pub const CONFIG_ENV: &str = "CAIRN_CONFIG";

/// Loads the configuration from every layer.
///
/// The user file is `file` when given, else the file named by `CAIRN_CONFIG`, else none.
/// Environment variables `CAIRN_STORAGE__<KEY>` override the files, `__` separating levels
/// (`CAIRN_STORAGE__POSTGRES__URL`).
///
/// # Errors
/// `Config` when the user file is missing, a key is unknown (typos fail loudly), a value has
/// the wrong type, or a backend name is unknown; the message lists the valid names.
pub fn load(file: Option<&Path>) -> Result<StorageConfig> {
    let user_file = match file {
        Some(path) => Some(path.to_path_buf()),
        None => std::env::var_os(CONFIG_ENV).map(PathBuf::from),
    };
    let mut figment = Figment::new().merge(Toml::string(DEFAULT_TOML));
    if let Some(path) = user_file {
        if !path.is_file() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("configuration file {} does not exist", path.display()),
            ));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(
        Env::prefixed("CAIRN_")
            .filter(|key| key.as_str().to_ascii_lowercase().starts_with("storage"))
            .split("__"),
    );
    extract(&figment)
}

/// Loads a configuration from TOML text alone (no defaults file, no environment).
///
/// # Errors
/// As [`load`].
pub fn from_toml(text: &str) -> Result<StorageConfig> {
    extract(&Figment::new().merge(Toml::string(text)))
}

fn extract(figment: &Figment) -> Result<StorageConfig> {
    let config = figment
        .extract::<CairnConfig>()
        .map(|c| c.storage)
        .map_err(|e| {
            Error::new(ErrorKind::Config, format!("invalid configuration: {e}")).with_source(e)
        })?;
    config.validate()?;
    Ok(config)
}
