//! The stored artifact record: the public description plus where the content lives.

use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::ArtifactInfo;
use crate::codec::{decode_record, encode_record};

/// What `ar/o/<hash>` holds (versioned JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ArtifactRecord {
    /// The public description, reference count included.
    #[serde(flatten)]
    pub(crate) info: ArtifactInfo,
    /// The blob holding the chunks.
    pub(crate) blob: String,
    /// Length of every chunk but the last.
    pub(crate) chunk_size: u64,
    /// Number of chunks.
    pub(crate) chunks: u64,
}

impl ArtifactRecord {
    /// Decodes a stored record and checks its chunk layout.
    ///
    /// # Errors
    /// `Corruption` when it does not decode or its numbers disagree.
    pub(crate) fn decode(bytes: &[u8]) -> Result<ArtifactRecord> {
        let record: ArtifactRecord = decode_record(bytes)?;
        let consistent =
            record.chunk_size > 0 && record.info.size.div_ceil(record.chunk_size) == record.chunks;
        if !consistent {
            return Err(
                Error::corruption("artifact record has an impossible chunk layout")
                    .with_context("hash", &record.info.hash),
            );
        }
        Ok(record)
    }

    /// Encodes the record.
    ///
    /// # Errors
    /// `InvalidInput` when the metadata cannot be serialised.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        encode_record(self)
    }

    /// The length chunk `index` must have.
    pub(crate) fn chunk_len(&self, index: u64) -> u64 {
        (self.info.size - index * self.chunk_size).min(self.chunk_size)
    }
}
