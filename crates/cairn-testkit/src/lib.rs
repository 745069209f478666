#![deny(missing_docs)]
//! The one Cairn conformance suite.
//!
//! Every case is a plain `pub async fn` that takes the backend under test as
//! `Arc<dyn StorageBackend>` and panics when the backend breaks a sentence of the
//! `# Behavior` docs in `cairn-core`. [`kv_suite!`] expands to one `#[tokio::test]` per case,
//! so each backend wires the whole suite in a few lines:
//!
//! ```text
//! async fn backend() -> std::sync::Arc<dyn cairn_core::StorageBackend> {
//!     std::sync::Arc::new(cairn_memory::MemoryBackend::new())
//! }
//! cairn_testkit::kv_suite!(backend);
//! ```
//!
//! The factory must return a handle whose tenant holds no data yet; cases derive further
//! tenants from it with [`tenant_named`]. The calling crate needs `tokio` (with `macros` and
//! `rt-multi-thread`) as a dev-dependency.
//!
//! This crate is for tests only: it panics instead of returning errors.

#[cfg(unix)]
pub mod crash;
pub mod dataset;
pub mod faulty;
pub mod hostile;
pub mod kv;
pub mod layers;
pub mod migrating;
pub mod migrating_stores;
mod model;
pub mod portable;
pub mod stores;

use std::sync::Arc;

use cairn_core::{StorageBackend, TenantId};

/// A handle for a tenant unique to this test run: the factory's tenant id plus `suffix`.
pub fn tenant_named(backend: &Arc<dyn StorageBackend>, suffix: &str) -> Arc<dyn StorageBackend> {
    let id = TenantId::new(format!("{}.{suffix}", backend.tenant_id()))
        .expect("derived tenant id is valid");
    backend.tenant(&id)
}

/// Expands to one `#[tokio::test]` per hostile-input case ([`hostile`]), plus
/// `hostile_catalogue_size`, which prints how many cases run on the backend.
///
/// `$factory` is a path to an `async fn() -> Arc<dyn StorageBackend>` returning a fresh, empty
/// tenant handle.
#[macro_export]
macro_rules! hostile_suite {
    ($factory:path) => {
        $crate::hostile_suite!(@cases $factory;
            keys_empty_maximal_and_over_long,
            nul_and_odd_text,
            sql_metacharacters_are_plain_text,
            prefix_scans_with_like_wildcards,
            values_empty_large_and_over_limit,
            hostile_vectors,
            timestamps_at_the_extremes,
            unknown_tenants_read_empty,
            illegal_workflow_transitions,
            malformed_stored_bytes_are_corruption,
            swapped_agent_state_payload_is_corruption,
        );
    };
    (@cases $factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let rows = $crate::hostile::$case($factory().await).await;
                assert!(rows > 0, "a hostile case checked no row");
            }
        )+

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn hostile_catalogue_size() {
            let cases = [$(stringify!($case)),+];
            println!(
                "hostile input catalogue on {}: {} cases",
                $factory().await.backend_type(),
                cases.len()
            );
        }
    };
}

/// Expands to one `#[tokio::test]` per retry/timeout layer case ([`layers`]).
///
/// `$factory` is a path to an `async fn() -> Arc<dyn StorageBackend>` returning a fresh, empty
/// tenant handle of a real backend; the cases put a [`faulty::FaultyBackend`] between it and
/// the layers.
#[macro_export]
macro_rules! layer_suite {
    ($factory:path) => {
        $crate::layer_suite!(@cases $factory;
            retry_recovers_from_fewer_than_max_failures,
            retry_gives_up_after_max_attempts_with_last_error,
            retry_never_retries_non_retryable_errors,
            retry_after_ambiguous_failure_can_report_conflict,
            timeout_fires_on_slow_operation_only,
            retry_over_timeout_retries_each_timed_out_attempt,
            layers_wrap_tenant_handles,
        );
    };
    (@cases $factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::layers::$case($factory().await).await;
            }
        )+
    };
}

/// Expands to one `#[tokio::test]` per key-value conformance case.
///
/// `$factory` is a path to an `async fn() -> Arc<dyn StorageBackend>` returning a fresh, empty
/// tenant handle.
#[macro_export]
macro_rules! kv_suite {
    ($factory:path) => {
        $crate::kv_suite!(@cases $factory;
            get_missing_key_is_none,
            set_get_round_trips_exact_bytes,
            set_get_round_trips_16_mib_value,
            oversized_value_is_rejected_and_loses_nothing,
            set_overwrites_previous_value,
            delete_reports_whether_key_existed,
            exists_matches_get,
            list_keys_filters_by_prefix_in_byte_order,
            list_keys_treats_like_metacharacters_literally,
            list_and_scan_reject_bad_prefixes,
            scan_pages_in_order_without_gaps_or_repeats,
            scan_after_is_exclusive_and_limit_is_checked,
            get_batch_answers_in_request_order,
            set_batch_last_entry_wins,
            set_batch_is_all_or_nothing,
            delete_batch_counts_distinct_existing_keys,
            write_batch_applies_in_order,
            write_batch_failed_check_writes_nothing,
            write_batch_empty_succeeds,
            compare_and_swap_semantics,
            concurrent_cas_increments_are_never_lost,
            concurrent_creates_have_exactly_one_winner,
            concurrent_mixed_writes_match_sequential_model,
            tenants_never_see_each_other,
            clear_only_clears_own_tenant,
            tenant_prefix_is_unambiguous,
            max_length_key_and_hostile_text_round_trip,
            random_operations_match_btreemap_model,
        );
    };
    (@cases $factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::kv::$case($factory().await).await;
            }
        )+
    };
}
