//! The policy of one database: allow-list, override and limits.

use std::time::Duration;

use crate::allow::AllowList;
use crate::guard::PrivateOverride;

/// Size and time limits of outbound requests. `Default` gives the server's
/// defaults, as the WIT states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Resolving the name, and then connecting (TCP and TLS): 5 s each.
    pub connect_timeout: Duration,
    /// From the connection until the response headers arrive: 10 s.
    pub first_byte_timeout: Duration,
    /// The whole exchange, redirects and waiting for a slot included: 30 s.
    pub total_timeout: Duration,
    /// The request body: 1 MiB.
    pub max_request_body_bytes: usize,
    /// The request's own headers, counting the bytes of their names and
    /// values: 64 KiB (and at most [`MAX_REQUEST_HEADERS`] of them).
    pub max_request_header_bytes: usize,
    /// The response status line and headers: 64 KiB (and at most
    /// [`MAX_RESPONSE_HEADERS`] header lines).
    pub max_response_header_bytes: usize,
    /// The response body: 4 MiB.
    pub max_response_body_bytes: usize,
    /// Redirects followed: 5.
    pub max_redirects: u32,
    /// Requests of one database in flight at once (more wait their turn): 8.
    pub max_in_flight: usize,
}

/// The most header lines a response may have, whatever their size.
pub const MAX_RESPONSE_HEADERS: usize = 1024;

/// The most headers a request may give, whatever their size.
pub const MAX_REQUEST_HEADERS: usize = 1024;

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_request_body_bytes: 1 << 20,
            max_request_header_bytes: 64 << 10,
            max_response_header_bytes: 64 << 10,
            max_response_body_bytes: 4 << 20,
            max_redirects: 5,
            max_in_flight: 8,
        }
    }
}

/// Everything that decides where a database's requests may go and how big
/// and long they may be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpPolicy {
    /// The hosts and ports the owner allowed.
    pub allow: AllowList,
    /// The exact private addresses the server lets through (development).
    pub overrides: PrivateOverride,
    /// Size and time limits.
    pub limits: HttpLimits,
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A time limit of zero, which no request could meet.
    #[error("the outbound HTTP {limit} limit must be longer than zero")]
    ZeroTimeout {
        /// Which limit.
        limit: &'static str,
    },
    /// `max_in_flight` is zero (no request could ever start) or more than
    /// a semaphore can hold.
    #[error("the outbound HTTP in-flight limit must be from 1 to {max}, not {given}")]
    InFlight {
        /// The value given.
        given: usize,
        /// The largest value accepted.
        max: usize,
    },
}

impl HttpLimits {
    /// Checks that every request could, in principle, succeed.
    pub(crate) fn check(&self) -> Result<(), PolicyError> {
        for (limit, value) in [
            ("connect", self.connect_timeout),
            ("first byte", self.first_byte_timeout),
            ("total", self.total_timeout),
        ] {
            if value.is_zero() {
                return Err(PolicyError::ZeroTimeout { limit });
            }
        }
        let max = tokio::sync::Semaphore::MAX_PERMITS;
        if self.max_in_flight == 0 || self.max_in_flight > max {
            return Err(PolicyError::InFlight {
                given: self.max_in_flight,
                max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_wit_defaults() {
        let limits = HttpLimits::default();
        assert_eq!(limits.connect_timeout, Duration::from_secs(5));
        assert_eq!(limits.first_byte_timeout, Duration::from_secs(10));
        assert_eq!(limits.total_timeout, Duration::from_secs(30));
        assert_eq!(limits.max_request_body_bytes, 1024 * 1024);
        assert_eq!(limits.max_request_header_bytes, 64 * 1024);
        assert_eq!(limits.max_response_header_bytes, 64 * 1024);
        assert_eq!(limits.max_response_body_bytes, 4 * 1024 * 1024);
        assert_eq!(limits.max_redirects, 5);
        assert_eq!(limits.max_in_flight, 8);
        assert_eq!(limits.check(), Ok(()));
    }
}
