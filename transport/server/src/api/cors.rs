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

/// One origin as a browser sends it in `Origin`: `scheme://host[:port]`.
fn parse_origin(origin: &str) -> Result<HeaderValue, ServerError> {
    let invalid = |why: &str| {
        ServerError::Origin(format!(
            "`{origin}` is not a web origin: {why} (write it as a browser sends it, such as \
             https://app.example.com or http://localhost:8080, or * for any)"
        ))
    };
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| invalid("it must start with http:// or https://"))?;
    if rest.is_empty() {
        return Err(invalid("it names no host"));
    }
    if rest.contains(['/', '?', '#', ' ']) {
        return Err(invalid("it may hold no path, query or spaces"));
    }
    HeaderValue::from_str(origin).map_err(|_| invalid("it holds characters a header cannot"))
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
        ] {
            let error = layer(&[bad.into()]).expect_err(bad).to_string();
            assert!(error.contains("is not a web origin"), "{bad}: {error}");
        }
    }
}
