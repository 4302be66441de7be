//! A client of the server's HTTP API (`transport/HTTP_API.md`).

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use ureq::Agent;
use ureq::http::Response;
use worldline_host::datastore::ModuleSchema;
use worldline_transport::http_api::{
    CallResult, DatabaseInfo, ErrorBody, LogLine, NewIdentity, Published, ServerInfo, SqlResult,
};

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server may take to start answering a request (listing,
/// describing, querying, issuing an identity, reading the log): far more
/// than a running server needs, so that a stopped or wedged one (which
/// still accepts connections) is reported instead of waited on forever.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a call may take to be answered: a procedure may run 30 s, and
/// a call may wait for the calls before it.
pub const CALL_ANSWER_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a publish may take to be answered once uploaded: the server
/// compiles the component first (seconds for a large one, more on a busy
/// machine).
pub const PUBLISH_ANSWER_TIMEOUT: Duration = Duration::from_secs(600);
/// The largest answer read into memory (SQL results, schemas).
const MAX_ANSWER_BYTES: u64 = 256 << 20;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing answered at the server's address.
    #[error("cannot reach the Worldline server at {server}: {reason}")]
    Unreachable {
        /// The server's URL.
        server: String,
        /// What the network said.
        reason: String,
    },
    /// The connection dropped after the request went out and before its
    /// answer came (the server stopped or crashed): what was asked may or
    /// may not have been done.
    #[error(
        "the connection to the Worldline server at {server} dropped before it answered \
         ({reason}): what was asked may or may not have been done"
    )]
    AnswerLost {
        /// The server's URL.
        server: String,
        /// What the network said.
        reason: String,
    },
    /// The server answered with an error.
    #[error("{}", .body.error)]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error, its hint and, for a refused migration, the diff.
        body: ErrorBody,
    },
    /// An error status without Worldline's JSON error body: something
    /// else answers at that address.
    #[error(
        "the server at {server} does not look like a Worldline server: it answered {status}{}, {}",
        content_type.as_ref().map(|t| format!(" ({t})")).unwrap_or_default(),
        excerpt.as_ref().map_or_else(|| "with an empty body".to_owned(), |e| format!("starting `{e}`"))
    )]
    NotWorldline {
        /// The server's URL.
        server: String,
        /// The HTTP status.
        status: u16,
        /// The answer's `Content-Type`, if any.
        content_type: Option<String>,
        /// The start of the body, on one line, control characters escaped.
        excerpt: Option<String>,
    },
    /// The server accepted the request but sent no answer in time.
    #[error(
        "the Worldline server at {server} accepted the connection but did not answer within \
         {} s",
        waited.as_secs()
    )]
    NoAnswer {
        /// The server's URL.
        server: String,
        /// How long the command waited.
        waited: Duration,
    },
    /// A database or reducer name that cannot exist (checked before sending).
    #[error("`{name}` is not a valid {what} name: use {rule}")]
    InvalidName {
        /// What was named: `database` or `reducer`.
        what: &'static str,
        /// The name given.
        name: String,
        /// What a valid name looks like.
        rule: &'static str,
    },
    /// The answer was not what the API specifies (perhaps not a Worldline server).
    #[error("unexpected answer from {server}: {reason}")]
    Unexpected {
        /// The server's URL.
        server: String,
        /// What was wrong.
        reason: String,
    },
}

impl ApiError {
    /// A next step for the user.
    pub fn hint(&self) -> Option<String> {
        match self {
            ApiError::Unreachable { .. } => Some(
                "start a server with `worldline start`, or point at one with --server URL".into(),
            ),
            ApiError::AnswerLost { .. } => Some(
                "check before retrying: `worldline describe NAME` shows the module a database \
                 runs after a publish, `worldline sql` what a call changed"
                    .into(),
            ),
            // The server's hint (`worldline identity new`) would not fix
            // it: a new identity does not replace the default one, whose
            // token the server refused (its signing key changed, say).
            ApiError::NoAnswer { .. } => Some(
                "check that the server is running and not stopped (a process suspended with \
                 Ctrl-Z or SIGSTOP still accepts connections), or overloaded; and that --server \
                 names a Worldline server"
                    .into(),
            ),
            ApiError::Refused { status: 401, .. } => Some(
                "create a new identity and make it the default with \
                 `worldline identity new --default`"
                    .into(),
            ),
            ApiError::Refused { body, .. } => body.hint.clone(),
            ApiError::InvalidName {
                what: "database", ..
            } => Some("`worldline list` shows the databases on the server".into()),
            ApiError::InvalidName { .. } => {
                Some("`worldline describe NAME` lists the reducers".into())
            }
            ApiError::Unexpected { .. } | ApiError::NotWorldline { .. } => Some(
                "check --server (or WORLDLINE_SERVER, or `default_server` in the config \
                 file, whichever named it): it must name a Worldline server's HTTP address, \
                 such as http://127.0.0.1:3000"
                    .into(),
            ),
        }
    }
}

