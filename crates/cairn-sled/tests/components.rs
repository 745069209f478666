//! The component-store suites on sled (balanced mode, a temporary directory per test),
//! through each store's generic implementation.

mod common;

use common::temporary_backend;

cairn_testkit::generic_store_suites!(temporary_backend);
