//! Errors of the HTTP API: a status code, a message, and a next step.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use worldline_transport::http_api::ErrorBody;

/// A failed API request, answered as `{"error": ..., "hint": ..., "diff": [...]}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    hint: Option<String>,
    /// For a refused migration: one line per incompatible change.
    diff: Vec<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            hint: None,
            diff: Vec::new(),
        }
    }

    /// The request itself is wrong (bad JSON, bad SQL, invalid component).
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The request needs a token and has none, or a token the server did not sign.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
            .with_hint("create an identity with `worldline identity new`")
    }

    /// Only the database's owner may do this.
    pub(crate) fn not_owner(database: &str, action: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("only the owner of database `{database}` may {action}"),
        )
        .with_hint("use the owner's identity (`worldline identity set-default`)")
    }

    /// No database has this name.
    pub(crate) fn no_database(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no database named `{name}`"))
            .with_hint("`worldline list` shows the databases; `worldline publish` creates one")
    }

    /// The request conflicts with the database's state (a refused migration).
    pub(crate) fn conflict(message: impl Into<String>, diff: Vec<String>) -> Self {
        Self {
            diff,
            ..Self::new(StatusCode::CONFLICT, message)
        }
    }

    /// The reducer ran and failed; nothing changed.
    pub(crate) fn reducer_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// The database cannot serve the request now.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// The call's transaction went to the commit log, which then failed:
    /// it may or may not be durable. `500`, unlike the `503` of a refused
    /// call, which is safe to retry.
    pub(crate) fn outcome_unknown(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message).with_hint(
            "the call may or may not have taken effect: once the server is restarted, check \
             (for example with `worldline sql`) before calling again",
        )
    }

    /// The server failed for a reason the client cannot fix.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The same error with a next step for the user.
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            hint: self.hint,
            diff: self.diff,
        };
        (self.status, Json(body)).into_response()
    }
}