/// `name` if it is a valid database name (1 to 64 lowercase letters,
/// digits, `-` or `_`), which is also safe in a URL path.
pub fn database_name(name: &str) -> Result<&str, ApiError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(name)
    } else {
        Err(ApiError::InvalidName {
            what: "database",
            name: name.to_owned(),
            rule: "1 to 64 lowercase letters, digits, `-` or `_`",
        })
    }
}

/// `name`, a reducer's or procedure's, as a URL path segment: any name a
/// module may give one (1 to 255 bytes, no control character), with
/// every byte but letters, digits, `-`, `.`, `_` and `~` percent-encoded.
fn reducer(name: &str) -> Result<String, ApiError> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ApiError::InvalidName {
            what: "reducer",
            name: name.to_owned(),
            rule: "1 to 255 bytes, without control characters",
        });
    }
    Ok(percent_encode(name))
}

/// The HTTP API of one server, as one identity (or anonymously).
pub struct Api {
    agent: Agent,
    server: String,
    token: Option<String>,
}

impl Api {
    /// A client of `server` (`http://host:port`) presenting `token`, if any.
    pub fn new(server: &str, token: Option<String>) -> Self {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(ANSWER_TIMEOUT))
            .build()
            .into();
        Self {
            agent,
            server: server.to_owned(),
            token,
        }
    }

    /// The server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    /// `request` with the token, if any, as `Authorization: Bearer TOKEN`.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    fn unreachable(&self, error: ureq::Error) -> ApiError {
        self.unanswered(error, ANSWER_TIMEOUT)
    }

    /// Why a request that may wait `waited` for its answer got none.
    fn unanswered(&self, error: ureq::Error, waited: Duration) -> ApiError {
        match error {
            ureq::Error::Timeout(ureq::Timeout::RecvResponse) => ApiError::NoAnswer {
                server: self.server.clone(),
                waited,
            },
            ureq::Error::Io(error) if dropped(&error) => ApiError::AnswerLost {
                server: self.server.clone(),
                reason: error.to_string(),
            },
            error => ApiError::Unreachable {
                server: self.server.clone(),
                reason: error.to_string(),
            },
        }
    }

    fn unexpected(&self, reason: impl ToString) -> ApiError {
        ApiError::Unexpected {
            server: self.server.clone(),
            reason: reason.to_string(),
        }
    }

    /// Turns an error status into [`ApiError::Refused`].
    fn check(&self, mut response: Response<ureq::Body>) -> Result<Response<ureq::Body>, ApiError> {
        let status = response.status().as_u16();
        if status < 400 {
            return Ok(response);
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|t| t.to_str().ok())
            .map(|t| crate::output::escape_controls(t).into_owned());
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .unwrap_or_default();
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(ApiError::Refused { status, body }),
            Err(_) => Err(ApiError::NotWorldline {
                server: self.server.clone(),
                status,
                content_type,
                excerpt: excerpt(&String::from_utf8_lossy(&bytes)),
            }),
        }
    }

    fn read<T: DeserializeOwned>(&self, response: Response<ureq::Body>) -> Result<T, ApiError> {
        let mut response = self.check(response)?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_json()
            .map_err(|e| self.unexpected(e))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let request = self.authorized(self.agent.get(self.url(path)));
        let response = request.call().map_err(|e| self.unreachable(e))?;
        self.read(response)
    }

    fn post(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.authorized(self.agent.post(self.url(path)))
    }

    /// `GET /v1/server`.
    pub fn server_info(&self) -> Result<ServerInfo, ApiError> {
        self.get("/v1/server")
    }

    /// `POST /v1/identity`: a new identity and its token.
    pub fn new_identity(&self) -> Result<NewIdentity, ApiError> {
        let response = self
            .post("/v1/identity")
            .send_empty()
            .map_err(|e| self.unreachable(e))?;
        self.read(response)
    }

    /// `GET /v1/database`.
    pub fn list(&self) -> Result<Vec<DatabaseInfo>, ApiError> {
        self.get("/v1/database")
    }

    /// `GET /v1/database/NAME`.
    pub fn info(&self, name: &str) -> Result<DatabaseInfo, ApiError> {
        self.get(&format!("/v1/database/{}", database_name(name)?))
    }

    /// `GET /v1/database/NAME/schema`.
    pub fn schema(&self, name: &str) -> Result<ModuleSchema, ApiError> {
        self.get(&format!("/v1/database/{}/schema", database_name(name)?))
    }

    /// `POST /v1/database/NAME`: creates, updates or replaces the database.
    pub fn publish(
        &self,
        name: &str,
        wasm: &[u8],
        delete_data: bool,
        allow_http: Option<&str>,
    ) -> Result<Published, ApiError> {
        let mut query = Vec::new();
        if delete_data {
            query.push("delete_data=true".to_owned());
        }
        if let Some(allow) = allow_http {
            query.push(format!("allow_http={}", percent_encode(allow)));
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        let response = self
            .post(&format!("/v1/database/{}{query}", database_name(name)?))
            .config()
            .timeout_recv_response(Some(PUBLISH_ANSWER_TIMEOUT))
            .build()
            .content_type("application/wasm")
            .send(wasm)
            .map_err(|e| self.unanswered(e, PUBLISH_ANSWER_TIMEOUT))?;
        self.read(response)
    }

    /// `DELETE /v1/database/NAME`.
    pub fn delete(&self, name: &str) -> Result<(), ApiError> {
        let path = format!("/v1/database/{}", database_name(name)?);
        let request = self.authorized(self.agent.delete(self.url(&path)));
        let response = request.call().map_err(|e| self.unreachable(e))?;
        self.check(response).map(drop)
    }

    /// `POST /v1/database/NAME/call/REDUCER` with JSON arguments.
    pub fn call(
        &self,
        name: &str,
        reducer_name: &str,
        args: &Value,
    ) -> Result<CallResult, ApiError> {
        let response = self
            .post(&format!(
                "/v1/database/{}/call/{}",
                database_name(name)?,
                reducer(reducer_name)?
            ))
            .config()
            .timeout_recv_response(Some(CALL_ANSWER_TIMEOUT))
            .build()
            .send_json(args)
            .map_err(|e| self.unanswered(e, CALL_ANSWER_TIMEOUT))?;
        self.read(response)
    }

    /// `POST /v1/database/NAME/sql`.
    pub fn sql(&self, name: &str, query: &str) -> Result<SqlResult, ApiError> {
        let response = self
            .post(&format!("/v1/database/{}/sql", database_name(name)?))
            .content_type("text/plain; charset=utf-8")
            .send(query)
            .map_err(|e| self.unreachable(e))?;
        self.read(response)
    }

    /// `GET /v1/database/NAME/logs`: calls `each` with every line, as the
    /// server sends them; with `follow`, until the server ends the stream,
    /// which is then an error (a followed log has no end of its own).
    pub fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<usize>,
        mut each: impl FnMut(LogLine) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut path = format!("/v1/database/{}/logs?follow={follow}", database_name(name)?);
        if let Some(tail) = tail {
            path.push_str(&format!("&tail={tail}"));
        }
        let request = self.authorized(self.agent.get(self.url(&path)));
        let response = request.call().map_err(|e| self.unreachable(e))?;
        let response = self.check(response)?;
        let reader = BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| self.unexpected(e))?;
            if line.trim().is_empty() {
                continue;
            }
            each(serde_json::from_str(&line).map_err(|e| self.unexpected(e))?)?;
        }
        if follow {
            return Err(crate::hint::hinted(
                format!(
                    "the server ended the log of database `{name}`: it stopped, or the database \
                     was deleted or became unavailable"
                ),
                "`worldline list` shows whether the server runs and the database is there and \
                 ready; then follow its log again",
            ));
        }
        Ok(())
    }
}

