//! Identities, connection ids and timestamps as the host sees them.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A 32-byte identity: who called a reducer, who owns a database.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity([u8; 32]);

impl Identity {
    /// The identity with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The identity's bytes.
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Parses 64 hexadecimal digits (an optional `0x` prefix is allowed).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.strip_prefix("0x").unwrap_or(hex);
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Self(bytes))
    }

    /// The WIT representation: four big-endian words, bytes 0..8 first.
    pub(crate) fn to_words(self) -> (u64, u64, u64, u64) {
        let [a, b, c, d] = words::<4>(&self.0);
        (a, b, c, d)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({self})")
    }
}

/// A 16-byte id of one client connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId([u8; 16]);

impl ConnectionId {
    /// The connection id with these bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The connection id's bytes.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The WIT representation: two big-endian words, bytes 0..8 first.
    pub(crate) fn to_words(self) -> (u64, u64) {
        let [a, b] = words::<2>(&self.0);
        (a, b)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionId({self})")
    }
}

/// Microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
        };
        Self(micros)
    }

    /// The timestamp this many microseconds after the epoch.
    pub const fn from_micros_since_epoch(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the epoch.
    pub const fn to_micros_since_epoch(self) -> i64 {
        self.0
    }
}

fn words<const N: usize>(bytes: &[u8]) -> [u64; N] {
    std::array::from_fn(|i| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_be_bytes(word)
    })
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// `bytes` as lowercase hex digits, as identities are written.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_words_are_big_endian_in_byte_order() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0x12;
        bytes[31] = 0x34;
        let (a, _, _, d) = Identity::from_bytes(bytes).to_words();
        assert_eq!(a, 0x12 << 56);
        assert_eq!(d, 0x34);
    }

    #[test]
    fn identity_displays_as_hex() {
        let id = Identity::from_bytes([0xab; 32]);
        assert_eq!(id.to_string(), "ab".repeat(32));
    }
}
