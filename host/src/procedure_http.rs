//! `http.send`: a procedure's requests go out through its database's
//! [`OutboundHttp`] client (the owner's allow-list, the address guard, the
//! limits), bounded by the procedure's deadline. Reducers, `describe` and a
//! procedure inside a transaction get `not-allowed-here`.

use std::time::Duration;

use tokio::runtime::Handle;
use worldline_outbound::{HttpError, HttpErrorKind, HttpRequest, OutboundHttp};

use crate::bindings::v2::worldline::module::http;
use crate::module_log::truncate_line;
use crate::state::HostState;
use crate::stop_signal::StopSignal;

/// A procedure's way out: its database's client, or why it has none, and
/// the runtime that drives its requests.
pub(crate) struct ProcedureHttp {
    pub(crate) client: Result<OutboundHttp, String>,
    pub(crate) runtime: Handle,
    /// Set once the server stops its procedures
    /// ([`Engine::stop_procedures`](crate::Engine::stop_procedures)): a
    /// request in flight ends at once, and the procedure is stopped.
    pub(crate) stop: StopSignal,
}

impl HostState {
    /// `http.send`: only a procedure outside a transaction may send.
    pub(crate) fn http_send(
        &mut self,
        request: http::Request,
    ) -> Result<http::Response, http::HttpError> {
        let (procedure, in_tx) = (self.procedure.as_ref(), self.in_procedure_tx());
        let Some(side) = procedure.filter(|_| !in_tx) else {
            let mut url = request.url;
            truncate_line(&mut url, 200);
            let why = if in_tx {
                "outbound HTTP is not allowed inside a transaction: commit or roll it back \
                 first, so that the database is not held while the request waits"
            } else {
                "outbound HTTP is for procedures only; reducers must stay deterministic and \
                 replayable"
            };
            return Err(http::HttpError {
                kind: http::HttpErrorKind::NotAllowedHere,
                message: format!("{} {url}: {why}", request.method),
            });
        };
        let client = side
            .http
            .client
            .as_ref()
            .map_err(|reason| http::HttpError {
                kind: http::HttpErrorKind::Denied,
                message: reason.clone(),
            })?;
        let request = HttpRequest {
            method: request.method,
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .map(|header| (header.name, header.value))
                .collect(),
            body: request.body,
            timeout: request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into())),
        };
        let mut stop = side.http.stop.clone();
        let sent = side.http.runtime.block_on(async {
            tokio::select! {
                sent = client.send(request, Some(side.deadline)) => sent,
                () = stop.interrupt() => Err(HttpError::new(
                    HttpErrorKind::Timeout,
                    "the server is shutting down: the request was abandoned and the procedure \
                     is being stopped",
                )),
            }
        });
        match sent {
            Ok(response) => Ok(http::Response {
                status: response.status,
                headers: response
                    .headers
                    .into_iter()
                    .map(|(name, value)| http::Header { name, value })
                    .collect(),
                body: response.body,
            }),
            Err(error) => Err(http::HttpError {
                kind: error_kind(error.kind),
                message: error.message,
            }),
        }
    }
}

/// The WIT case of an outbound error kind (the same cases).
fn error_kind(kind: HttpErrorKind) -> http::HttpErrorKind {
    use http::HttpErrorKind as Wit;
    match kind {
        HttpErrorKind::NotAllowedHere => Wit::NotAllowedHere,
        HttpErrorKind::Denied => Wit::Denied,
        HttpErrorKind::InvalidRequest => Wit::InvalidRequest,
        HttpErrorKind::Dns => Wit::Dns,
        HttpErrorKind::Connect => Wit::Connect,
        HttpErrorKind::Timeout => Wit::Timeout,
        HttpErrorKind::Tls => Wit::Tls,
        HttpErrorKind::RequestTooLarge => Wit::RequestTooLarge,
        HttpErrorKind::ResponseTooLarge => Wit::ResponseTooLarge,
        HttpErrorKind::TooManyRedirects => Wit::TooManyRedirects,
        HttpErrorKind::Protocol => Wit::Protocol,
    }
}
