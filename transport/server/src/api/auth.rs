//! Who is making an HTTP request: the identity behind its bearer token.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use worldline_host::{Authority, Identity};

use super::error::ApiError;

/// The identity of a request's `Authorization: Bearer TOKEN`, or `None`
/// for a request without one. A token the server did not sign is an error.
pub(crate) fn caller(
    authority: &Authority,
    headers: &HeaderMap,
) -> Result<Option<Identity>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer TOKEN`"))?;
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
