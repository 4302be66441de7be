//! Checking a guest's request before anything is sent.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::budget::bytes_text;
use crate::limits::{HttpLimits, MAX_REQUEST_HEADERS};
use crate::target::Target;
use crate::types::{HttpError, HttpErrorKind, HttpRequest};

/// Headers the client sets itself.
const FORBIDDEN: [HeaderName; 4] = [HOST, CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION];

/// A checked request, ready for its first hop.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The method (one of the seven the WIT lists).
    pub(crate) method: Method,
    /// Where the hop goes.
    pub(crate) target: Target,
    /// The guest's headers, valid and none of them forbidden.
    pub(crate) headers: HeaderMap,
    /// The body, within the limit.
    pub(crate) body: Bytes,
}

fn invalid(message: String) -> HttpError {
    HttpError::new(HttpErrorKind::InvalidRequest, message)
}

/// Refuses more headers than [`MAX_REQUEST_HEADERS`], or more bytes of
/// names and values than the limit, before any of them is parsed (a header
/// map holds at most 32,768 entries and panics past that).
fn check_header_size(
    headers: &[(String, String)],
    host: &str,
    limits: &HttpLimits,
) -> Result<(), HttpError> {
    let too_large = |what: String| {
        HttpError::new(
            HttpErrorKind::RequestTooLarge,
            format!("the request to {host} has {what}"),
        )
    };
    if headers.len() > MAX_REQUEST_HEADERS {
        return Err(too_large(format!(
            "{} headers, over the limit of {MAX_REQUEST_HEADERS}",
            headers.len()
        )));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if bytes > limits.max_request_header_bytes {
        return Err(too_large(format!(
            "{bytes} bytes of header names and values, over the limit of {}",
            bytes_text(limits.max_request_header_bytes)
        )));
    }
    Ok(())
}

/// Checks the method, URL, headers and body size, in that order.
pub(crate) fn prepare(request: HttpRequest, limits: &HttpLimits) -> Result<Prepared, HttpError> {
    let method = match request.method.as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        "HEAD" => Method::HEAD,
        "OPTIONS" => Method::OPTIONS,
        other => {
            return Err(invalid(format!(
                "the method `{}` is not one of GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS",
                other.escape_debug()
            )));
        }
    };
    let target = Target::parse(&request.url).map_err(|err| {
        invalid(format!(
            "the URL `{}` is refused: {err}",
            request.url.escape_debug()
        ))
    })?;
    let host = target.host_text().to_owned();
    check_header_size(&request.headers, &host, limits)?;
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for (name, value) in request.headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            invalid(format!(
                "the request to {host} has an invalid header name `{}`",
                name.escape_debug()
            ))
        })?;
        if FORBIDDEN.contains(&header) {
            return Err(invalid(format!(
                "the request to {host} may not set the `{header}` header: the client sets it"
            )));
        }
        let visible = value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        let value = HeaderValue::from_str(&value)
            .ok()
            .filter(|_| visible)
            .ok_or_else(|| {
            invalid(format!(
                "the request to {host} has an invalid value for the header `{header}` (only visible ASCII, spaces and tabs are allowed)"
            ))
        })?;
        headers.append(header, value);
    }
    if request.body.len() > limits.max_request_body_bytes {
        return Err(HttpError::new(
            HttpErrorKind::RequestTooLarge,
            format!(
                "the request body to {host} is {} bytes, over the limit of {}",
                request.body.len(),
                bytes_text(limits.max_request_body_bytes)
            ),
        ));
    }
    Ok(Prepared {
        method,
        target,
        headers,
        body: Bytes::from(request.body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str, headers: &[(&str, &str)], body: usize) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: vec![b'x'; body],
            timeout: None,
        }
    }

    fn kind(request: HttpRequest) -> Option<HttpErrorKind> {
        prepare(request, &HttpLimits::default())
            .err()
            .map(|e| e.kind)
    }

    #[test]
    fn a_good_request_passes() {
        let prepared = prepare(
            request(
                "POST",
                "https://api.example.com/x?y#z",
                &[("X-A", "1"), ("x-a", "2")],
                10,
            ),
            &HttpLimits::default(),
        )
        .expect("valid");
        assert_eq!(prepared.method, Method::POST);
        assert_eq!(prepared.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(prepared.target.path_and_query(), "/x?y");
    }

    #[test]
    fn malformed_requests_are_invalid() {
        let invalid = Some(HttpErrorKind::InvalidRequest);
        for method in ["get", "CONNECT", "TRACE", "", "GET "] {
            assert_eq!(
                kind(request(method, "http://a.com/", &[], 0)),
                invalid,
                "{method}"
            );
        }
        for url in [
            "a.com",
            "/x",
            "ftp://a.com/",
            "http://u:p@a.com/",
            "http://",
            "http://a b/",
            "file:///etc/passwd",
        ] {
            assert_eq!(kind(request("GET", url, &[], 0)), invalid, "{url}");
        }
        for header in [
            ("Host", "a.com"),
            ("content-length", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "close"),
            ("bad name", "v"),
            ("", "v"),
            ("x", "line\r\nbreak"),
            ("x", "caf\u{e9}"),
            ("x", "nul\0"),
        ] {
            assert_eq!(
                kind(request("GET", "http://a.com/", &[header], 0)),
                invalid,
                "{header:?}"
            );
        }
    }

    #[test]
    fn header_limits_are_inclusive_and_refuse_before_parsing() {
        let limits = HttpLimits::default();
        let many = |count: usize| -> Vec<(String, String)> {
            (0..count).map(|i| (format!("x-{i}"), "v".into())).collect()
        };
        let with = |headers: Vec<(String, String)>| HttpRequest {
            headers,
            ..request("GET", "http://a.com/", &[], 0)
        };
        assert!(prepare(with(many(MAX_REQUEST_HEADERS)), &limits).is_ok());
        // Past what a header map holds (32,768), which used to panic.
        for count in [MAX_REQUEST_HEADERS + 1, 40_000] {
            let err = prepare(with(many(count)), &limits).expect_err("too many");
            assert_eq!(err.kind, HttpErrorKind::RequestTooLarge);
            assert_eq!(
                err.message,
                format!("the request to a.com has {count} headers, over the limit of 1024")
            );
        }
        let sized = |bytes: usize| vec![("x".to_owned(), "v".repeat(bytes - 1))];
        let at = sized(limits.max_request_header_bytes);
        assert!(prepare(with(at), &limits).is_ok());
        let over = sized(limits.max_request_header_bytes + 1);
        let err = prepare(with(over), &limits).expect_err("too large");
        assert_eq!(err.kind, HttpErrorKind::RequestTooLarge);
        assert!(err.message.contains("64 KiB"), "{err}");
    }

    #[test]
    fn the_body_limit_is_inclusive() {
        let limits = HttpLimits::default();
        let at = request("PUT", "http://a.com/", &[], limits.max_request_body_bytes);
        assert!(prepare(at, &limits).is_ok());
        let over = request(
            "PUT",
            "http://a.com/",
            &[],
            limits.max_request_body_bytes + 1,
        );
        let err = prepare(over, &limits).expect_err("too large");
        assert_eq!(err.kind, HttpErrorKind::RequestTooLarge);
        assert!(
            err.message.contains("a.com") && err.message.contains("1 MiB"),
            "{err}"
        );
    }
}
