//! One index of a table: keys built from column values, mapped to row ids,
//! with prefix-aware range scans.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

use crate::codec::decode_value;
use crate::compact_index::{CompactIndex, Found, IntKind};
use crate::error::{DbError, DbErrorKind};
use crate::row::Column;
use crate::schema::{AlgebraicType, IndexSchema};
use crate::value::{Value, write_list};

/// Identifies a row within its table; increases with every insert.
pub(crate) type RowId = u64;

/// An index key, or a prefix of one: the values of the first k key
/// columns. Keys order like slices of their values, so a prefix sorts just
/// before every key that extends it. Single-column keys need no allocation.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    One(Value),
    Many(Box<[Value]>),
}

impl Key {
    pub(crate) fn as_slice(&self) -> &[Value] {
        match self {
            Key::One(value) => std::slice::from_ref(value),
            Key::Many(values) => values,
        }
    }
}

impl From<Vec<Value>> for Key {
    fn from(mut values: Vec<Value>) -> Self {
        match values.pop() {
            Some(value) if values.is_empty() => Key::One(value),
            Some(last) => {
                values.push(last);
                Key::Many(values.into_boxed_slice())
            }
            None => Key::Many(Box::new([])),
        }
    }
}

impl Borrow<[Value]> for Key {
    fn borrow(&self) -> &[Value] {
        self.as_slice()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::One(a), Key::One(b)) => a.cmp(b),
            _ => self.as_slice().cmp(other.as_slice()),
        }
    }
}

/// Shows key values as `(v1, v2)`.
pub(crate) struct KeyDisplay<'a>(pub(crate) &'a [Value]);

impl fmt::Display for KeyDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, "(", self.0, ")")
    }
}

/// Where an index scan has got to: the last key and row it returned.
pub(crate) type Position = (Key, RowId);

/// The bounds of an index scan, as decoded key prefixes.
#[derive(Debug, Clone)]
pub(crate) struct KeyRange {
    pub(crate) lower: Bound<Key>,
    pub(crate) upper: Bound<Key>,
}

/// Whether key bytes must hold every key column or may hold a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyForm {
    Full,
    Prefix,
}

/// An index's entries: by [`Key`], or for one or two integer-like
/// columns or one string or identity column by compact keys (see [`CompactIndex`]).
#[derive(Debug)]
enum Entries {
    Unique(BTreeMap<Key, RowId>),
    Btree(BTreeSet<(Key, RowId)>),
    Int1(CompactIndex<u64>),
    Int2(CompactIndex<[u64; 2]>),
    Str(CompactIndex<Box<str>>),
    Identity(CompactIndex<[u8; 32]>),
}

/// One key column: its slot in decoded rows, its name and type.
#[derive(Debug)]
pub(crate) struct KeyColumn {
    pub(crate) slot: usize,
    pub(crate) name: String,
    pub(crate) ty: AlgebraicType,
}

/// An index over some columns of a table.
#[derive(Debug)]
pub(crate) struct Index {
    pub(crate) schema: IndexSchema,
    columns: Vec<KeyColumn>,
    entries: Entries,
}

impl Index {
    pub(crate) fn new(schema: IndexSchema, columns: Vec<KeyColumn>) -> Self {
        let kinds: Option<Box<[IntKind]>> = columns.iter().map(|c| IntKind::of(&c.ty)).collect();
        let single = |ty: AlgebraicType| matches!(columns.as_slice(), [only] if only.ty == ty);
        let entries = match kinds {
            Some(kinds) if kinds.len() == 1 => Entries::Int1(CompactIndex::new(kinds)),
            Some(kinds) if kinds.len() == 2 => Entries::Int2(CompactIndex::new(kinds)),
            _ if single(AlgebraicType::String) => Entries::Str(CompactIndex::new(Box::new([]))),
            _ if single(AlgebraicType::Identity) => {
                Entries::Identity(CompactIndex::new(Box::new([])))
            }
            _ if schema.unique => Entries::Unique(BTreeMap::new()),
            _ => Entries::Btree(BTreeSet::new()),
        };
        Self {
            schema,
            columns,
            entries,
        }
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        match &mut self.entries {
            Entries::Unique(map) => map.clear(),
            Entries::Btree(set) => set.clear(),
            Entries::Int1(index) => index.clear(),
            Entries::Int2(index) => index.clear(),
            Entries::Str(index) => index.clear(),
            Entries::Identity(index) => index.clear(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.schema.name
    }

    pub(crate) fn is_unique(&self) -> bool {
        self.schema.unique
    }

    /// The key values of a decoded row, borrowed when the key has one column.
    pub(crate) fn key_in<'a>(&self, row: &'a [Column]) -> Cow<'a, [Value]> {
        match self.columns.as_slice() {
            [only] => Cow::Borrowed(std::slice::from_ref(&row[only.slot].value)),
            columns => Cow::Owned(columns.iter().map(|c| row[c.slot].value.clone()).collect()),
        }
    }

