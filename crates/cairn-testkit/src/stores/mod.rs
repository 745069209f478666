//! Conformance suites for the component stores: one module per store, each with plain
//! `pub async fn` cases taking the store as `Arc<dyn Trait>` and a macro that expands to one
//! `#[tokio::test]` per case.

pub mod agent_state;
pub mod artifacts;
pub mod episodic;
pub mod event_log;
pub mod graph;
pub mod hooks;
mod probe;
pub mod procedural;
pub mod sessions;
pub mod vectors;
pub mod workflow;

/// Expands store cases into `#[tokio::test]` functions. `$factory` returns a pair of stores on
/// two tenants; `store` cases get the first, `pair` cases both.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_cases {
    (store $module:ident, $factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _other) = $factory().await;
                $crate::stores::$module::$case(store).await;
            }
        )+
    };
    (pair $module:ident, $factory:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, other) = $factory().await;
                $crate::stores::$module::$case(store, other).await;
            }
        )+
    };
}

/// Wires a store's suite on its generic implementation over the key-value backend factory
/// `$backend` (an `async fn() -> Arc<dyn StorageBackend>` in the calling module), in a module
/// named after the store: the suite on two tenants of one backend, then the cases that take
/// the store and its backend, then those that take only the backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __generic_store_suite {
    (
        $module:ident, $suite:ident, $store:ident, $generic:ident, $backend:ident;
        store_and_backend: [$($with_backend:ident),* $(,)?];
        backend: [$($backend_only:ident),* $(,)?]
    ) => {
        mod $module {
            type Store = ::std::sync::Arc<dyn ::cairn_stores::$store>;

            fn generic(backend: ::std::sync::Arc<dyn ::cairn_core::StorageBackend>) -> Store {
                ::std::sync::Arc::new(::cairn_stores::$generic::new(backend))
            }

            async fn stores() -> (Store, Store) {
                let backend = super::$backend().await;
                let other = $crate::tenant_named(&backend, "other");
                (generic(backend), generic(other))
            }

            $crate::$suite!(stores);

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $with_backend() {
                    let backend = super::$backend().await;
                    $crate::stores::$module::$with_backend(generic(backend.clone()), backend).await;
                }
            )*

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $backend_only() {
                    $crate::stores::$module::$backend_only(super::$backend().await).await;
                }
            )*
        }
    };
}

/// Every component store's suite on its generic implementation over the key-value backend
/// factory `$backend`, one module per store.
#[macro_export]
macro_rules! generic_store_suites {
    ($backend:ident) => {
        $crate::agent_state_generic_suite!($backend);
        $crate::artifacts_generic_suite!($backend);
        $crate::episodic_generic_suite!($backend);
        $crate::event_log_generic_suite!($backend);
        $crate::graph_generic_suite!($backend);
        $crate::hooks_generic_suite!($backend);
        $crate::procedural_generic_suite!($backend);
        $crate::sessions_generic_suite!($backend);
        $crate::vectors_generic_suite!($backend);
        $crate::workflow_generic_suite!($backend);
    };
}
