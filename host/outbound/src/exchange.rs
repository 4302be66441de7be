//! One hop over an open connection: send the request with hyper (HTTP/1.1),
//! wait for the response head within the first-byte limit, then read the
//! body up to its size limit.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use crate::budget::{Budget, Phase, bytes_text};
use crate::connect::Stream;
use crate::limits::{HttpLimits, MAX_RESPONSE_HEADERS};
use crate::request::Prepared;
use crate::types::{HttpError, HttpErrorKind};

/// A response whose head has arrived and whose body has not been read.
pub(crate) struct Head {
    /// The status code.
    pub(crate) status: StatusCode,
    /// The response headers.
    pub(crate) headers: HeaderMap,
    body: Incoming,
    _connection: ConnectionTask,
}

/// The task driving the connection; dropping it closes the connection.
struct ConnectionTask(JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `request` over `stream` and waits for the response head.
pub(crate) async fn send(
    stream: Stream,
    request: &Prepared,
    limits: &HttpLimits,
    budget: &Budget,
) -> Result<Head, HttpError> {
    match stream {
        Stream::Plain(tcp) => send_on(tcp, request, limits, budget).await,
        Stream::Tls(tls) => send_on(tls, request, limits, budget).await,
    }
}

async fn send_on<T>(
    io: T,
    request: &Prepared,
    limits: &HttpLimits,
    budget: &Budget,
) -> Result<Head, HttpError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = request.target.host_text();
    let outgoing = build(request)?;
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_headers(MAX_RESPONSE_HEADERS)
        .max_header_size(limits.max_response_header_bytes)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|err| hyper_error(host, limits, &err))?;
    // The connection's own failures reach the caller through `send_request`
    // and the body, so its result is not needed here.
    let task = ConnectionTask(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = budget
        .run(
            host,
            Phase::first_byte(limits),
            sender.send_request(outgoing),
        )
        .await?
        .map_err(|err| hyper_error(host, limits, &err))?;
    let (parts, body) = response.into_parts();
    if parts.status.is_informational() {
        // Other 1xx responses are skipped on the way to the final one; a
        // switch of protocols ends HTTP on a connection that asked for none.
        return Err(HttpError::new(
            HttpErrorKind::Protocol,
            format!(
                "{host} answered {} to a request that asked for no protocol switch",
                parts.status
            ),
        ));
    }
    Ok(Head {
        status: parts.status,
        headers: parts.headers,
        body,
        _connection: task,
    })
}

/// The hyper request of a hop: origin-form target, `Host`, the guest's
/// headers, and `Content-Length` when there is a body (or the method
/// usually has one).
fn build(request: &Prepared) -> Result<Request<Full<Bytes>>, HttpError> {
    let target = &request.target;
    let invalid = |what: &str| {
        HttpError::new(
            HttpErrorKind::InvalidRequest,
            format!(
                "the request to {} cannot be sent: {what}",
                target.host_text()
            ),
        )
    };
    let mut outgoing = Request::builder()
        .method(request.method.clone())
        .uri(target.path_and_query())
        .body(Full::new(request.body.clone()))
        .map_err(|err| invalid(&format!("the URL's path and query ({err})")))?;
    let headers = outgoing.headers_mut();
    *headers = request.headers.clone();
    let host = HeaderValue::from_str(&target.host_header()).map_err(|_| invalid("the host"))?;
    headers.insert(HOST, host);
    let has_body = !request.body.is_empty()
        || matches!(request.method, Method::POST | Method::PUT | Method::PATCH);
    if has_body {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(request.body.len()));
    }
    Ok(outgoing)
}

/// Reads the body, refusing it once it passes the limit (never holding
/// more than the limit).
pub(crate) async fn read_body(
    head: Head,
    host: &str,
    limits: &HttpLimits,
    budget: &Budget,
) -> Result<Vec<u8>, HttpError> {
    let cap = limits.max_response_body_bytes;
    let too_large = || {
        HttpError::new(
            HttpErrorKind::ResponseTooLarge,
            format!(
                "the response body from {host} is larger than the limit of {}",
                bytes_text(cap)
            ),
        )
    };
    let mut body = head.body;
    // The length the body will have, when the head declares one: refused
    // before reading. (A HEAD response's `content-length` is not a body.)
    if hyper::body::Body::size_hint(&body).lower() > cap as u64 {
        return Err(too_large());
    }
    let mut out: Vec<u8> = Vec::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| hyper_error(host, limits, &err))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let needed = out.len() + data.len();
            if needed > cap {
                return Err(too_large());
            }
            if needed > out.capacity() {
                out.reserve_exact(needed.max(out.capacity() * 2).min(cap) - out.len());
            }
            out.extend_from_slice(&data);
        }
        Ok(())
    };
    budget.run(host, Phase::body(), read).await??;
    Ok(out)
}

/// A hyper failure as the WIT sees it: a head over the limit is
/// `response-too-large`, everything else is the server breaking HTTP.
fn hyper_error(host: &str, limits: &HttpLimits, err: &hyper::Error) -> HttpError {
    if err.is_parse_too_large() {
        return HttpError::new(
            HttpErrorKind::ResponseTooLarge,
            format!(
                "the response headers from {host} are larger than the limit of {} (or have more than {MAX_RESPONSE_HEADERS} lines)",
                bytes_text(limits.max_response_header_bytes)
            ),
        );
    }
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    HttpError::new(
        HttpErrorKind::Protocol,
        format!("the exchange with {host} failed: {detail}"),
    )
}
