//! Index entries for the common kinds of key, kept compactly: one or two
//! integer-like columns (bool, integers up to 64 bits, timestamps) as
//! `u64`s that order like the values, one identity column as its 32 bytes,
//! and one string column as the string alone. An entry is the key and a
//! row id: 16 or 24 bytes for integers, 40 for an identity, 24 and the
//! string's bytes for a string, where a [`Key`] of [`Value`]s takes
//! 48 bytes and, for two columns, an allocation of 96 more. Keys are most
//! of an index's memory, and most of a small row's.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::{Mutex, PoisonError};

use crate::index::{Key, KeyRange, Position, RowId};
use crate::schema::AlgebraicType;
use crate::value::Value;

/// A column type whose values map to `u64` keys in the same order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IntKind {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    Timestamp,
}

/// Flips the sign bit, so that signed values order like their keys.
const SIGN: u64 = 1 << 63;

impl IntKind {
    pub(crate) fn of(ty: &AlgebraicType) -> Option<Self> {
        Some(match ty {
            AlgebraicType::Bool => Self::Bool,
            AlgebraicType::U8 => Self::U8,
            AlgebraicType::U16 => Self::U16,
            AlgebraicType::U32 => Self::U32,
            AlgebraicType::U64 => Self::U64,
            AlgebraicType::I8 => Self::I8,
            AlgebraicType::I16 => Self::I16,
            AlgebraicType::I32 => Self::I32,
            AlgebraicType::I64 => Self::I64,
            AlgebraicType::Timestamp => Self::Timestamp,
            _ => return None,
        })
    }

    /// The key of a column value (`None` for a value of another type,
    /// which no row of the table holds).
    fn encode(value: &Value) -> Option<u64> {
        let signed = |v: i64| (v as u64) ^ SIGN;
        Some(match value {
            Value::Bool(v) => u64::from(*v),
            Value::U8(v) => u64::from(*v),
            Value::U16(v) => u64::from(*v),
            Value::U32(v) => u64::from(*v),
            Value::U64(v) => *v,
            Value::I8(v) => signed(i64::from(*v)),
            Value::I16(v) => signed(i64::from(*v)),
            Value::I32(v) => signed(i64::from(*v)),
            Value::I64(v) | Value::Timestamp(v) => signed(*v),
            _ => return None,
        })
    }

    /// The column value of a key.
    fn decode(self, key: u64) -> Value {
        let signed = (key ^ SIGN) as i64;
        match self {
            Self::Bool => Value::Bool(key != 0),
            Self::U8 => Value::U8(key as u8),
            Self::U16 => Value::U16(key as u16),
            Self::U32 => Value::U32(key as u32),
            Self::U64 => Value::U64(key),
            Self::I8 => Value::I8(signed as i8),
            Self::I16 => Value::I16(signed as i16),
            Self::I32 => Value::I32(signed as i32),
            Self::I64 => Value::I64(signed),
            Self::Timestamp => Value::Timestamp(signed),
        }
    }
}

/// A compact key, ordered like the key values it stands for.
pub(crate) trait CompactKey: Ord + Clone {
    /// The key of the first k key values; the missing columns of a
    /// multi-column key are `fill` (integer keys only).
    fn padded(values: &[Value], fill: u64) -> Option<Self>;
    /// The key values of a key (`kinds`: the integer columns' types).
    fn values(&self, kinds: &[IntKind]) -> Key;

    /// The key of a full key's values.
    fn of(values: &[Value]) -> Option<Self> {
        Self::padded(values, 0)
    }
}

impl CompactKey for u64 {
    fn padded(values: &[Value], _fill: u64) -> Option<Self> {
        match values {
            [value] => IntKind::encode(value),
            _ => None,
        }
    }

    fn values(&self, kinds: &[IntKind]) -> Key {
        Key::One(kinds[0].decode(*self))
    }
}

impl CompactKey for [u64; 2] {
    fn padded(values: &[Value], fill: u64) -> Option<Self> {
        match values {
            [first] => Some([IntKind::encode(first)?, fill]),
            [first, second] => Some([IntKind::encode(first)?, IntKind::encode(second)?]),
            _ => None,
        }
    }

    fn values(&self, kinds: &[IntKind]) -> Key {
        Key::Many(Box::new([
            kinds[0].decode(self[0]),
            kinds[1].decode(self[1]),
        ]))
    }
}

impl CompactKey for [u8; 32] {
    fn padded(values: &[Value], _fill: u64) -> Option<Self> {
        match values {
            [Value::Identity(bytes)] => Some(*bytes),
            _ => None,
        }
    }

    fn values(&self, _kinds: &[IntKind]) -> Key {
        Key::One(Value::Identity(*self))
    }
}

impl CompactKey for Box<str> {
    fn padded(values: &[Value], _fill: u64) -> Option<Self> {
        match values {
            [Value::String(s)] => Some(s.clone()),
            _ => None,
        }
    }

