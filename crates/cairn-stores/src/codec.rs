//! Shared building blocks of every store's codec module: key paths, order-preserving integer
//! and time encodings, and versioned values.
//!
//! Keys are UTF-8 (a [`Key`] rule), so integers are written as fixed-width lowercase hex: byte
//! order equals numeric order. Caller-provided ids become single path segments with `%` and
//! `/` escaped, so an id can never reach into another record's key range.

use cairn_core::{Error, Key, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

/// Builds a key as `/`-separated segments. The first segment is the store's scope (a fixed
/// short name, never user input).
#[derive(Debug, Clone)]
pub struct KeyPath(String);

impl KeyPath {
    /// Starts a path in `scope`.
    pub fn new(scope: &'static str) -> KeyPath {
        KeyPath(scope.to_owned())
    }

    /// Appends a caller-provided id, escaping `%` and `/`.
    pub fn id(mut self, id: &str) -> KeyPath {
        self.0.push('/');
        for c in id.chars() {
            match c {
                '%' => self.0.push_str("%25"),
                '/' => self.0.push_str("%2F"),
                c => self.0.push(c),
            }
        }
        self
    }

    /// Appends a fixed name (a sub-scope such as `by_time`).
    pub fn name(mut self, name: &'static str) -> KeyPath {
        self.0.push('/');
        self.0.push_str(name);
        self
    }

    /// Appends `n` as 16 hex digits, so keys sort numerically.
    pub fn u64(mut self, n: u64) -> KeyPath {
        self.0.push('/');
        self.0.push_str(&format!("{n:016x}"));
        self
    }

    /// Appends a timestamp (nanoseconds, sign-flipped) as 32 hex digits, so keys sort by time,
    /// including times before 1970.
    pub fn time(self, t: OffsetDateTime) -> KeyPath {
        let nanos = t.unix_timestamp_nanos();
        let ordered = (nanos as u128) ^ (1u128 << 127);
        let mut path = self;
        path.0.push('/');
        path.0.push_str(&format!("{ordered:032x}"));
        path
    }

    /// The path as a prefix for scans: the text followed by `/`.
    pub fn prefix(&self) -> String {
        format!("{}/", self.0)
    }

    /// The finished key.
    ///
    /// # Errors
    /// `InvalidInput` when an id made the key too long or contained NUL.
    pub fn key(self) -> Result<Key> {
        Key::new(self.0)
    }
}

/// Reads the last segment of `key` as the hex integer written by [`KeyPath::u64`].
///
/// # Errors
/// `Corruption` when the segment is not 16 hex digits.
pub fn last_u64(key: &Key) -> Result<u64> {
    let segment = key.as_str().rsplit('/').next().unwrap_or_default();
    if segment.len() != 16 {
        return Err(
            Error::corruption("key does not end in a 16-digit counter").with_context("key", key)
        );
    }
    u64::from_str_radix(segment, 16).map_err(|e| {
        Error::corruption("key does not end in a counter")
            .with_context("key", key)
            .with_source(e)
    })
}

/// Reverses [`KeyPath::id`] for one escaped segment.
///
/// # Errors
/// `Corruption` when the escapes are malformed.
pub fn unescape_id(segment: &str) -> Result<String> {
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        match rest.get(pos..pos + 3) {
            Some("%25") => out.push('%'),
            Some("%2F") => out.push('/'),
            _ => return Err(Error::corruption("malformed escape in stored key")),
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Current format version of JSON record values.
pub const RECORD_VERSION: u8 = 1;

/// Bytes of the CRC-32 that ends every record.
const CRC_BYTES: usize = 4;

/// Encodes a record as a version byte, its JSON, and a CRC-32 (little endian) of the JSON, so
/// a changed byte anywhere is detected on read instead of decoding to different data.
///
/// # Errors
/// `InvalidInput` when the record cannot be serialised (for example a map with non-string
/// keys in its metadata).
pub fn encode_record<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    let mut out = vec![RECORD_VERSION];
    serde_json::to_writer(&mut out, record)
        .map_err(|e| Error::invalid_input("record cannot be encoded").with_source(e))?;
    let crc = crc32fast::hash(&out[1..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Decodes a value written by [`encode_record`].
///
/// # Errors
/// `Corruption` when the value is truncated, the version byte is unknown, the checksum does
/// not match, or the JSON does not match `T`.
pub fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (&version, rest) = bytes
        .split_first()
        .ok_or_else(|| Error::corruption("stored record is empty"))?;
    if version != RECORD_VERSION {
        return Err(Error::corruption(format!(
            "stored record has unknown format version {version}"
        )));
    }
    let split = rest
        .len()
        .checked_sub(CRC_BYTES)
        .ok_or_else(|| Error::corruption("stored record is truncated"))?;
    let (json, crc) = rest.split_at(split);
    let expected = u32::from_le_bytes(crc.try_into().expect("split leaves exactly 4 bytes"));
    if crc32fast::hash(json) != expected {
        return Err(Error::corruption("stored record fails its checksum"));
    }
    serde_json::from_slice(json)
        .map_err(|e| Error::corruption("stored record does not decode").with_source(e))
}

/// Longest caller-supplied id (session id, vector id, collection name...), in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Checks a caller-supplied id: non-empty, at most [`MAX_ID_BYTES`] bytes, no NUL.
///
/// # Errors
/// `InvalidInput` naming `what` when a rule is broken.
pub fn check_id(what: &'static str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(Error::invalid_input(format!(
            "{what} must be 1 to {MAX_ID_BYTES} bytes, got {}",
            id.len()
        )));
    }
    if id.contains('\0') {
        return Err(Error::invalid_input(format!(
            "{what} must not contain a NUL character"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ids_cannot_reach_other_ranges() {
        let a = KeyPath::new("s").id("a/b").id("c").key().unwrap();
        let b = KeyPath::new("s").id("a").id("b/c").key().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str(), "s/a%2Fb/c");
        assert_eq!(unescape_id("a%2Fb%25c").unwrap(), "a/b%c");
        assert!(unescape_id("a%2").is_err());
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("id", "a").is_ok());
        assert!(check_id("id", &"x".repeat(MAX_ID_BYTES)).is_ok());
        for bad in [
            String::new(),
            "x".repeat(MAX_ID_BYTES + 1),
            "a\0b".to_owned(),
        ] {
            assert_eq!(
                check_id("id", &bad).unwrap_err().kind(),
                cairn_core::ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn integers_and_times_sort_numerically() {
        let k = |n| KeyPath::new("n").u64(n).key().unwrap();
        assert!(k(9) < k(10) && k(255) < k(256) && k(u64::MAX - 1) < k(u64::MAX));
        assert_eq!(last_u64(&k(300)).unwrap(), 300);
        let t = |d| KeyPath::new("t").time(d).key().unwrap();
        let before = t(datetime!(1969-12-31 23:59:59 UTC));
        let epoch = t(datetime!(1970-01-01 0:00 UTC));
        let later = t(datetime!(2026-11-24 12:00 UTC));
        assert!(before < epoch && epoch < later);
    }

    #[test]
    fn records_round_trip_and_reject_damage() {
        let bytes = encode_record(&vec![1u32, 2, 3]).unwrap();
        assert_eq!(decode_record::<Vec<u32>>(&bytes).unwrap(), vec![1, 2, 3]);
        assert_eq!(
            decode_record::<Vec<u32>>(&[]).unwrap_err().kind(),
            cairn_core::ErrorKind::Corruption
        );
        assert_eq!(
            decode_record::<Vec<u32>>(&[9, b'[', b']'])
                .unwrap_err()
                .kind(),
            cairn_core::ErrorKind::Corruption
        );
        assert_eq!(
            decode_record::<Vec<u32>>(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .kind(),
            cairn_core::ErrorKind::Corruption
        );
    }

    #[test]
    fn every_single_bit_flip_is_corruption() {
        let bytes = encode_record(&serde_json::json!({ "city": "Lisbon", "n": 5 })).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                let err = decode_record::<serde_json::Value>(&damaged).unwrap_err();
                assert_eq!(
                    err.kind(),
                    cairn_core::ErrorKind::Corruption,
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    mod props {
        use std::collections::BTreeMap;

        use cairn_core::ErrorKind;
        use proptest::prelude::*;

        use super::*;

        type Sample = (
            String,
            Vec<u32>,
            Option<i64>,
            BTreeMap<String, String>,
            bool,
        );

        fn sample() -> impl Strategy<Value = Sample> {
            (
                any::<String>(),
                prop::collection::vec(any::<u32>(), 0..8),
                any::<Option<i64>>(),
                prop::collection::btree_map(any::<String>(), any::<String>(), 0..4),
                any::<bool>(),
            )
        }

        /// Ids as callers give them: any text without NUL, up to the id limit.
        fn id() -> impl Strategy<Value = String> {
            "[^\\x00]{1,40}|[%/a]{1,12}"
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn records_round_trip(value in sample()) {
                let bytes = encode_record(&value).unwrap();
                prop_assert_eq!(decode_record::<Sample>(&bytes).unwrap(), value);
            }

            #[test]
            fn random_bytes_are_corruption(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
                let err = decode_record::<Sample>(&bytes).unwrap_err();
                prop_assert_eq!(err.kind(), ErrorKind::Corruption);
                let err = decode_record::<serde_json::Value>(&bytes).unwrap_err();
                prop_assert_eq!(err.kind(), ErrorKind::Corruption);
            }

            #[test]
            fn truncated_records_are_corruption(value in sample(), cut in any::<prop::sample::Index>()) {
                let bytes = encode_record(&value).unwrap();
                let len = cut.index(bytes.len());
                let err = decode_record::<Sample>(&bytes[..len]).unwrap_err();
                prop_assert_eq!(err.kind(), ErrorKind::Corruption);
            }

            #[test]
            fn ids_round_trip_as_one_segment(a in id(), b in id()) {
                let key = KeyPath::new("s").id(&a).id(&b).key().unwrap();
                let segments: Vec<&str> = key.as_str().split('/').collect();
                prop_assert_eq!(segments.len(), 3);
                prop_assert_eq!(unescape_id(segments[1]).unwrap(), a.clone());
                prop_assert_eq!(unescape_id(segments[2]).unwrap(), b.clone());
            }

            #[test]
            fn distinct_id_paths_give_distinct_keys(a in id(), b in id(), c in id(), d in id()) {
                prop_assume!((a.as_str(), b.as_str()) != (c.as_str(), d.as_str()));
                let one = KeyPath::new("s").id(&a).id(&b).key().unwrap();
                let two = KeyPath::new("s").id(&c).id(&d).key().unwrap();
                prop_assert_ne!(one, two);
            }

            #[test]
            fn unescape_never_panics(segment in "[%25Fa]{0,16}|[^/]{0,16}") {
                // A segment is what lies between two `/`, so it never holds one.
                if let Ok(id) = unescape_id(&segment) {
                    // Whatever it accepts, it accepts as exactly the text an id escapes to.
                    let escaped = KeyPath::new("s").id(&id).prefix();
                    prop_assert_eq!(&escaped[2..escaped.len() - 1], segment.as_str());
                }
            }

            #[test]
            fn counters_round_trip_and_sort(a in any::<u64>(), b in any::<u64>()) {
                let ka = KeyPath::new("n").u64(a).key().unwrap();
                let kb = KeyPath::new("n").u64(b).key().unwrap();
                prop_assert_eq!(last_u64(&ka).unwrap(), a);
                prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            }

            #[test]
            fn last_u64_rejects_malformed_segments(segment in "\\PC{0,20}") {
                prop_assume!(segment.len() != 16 || u64::from_str_radix(&segment, 16).is_err());
                let key = Key::new(format!("n/{segment}")).unwrap();
                prop_assert_eq!(last_u64(&key).unwrap_err().kind(), ErrorKind::Corruption);
            }

            #[test]
            fn times_sort_in_time_order(a in -377_705_116_800i64..253_402_300_799, b in -377_705_116_800i64..253_402_300_799, na in 0u32..1_000_000_000) {
                let ta = OffsetDateTime::from_unix_timestamp(a).unwrap() + time::Duration::nanoseconds(i64::from(na));
                let tb = OffsetDateTime::from_unix_timestamp(b).unwrap();
                let ka = KeyPath::new("t").time(ta).key().unwrap();
                let kb = KeyPath::new("t").time(tb).key().unwrap();
                prop_assert_eq!(ka.cmp(&kb), ta.cmp(&tb));
            }
        }
    }
}
