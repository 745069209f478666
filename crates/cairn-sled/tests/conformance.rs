//! The shared conformance suite on sled (balanced mode, a temporary directory per test).

mod common;

use common::temporary_backend;

cairn_testkit::kv_suite!(temporary_backend);