/// The start of a body that is not Worldline's, to show in an error: on
/// one line, control characters escaped, at most 100 characters; `None` if
/// it is empty.
fn excerpt(text: &str) -> Option<String> {
    const MAX: usize = 100;
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return None;
    }
    let escaped = crate::output::escape_controls(&one_line);
    let mut excerpt: String = escaped.chars().take(MAX).collect();
    if escaped.chars().count() > MAX {
        excerpt.push('…');
    }
    Some(excerpt)
}

/// `text` as a URL query value or path segment: every byte but unreserved
/// ones percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Whether `error` says an open connection dropped (rather than one that
/// could not be made).
fn dropped(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // A module may name a reducer `r-x y` (the WIT allows any name), and
    // the API takes it percent-encoded; the CLI refused every name but
    // letters, digits and `_`.
    #[test]
    fn any_name_a_module_may_give_a_reducer_is_sent_percent_encoded() {
        assert_eq!(reducer("transfer").unwrap(), "transfer");
        assert_eq!(reducer("r-x y").unwrap(), "r-x%20y");
        assert_eq!(reducer("a/b?c#d%").unwrap(), "a%2Fb%3Fc%23d%25");
        assert_eq!(reducer("café").unwrap(), "caf%C3%A9");
        for bad in [String::new(), "a\nb".into(), "x".repeat(256)] {
            assert!(reducer(&bad).is_err(), "{bad:?}");
        }
    }
}
