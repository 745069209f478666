//! A backend whose cargo feature is off is a `Config` error naming the feature.
//!
//! `cargo xtask test` runs this file in a build without the `sled` and `postgres` features
//! (`cargo test -p cairn-registry --no-default-features --test feature_off`); in a build with
//! both features it has nothing to check and holds no test.
#![cfg(not(any(feature = "sled", feature = "postgres")))]

use cairn_core::ErrorKind;
use cairn_registry::{Storage, compiled_backends, from_toml};

#[tokio::test]
async fn backends_that_are_not_compiled_in_name_their_feature() {
    assert_eq!(compiled_backends(), vec!["memory"]);
    for backend in ["sled", "postgres"] {
        let config = from_toml(&format!("[storage]\nbackend = \"{backend}\"")).unwrap();
        let err = Storage::open(&config).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let text = err.to_string();
        assert!(
            text.contains(&format!("cargo feature `{backend}`")),
            "{text}"
        );
        assert!(text.contains("compiled in: memory"), "{text}");
    }
    let memory = from_toml("[storage]\nbackend = \"memory\"").unwrap();
    assert!(Storage::open(&memory).await.is_ok());
}
