//! Who is making an HTTP request: the identity behind its bearer token.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use worldline_host::{Authority, Identity};

use super::error::ApiError;

/// The identity of a request's `Authorization: Bearer TOKEN` (the scheme
/// in any case), or `None` for a request without one. A token the server
/// did not sign is an error, and so are several `Authorization` headers:
/// which of them would count is not for the server to guess.
pub(crate) fn caller(
    authority: &Authority,
    headers: &HeaderMap,
) -> Result<Option<Identity>, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::unauthorized(
            "the request has several Authorization headers; send one",
        ));
    }
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer TOKEN`"))?
        .1;
    authority
        .verify(token.trim())
        .map(Some)
        .map_err(|e| ApiError::unauthorized(format!("the token was refused: {e}")))
}

/// Like [`caller`], but a token is required.
pub(crate) fn required_caller(
    authority: &Authority,
    headers: &HeaderMap,
    action: &str,
) -> Result<Identity, ApiError> {
    caller(authority, headers)?.ok_or_else(|| {
        ApiError::unauthorized(format!(
            "{action} needs a token (Authorization: Bearer TOKEN)"
        ))
    })
}
