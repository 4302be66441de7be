//! The request, response and error of one `send`, mirroring the WIT
//! `http` interface's records.

use std::fmt;
use std::time::Duration;

/// An outbound request (the WIT `request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`.
    pub method: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Request headers; `host`, `content-length`, `transfer-encoding` and
    /// `connection` are set by the client and may not be given.
    pub headers: Vec<(String, String)>,
    /// The request body (empty for none).
    pub body: Vec<u8>,
    /// A tighter limit on the whole exchange (the WIT `timeout-ms`).
    pub timeout: Option<Duration>,
}

/// The final response, after redirects (the WIT `response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Response headers: names lowercase, grouped by name in the order each
    /// name first appeared, values in the order received.
    pub headers: Vec<(String, String)>,
    /// The response body, as received (never decompressed).
    pub body: Vec<u8>,
}

/// What went wrong with a request (the WIT `http-error-kind`, case for case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpErrorKind {
    /// Sending is not allowed where the guest called from (decided by the
    /// host, never returned by this crate).
    NotAllowedHere,
    /// The host, port or resolved address is not allowed by the policy.
    Denied,
    /// The request is malformed: the URL, method, a header, or the scheme.
    InvalidRequest,
    /// The name did not resolve.
    Dns,
    /// No connection could be made.
    Connect,
    /// A time limit passed (connect, first byte, or the whole exchange).
    Timeout,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The request body, or the request's headers, are larger than the
    /// limits.
    RequestTooLarge,
    /// The response headers or body are larger than the limits.
    ResponseTooLarge,
    /// More redirects than the limit.
    TooManyRedirects,
    /// The server broke HTTP (a malformed response, a switch of protocols
    /// nobody asked for, or the connection dropped mid-response).
    Protocol,
}

impl HttpErrorKind {
    /// The WIT name of the case, as `too-many-redirects`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpErrorKind::NotAllowedHere => "not-allowed-here",
            HttpErrorKind::Denied => "denied",
            HttpErrorKind::InvalidRequest => "invalid-request",
            HttpErrorKind::Dns => "dns",
            HttpErrorKind::Connect => "connect",
            HttpErrorKind::Timeout => "timeout",
            HttpErrorKind::Tls => "tls",
            HttpErrorKind::RequestTooLarge => "request-too-large",
            HttpErrorKind::ResponseTooLarge => "response-too-large",
            HttpErrorKind::TooManyRedirects => "too-many-redirects",
            HttpErrorKind::Protocol => "protocol",
        }
    }
}

impl fmt::Display for HttpErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP error: a kind to branch on and a message for people, naming the
/// host and the limit involved (the WIT `http-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct HttpError {
    /// What went wrong.
    pub kind: HttpErrorKind,
    /// A readable explanation.
    pub message: String,
}

impl HttpError {
    /// An error of `kind` with `message`.
    pub fn new(kind: HttpErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}
