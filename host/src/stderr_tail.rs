//! The newest bytes a module wrote to its standard error, kept to explain
//! a trap: a module that does not report its panics through the log (one
//! not built with the Rust SDK, or panicking before the SDK's hook is set)
//! usually prints why on stderr just before it traps (#9 item 4).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The most bytes of a module's stderr kept (the newest).
const MAX_TAIL_BYTES: usize = 1024;

/// How many bytes a module may write at once (more writes may follow).
const WRITE_PERMIT: usize = 64 << 10;

/// A module's stderr: keeps the newest [`MAX_TAIL_BYTES`] written since
/// the last [`clear`](Self::clear), and discards the rest.
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tail.extend_from_slice(&bytes[bytes.len().saturating_sub(MAX_TAIL_BYTES)..]);
        let excess = tail.len().saturating_sub(MAX_TAIL_BYTES);
        tail.drain(..excess);
    }

    /// Forgets what was written (at the start of a call).
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The non-empty lines kept, joined with ` / ` on one line, if any.
    pub(crate) fn last_lines(&self) -> Option<String> {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&tail);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        (!lines.is_empty()).then(|| lines.join(" / "))
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_bytes_as_one_line() {
        let tail = StderrTail::default();
        assert_eq!(tail.last_lines(), None);
        tail.push(b"thread panicked at src/lib.rs:3:5:\n\nthe reason\n");
        assert_eq!(
            tail.last_lines().as_deref(),
            Some("thread panicked at src/lib.rs:3:5: / the reason")
        );
        tail.push(&vec![b'x'; 3 * MAX_TAIL_BYTES]);
        tail.push(b"\nlast");
        let kept = tail.last_lines().unwrap();
        assert!(
            kept.len() <= MAX_TAIL_BYTES + 3 && kept.ends_with(" / last"),
            "{kept}"
        );
        tail.clear();
        assert_eq!(tail.last_lines(), None);
    }
}
