//! Outbound HTTP from procedures, over the `http` import.
//!
//! The host sends the request (following redirects, enforcing the database
//! owner's allow-list and its size and time limits) and returns the whole
//! response; see `wit/worldline.wit` for the policy and the limits.

use std::fmt;
use std::time::Duration;

use crate::bindings::worldline::module::http as host;

/// The HTTP client of a procedure: [`ProcedureContext::http`](crate::ProcedureContext::http).
///
/// It works only in a procedure and outside a transaction; inside
/// [`with_tx`](crate::ProcedureContext::with_tx) every request fails with
/// [`HttpErrorKind::NotAllowedHere`].
#[derive(Debug, Clone, Copy)]
pub struct Http {
    _private: (),
}

impl Http {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }

    /// Sends `GET url`.
    pub fn get(&self, url: impl Into<String>) -> Result<Response, HttpError> {
        self.send(Request::get(url))
    }

    /// Sends `POST url` with `body`.
    pub fn post(
        &self,
        url: impl Into<String>,
        body: impl Into<Vec<u8>>,
    ) -> Result<Response, HttpError> {
        self.send(Request::post(url).body(body))
    }

    /// Sends `request` and waits for the whole response (after redirects).
    pub fn send(&self, request: Request) -> Result<Response, HttpError> {
        send(request)
    }
}

/// Sends a request through the `http.send` import, whoever calls it (the
/// host refuses it outside a procedure, and inside a transaction).
pub(crate) fn send(request: Request) -> Result<Response, HttpError> {
    let request = host::Request {
        method: request.method.as_str().to_owned(),
        url: request.url,
        headers: request
            .headers
            .into_iter()
            .map(|(name, value)| host::Header { name, value })
            .collect(),
        body: request.body,
        timeout_ms: request.timeout.map(timeout_ms),
    };
    match host::send(&request) {
        Ok(response) => Ok(Response {
            status: response.status,
            headers: response
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: response.body,
        }),
        Err(e) => Err(HttpError {
            kind: e.kind.into(),
            message: e.message,
        }),
    }
}

/// Whole milliseconds, rounded up so a short non-zero timeout stays non-zero.
fn timeout_ms(timeout: Duration) -> u32 {
    let millis = timeout.as_nanos().div_ceil(1_000_000);
    u32::try_from(millis).unwrap_or(u32::MAX)
}

/// An HTTP method the host sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `HEAD`
    Head,
    /// `OPTIONS`
    Options,
}

impl Method {
    /// The method's name on the wire, e.g. `"GET"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }
}

/// An outbound request; build one with [`Request::new`] or [`Request::get`]
/// and the builder methods, or fill the fields.
///
/// ```
/// use std::time::Duration;
/// use worldline::http::Request;
///
/// let request = Request::get("https://api.example.com/price")
///     .header("accept", "text/plain")
///     .timeout(Duration::from_secs(2));
/// assert_eq!(request.headers, [("accept".to_owned(), "text/plain".to_owned())]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Headers as (name, value) pairs; the host sets `host`,
    /// `content-length`, `transfer-encoding` and `connection` itself and
    /// refuses a request that gives them.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
    /// A tighter limit on the whole exchange than the host's (sent in whole
    /// milliseconds, rounded up).
    pub timeout: Option<Duration>,
}

impl Request {
    /// A request with no headers, no body and the host's timeout.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` request (add the body with [`Request::body`]).
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a limit on the whole exchange.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// The final response (after redirects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers as (name, value) pairs: names lowercase, all values of one
    /// name together (names in the order each first came, values in the
    /// order received).
    pub headers: Vec<(String, String)>,
    /// The body, as received (never decompressed).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, or the error if it is not valid UTF-8.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// The value of the first header named `name` (compared ignoring ASCII case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What kind of failure an [`HttpError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpErrorKind {
    /// Sent from a reducer, from `describe`, or inside a procedure's
    /// transaction: only a procedure outside a transaction may send.
    NotAllowedHere,
    /// The host, port or resolved address is not allowed by the owner's policy.
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
    /// host allows; nothing was sent.
    RequestTooLarge,
    /// The response headers or body are larger than the host allows.
    ResponseTooLarge,
    /// More redirects than the host follows.
    TooManyRedirects,
    /// The server broke HTTP (a malformed response, or the connection dropped mid-response).
    Protocol,
}

impl From<host::HttpErrorKind> for HttpErrorKind {
    fn from(kind: host::HttpErrorKind) -> Self {
        use host::HttpErrorKind as K;
        match kind {
            K::NotAllowedHere => Self::NotAllowedHere,
            K::Denied => Self::Denied,
            K::InvalidRequest => Self::InvalidRequest,
            K::Dns => Self::Dns,
            K::Connect => Self::Connect,
            K::Timeout => Self::Timeout,
            K::Tls => Self::Tls,
            K::RequestTooLarge => Self::RequestTooLarge,
            K::ResponseTooLarge => Self::ResponseTooLarge,
            K::TooManyRedirects => Self::TooManyRedirects,
            K::Protocol => Self::Protocol,
        }
    }
}

/// Why a request got no response: a kind to branch on and the host's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// What went wrong.
    pub kind: HttpErrorKind,
    /// A readable explanation naming the host or the limit.
    pub message: String,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds_and_saturate() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_micros(1)), 1);
        assert_eq!(timeout_ms(Duration::from_millis(1500)), 1500);
        assert_eq!(timeout_ms(Duration::MAX), u32::MAX);
    }

    #[test]
    fn headers_are_found_ignoring_case() {
        let response = Response {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "text/plain".into()),
                ("content-type".into(), "second".into()),
            ],
            body: b"\xff".to_vec(),
        };
        assert_eq!(response.header("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(response.header("accept"), None);
        assert!(response.text().is_err());
    }
}