    fn values(&self, _kinds: &[IntKind]) -> Key {
        Key::One(Value::String(self.clone()))
    }
}

/// The entries of an index with compact keys, by key and then row id (a
/// unique index has one row per key).
#[derive(Debug)]
pub(crate) struct CompactIndex<K> {
    kinds: Box<[IntKind]>,
    entries: BTreeSet<(K, RowId)>,
    /// The keys [`get`](Self::get) found last and their rows, while the
    /// index does not change: a reducer typically finds rows and then
    /// updates them, which looks each up again. (A lock only so that the
    /// index stays `Sync`; one thread uses it at a time.)
    recent: Mutex<Recent<K>>,
}

/// How many lookups [`CompactIndex::get`] remembers.
const RECENT: usize = 4;

/// The last [`RECENT`] keys found, with their rows, the newest at `next - 1`.
#[derive(Debug)]
struct Recent<K> {
    found: [Option<(K, RowId)>; RECENT],
    next: usize,
}

impl<K: PartialEq> Recent<K> {
    fn get(&self, key: &K) -> Option<RowId> {
        self.found
            .iter()
            .flatten()
            .find_map(|(found, row)| (found == key).then_some(*row))
    }

    fn remember(&mut self, key: K, row: RowId) {
        self.found[self.next] = Some((key, row));
        self.next = (self.next + 1) % RECENT;
    }

    fn forget(&mut self) {
        self.found = Default::default();
    }
}

/// Entries of an index scan: each key (borrowed or rebuilt) and row.
pub(crate) type Found<'i> = Box<dyn Iterator<Item = (Cow<'i, Key>, RowId)> + 'i>;

impl<K: CompactKey + 'static> CompactIndex<K> {
    pub(crate) fn new(kinds: Box<[IntKind]>) -> Self {
        Self {
            kinds,
            entries: BTreeSet::new(),
            recent: Mutex::new(Recent {
                found: Default::default(),
                next: 0,
            }),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.forget_recent();
    }

    /// The first row with this key.
    pub(crate) fn get(&self, key: &[Value]) -> Option<RowId> {
        let key = K::of(key)?;
        if let Some(row) = self.recent.try_lock().ok().and_then(|r| r.get(&key)) {
            return Some(row);
        }
        let (found, row) = self.entries.range((key.clone(), RowId::MIN)..).next()?;
        let row = *row;
        (*found == key).then(|| {
            if let Ok(mut recent) = self.recent.try_lock() {
                recent.remember(key, row);
            }
            row
        })
    }

    fn forget_recent(&mut self) {
        self.recent
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .forget();
    }

    pub(crate) fn insert(&mut self, key: &[Value], row: RowId) {
        if let Some(key) = K::of(key) {
            self.forget_recent();
            self.entries.insert((key, row));
        }
    }

    pub(crate) fn remove(&mut self, key: &[Value], row: RowId) {
        if let Some(key) = K::of(key) {
            self.forget_recent();
            self.entries.remove(&(key, row));
        }
    }

    /// The entries in `range` after `after` (or from the start of the
    /// range), in key and then row order. A bound holding the first k
    /// columns of a key covers every key that starts with them: the other
    /// columns are filled with the lowest or highest key, as the side asks.
    pub(crate) fn range<'i>(&'i self, range: &KeyRange, after: Option<&Position>) -> Found<'i> {
        let start = |p: &Key| K::padded(p.as_slice(), 0).map(|k| (k, RowId::MIN));
        let end = |p: &Key| K::padded(p.as_slice(), u64::MAX).map(|k| (k, RowId::MAX));
        let lower = match (after, &range.lower) {
            (Some((key, row)), _) => K::of(key.as_slice()).map(|k| Bound::Excluded((k, *row))),
            (None, Bound::Unbounded) => Some(Bound::Unbounded),
            (None, Bound::Included(p)) => start(p).map(Bound::Included),
            (None, Bound::Excluded(p)) => end(p).map(Bound::Excluded),
        };
        let upper = match &range.upper {
            Bound::Unbounded => Some(Bound::Unbounded),
            Bound::Included(p) => end(p).map(Bound::Included),
            Bound::Excluded(p) => start(p).map(Bound::Excluded),
        };
        // Bounds were decoded with the columns' types, so they always have keys.
        match (lower, upper) {
            (Some(lower), Some(upper)) if !is_empty(&lower, &upper) => Box::new(
                self.entries
                    .range((lower, upper))
                    .map(|(key, row)| (Cow::Owned(key.values(&self.kinds)), *row)),
            ),
            _ => Box::new(std::iter::empty()),
        }
    }
}

/// Whether a range with these bounds holds nothing (`BTreeSet::range`
/// panics on a start after the end, or on both ends excluded and equal).
fn is_empty<T: Ord>(lower: &Bound<T>, upper: &Bound<T>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u))
        | (Bound::Excluded(l), Bound::Excluded(u)) => l >= u,
        _ => false,
    }
}
