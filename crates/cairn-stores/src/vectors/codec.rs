//! The stored form of one vector: binary, checksummed, metadata in the same value.
//!
//! ```text
//! [0]        format version (1)
//! [1..5]     CRC-32 of bytes [5..], little-endian
//! [5..9]     dimension d, u32 little-endian
//! [9..9+4d]  the components, f32 little-endian
//! [9+4d..]   the metadata, a JSON object
//! ```
//!
//! The checksum is verified on every read, search scans included, so a damaged value is
//! `Corruption`, never a wrong score.

use cairn_core::{Error, Result};

use super::Metadata;

const VERSION: u8 = 1;
const HEADER: usize = 9;

/// Encodes a vector and its metadata.
///
/// # Errors
/// `InvalidInput` when the metadata cannot be serialised.
pub(crate) fn encode(vector: &[f32], metadata: &Metadata) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(metadata)
        .map_err(|e| Error::invalid_input("vector metadata cannot be encoded").with_source(e))?;
    let dimension = u32::try_from(vector.len())
        .map_err(|_| Error::invalid_input("vector dimension does not fit in 32 bits"))?;
    let mut out = Vec::with_capacity(HEADER + 4 * vector.len() + json.len());
    out.push(VERSION);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&dimension.to_le_bytes());
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend_from_slice(&json);
    let crc = crc32fast::hash(&out[5..]);
    out[1..5].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A verified stored vector, still in its byte form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredVector<'a> {
    components: &'a [u8],
    metadata: &'a [u8],
}

impl<'a> StoredVector<'a> {
    /// Checks version, checksum and dimension of a stored value.
    ///
    /// # Errors
    /// `Corruption` when any of them is wrong.
    pub(crate) fn decode(bytes: &'a [u8], dimension: usize) -> Result<StoredVector<'a>> {
        if bytes.len() < HEADER {
            return Err(Error::corruption("stored vector is truncated"));
        }
        if bytes[0] != VERSION {
            return Err(Error::corruption(format!(
                "stored vector has unknown format version {}",
                bytes[0]
            )));
        }
        let crc = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        if crc32fast::hash(&bytes[5..]) != crc {
            return Err(Error::corruption("stored vector fails its checksum"));
        }
        let stored_dim = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
        let end = HEADER + 4 * dimension;
        if stored_dim != dimension || bytes.len() < end {
            return Err(Error::corruption(format!(
                "stored vector has dimension {stored_dim}, the collection has {dimension}"
            )));
        }
        Ok(StoredVector {
            components: &bytes[HEADER..end],
            metadata: &bytes[end..],
        })
    }

    /// Writes the components into `out`, replacing its contents.
    pub(crate) fn read_into(&self, out: &mut Vec<f32>) {
        out.clear();
        out.extend(
            self.components
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }

    /// The components as a new vector.
    pub(crate) fn components(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.components.len() / 4);
        self.read_into(&mut out);
        out
    }

    /// The metadata.
    ///
    /// # Errors
    /// `Corruption` when it is not a JSON object.
    pub(crate) fn metadata(&self) -> Result<Metadata> {
        serde_json::from_slice(self.metadata)
            .map_err(|e| Error::corruption("stored vector metadata does not decode").with_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::ErrorKind;
    use serde_json::json;

    fn sample() -> Vec<u8> {
        let meta = json!({"lang": "en"}).as_object().cloned().unwrap();
        encode(&[1.0, -2.5, 3.25], &meta).unwrap()
    }

    #[test]
    fn round_trips() {
        let bytes = sample();
        let stored = StoredVector::decode(&bytes, 3).unwrap();
        assert_eq!(stored.components(), vec![1.0, -2.5, 3.25]);
        assert_eq!(stored.metadata().unwrap()["lang"], "en");
    }

    #[test]
    fn every_flipped_byte_is_corruption() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            let err = StoredVector::decode(&damaged, 3).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corruption, "byte {i}");
        }
        for len in 0..bytes.len() {
            assert!(StoredVector::decode(&bytes[..len], 3).is_err(), "len {len}");
        }
        assert!(StoredVector::decode(&bytes, 4).is_err());
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        fn metadata() -> impl Strategy<Value = Metadata> {
            prop::collection::btree_map(any::<String>(), any::<i64>(), 0..4).prop_map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k, serde_json::Value::from(v)))
                    .collect()
            })
        }

        fn vector() -> impl Strategy<Value = Vec<f32>> {
            prop::collection::vec(any::<f32>(), 1..64)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn any_vector_round_trips(vector in vector(), meta in metadata()) {
                let bytes = encode(&vector, &meta).unwrap();
                let stored = StoredVector::decode(&bytes, vector.len()).unwrap();
                let back = stored.components();
                prop_assert_eq!(back.len(), vector.len());
                for (x, y) in back.iter().zip(&vector) {
                    prop_assert_eq!(x.to_bits(), y.to_bits());
                }
                prop_assert_eq!(stored.metadata().unwrap(), meta);
            }

            #[test]
            fn random_bytes_are_corruption(bytes in prop::collection::vec(any::<u8>(), 0..128), dim in 1usize..32) {
                let err = StoredVector::decode(&bytes, dim).unwrap_err();
                prop_assert_eq!(err.kind(), ErrorKind::Corruption);
            }

            #[test]
            fn truncated_or_misdimensioned_values_are_corruption(
                vector in vector(),
                meta in metadata(),
                cut in any::<prop::sample::Index>(),
                other_dim in 1usize..128,
            ) {
                let bytes = encode(&vector, &meta).unwrap();
                let len = cut.index(bytes.len());
                prop_assert_eq!(
                    StoredVector::decode(&bytes[..len], vector.len()).unwrap_err().kind(),
                    ErrorKind::Corruption
                );
                prop_assume!(other_dim != vector.len());
                prop_assert_eq!(
                    StoredVector::decode(&bytes, other_dim).unwrap_err().kind(),
                    ErrorKind::Corruption
                );
            }
        }
    }
}
