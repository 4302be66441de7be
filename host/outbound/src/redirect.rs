//! Following a redirect: where the next hop goes and what it carries.
//!
//! 301, 302, 303, 307 and 308 with a `Location` are followed (a redirect
//! status without one is the final response). 301-303 turn a request other
//! than GET or HEAD into a GET without a body or `content-*` headers; 307
//! and 308 keep the method and body. When the next hop leaves the origin
//! (scheme, host or port), `authorization`, `cookie` and
//! `proxy-authorization` are dropped. The caller checks the new target
//! against the allow-list and the guard like a first request.

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE, LOCATION, PROXY_AUTHORIZATION};
use http::{HeaderMap, Method, StatusCode};

use crate::request::Prepared;
use crate::target::{Target, TargetError};
use crate::types::{HttpError, HttpErrorKind};

/// The next hop after a response with `status` and `headers`, or `None`
/// when the response is final.
pub(crate) fn next_hop(
    current: &Prepared,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<Option<Prepared>, HttpError> {
    if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some(location) = headers.get(LOCATION) else {
        return Ok(None);
    };
    let host = current.target.host_text();
    let protocol = |detail: &str| {
        HttpError::new(
            HttpErrorKind::Protocol,
            format!("{host} redirected with a malformed Location ({detail})"),
        )
    };
    let location = std::str::from_utf8(location.as_bytes()).map_err(|_| protocol("not UTF-8"))?;
    let url = current
        .target
        .url
        .join(location)
        .map_err(|err| protocol(&err.to_string()))?;
    let target = Target::from_url(url).map_err(|err| match err {
        TargetError::Malformed(detail) => protocol(&detail),
        refused => HttpError::new(
            HttpErrorKind::Denied,
            format!("{host} redirected to a URL that may not be followed: {refused}"),
        ),
    })?;
    let mut next = Prepared {
        method: current.method.clone(),
        target,
        headers: current.headers.clone(),
        body: current.body.clone(),
    };
    let becomes_get = matches!(status.as_u16(), 301..=303)
        && !matches!(current.method, Method::GET | Method::HEAD);
    if becomes_get {
        next.method = Method::GET;
        next.body = Bytes::new();
        let content: Vec<_> = next
            .headers
            .keys()
            .filter(|name| name.as_str().starts_with("content-"))
            .cloned()
            .collect();
        for name in content {
            next.headers.remove(name);
        }
    }
    if !next.target.same_origin(&current.target) {
        for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION] {
            next.headers.remove(name);
        }
    }
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::HttpLimits;
    use crate::request::prepare;
    use crate::types::HttpRequest;
    use http::HeaderValue;

    fn post(url: &str) -> Prepared {
        let request = HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("authorization".into(), "Bearer x".into()),
                ("x-keep".into(), "1".into()),
            ],
            body: b"body".to_vec(),
            timeout: None,
        };
        prepare(request, &HttpLimits::default()).expect("valid")
    }

    fn location(text: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_str(text).expect("ascii"));
        headers
    }

    fn follow(status: u16, from: &str, to: &str) -> Result<Option<Prepared>, HttpError> {
        let status = StatusCode::from_u16(status).expect("status");
        next_hop(&post(from), status, &location(to))
    }

    #[test]
    fn see_other_turns_post_into_a_bodiless_get() {
        for status in [301, 302, 303] {
            let next = follow(status, "http://a.com/x/y", "z?q=1")
                .expect("ok")
                .expect("follows");
            assert_eq!(next.method, Method::GET);
            assert!(next.body.is_empty());
            assert!(next.headers.get("content-type").is_none());
            assert_eq!(
                next.headers.get("authorization").map(|v| v.as_bytes()),
                Some(&b"Bearer x"[..])
            );
            assert_eq!(next.target.url.as_str(), "http://a.com/x/z?q=1");
        }
    }

    #[test]
    fn temporary_and_permanent_keep_method_and_body() {
        for status in [307, 308] {
            let next = follow(status, "http://a.com/", "/b")
                .expect("ok")
                .expect("follows");
            assert_eq!(next.method, Method::POST);
            assert_eq!(&next.body[..], b"body");
            assert!(next.headers.get("content-type").is_some());
        }
    }

    #[test]
    fn leaving_the_origin_drops_credentials() {
        let next = follow(307, "http://a.com/", "https://a.com/")
            .expect("ok")
            .expect("follows");
        assert!(next.headers.get("authorization").is_none());
        assert!(next.headers.get("x-keep").is_some());
        let next = follow(307, "http://a.com/", "http://a.com:8080/")
            .expect("ok")
            .expect("follows");
        assert!(next.headers.get("authorization").is_none());
    }

    #[test]
    fn other_statuses_and_missing_locations_are_final() {
        assert!(follow(200, "http://a.com/", "/b").expect("ok").is_none());
        assert!(follow(304, "http://a.com/", "/b").expect("ok").is_none());
        let bare = next_hop(&post("http://a.com/"), StatusCode::FOUND, &HeaderMap::new());
        assert!(bare.expect("ok").is_none());
    }

    #[test]
    fn bad_locations() {
        let err = follow(302, "http://a.com/", "ftp://a.com/").expect_err("refused");
        assert_eq!(err.kind, HttpErrorKind::Denied);
        let err = follow(302, "http://a.com/", "http://u:p@b.com/").expect_err("refused");
        assert_eq!(err.kind, HttpErrorKind::Denied);
        let err = follow(302, "http://a.com/", "http://[::1").expect_err("refused");
        assert_eq!(err.kind, HttpErrorKind::Protocol);
        assert!(err.message.contains("a.com"), "{err}");
    }
}
