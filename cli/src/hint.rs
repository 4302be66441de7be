//! Errors that carry a next step, and finding the next step for any error.

use std::fmt;

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

/// The next step for `error`: its own hint, else one for its kind.
pub fn hint_for(error: &anyhow::Error, command: &str) -> String {
    for cause in error.chain() {
        if let Some(hinted) = cause.downcast_ref::<Hinted>() {
            return hinted.hint.clone();
        }
        if let Some(hint) = cause.downcast_ref::<ApiError>().and_then(ApiError::hint) {
            return hint;
        }
    }
    if let Some(hint) = crate::start::hint(error) {
        return hint;
    }
    format!("run `worldline {command} --help` for usage")
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
}
