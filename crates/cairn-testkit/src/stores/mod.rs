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
