//! One index of a table: keys built from column values, mapped to row ids,
//! with prefix-aware range scans.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::codec::decode_value;
use crate::error::{DbError, DbErrorKind};
use crate::schema::{AlgebraicType, IndexSchema, ProductType};
use crate::value::Value;

/// Identifies a row within its table; increases with every insert.
pub(crate) type RowId = u64;

/// An index key: the values of the index's columns, in index order.
pub(crate) type Key = Vec<Value>;

/// Where an index scan has got to: the last key and row it returned.
pub(crate) type Position = (Key, RowId);

/// The bounds of an index scan, as decoded key prefixes.
#[derive(Debug, Clone)]
pub(crate) struct KeyRange {
    pub(crate) lower: Bound<Key>,
    pub(crate) upper: Bound<Key>,
}

enum Entries {
    Unique(BTreeMap<Key, RowId>),
    Btree(BTreeSet<(Key, RowId)>),
}

/// An index over some columns of a table.
pub(crate) struct Index {
    pub(crate) schema: IndexSchema,
    key_types: Vec<AlgebraicType>,
    entries: Entries,
}

impl Index {
    pub(crate) fn new(schema: IndexSchema, columns: &ProductType) -> Self {
        let key_types = schema
            .columns
            .iter()
            .map(|&c| columns.fields[c].ty.clone())
            .collect();
        let entries = if schema.unique {
            Entries::Unique(BTreeMap::new())
        } else {
            Entries::Btree(BTreeSet::new())
        };
        Self {
            schema,
            key_types,
            entries,
        }
    }

    pub(crate) fn is_unique(&self) -> bool {
        self.schema.unique
    }

    /// The key of a row, given its decoded columns.
    pub(crate) fn key_of(&self, row: &[Value]) -> Key {
        self.schema
            .columns
            .iter()
            .map(|&c| row[c].clone())
            .collect()
    }

    /// Decodes key bytes: all key columns, or with `prefix_ok` the first k >= 1 of them.
    pub(crate) fn decode_key(
        &self,
        bytes: &[u8],
        prefix_ok: bool,
        table: &str,
    ) -> Result<Key, DbError> {
        let invalid = |problem: String| {
            DbError::new(
                DbErrorKind::InvalidKey,
                format!(
                    "key for index `{}` of table `{table}`: {problem}",
                    self.schema.name
                ),
            )
        };
        let mut input = bytes;
        let mut key = Vec::with_capacity(self.key_types.len());
        for ty in &self.key_types {
            if input.is_empty() && (prefix_ok && !key.is_empty()) {
                break;
            }
            key.push(decode_value(ty, &mut input).map_err(|e| invalid(e.to_string()))?);
        }
        if !input.is_empty() {
            return Err(invalid(format!(
                "{} bytes after the last key column",
                input.len()
            )));
        }
        Ok(key)
    }

    /// The row with this key in a unique index.
    pub(crate) fn get(&self, key: &Key) -> Option<RowId> {
        match &self.entries {
            Entries::Unique(map) => map.get(key).copied(),
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
        }
    }

    pub(crate) fn remove(&mut self, key: Key, row: RowId) {
        match &mut self.entries {
            Entries::Unique(map) => {
                map.remove(&key);
            }
            Entries::Btree(set) => {
                set.remove(&(key, row));
            }
        }
    }

    /// Calls `visit` with each entry in `range` after `after`, in key order,
    /// until it returns false or the range ends.
    pub(crate) fn scan(
        &self,
        range: &KeyRange,
        after: Option<&Position>,
        mut visit: impl FnMut(&Key, RowId) -> bool,
    ) {
        let entries: Box<dyn Iterator<Item = (&Key, RowId)>> = match (&self.entries, after) {
            (Entries::Unique(map), Some((key, _))) => Box::new(
                map.range::<Key, _>((Bound::Excluded(key), Bound::Unbounded))
                    .map(|(k, r)| (k, *r)),
            ),
            (Entries::Btree(set), Some(position)) => Box::new(
                set.range((Bound::Excluded(position), Bound::Unbounded))
                    .map(|(k, r)| (k, *r)),
            ),
            (Entries::Unique(map), None) => match &range.lower {
                Bound::Unbounded => Box::new(map.iter().map(|(k, r)| (k, *r))),
                Bound::Included(p) | Bound::Excluded(p) => Box::new(
                    map.range::<Key, _>((Bound::Included(p), Bound::Unbounded))
                        .map(|(k, r)| (k, *r)),
                ),
            },
            (Entries::Btree(set), None) => match &range.lower {
                Bound::Unbounded => Box::new(set.iter().map(|(k, r)| (k, *r))),
                Bound::Included(p) | Bound::Excluded(p) => {
                    let start = (p.clone(), RowId::MIN);
                    Box::new(
                        set.range((Bound::Included(start), Bound::Unbounded))
                            .map(|(k, r)| (k, *r)),
                    )
                }
            },
        };
        for (key, row) in entries {
            if let Bound::Excluded(p) = &range.lower
                && compare_prefix(key, p) != Ordering::Greater
            {
                continue;
            }
            let inside = match &range.upper {
                Bound::Unbounded => true,
                Bound::Included(p) => compare_prefix(key, p) != Ordering::Greater,
                Bound::Excluded(p) => compare_prefix(key, p) == Ordering::Less,
            };
            if !inside || !visit(key, row) {
                return;
            }
        }
    }
}

/// Compares the first `prefix.len()` columns of `key` with `prefix`.
fn compare_prefix(key: &Key, prefix: &Key) -> Ordering {
    key[..prefix.len().min(key.len())].cmp(prefix)
}
