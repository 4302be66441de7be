//! Errors that carry a next step, and finding the next step for any error.

use std::fmt;

use worldline_client::ClientError;

use crate::api::ApiError;

/// An error with a one-line hint on what to do about it.
#[derive(Debug)]
pub struct Hinted {
    message: String,
    hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// An error saying `message`, with `hint` as the next step.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hinted {
        message: message.into(),
        hint: hint.into(),
    }
    .into()
}

/// The error and its causes on one line, `: `-separated, leaving out a
/// cause whose text the line already holds (many errors repeat their
/// source's message, such as an operating system error, in their own).
pub fn message_of(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The next step for `error`: its own hint, else one for its kind. An
/// error the server answered carries the server's hint or none: the
/// command's usage is no help with a refusal (#9 item 12).
pub fn hint_for(error: &anyhow::Error, command: &str) -> Option<String> {
    for cause in error.chain() {
        if let Some(hinted) = cause.downcast_ref::<Hinted>() {
            return Some(hinted.hint.clone());
        }
        if let Some(api) = cause.downcast_ref::<ApiError>() {
            return api.hint();
        }
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return client_hint(client);
        }
    }
    if let Some(hint) = crate::start::hint(error) {
        return Some(hint);
    }
    Some(format!("run `worldline {command} --help` for usage"))
}

/// The next step after a failed QUIC or WebSocket session: none for what
/// the server refused (its message says why), else where to look.
fn client_hint(error: &ClientError) -> Option<String> {
    match error {
        ClientError::Connect(_) | ClientError::Closed(_) => Some(
            "check that the server is running and reachable (for QUIC, its UDP port too); \
             --server points at another"
                .into(),
        ),
        ClientError::Protocol(_) | ClientError::Decode { .. } => Some(
            "the server sent what this worldline could not read: use the worldline of the \
             server's version (`GET /v1/server` shows it)"
                .into(),
        ),
        // The server refused (its message says why), or the message says what to fix.
        _ => None,
    }
}

/// For a refused migration, the lines of what changed.
pub fn diff_of(error: &anyhow::Error) -> &[String] {
    error
        .chain()
        .find_map(|cause| match cause.downcast_ref::<ApiError>() {
            Some(ApiError::Refused { body, .. }) => Some(body.diff.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    // #9 item 12: an OS error shown once, not once per layer that quotes it.
    #[test]
    fn a_cause_already_quoted_is_not_printed_again() {
        let os = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let text = os.to_string();
        let err = anyhow::Error::new(os).context(format!("/data/server.key: {text}"));
        assert_eq!(message_of(&err), format!("/data/server.key: {text}"));
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message_of(&err), "outer: inner");
    }

    // #9 item 12: a server's refusal without a hint gets none, not the
    // command's usage; a local error still points at the usage.
    #[test]
    fn a_refusal_without_a_hint_gets_no_usage_hint() {
        let refused = ApiError::Refused {
            status: 422,
            body: worldline_transport::http_api::ErrorBody {
                error: "the reducer failed: no money".into(),
                hint: None,
                diff: Vec::new(),
            },
        };
        let err = anyhow::Error::new(refused).context("calling transfer");
        assert_eq!(hint_for(&err, "call"), None);
        let rejected = ClientError::Rejected("no database named `x`".into());
        assert_eq!(hint_for(&anyhow::Error::new(rejected), "subscribe"), None);
        let local = anyhow::anyhow!("no such file");
        assert_eq!(
            hint_for(&local, "publish").as_deref(),
            Some("run `worldline publish --help` for usage")
        );
    }
}