    /// About how many bytes of memory the entry of a decoded row takes in
    /// this index: a value for each key column, and what the values hold.
    pub(crate) fn entry_bytes(&self, row: &[Column]) -> usize {
        let value = std::mem::size_of::<Value>();
        self.columns
            .iter()
            .map(|c| value + row[c.slot].value.heap_bytes())
            .sum()
    }

    /// The key of a decoded row, owned for storing in the index.
    pub(crate) fn key_of(&self, row: &[Column]) -> Key {
        match self.columns.as_slice() {
            [only] => Key::One(row[only.slot].value.clone()),
            columns => Key::Many(columns.iter().map(|c| row[c.slot].value.clone()).collect()),
        }
    }

    /// Decodes key bytes: all key columns, or for [`KeyForm::Prefix`] the first k >= 1 of them.
    pub(crate) fn decode_key(
        &self,
        bytes: &[u8],
        form: KeyForm,
        table: &str,
    ) -> Result<Key, DbError> {
        let invalid = |problem: String| {
            DbError::new(
                DbErrorKind::InvalidKey,
                format!(
                    "invalid key for index `{}` of table `{table}`: {problem}",
                    self.name()
                ),
            )
        };
        let decode_column = |column: &KeyColumn, input: &mut &[u8]| {
            decode_value(&column.ty, input)
                .map_err(|e| invalid(format!("column \"{}\": {e}", column.name)))
        };
        let mut input = bytes;
        let key = match self.columns.as_slice() {
            // The common single-column key needs no vector.
            [only] => Key::One(decode_column(only, &mut input)?),
            columns => {
                let mut values = Vec::with_capacity(columns.len());
                for column in columns {
                    if input.is_empty() && !values.is_empty() {
                        if form == KeyForm::Prefix {
                            break;
                        }
                        return Err(invalid(format!(
                            "a full key has {} columns, got {}",
                            columns.len(),
                            values.len()
                        )));
                    }
                    values.push(decode_column(column, &mut input)?);
                }
                Key::from(values)
            }
        };
        if !input.is_empty() {
            return Err(invalid(format!(
                "trailing {} bytes after the last key column",
                input.len()
            )));
        }
        Ok(key)
    }

    /// The row with this key (its values) in a unique index.
    pub(crate) fn get(&self, key: &[Value]) -> Option<RowId> {
        if !self.is_unique() {
            return None;
        }
        match &self.entries {
            Entries::Unique(map) => map.get(key).copied(),
            Entries::Int1(index) => index.get(key),
            Entries::Int2(index) => index.get(key),
            Entries::Str(index) => index.get(key),
            Entries::Identity(index) => index.get(key),
            Entries::Btree(_) => None,
        }
    }

    pub(crate) fn insert(&mut self, key: Key, row: RowId) {
        match &mut self.entries {
            Entries::Unique(map) => {
                map.insert(key, row);
            }
            Entries::Btree(set) => {
                set.insert((key, row));
            }
            Entries::Int1(index) => index.insert(key.as_slice(), row),
            Entries::Int2(index) => index.insert(key.as_slice(), row),
            Entries::Str(index) => index.insert(key.as_slice(), row),
            Entries::Identity(index) => index.insert(key.as_slice(), row),
        }
    }

