//! Identities, connection ids and timestamps as modules see them.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bindings::worldline::module::types as wit;

/// A 32-byte identity: who called a reducer.
///
/// Encoded as its 32 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
        parse_hex(hex).map(Self)
    }

    pub(crate) fn from_wit(words: wit::Identity) -> Self {
        let (a, b, c, d) = words;
        Self(join_words([a, b, c, d]))
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
///
/// Encoded as its 16 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

    pub(crate) fn from_wit(words: wit::ConnectionId) -> Self {
        let (a, b) = words;
        Self(join_words([a, b]))
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

/// A point in time: microseconds since the Unix epoch (UTC).
///
/// Encoded like an `i64`. Adding or subtracting a [`Duration`] saturates at
/// the ends of the `i64` range instead of overflowing:
///
/// ```
/// use std::time::Duration;
/// use worldline::Timestamp;
///
/// let start = Timestamp::from_micros(1_000);
/// assert_eq!(start + Duration::from_millis(2), Timestamp::from_micros(3_000));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp this many microseconds after the epoch (before it if negative).
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// The timestamp this many microseconds after the epoch; the same as [`Timestamp::from_micros`].
    pub const fn from_micros_since_epoch(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the epoch.
    pub const fn to_micros_since_epoch(self) -> i64 {
        self.0
    }

    /// How long after `earlier` this is, or `None` if it is before `earlier`.
    pub fn duration_since(self, earlier: Timestamp) -> Option<Duration> {
        let micros = self.0.checked_sub(earlier.0)?;
        u64::try_from(micros).ok().map(Duration::from_micros)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(saturating_i64(duration)))
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, duration: Duration) {
        *self = *self + duration;
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;

    fn sub(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(saturating_i64(duration)))
    }
}

/// A duration in whole microseconds (rounded down; `u64::MAX` if longer), as
/// a `#[schedule_interval]` column holds it.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(worldline::micros(Duration::from_secs(1)), 1_000_000);
/// ```
pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn saturating_i64(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn join_words<const N: usize, const B: usize>(words: [u64; N]) -> [u8; B] {
    let mut bytes = [0u8; B];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    bytes
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

fn parse_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    if hex.len() != 2 * N || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_32_raw_bytes_in_postcard() {
        let id = Identity::from_bytes([7; 32]);
        assert_eq!(postcard::to_allocvec(&id).unwrap(), vec![7u8; 32]);
    }

    #[test]
    fn timestamp_encodes_like_i64() {
        let ts = Timestamp::from_micros_since_epoch(-1);
        assert_eq!(
            postcard::to_allocvec(&ts).unwrap(),
            postcard::to_allocvec(&-1i64).unwrap()
        );
    }

    #[test]
    fn timestamps_move_by_durations_and_saturate() {
        let t = Timestamp::from_micros(10);
        assert_eq!(t + Duration::from_micros(5), Timestamp::from_micros(15));
        assert_eq!(t - Duration::from_micros(15), Timestamp::from_micros(-5));
        assert_eq!(
            Timestamp::from_micros(i64::MAX - 1) + Duration::from_secs(1),
            Timestamp::from_micros(i64::MAX)
        );
        assert_eq!(
            Timestamp::from_micros(i64::MIN) - Duration::MAX,
            Timestamp::from_micros(i64::MIN)
        );
        let mut moved = t;
        moved += Duration::from_millis(1);
        assert_eq!(moved.duration_since(t), Some(Duration::from_millis(1)));
        assert_eq!(t.duration_since(moved), None);
    }

    #[test]
    fn micros_rounds_down_and_saturates() {
        assert_eq!(micros(Duration::from_nanos(1_999)), 1);
        assert_eq!(micros(Duration::MAX), u64::MAX);
    }

    #[test]
    fn wit_words_are_big_endian_byte_order() {
        let id = Identity::from_wit((0x0102030405060708, 0, 0, 0xff));
        assert_eq!(id.to_bytes()[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(id.to_bytes()[31], 0xff);
    }

    #[test]
    fn hex_round_trips() {
        let id = Identity::from_bytes([0xab; 32]);
        assert_eq!(Identity::from_hex(&id.to_string()), Some(id));
        assert_eq!(Identity::from_hex("0xab"), None);
    }
}
