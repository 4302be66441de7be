//! The server's order to stop its procedures, as one procedure's waits see
//! it.
//!
//! A procedure blocked in a host call (a sleep, an outbound request) is
//! woken when the server stops procedures. Its wasm is then stopped at its
//! next epoch check; but what little it runs after the wake may end before
//! any check comes, and it would return as if its wait had run its course.
//! So a wait cut short marks the procedure, and the call's result is
//! replaced by the stop once it returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// One procedure's view of [`Engine::stop_procedures`](crate::Engine::stop_procedures);
/// clones share whether a wait was cut short.
#[derive(Clone, Debug)]
pub(crate) struct StopSignal {
    stopping: watch::Receiver<bool>,
    cut_short: Arc<AtomicBool>,
}

impl StopSignal {
    /// The signal behind `stopping` (which becomes `true` when the server
    /// stops procedures), with no wait cut short yet.
    pub(crate) fn new(stopping: watch::Receiver<bool>) -> Self {
        Self {
            stopping,
            cut_short: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the server stops procedures now.
    pub(crate) fn is_set(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once the server stops procedures (never, if the server is
    /// gone without doing so), marking this procedure's wait as cut short.
    /// Race it against the wait.
    pub(crate) async fn interrupt(&mut self) {
        if self.stopping.wait_for(|stopping| *stopping).await.is_ok() {
            self.cut_short.store(true, Ordering::Release);
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// Whether [`interrupt`](Self::interrupt) ever won a race: the
    /// procedure's result is then not what it would have been.
    pub(crate) fn cut_short(&self) -> bool {
        self.cut_short.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_that_the_stop_wins_marks_every_clone() {
        let (sender, receiver) = watch::channel(false);
        let signal = StopSignal::new(receiver);
        let mut waiting = signal.clone();
        assert!(!signal.is_set());
        let waited = tokio::spawn(async move { waiting.interrupt().await });
        sender.send_replace(true);
        waited.await.expect("the wait");
        assert!(signal.is_set());
        assert!(signal.cut_short());
    }

    #[tokio::test]
    async fn a_wait_that_ends_first_marks_nothing() {
        let (sender, receiver) = watch::channel(false);
        let signal = StopSignal::new(receiver);
        let mut waiting = signal.clone();
        tokio::select! {
            () = waiting.interrupt() => panic!("no stop was sent"),
            () = tokio::task::yield_now() => {}
        }
        sender.send_replace(true);
        assert!(signal.is_set());
        assert!(!signal.cut_short());
    }
}