    pub(crate) fn remove(&mut self, key: &[Value], row: RowId) {
        match &mut self.entries {
            Entries::Unique(map) => {
                map.remove(key);
            }
            Entries::Btree(set) => {
                set.remove(&(Key::from(key.to_vec()), row));
            }
            Entries::Int1(index) => index.remove(key, row),
            Entries::Int2(index) => index.remove(key, row),
            Entries::Str(index) => index.remove(key, row),
            Entries::Identity(index) => index.remove(key, row),
        }
    }

    /// The entries in `range` after `after` (or from the start of the
    /// range), in key order and, for equal keys, row order.
    pub(crate) fn range<'i, 'c>(
        &'i self,
        range: &'c KeyRange,
        after: Option<&Position>,
    ) -> impl Iterator<Item = (Cow<'i, Key>, RowId)> + use<'i, 'c> {
        let seek = |lower: &Bound<Key>| match lower {
            Bound::Unbounded => Bound::Unbounded,
            Bound::Included(p) | Bound::Excluded(p) => Bound::Included(p.clone()),
        };
        let entries: Found<'i> = match (&self.entries, after) {
            (Entries::Unique(map), Some((key, _))) => Box::new(
                map.range::<[Value], _>((Bound::Excluded(key.as_slice()), Bound::Unbounded))
                    .map(|(k, r)| (Cow::Borrowed(k), *r)),
            ),
            (Entries::Unique(map), None) => Box::new(
                map.range((seek(&range.lower), Bound::Unbounded))
                    .map(|(k, r)| (Cow::Borrowed(k), *r)),
            ),
            (Entries::Btree(set), Some(position)) => Box::new(
                set.range((Bound::Excluded(position), Bound::Unbounded))
                    .map(|(k, r)| (Cow::Borrowed(k), *r)),
            ),
            (Entries::Btree(set), None) => {
                let start = match seek(&range.lower) {
                    Bound::Included(p) => Bound::Included((p, RowId::MIN)),
                    _ => Bound::Unbounded,
                };
                Box::new(
                    set.range((start, Bound::Unbounded))
                        .map(|(k, r)| (Cow::Borrowed(k), *r)),
                )
            }
            (Entries::Int1(index), after) => index.range(range, after),
            (Entries::Int2(index), after) => index.range(range, after),
            (Entries::Str(index), after) => index.range(range, after),
            (Entries::Identity(index), after) => index.range(range, after),
        };
        // Once past a position, every key is past an excluded lower bound too.
        let check_lower = after.is_none();
        entries
            .skip_while(move |(key, _)| {
                check_lower
                    && matches!(&range.lower, Bound::Excluded(p) if compare_prefix(key, p).is_le())
            })
            .take_while(move |(key, _)| match &range.upper {
                Bound::Unbounded => true,
                Bound::Included(p) => compare_prefix(key, p).is_le(),
                Bound::Excluded(p) => compare_prefix(key, p).is_lt(),
            })
    }
}

