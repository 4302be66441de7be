//! `GET /v1/database/NAME/logs`: the module log as newline-delimited JSON,
//! optionally followed as the module writes more (owner only).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;
use worldline_transport::http_api::LogLine;

use super::auth::required_caller;
use super::{ApiError, ask, database};
use crate::database_actor::Admin;
use crate::shared::Shared;

/// How often a followed log is checked for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// The query of a logs request; an unknown parameter is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogOptions {
    /// Keep the response open and send new lines as they are written.
    #[serde(default)]
    follow: bool,
    /// Start with at most this many of the newest lines (all kept lines if absent).
    tail: Option<usize>,
}

/// Answers with the kept log lines, then (with `follow`) every new one
/// until the client goes away, the database is deleted or the server stops.
pub(crate) async fn logs(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(options): Query<LogOptions>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = required_caller(&shared.authority, &headers, "reading logs")?;
    // The owner is checked on the database whose log is read: the name
    // may be deleted and published again, by someone else, meanwhile.
    let handle = database(&shared, &name)?;
    let owner = ask(&handle, &name, |reply| Admin::Describe { reply })
        .await?
        .owner;
    if owner != caller {
        return Err(ApiError::not_owner(&name, "read its logs"));
    }
    let mut lines = ask(&handle, &name, |reply| Admin::Logs { from: 0, reply }).await?;
    // Followed from after the newest kept line, whether or not `tail`
    // leaves it out (with `tail=0`, only lines written from now on).
    let next = lines.last().map_or(0, |line| line.seq + 1);
    if let Some(tail) = options.tail {
        lines.drain(..lines.len().saturating_sub(tail));
    }
    let first = Bytes::from(ndjson(&lines));
    let body = if options.follow {
        let shutdown = shared.shutdown_signal();
        let follow = stream::unfold(
            (handle, name, next, shutdown),
            |(handle, name, from, mut shutdown)| async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
                        _ = shutdown.changed() => return None,
                    }
                    let lines = ask(&handle, &name, |reply| Admin::Logs { from, reply })
                        .await
                        .ok()?;
                    if let Some(last) = lines.last() {
                        let next = last.seq + 1;
                        let chunk = Ok::<_, std::io::Error>(Bytes::from(ndjson(&lines)));
                        return Some((chunk, (handle, name, next, shutdown)));
                    }
                }
            },
        );
        let head = stream::once(async move { Ok::<_, std::io::Error>(first) });
        Body::from_stream(futures_util::StreamExt::chain(head, follow))
    } else {
        Body::from(first)
    };
    Ok(([(CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// One JSON object per line.
fn ndjson(lines: &[LogLine]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut out, line).expect("log lines always serialize");
        out.push(b'\n');
    }
    out
}
