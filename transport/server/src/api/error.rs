//! Errors of the HTTP API: a status code, a message, and a next step.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use worldline_host::{HostError, UnavailableDatabase, listed_changes, quoted_name};
use worldline_subscriptions::QueryError;
use worldline_transport::http_api::ErrorBody;

use crate::shared::Missing;

/// How the HTTP framework starts its refusal of a query string that does
/// not fit the route's parameters.
const QUERY_REJECTION: &str = "Failed to deserialize query string: ";

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
        Self::new(StatusCode::UNAUTHORIZED, message).with_hint(
            "create a new identity and make it the default with `worldline identity new \
                 --default`",
        )
    }

    /// Only the database's owner may do this.
    pub(crate) fn not_owner(database: &str, action: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("only the owner of database `{database}` may {action}"),
        )
        .with_hint("use the owner's identity (`worldline identity set-default`)")
    }

    /// The caller may not do this (a scheduled reducer called by someone
    /// other than the owner).
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// No database has this name (quoted cut short if long).
    pub(crate) fn no_database(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("no database named `{}`", quoted_name(name)),
        )
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

    /// The client did not send its request's body in time.
    pub(crate) fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, message)
    }

    /// The database cannot serve the request now.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// The database could not be recovered when the server started; it
    /// serves nothing until its owner deletes or replaces it.
    pub(crate) fn database_unavailable(database: &UnavailableDatabase) -> Self {
        let hint = database.remedy_hint();
        Self::unavailable(Missing::Unavailable(database.clone()).to_string()).with_hint(hint)
    }

    /// A query the SQL compiler refused: 403 for a private table the
    /// caller does not own, 400 for anything else.
    pub(crate) fn query(error: QueryError) -> Self {
        match error {
            QueryError::Private(_) => Self::new(StatusCode::FORBIDDEN, error.to_string())
                .with_hint("only the database owner's identity may read private tables"),
            QueryError::UnknownName(_) => Self::bad_request(error.to_string())
                .with_hint("`worldline describe` lists the database's tables and columns"),
            error => Self::bad_request(error.to_string()).with_hint(
                "the SQL Worldline accepts is described in transport/PROTOCOL.md, \"Supported SQL\"",
            ),
        }
    }

    /// Why publishing a module (creating a database or swapping its
    /// module) was refused, with what to change.
    pub(crate) fn publish_refused(error: HostError) -> Self {
        let message = error.to_string();
        match error {
            HostError::IncompatibleSchema(diff) => Self::conflict(
                "the new module's schema is not compatible with the stored data",
                listed_changes(&diff.to_string()),
            )
            .with_hint(
                "keep every existing table with its columns and primary key unchanged (new \
                 tables, indexes and reducers are fine; keep new data in a new table), or \
                 republish with --delete-data to delete the data and start afresh",
            ),
            HostError::Migration(_) => Self::conflict(message, Vec::new())
                .with_hint("fix the rows the new index refuses, or republish with --delete-data"),
            HostError::Schema(_) => Self::bad_request(message).with_hint(
                "fix the table or reducer the message names in the module's source, rebuild and \
                 publish again",
            ),
            HostError::InvalidComponent(_) | HostError::TruncatedComponent(_) => {
                Self::bad_request(message).with_hint(
                    "publish a complete WebAssembly component built for wasm32-wasip2 \
                     (`worldline publish` in a project directory builds one)",
                )
            }
            HostError::WorldMismatch(_) => Self::bad_request(message).with_hint(
                "build the module against this server's worldline:module@0.2.0 WIT world \
                 (the worldline SDK of this server's version) and import nothing else",
            ),
            HostError::DescribeTrapped(_)
            | HostError::DescribeTimedOut(_)
            | HostError::DescribeNondeterministic(_)
            | HostError::StartTrapped(_)
            | HostError::StartTimedOut(_) => Self::bad_request(message).with_hint(
                "the module failed before any reducer ran; `describe` and start-up code must \
                 return promptly without panicking",
            ),
            HostError::InitFailed(_) => Self::bad_request(message).with_hint(
                "the database was not created; fix the module's init reducer and publish again",
            ),
            HostError::SwapRefused(_) => {
                Self::conflict(listed_changes(&message).join("\n"), Vec::new())
                    .with_hint("republish with --delete-data to delete the data and start afresh")
            }
            HostError::InvalidName(_) => Self::bad_request(message),
            // #9 items 12, 13: the pool is the operator's setting, not the module's fault.
            HostError::InstancePoolFull { .. } => Self::unavailable(message).with_hint(
                "restart the server with a larger pool (`worldline start --max-instances N`), \
                 or delete a database that is no longer needed",
            ),
            // #9 item 7: a storage failure (a full disk) is the server being
            // unable to serve now, not a fault of the request.
            HostError::Unavailable(_) | HostError::Storage(_) | HostError::DataDir { .. } => {
                Self::unavailable(message).with_hint(
                    "nothing was published; the server could not write the database's files \
                     (is its disk full?): publish again once that is fixed and, if the \
                     database's commit log failed, the server restarted",
                )
            }
            _ => Self::internal(message),
        }
    }

    /// No route has this path.
    pub(crate) fn unknown_route(method: &Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("no such API route: {method} {}", quoted_name(path)),
        )
        .with_hint("the routes are listed in HTTP_API.md; they all start with /v1/")
    }

    /// The route exists but does not take this method.
    pub(crate) fn wrong_method(method: &Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} does not take {method}", quoted_name(path)),
        )
        .with_hint("the methods each route takes are listed in HTTP_API.md")
    }

    /// A refusal by the HTTP framework itself (its status and plain-text
    /// `text`), as an API error. `max_body` is the route's body limit.
    pub(crate) fn from_framework(
        status: StatusCode,
        method: &Method,
        path: &str,
        text: &str,
        max_body: usize,
    ) -> Self {
        let detail = if text.is_empty() {
            status.canonical_reason().unwrap_or("refused").to_owned()
        } else {
            text.to_owned()
        };
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                status,
                format!(
                    "the request body is larger than the {max_body} bytes {method} {} accepts",
                    quoted_name(path)
                ),
            ),
            StatusCode::NOT_FOUND => Self::unknown_route(method, path),
            StatusCode::METHOD_NOT_ALLOWED => Self::wrong_method(method, path),
            StatusCode::BAD_REQUEST if detail.starts_with(QUERY_REJECTION) => Self::new(
                status,
                format!(
                    "{method} {}: invalid query string: {}",
                    quoted_name(path),
                    quoted_name(&detail[QUERY_REJECTION.len()..])
                ),
            )
            .with_hint("the query parameters each route takes are listed in HTTP_API.md"),
            _ => Self::new(
                status,
                format!("{method} {}: {}", quoted_name(path), quoted_name(&detail)),
            ),
        }
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

impl From<Missing> for ApiError {
    fn from(missing: Missing) -> Self {
        match missing {
            Missing::NoSuchDatabase(name) => Self::no_database(&name),
            Missing::Unavailable(database) => Self::database_unavailable(&database),
        }
    }
}
