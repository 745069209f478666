//! The artifact record: the public description plus where the content lives.

use cairn_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::ArtifactInfo;
use crate::codec::{decode_record, encode_record};

/// Where an artifact's content lives and how it is cut: what every artifact store keeps
/// about an artifact. The generic store stores it at `ar/o/<hash>` (versioned JSON); native
/// stores map their rows to it, so all read content through the same verifying reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// The public description, reference count included.
    #[serde(flatten)]
    pub info: ArtifactInfo,
    /// The blob holding the chunks.
    pub blob: String,
    /// Length of every chunk but the last.
    pub chunk_size: u64,
    /// Number of chunks.
    pub chunks: u64,
}

impl ArtifactRecord {
    /// Decodes a stored record and checks its chunk layout.
    ///
    /// # Errors
    /// `Corruption` when it does not decode or its numbers disagree.
    pub(crate) fn decode(bytes: &[u8]) -> Result<ArtifactRecord> {
        let record: ArtifactRecord = decode_record(bytes)?;
        record.check_layout()?;
        Ok(record)
    }

    /// Checks that the chunk size is positive and the number of chunks is the size divided
    /// by it, rounded up.
    ///
    /// # Errors
    /// `Corruption` otherwise.
    pub fn check_layout(&self) -> Result<()> {
        let consistent =
            self.chunk_size > 0 && self.info.size.div_ceil(self.chunk_size) == self.chunks;
        if !consistent {
            return Err(
                Error::corruption("artifact record has an impossible chunk layout")
                    .with_context("hash", &self.info.hash),
            );
        }
        Ok(())
    }

    /// Encodes the record.
    ///
    /// # Errors
    /// `InvalidInput` when the metadata cannot be serialised.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        encode_record(self)
    }

    /// The length chunk `index` must have (of a record whose layout is checked).
    pub fn chunk_len(&self, index: u64) -> u64 {
        self.info
            .size
            .saturating_sub(index.saturating_mul(self.chunk_size))
            .min(self.chunk_size)
    }
}

#[cfg(test)]
mod tests {
    use cairn_core::ErrorKind;
    use proptest::prelude::*;
    use time::OffsetDateTime;

    use super::*;

    fn record() -> impl Strategy<Value = ArtifactRecord> {
        (
            "[0-9a-f]{64}",
            0u64..1 << 40,
            1u64..1 << 24,
            any::<String>(),
            prop::collection::btree_map(any::<String>(), any::<String>(), 0..3),
            any::<u64>(),
            0i64..253_402_300_799,
            any::<String>(),
        )
            .prop_map(
                |(hash, size, chunk_size, content_type, meta, refcount, secs, blob)| {
                    ArtifactRecord {
                        info: ArtifactInfo {
                            hash,
                            size,
                            content_type,
                            metadata: meta
                                .into_iter()
                                .map(|(k, v)| (k, serde_json::Value::from(v)))
                                .collect(),
                            refcount,
                            created_at: OffsetDateTime::from_unix_timestamp(secs).unwrap(),
                        },
                        blob,
                        chunk_size,
                        chunks: size.div_ceil(chunk_size),
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn records_round_trip(record in record()) {
            let bytes = record.encode().unwrap();
            prop_assert_eq!(ArtifactRecord::decode(&bytes).unwrap(), record);
        }

        #[test]
        fn random_bytes_are_corruption(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            prop_assert_eq!(
                ArtifactRecord::decode(&bytes).unwrap_err().kind(),
                ErrorKind::Corruption
            );
        }

        #[test]
        fn truncated_records_are_corruption(record in record(), cut in any::<prop::sample::Index>()) {
            let bytes = record.encode().unwrap();
            let len = cut.index(bytes.len());
            prop_assert_eq!(
                ArtifactRecord::decode(&bytes[..len]).unwrap_err().kind(),
                ErrorKind::Corruption
            );
        }

        #[test]
        fn impossible_chunk_layouts_are_corruption(record in record(), chunks in any::<u64>()) {
            prop_assume!(chunks != record.chunks);
            let bad = ArtifactRecord { chunks, ..record.clone() };
            prop_assert_eq!(
                ArtifactRecord::decode(&bad.encode().unwrap()).unwrap_err().kind(),
                ErrorKind::Corruption
            );
            let zero = ArtifactRecord { chunk_size: 0, ..record };
            prop_assert_eq!(
                ArtifactRecord::decode(&zero.encode().unwrap()).unwrap_err().kind(),
                ErrorKind::Corruption
            );
        }
    }
}
