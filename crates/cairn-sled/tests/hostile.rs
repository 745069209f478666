//! The hostile-input catalogue on sled (balanced mode, a temporary directory per test).

mod common;

use common::temporary_backend;

cairn_testkit::hostile_suite!(temporary_backend);
