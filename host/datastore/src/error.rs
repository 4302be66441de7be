//! Errors of datastore operations.

/// What kind of problem a datastore operation ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// No table has this id.
    NoSuchTable,
    /// The table has no index with this id.
    NoSuchIndex,
    /// The operation needs a unique index.
    IndexNotUnique,
    /// The row's bytes do not decode as the table's row type.
    InvalidRow,
    /// The key's bytes do not decode as the index's key (or a prefix of it).
    InvalidKey,
    /// The write would give two rows the same key in a unique index.
    UniqueViolation,
    /// No row has the key an update names.
    NotFound,
    /// An auto-increment sequence ran out of values for its column type.
    SequenceExhausted,
    /// A write outside a transaction, or `begin` inside one.
    NotInTransaction,
}

/// A datastore error: a kind to branch on and a message that names the
/// table, index and key involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    /// What went wrong.
    pub kind: DbErrorKind,
    /// A readable explanation.
    pub message: String,
}

impl DbError {
    pub(crate) fn new(kind: DbErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The first `chars` characters of `text`, followed by `…` if there are
/// more: how error messages quote text a client or module gave, which may
/// be very long.
pub fn excerpt(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
