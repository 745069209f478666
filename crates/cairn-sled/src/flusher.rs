//! The background flush of `balanced` and `fast` modes.
//!
//! sled's own periodic flush (`flush_every_ms`) seals the current log buffer but does not
//! wait for buffers that batches keep pinned: under a steady stream of atomic batches, a
//! process killed with `SIGKILL` lost over a second of acknowledged batches
//! (`tests/crash.rs`). This thread calls [`sled::Db::flush`] every interval instead, which
//! returns only once every write made before the call is on disk, so a crash loses at most the
//! interval plus one flush.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Shared between the backend and its flush thread.
#[derive(Debug, Default)]
struct State {
    stop: Mutex<bool>,
    wake: Condvar,
    failed: AtomicBool,
}

/// A thread flushing one database every interval; stopped and joined when dropped.
#[derive(Debug)]
pub(crate) struct Flusher {
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts flushing `db` every `interval`.
    pub(crate) fn start(db: sled::Db, interval: Duration) -> std::io::Result<Flusher> {
        let state = Arc::new(State::default());
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-sled-flush".into())
            .spawn(move || run(&db, interval, &shared))?;
        Ok(Flusher {
            state,
            thread: Some(thread),
        })
    }

    /// Whether a background flush has failed (then writes are no longer made durable).
    pub(crate) fn failed(&self) -> bool {
        self.state.failed.load(Ordering::Relaxed)
    }
}

fn run(db: &sled::Db, interval: Duration, state: &State) {
    let mut stop = state.stop.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        stop = state
            .wake
            .wait_timeout_while(stop, interval, |stop| !*stop)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        if *stop {
            return;
        }
        drop(stop);
        if db.flush().is_err() {
            state.failed.store(true, Ordering::Relaxed);
        }
        stop = state.stop.lock().unwrap_or_else(PoisonError::into_inner);
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        *self
            .state
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.state.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has nothing left to report at this point.
            let _ = thread.join();
        }
    }
}