/// Compares the first `prefix.len()` columns of `key` with `prefix`.
fn compare_prefix(key: &Key, prefix: &Key) -> Ordering {
    let key = key.as_slice();
    let prefix = prefix.as_slice();
    key[..prefix.len().min(key.len())].cmp(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_slices_and_prefixes_come_first() {
        let one = Key::from(vec![Value::U32(5)]);
        assert!(matches!(one, Key::One(_)));
        let two = Key::from(vec![Value::U32(5), Value::I32(-100)]);
        assert!(matches!(two, Key::Many(_)));
        assert!(one < two);
        assert!(Key::from(vec![Value::U32(4), Value::I32(100)]) < one);
        assert_eq!(compare_prefix(&two, &one), Ordering::Equal);
        assert_eq!(KeyDisplay(two.as_slice()).to_string(), "(5, -100)");
    }

    #[test]
    fn identity_keys_find_and_scan_in_byte_order() {
        let schema = IndexSchema {
            name: "by_owner".into(),
            columns: vec![0],
            unique: true,
        };
        let column = KeyColumn {
            slot: 0,
            name: "owner".into(),
            ty: AlgebraicType::Identity,
        };
        let mut index = Index::new(schema, vec![column]);
        let identity = |b: u8| Value::Identity([b; 32]);
        for (row, b) in [(0, 9u8), (1, 3), (2, 200), (3, 0)] {
            index.insert(Key::One(identity(b)), row);
        }
        assert_eq!(index.get(&[identity(200)]), Some(2));
        assert_eq!(index.get(&[identity(4)]), None);
        let range = KeyRange {
            lower: Bound::Excluded(Key::One(identity(0))),
            upper: Bound::Included(Key::One(identity(200))),
        };
        let found: Vec<RowId> = index.range(&range, None).map(|(_, row)| row).collect();
        assert_eq!(found, [1, 0, 2]);
        let after = (Key::One(identity(3)), 1);
        let rest: Vec<(Key, RowId)> = index
            .range(&range, Some(&after))
            .map(|(key, row)| (key.into_owned(), row))
            .collect();
        assert_eq!(
            rest,
            [(Key::One(identity(9)), 0), (Key::One(identity(200)), 2)]
        );
        index.remove(&[identity(9)], 0);
        assert_eq!(index.get(&[identity(9)]), None);
    }

    /// The values of an `i32` index's entries, with their row ids.
    fn ints<'a>(entries: impl Iterator<Item = (Cow<'a, Key>, RowId)>) -> Vec<(i32, RowId)> {
        entries
            .map(|(key, id)| match key.as_slice() {
                [Value::I32(v)] => (*v, id),
                other => panic!("not an i32 key: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn integer_keys_scan_and_resume_in_value_order() {
        use std::ops::{Bound::*, RangeBounds};
        for unique in [false, true] {
            let schema = IndexSchema {
                name: "by_n".into(),
                columns: vec![0],
                unique,
            };
            let column = KeyColumn {
                slot: 0,
                name: "n".into(),
                ty: AlgebraicType::I32,
            };
            let mut index = Index::new(schema, vec![column]);
            let values: &[i32] = if unique {
                &[7, -300, 0, i32::MIN, 5, i32::MAX, -1]
            } else {
                &[5, -1, 5, 0, i32::MIN, 7, 5, -300, i32::MAX, -1]
            };
            let entries: Vec<(i32, RowId)> = (0..).zip(values).map(|(id, &v)| (v, id)).collect();
            for &(v, id) in &entries {
                index.insert(Key::One(Value::I32(v)), id);
            }
            let cases = [
                (Unbounded, Unbounded),
                (Included(-1), Excluded(7)),
                (Excluded(-1), Included(5)),
                (Excluded(5), Excluded(5)),
                (Included(5), Included(5)),
                (Included(7), Included(0)),
                (Excluded(i32::MIN), Unbounded),
                (Unbounded, Excluded(0)),
            ];
            for (lower, upper) in cases {
                let key = |v: i32| Key::One(Value::I32(v));
                let range = KeyRange {
                    lower: lower.map(key),
                    upper: upper.map(key),
                };
                let mut expected: Vec<(i32, RowId)> = entries
                    .iter()
                    .filter(|(v, _)| (lower, upper).contains(v))
                    .copied()
                    .collect();
                expected.sort_unstable();
                assert_eq!(
                    ints(index.range(&range, None)),
                    expected,
                    "{lower:?}..{upper:?}"
                );
                for (i, &(v, id)) in expected.iter().enumerate() {
                    let after = (key(v), id);
                    let rest = ints(index.range(&range, Some(&after)));
                    assert_eq!(rest, expected[i + 1..], "{lower:?}..{upper:?} after {v}");
                }
            }
            let (v, id) = entries[1];
            assert_eq!(index.get(&[Value::I32(v)]), unique.then_some(id));
            index.remove(&[Value::I32(v)], id);
            let left = ints(index.range(
                &KeyRange {
                    lower: Unbounded,
                    upper: Unbounded,
                },
                None,
            ));
            assert_eq!(left.len(), entries.len() - 1);
            assert!(!left.contains(&(v, id)));
        }
    }
}
