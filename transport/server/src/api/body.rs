//! Request bodies other than component uploads (a call's JSON arguments, a
//! SQL query): read whole, up to [`MAX_REQUEST_BYTES`], taking room under
//! the server's [`MAX_BODY_BYTES`] for what lies beyond their first
//! [`FREE_BODY_BYTES`], and dropped with `408` once the client stops
//! sending.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::HttpBody as _;
use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use tokio::sync::OwnedSemaphorePermit;

use super::{ApiError, MAX_REQUEST_BYTES};
use crate::shared::{AddressShare, FREE_BODY_BYTES, MAX_BODY_BYTES, Shared};

/// How long a request body (a component's upload included) may go without
/// sending a byte before it is dropped with `408`, giving back the room it
/// held.
pub(crate) const BODY_IDLE: Duration = Duration::from_secs(30);

/// How long a body may wait for room under [`MAX_BODY_BYTES`] before it is
/// refused with `503`.
const BODY_WAIT: Duration = Duration::from_secs(10);

/// The room a body holds under [`MAX_BODY_BYTES`], server-wide and for its
/// address, until dropped (none for a body within [`FREE_BODY_BYTES`]).
pub(crate) struct BodyRoom {
    _held: Option<(OwnedSemaphorePermit, AddressShare)>,
}

/// Reads the body of a `POST` to `path` from `peer`, holding room for it
/// (the room returned, to keep while the bytes are in use). A declared
/// length over [`MAX_REQUEST_BYTES`] is refused before anything is read.
pub(crate) async fn read_body(
    shared: &Shared,
    peer: IpAddr,
    mut body: Body,
    path: &str,
) -> Result<(Bytes, BodyRoom), ApiError> {
    let too_large = || {
        ApiError::from_framework(
            StatusCode::PAYLOAD_TOO_LARGE,
            &Method::POST,
            path,
            "",
            MAX_REQUEST_BYTES,
        )
    };
    let hint = body.size_hint();
    if hint.lower() > MAX_REQUEST_BYTES as u64 {
        return Err(too_large());
    }
    let expected = hint
        .upper()
        .map_or(MAX_REQUEST_BYTES, |n| n as usize)
        .min(MAX_REQUEST_BYTES);
    let room = BodyRoom {
        _held: match expected.checked_sub(FREE_BODY_BYTES) {
            Some(beyond) if beyond > 0 => Some(take_room(shared, peer, beyond).await?),
            _ => None,
        },
    };
    let mut bytes = Vec::with_capacity(expected);
    loop {
        let frame = tokio::time::timeout(BODY_IDLE, body.frame())
            .await
            .map_err(|_| {
                ApiError::request_timeout(format!(
                    "the request body stalled: no bytes arrived for {} s",
                    BODY_IDLE.as_secs()
                ))
                .with_hint("nothing was done; send the request again")
            })?;
        let Some(frame) = frame else {
            return Ok((Bytes::from(bytes), room));
        };
        let frame = frame.map_err(|error| {
            ApiError::bad_request(format!("the request body broke off: {error}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > expected {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
}

/// Takes `bytes` of room for `peer`: its address's share at once, or
/// `503`; then server-wide room, waiting for it at most [`BODY_WAIT`].
async fn take_room(
    shared: &Shared,
    peer: IpAddr,
    bytes: usize,
) -> Result<(OwnedSemaphorePermit, AddressShare), ApiError> {
    let per_address = shared.body_shares.max_per_address();
    let share = shared.body_shares.take(peer, bytes).map_err(|held| {
        ApiError::unavailable(format!(
            "{peer} is already sending {held} bytes of request bodies, and this one would take \
             {bytes} more: at most {per_address} at once per address"
        ))
        .with_hint("nothing was done; send the request again once the others are answered")
    })?;
    let permit = tokio::time::timeout(
        BODY_WAIT,
        Arc::clone(&shared.bodies).acquire_many_owned(bytes as u32),
    )
    .await
    .map_err(|_| {
        ApiError::unavailable(format!(
            "the server is already receiving as many request bodies as it holds at once \
             ({MAX_BODY_BYTES} bytes) and has had no room for this one for {} s",
            BODY_WAIT.as_secs()
        ))
        .with_hint("nothing was done; send the request again shortly")
    })?
    .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
    Ok((permit, share))
}
