//! The on-disk key layout: `[tenant length: u8][tenant id][key bytes]`.
//!
//! The length byte makes the tenant part unambiguous: tenant `x` with key `yz` and tenant
//! `xy` with key `z` encode differently. Keys are UTF-8, which never contains the byte `0xFF`,
//! so `prefix + [0xFF]` is an exclusive upper bound for every key that starts with `prefix`.

use cairn_core::{Error, Key, Result, TenantId};

/// Upper bound byte: greater than every byte that occurs in UTF-8 text.
const ABOVE_UTF8: u8 = 0xFF;

/// The encoded form of `tenant`'s keys, without the key bytes.
pub(crate) fn tenant_prefix(tenant: &TenantId) -> Vec<u8> {
    let id = tenant.as_str().as_bytes();
    let len = u8::try_from(id.len()).expect("tenant ids are at most 128 bytes");
    let mut out = Vec::with_capacity(1 + id.len());
    out.push(len);
    out.extend_from_slice(id);
    out
}

/// `tenant_prefix` followed by `text` (a key or a key prefix).
pub(crate) fn encode(tenant_prefix: &[u8], text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(tenant_prefix.len() + text.len());
    out.extend_from_slice(tenant_prefix);
    out.extend_from_slice(text.as_bytes());
    out
}

/// Exclusive upper bound of every encoded key that starts with `encoded_prefix`.
pub(crate) fn upper_bound(encoded_prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_prefix.len() + 1);
    out.extend_from_slice(encoded_prefix);
    out.push(ABOVE_UTF8);
    out
}

/// The key part of an encoded key of this tenant.
///
/// # Errors
/// [`ErrorKind::Corruption`](cairn_core::ErrorKind::Corruption) when the stored bytes are not a
/// valid key of this tenant.
pub(crate) fn decode(tenant_prefix: &[u8], encoded: &[u8]) -> Result<Key> {
    let rest = encoded
        .strip_prefix(tenant_prefix)
        .ok_or_else(|| Error::corruption("stored key lies outside its tenant's range"))?;
    let text = std::str::from_utf8(rest)
        .map_err(|e| Error::corruption("stored key is not UTF-8").with_source(e))?;
    Key::new(text).map_err(|e| Error::corruption("stored key is invalid").with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_boundaries_do_not_meet() {
        let x = tenant_prefix(&TenantId::new("x").unwrap());
        let xy = tenant_prefix(&TenantId::new("xy").unwrap());
        assert_ne!(encode(&x, "yz"), encode(&xy, "z"));
        let foreign = encode(&xy, "z");
        assert!(!(foreign >= x && foreign < upper_bound(&x)));
    }

    #[test]
    fn decode_rejects_foreign_and_broken_bytes() {
        let t = tenant_prefix(&TenantId::new("t").unwrap());
        assert_eq!(decode(&t, &encode(&t, "k/1")).unwrap().as_str(), "k/1");
        let other = tenant_prefix(&TenantId::new("u").unwrap());
        assert!(decode(&t, &encode(&other, "k")).is_err());
        let mut broken = t.clone();
        broken.push(0xC3);
        assert!(decode(&t, &broken).is_err());
        assert!(decode(&t, &t).is_err());
    }

    mod props {
        use cairn_core::{ErrorKind, MAX_KEY_BYTES, MAX_TENANT_BYTES};
        use proptest::prelude::*;

        use super::*;

        /// Valid tenant ids, short ones often so that one tenant is a prefix of another.
        fn tenant() -> impl Strategy<Value = TenantId> {
            prop_oneof!["[ab.]{1,3}", "[a-zA-Z0-9._:@-]{1,128}",]
                .prop_map(|id| TenantId::new(id).unwrap())
        }

        /// Valid key text, often built from the characters tenant ids use.
        fn key_text() -> impl Strategy<Value = String> {
            prop_oneof!["[ab./]{1,4}", "[^\\x00]{1,64}"]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn distinct_tenant_key_pairs_never_collide(
                t1 in tenant(), k1 in key_text(), t2 in tenant(), k2 in key_text()
            ) {
                let e1 = encode(&tenant_prefix(&t1), &k1);
                let e2 = encode(&tenant_prefix(&t2), &k2);
                prop_assert_eq!(e1 == e2, (&t1, &k1) == (&t2, &k2));
                // Another tenant's key never falls inside this tenant's scan range.
                let p1 = tenant_prefix(&t1);
                let inside = e2 >= p1 && e2 < upper_bound(&p1);
                prop_assert_eq!(inside, t1 == t2);
                prop_assert_eq!(decode(&p1, &e2).is_ok(), t1 == t2);
            }

            #[test]
            fn keys_round_trip_within_their_tenant(t in tenant(), k in key_text()) {
                prop_assume!(k.len() <= MAX_KEY_BYTES);
                let p = tenant_prefix(&t);
                let key = decode(&p, &encode(&p, &k)).unwrap();
                prop_assert_eq!(key.as_str(), k.as_str());
            }

            #[test]
            fn random_bytes_never_panic(t in tenant(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
                let p = tenant_prefix(&t);
                match decode(&p, &bytes) {
                    Ok(key) => prop_assert_eq!(encode(&p, key.as_str()), bytes.clone()),
                    Err(err) => prop_assert_eq!(err.kind(), ErrorKind::Corruption),
                }
                let mut under_tenant = p.clone();
                under_tenant.extend_from_slice(&bytes);
                match decode(&p, &under_tenant) {
                    Ok(key) => prop_assert_eq!(key.as_bytes(), &bytes[..]),
                    Err(err) => prop_assert_eq!(err.kind(), ErrorKind::Corruption),
                }
            }

            #[test]
            fn tenant_ids_are_validated(id in "\\PC{0,140}|[a-z/\\x00]{0,4}") {
                let valid = !id.is_empty()
                    && id.len() <= MAX_TENANT_BYTES
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c));
                match TenantId::new(id.as_str()) {
                    Ok(t) => {
                        prop_assert!(valid, "{id:?} was accepted");
                        prop_assert_eq!(tenant_prefix(&t)[0] as usize, id.len());
                    }
                    Err(err) => {
                        prop_assert!(!valid, "{id:?} was refused");
                        prop_assert_eq!(err.kind(), ErrorKind::InvalidInput);
                    }
                }
            }
        }
    }
}
