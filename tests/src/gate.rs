//! A gate that holds back whatever thread passes it while it is closed:
//! for tests that need a slow disk or a slow compilation without timing,
//! through the host's hooks (`StorageConfig::before_sync`,
//! `EngineConfig::before_compile`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Holds every thread that passes it while closed.
#[derive(Default)]
pub struct Gate {
    closed: Mutex<bool>,
    changed: Condvar,
    held: AtomicUsize,
}

impl Gate {
    /// Closes (`true`) or opens the gate; opening releases every held thread.
    pub fn set(&self, closed: bool) {
        *self
            .closed
            .lock()
            .expect("no thread panics holding the gate") = closed;
        self.changed.notify_all();
    }

    /// Called by the hooked thread: waits while the gate is closed.
    pub fn pass(&self) {
        let mut closed = self
            .closed
            .lock()
            .expect("no thread panics holding the gate");
        if *closed {
            self.held.fetch_add(1, Ordering::SeqCst);
        }
        while *closed {
            closed = self
                .changed
                .wait(closed)
                .expect("no thread panics holding the gate");
        }
    }

    /// How many threads have started waiting at the closed gate so far.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Waits (polling) until some thread waits at the closed gate; panics
    /// with `what` after `timeout`.
    pub async fn wait_held(&self, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        while self.held() == 0 {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
