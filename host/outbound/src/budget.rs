//! Time limits: the end of the whole exchange, and the shorter limit of
//! each phase, with messages naming the host and the limit that ran out.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::limits::HttpLimits;
use crate::types::{HttpError, HttpErrorKind};

/// What set the end of the exchange.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// The policy's total limit.
    Total(Duration),
    /// The request's own timeout.
    Request(Duration),
    /// The caller's deadline (the procedure's).
    Deadline,
}

/// The end of one exchange: `min(total limit, request timeout, deadline)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    end: Instant,
    bound: Bound,
}

/// A phase of one hop, with its own limit when it has one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phase {
    /// What happens, as `connecting to` (followed by the host).
    doing: &'static str,
    /// The phase's own limit and its name, as (5 s, `connect`).
    limit: Option<(Duration, &'static str)>,
}

impl Phase {
    /// Waiting for an in-flight slot of the database.
    pub(crate) fn queue() -> Self {
        Self {
            doing: "waiting for an in-flight slot for",
            limit: None,
        }
    }

    /// Resolving the host name.
    pub(crate) fn resolve(limits: &HttpLimits) -> Self {
        Self {
            doing: "resolving",
            limit: Some((limits.connect_timeout, "connect")),
        }
    }

    /// Opening the TCP connection.
    pub(crate) fn connect(limits: &HttpLimits) -> Self {
        Self {
            doing: "connecting to",
            limit: Some((limits.connect_timeout, "connect")),
        }
    }

    /// The TLS handshake.
    pub(crate) fn handshake(limits: &HttpLimits) -> Self {
        Self {
            doing: "the TLS handshake with",
            limit: Some((limits.connect_timeout, "connect")),
        }
    }

    /// Sending the request and waiting for the response headers.
    pub(crate) fn first_byte(limits: &HttpLimits) -> Self {
        Self {
            doing: "waiting for the response of",
            limit: Some((limits.first_byte_timeout, "first-byte")),
        }
    }

    /// Reading the response body.
    pub(crate) fn body() -> Self {
        Self {
            doing: "reading the response body of",
            limit: None,
        }
    }
}

impl Budget {
    /// The budget of an exchange starting now.
    pub(crate) fn new(
        limits: &HttpLimits,
        request_timeout: Option<Duration>,
        deadline: Option<std::time::Instant>,
    ) -> Self {
        let now = Instant::now();
        let mut budget = Self {
            end: after(now, limits.total_timeout),
            bound: Bound::Total(limits.total_timeout),
        };
        if let Some(timeout) = request_timeout {
            let end = after(now, timeout);
            if end < budget.end {
                budget = Self {
                    end,
                    bound: Bound::Request(timeout),
                };
            }
        }
        if let Some(deadline) = deadline {
            let end = Instant::from_std(deadline);
            if end < budget.end {
                budget = Self {
                    end,
                    bound: Bound::Deadline,
                };
            }
        }
        budget
    }

    /// Runs `work` until it finishes, the phase's limit passes or the
    /// exchange's end comes, whichever is first.
    pub(crate) async fn run<F: Future>(
        &self,
        host: &str,
        phase: Phase,
        work: F,
    ) -> Result<F::Output, HttpError> {
        let phase_end = phase.limit.map(|(limit, _)| after(Instant::now(), limit));
        let end = phase_end.map_or(self.end, |phase_end| phase_end.min(self.end));
        tokio::time::timeout_at(end, work)
            .await
            .map_err(|_| self.timeout(host, phase, phase_end.filter(|e| *e < self.end).is_some()))
    }

    fn timeout(&self, host: &str, phase: Phase, phase_limit_passed: bool) -> HttpError {
        let doing = phase.doing;
        let message = match (phase.limit, phase_limit_passed, self.bound) {
            (Some((limit, name)), true, _) => format!(
                "{doing} {host} took longer than the {} {name} limit",
                duration_text(limit)
            ),
            (_, _, Bound::Total(total)) => format!(
                "{doing} {host}: the exchange passed the {} total limit",
                duration_text(total)
            ),
            (_, _, Bound::Request(timeout)) => format!(
                "{doing} {host}: the exchange passed the request's {} timeout",
                duration_text(timeout)
            ),
            (_, _, Bound::Deadline) => {
                format!("{doing} {host}: the exchange ran into the procedure's deadline")
            }
        };
        HttpError::new(HttpErrorKind::Timeout, message)
    }
}

/// `now + duration`, or a far future when that does not fit an instant.
fn after(now: Instant, duration: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(duration.min(FAR))
        .unwrap_or_else(|| now + Duration::from_secs(24 * 3600))
}

/// A duration for people: `5 s`, `250 ms`.
pub(crate) fn duration_text(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else {
        format!("{millis} ms")
    }
}

/// A size for people: `4 MiB`, `64 KiB`, `1000 bytes`.
pub(crate) fn bytes_text(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(duration_text(Duration::from_secs(5)), "5 s");
        assert_eq!(duration_text(Duration::from_millis(250)), "250 ms");
        assert_eq!(bytes_text(4 << 20), "4 MiB");
        assert_eq!(bytes_text(64 << 10), "64 KiB");
        assert_eq!(bytes_text(1000), "1000 bytes");
    }

    #[tokio::test]
    async fn the_nearest_end_wins_and_is_named() {
        let limits = HttpLimits {
            total_timeout: Duration::from_secs(30),
            ..HttpLimits::default()
        };
        let pending = std::future::pending::<()>;
        let near = std::time::Instant::now() + Duration::from_millis(20);

        let budget = Budget::new(&limits, Some(Duration::from_millis(20)), None);
        let err = budget.run("h.example", Phase::body(), pending()).await;
        let err = err.expect_err("times out");
        assert_eq!(err.kind, HttpErrorKind::Timeout);
        assert!(err.message.contains("request's 20 ms timeout"), "{err}");

        let budget = Budget::new(&limits, Some(Duration::from_secs(1)), Some(near));
        let err = budget.run("h.example", Phase::body(), pending()).await;
        assert!(
            err.expect_err("times out")
                .message
                .contains("procedure's deadline")
        );

        let short = HttpLimits {
            connect_timeout: Duration::from_millis(10),
            ..limits
        };
        let budget = Budget::new(&short, None, None);
        let err = budget
            .run("h.example", Phase::connect(&short), pending())
            .await;
        let message = err.expect_err("times out").message;
        assert_eq!(
            message,
            "connecting to h.example took longer than the 10 ms connect limit"
        );

        let budget = Budget::new(&limits, None, Some(std::time::Instant::now()));
        assert!(budget.run("h", Phase::queue(), pending()).await.is_err());
    }
}
