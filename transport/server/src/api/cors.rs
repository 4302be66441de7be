//! CORS for the HTTP API: the web origins whose pages may call it from a
//! browser, as `ServerConfig::allowed_origins` lists them.

use std::time::Duration;

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ServerError;

/// How long a browser may keep a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `origins`, or `None` when the list is empty (then the
/// API sends no CORS headers). Each origin is `*` (any) or
/// `scheme://host[:port]` with `http` or `https` and nothing after it.
pub(crate) fn layer(origins: &[String]) -> Result<Option<CorsLayer>, ServerError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        let parsed = origins
            .iter()
            .map(|origin| parse_origin(origin))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(parsed)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([AUTHORIZATION, CONTENT_TYPE])
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}

/// One origin as a browser sends it in `Origin`: `scheme://host[:port]`,
/// the host a name, an IPv4 address or a bracketed IPv6 address. Written
/// as a browser serializes it (host in lower case, no default port), so
/// that it matches what browsers send.
fn parse_origin(origin: &str) -> Result<HeaderValue, ServerError> {
    let invalid = |why: &str| {
        ServerError::Origin(format!(
            "`{origin}` is not a web origin: {why} (write it as a browser sends it, such as \
             https://app.example.com or http://localhost:8080, or * for any)"
        ))
    };
    let (scheme, default_port, rest) = if let Some(rest) = origin.strip_prefix("https://") {
        ("https", 443, rest)
    } else if let Some(rest) = origin.strip_prefix("http://") {
        ("http", 80, rest)
    } else {
        return Err(invalid("it must start with http:// or https://"));
    };
    if rest.contains(['/', '?', '#', ' ']) {
        return Err(invalid("it may hold no path, query or spaces"));
    }
    if rest.contains('*') {
        return Err(invalid(
            "wildcards are not supported: list each origin, or give * alone for any",
        ));
    }
    let (host, port) = split_host_port(rest).map_err(invalid)?;
    let port = match port {
        None => None,
        Some(digits) => match digits.parse::<u16>() {
            Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(port).filter(|&port| port != default_port)
            }
            _ => return Err(invalid("its port must be a number from 1 to 65535")),
        },
    };
    let host = host.to_ascii_lowercase();
    let serialized = match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    };
    HeaderValue::from_str(&serialized).map_err(|_| invalid("it holds characters a header cannot"))
}

/// The host and the port (if any) of an origin's `host[:port]`; refuses a
/// host that is not a name, an IPv4 address or a bracketed IPv6 address.
fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), &'static str> {
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        let end = after.find(']').ok_or("an IPv6 address must end with ]")?;
        let address = &after[..end];
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("its brackets must hold an IPv6 address");
        }
        let host = &rest[..end + 2];
        match &rest[end + 2..] {
            "" => (host, None),
            tail => (
                host,
                Some(
                    tail.strip_prefix(':')
                        .ok_or("only a port may follow the host")?,
                ),
            ),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let is_name = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if host.is_empty() {
        return Err("it names no host");
    }
    if !host.starts_with('[') && !is_name {
        return Err("its host must be a name or an IP address (letters, digits, - and .)");
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert!(layer(&[]).unwrap().is_none());
        assert!(layer(&["*".into()]).unwrap().is_some());
        assert!(
            layer(&[
                "https://app.example.com".into(),
                "http://localhost:8080".into()
            ])
            .is_ok()
        );
        for bad in [
            "app.example.com",
            "https://",
            "https://a.com/",
            "ftp://a.com",
            "https://a b",
            "https://*.example.com",
            "http://a.com:99999",
            "http://a.com:0",
            "http://a.com:",
            "http://a.com:+80",
            "http://user@a.com",
            "http://[::1",
            "http://[nothost]:80",
            "http://[::1]x",
        ] {
            let error = layer(&[bad.into()]).expect_err(bad).to_string();
            assert!(error.contains("is not a web origin"), "{bad}: {error}");
        }
    }

    #[test]
    fn origins_are_written_as_browsers_send_them() {
        for (given, sent) in [
            ("https://App.Example.com", "https://app.example.com"),
            ("https://a.com:443", "https://a.com"),
            ("http://a.com:80", "http://a.com"),
            ("http://a.com:8080", "http://a.com:8080"),
            ("http://[::1]:3000", "http://[::1]:3000"),
            ("http://127.0.0.1", "http://127.0.0.1"),
        ] {
            assert_eq!(parse_origin(given).unwrap(), sent, "{given}");
        }
    }
}
