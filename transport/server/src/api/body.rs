//! Request bodies, read whole by one reader: a call's JSON arguments and a
//! SQL query ([`CALL_OR_QUERY`]), and an uploaded component ([`COMPONENT`]).
//! Each kind has a largest size, refused with `413`; what a body holds
//! beyond its kind's free bytes takes room under the kind's [`BodyPool`],
//! server-wide and for the client's address (`503` when there is none);
//! and a body that sends too little for too long is dropped with `408`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::HttpBody as _;
use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use worldline_transport::http_api::MAX_COMPONENT_BYTES;

use super::{ApiError, MAX_REQUEST_BYTES};
use crate::shared::{AddressShare, BodyPool, FREE_BODY_BYTES};

/// A body that sends nothing for this long, or brings fewer than
/// [`SLOW_BODY_BYTES`] (and not its end) in a span of this length, is
/// dropped with `408`, giving back the room it held: one that stalls, or
/// trickles a byte at a time, holds its room for no longer than this.
pub(crate) const BODY_IDLE: Duration = Duration::from_secs(30);

/// The fewest bytes a body must bring in each [`BODY_IDLE`] span (about
/// 550 bytes a second), unless it ends in it.
pub(crate) const SLOW_BODY_BYTES: usize = 16 << 10;

/// What one kind of body is, for its limits and the texts of its errors.
pub(crate) struct BodyKind {
    /// The largest body, in bytes.
    limit: usize,
    /// The bytes a body may hold without taking room from its pool.
    free: usize,
    /// How long a body may wait for room before it is refused with `503`.
    wait: Duration,
    /// What bodies of this kind are, in the plural ("components").
    plural: &'static str,
    /// What a client does with one ("uploading").
    verb: &'static str,
    /// One body, as the subject of an error ("the component's upload").
    subject: &'static str,
    /// What a refused body did ("nothing was published").
    outcome: &'static str,
    /// What the client does next ("publish again").
    retry: &'static str,
}

/// A call's JSON arguments or a SQL query: at most [`MAX_REQUEST_BYTES`],
/// the first [`FREE_BODY_BYTES`] free.
pub(crate) const CALL_OR_QUERY: BodyKind = BodyKind {
    limit: MAX_REQUEST_BYTES,
    free: FREE_BODY_BYTES,
    wait: Duration::from_secs(10),
    plural: "request bodies",
    verb: "sending",
    subject: "the request body",
    outcome: "nothing was done",
    retry: "send the request again",
};

/// An uploaded component: at most [`MAX_COMPONENT_BYTES`], all of it
/// taking room.
pub(crate) const COMPONENT: BodyKind = BodyKind {
    limit: MAX_COMPONENT_BYTES,
    free: 0,
    wait: Duration::from_secs(60),
    plural: "components",
    verb: "uploading",
    subject: "the component's upload",
    outcome: "nothing was published",
    retry: "publish again",
};

/// The room a body holds in its [`BodyPool`], server-wide and for its
/// address, until dropped (none for a body within its free bytes).
pub(crate) struct BodyRoom {
    _held: Option<(OwnedSemaphorePermit, AddressShare)>,
}

/// Reads the body of a `POST` to `path` from `peer`, a body of `kind`
/// holding room in `pool` (the room returned, to keep while the bytes are
/// in use). A declared length over the kind's limit is refused before
/// anything is read (a client that sends the body anyway still reads the
/// answer: the listener reads and drops what it sends as the connection
/// closes).
pub(crate) async fn read_body(
    pool: &BodyPool,
    kind: &BodyKind,
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
            kind.limit,
        )
    };
    let hint = body.size_hint();
    if hint.lower() > kind.limit as u64 {
        return Err(too_large());
    }
    let expected = hint
        .upper()
        .map_or(kind.limit, |n| n as usize)
        .min(kind.limit);
    let room = BodyRoom {
        _held: match expected.checked_sub(kind.free) {
            Some(beyond) if beyond > 0 => Some(take_room(pool, kind, peer, beyond).await?),
            _ => None,
        },
    };
    let mut bytes = Vec::with_capacity(expected);
    let mut span = Span::starting_now();
    let mut last_byte = Instant::now();
    loop {
        let idle_end = last_byte + BODY_IDLE;
        let frame = match tokio::time::timeout_at(span.end.min(idle_end), body.frame()).await {
            Ok(frame) => frame,
            Err(_) if Instant::now() >= idle_end => return Err(too_slow(kind, 0)),
            Err(_) if span.brought >= SLOW_BODY_BYTES => {
                span = Span::starting_now();
                continue;
            }
            Err(_) => return Err(too_slow(kind, span.brought)),
        };
        let Some(frame) = frame else {
            return Ok((Bytes::from(bytes), room));
        };
        let frame = frame.map_err(|error| {
            ApiError::bad_request(format!("{} broke off: {error}", kind.subject))
        })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > expected {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
            span.brought += data.len();
            if !data.is_empty() {
                last_byte = Instant::now();
            }
        }
    }
}

/// A [`BODY_IDLE`] span of a body's reading, and the bytes it brought.
struct Span {
    end: Instant,
    brought: usize,
}

impl Span {
    fn starting_now() -> Self {
        Self {
            end: Instant::now() + BODY_IDLE,
            brought: 0,
        }
    }
}

/// The `408` for a body of `kind` that brought `brought` bytes in a
/// [`BODY_IDLE`] span, too few (none: it stalled).
fn too_slow(kind: &BodyKind, brought: usize) -> ApiError {
    let idle = BODY_IDLE.as_secs();
    let text = if brought == 0 {
        format!("{} stalled: no bytes arrived for {idle} s", kind.subject)
    } else {
        format!(
            "{} is too slow: {brought} bytes arrived in {idle} s, fewer than the \
             {SLOW_BODY_BYTES} a body must bring in every {idle} s until it ends",
            kind.subject
        )
    };
    ApiError::request_timeout(text).with_hint(format!("{}; {}", kind.outcome, kind.retry))
}

/// Takes `bytes` of room in `pool` for `peer`: its address's share at once,
/// or `503`; then server-wide room, waiting for it at most the kind's wait.
async fn take_room(
    pool: &BodyPool,
    kind: &BodyKind,
    peer: IpAddr,
    bytes: usize,
) -> Result<(OwnedSemaphorePermit, AddressShare), ApiError> {
    let per_address = pool.shares.max_per_address();
    let share = pool.shares.take(peer, bytes).map_err(|held| {
        ApiError::unavailable(format!(
            "{peer} is already {} {held} bytes of {}, and this one would take {bytes} more: \
             at most {per_address} at once per address",
            kind.verb, kind.plural
        ))
        .with_hint(format!(
            "{}; {} once the others have been received",
            kind.outcome, kind.retry
        ))
    })?;
    let permits =
        u32::try_from(bytes).map_err(|_| ApiError::unavailable("the body is too large"))?;
    let permit = tokio::time::timeout(
        kind.wait,
        Arc::clone(&pool.room).acquire_many_owned(permits),
    )
    .await
    .map_err(|_| {
        ApiError::unavailable(format!(
            "the server is already receiving as many {} as it holds at once ({} bytes) \
                 and has had no room for this one for {} s",
            kind.plural,
            pool.capacity,
            kind.wait.as_secs()
        ))
        .with_hint(format!("{}; {} shortly", kind.outcome, kind.retry))
    })?
    .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
    Ok((permit, share))
}
