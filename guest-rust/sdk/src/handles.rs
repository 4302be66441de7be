//! Typed access to tables and their indexes, over the `datastore` import.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::worldline::module::datastore as host;
use crate::registry;

/// Rows fetched per call to the host while iterating.
const BATCH_ROWS: u32 = 256;

/// What kind of refusal a [`DbError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// No table has this id.
    NoSuchTable,
    /// The table has no index with this id.
    NoSuchIndex,
    /// The operation needs a unique index but this one is a btree index.
    IndexNotUnique,
    /// The row's bytes do not decode as the table's row type.
    InvalidRow,
    /// The key's bytes do not decode as (a prefix of) the index's key columns.
    InvalidKey,
    /// The write would give two rows the same key in a unique index.
    UniqueViolation,
    /// No row has the key the update names.
    NotFound,
    /// An auto-increment sequence has no values left for its column type.
    SequenceExhausted,
    /// No transaction is open: a procedure touched a table outside
    /// [`ProcedureContext::with_tx`](crate::ProcedureContext::with_tx).
    NoTransaction,
}

impl From<host::ErrorKind> for DbErrorKind {
    fn from(kind: host::ErrorKind) -> Self {
        use host::ErrorKind as K;
        match kind {
            K::NoSuchTable => Self::NoSuchTable,
            K::NoSuchIndex => Self::NoSuchIndex,
            K::IndexNotUnique => Self::IndexNotUnique,
            K::InvalidRow => Self::InvalidRow,
            K::InvalidKey => Self::InvalidKey,
            K::UniqueViolation => Self::UniqueViolation,
            K::NotFound => Self::NotFound,
            K::SequenceExhausted => Self::SequenceExhausted,
            K::NoTransaction => Self::NoTransaction,
        }
    }
}

/// Why a datastore operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// What went wrong.
    pub kind: DbErrorKind,
    /// A readable explanation naming the table, index and key.
    pub message: String,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbError {}

impl From<host::DbError> for DbError {
    fn from(e: host::DbError) -> Self {
        Self {
            kind: e.kind.into(),
            message: e.message,
        }
    }
}

/// A row type declared with `#[table]`.
pub trait TableRow: Serialize + DeserializeOwned {
    /// The table's name.
    const TABLE_NAME: &'static str;

    /// The id the host knows the table by.
    fn table_id() -> u32 {
        registry::table_id(Self::TABLE_NAME)
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encoding to a Vec cannot fail")
}

fn decode<R: DeserializeOwned>(bytes: &[u8]) -> R {
    postcard::from_bytes(bytes)
        .unwrap_or_else(|e| panic!("the host returned a row that does not decode: {e}"))
}

/// Unwraps a datastore result whose error means the SDK and host disagree,
/// or that a procedure touched a table outside a transaction.
/// The panic names the module's line that called the SDK, not the SDK's.
#[track_caller]
fn expect_ok<T>(result: Result<T, host::DbError>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{}", e.message),
    }
}

/// Operations every table handle (`ctx.db.<table>()`) offers.
pub trait Table {
    /// The table's row type.
    type Row: TableRow;

    /// Inserts a row and returns it as stored, with auto-increment columns
    /// filled in. Panics (rolling back the reducer) if a unique key is
    /// taken; the panic names the caller's line.
    #[track_caller]
    fn insert(&self, row: Self::Row) -> Self::Row {
        match self.try_insert(row) {
            Ok(row) => row,
            Err(e) => panic!("{e}"),
        }
    }

    /// Inserts a row and returns it as stored, or the datastore's refusal.
    fn try_insert(&self, row: Self::Row) -> Result<Self::Row, DbError> {
        let bytes = encode(&row);
        let stored = host::insert(Self::Row::table_id(), &bytes)?;
        Ok(if stored == bytes {
            row
        } else {
            decode(&stored)
        })
    }

    /// All rows, in insertion order, fetched lazily in batches.
    #[track_caller]
    fn iter(&self) -> RowIter<Self::Row> {
        RowIter::new(expect_ok(host::scan(Self::Row::table_id())))
    }

    /// How many rows the table has.
    #[track_caller]
    fn count(&self) -> u64 {
        expect_ok(host::count(Self::Row::table_id()))
    }
}

/// Ties a handle to its row and key types without owning either.
type Marker<R, K, P> = PhantomData<(fn() -> R, fn(&K), fn(&P))>;

/// A unique index (including the primary key) of a table.
pub struct UniqueIndex<R, K: ?Sized> {
    index: u32,
    marker: Marker<R, (), K>,
}

impl<R: TableRow, K: Serialize + ?Sized> UniqueIndex<R, K> {
    #[doc(hidden)]
    pub fn new(index: u32) -> Self {
        Self {
            index,
            marker: PhantomData,
        }
    }

    /// The row with this key.
    #[track_caller]
    pub fn find<Q: Serialize + ?Sized>(&self, key: &Q) -> Option<R>
    where
        K: Borrow<Q>,
    {
        expect_ok(host::find(R::table_id(), self.index, &encode(key))).map(|row| decode(&row))
    }

    /// Deletes the row with this key; returns whether there was one.
    #[track_caller]
    pub fn delete<Q: Serialize + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        expect_ok(host::delete(R::table_id(), self.index, &encode(key)))
    }

    /// Replaces the row that has `row`'s key. Panics (rolling back the
    /// reducer) if there is none or another unique key would be duplicated.
    #[track_caller]
    pub fn update(&self, row: R) -> R {
        match self.try_update(row) {
            Ok(row) => row,
            Err(e) => panic!("{e}"),
        }
    }

    /// Replaces the row that has `row`'s key, or returns the refusal.
    pub fn try_update(&self, row: R) -> Result<R, DbError> {
        host::update(R::table_id(), self.index, &encode(&row))?;
        Ok(row)
    }

    /// Rows whose key lies in `range`, in key order.
    pub fn range<B: RangeBounds<K>>(&self, range: B) -> RowIter<R>
    where
        K: Sized,
    {
        scan_range(R::table_id(), self.index, range)
    }
}

/// A btree index of a table, over one column or several (then `K` is the
/// tuple of the columns and `P` the first column's type).
pub struct BtreeIndex<R, K, P = K> {
    index: u32,
    marker: Marker<R, K, P>,
}

impl<R: TableRow, K: Serialize, P: Serialize> BtreeIndex<R, K, P> {
    #[doc(hidden)]
    pub fn new(index: u32) -> Self {
        Self {
            index,
            marker: PhantomData,
        }
    }

    /// Rows whose key equals `key`, in insertion order.
    pub fn filter<Q: Serialize + ?Sized>(&self, key: &Q) -> RowIter<R>
    where
        K: Borrow<Q>,
    {
        let key = encode(key);
        scan(
            R::table_id(),
            self.index,
            host::Bound::Included(key.clone()),
            host::Bound::Included(key),
        )
    }

    /// Rows whose first key column equals `prefix`, in key order.
    pub fn filter_prefix<Q: Serialize + ?Sized>(&self, prefix: &Q) -> RowIter<R>
    where
        P: Borrow<Q>,
    {
        let prefix = encode(prefix);
        scan(
            R::table_id(),
            self.index,
            host::Bound::Included(prefix.clone()),
            host::Bound::Included(prefix),
        )
    }

    /// Rows whose key lies in `range`, in key order.
    pub fn range<B: RangeBounds<K>>(&self, range: B) -> RowIter<R> {
        scan_range(R::table_id(), self.index, range)
    }
}

/// Marks the first column's type of a multi-column index (used by `#[table]`).
pub trait KeyPrefix {
    /// The first column's type.
    type First;
}

macro_rules! key_prefix {
    ($first:ident $(, $rest:ident)*) => {
        impl<$first $(, $rest)*> KeyPrefix for ($first, $($rest,)*) {
            type First = $first;
        }
    };
}

key_prefix!(A, B);
key_prefix!(A, B, C);
key_prefix!(A, B, C, D);
key_prefix!(A, B, C, D, E);
key_prefix!(A, B, C, D, E, F);

fn bound<K: Serialize>(bound: Bound<&K>) -> host::Bound {
    match bound {
        Bound::Unbounded => host::Bound::Unbounded,
        Bound::Included(key) => host::Bound::Included(encode(key)),
        Bound::Excluded(key) => host::Bound::Excluded(encode(key)),
    }
}

fn scan_range<R: TableRow, K: Serialize>(
    table: u32,
    index: u32,
    range: impl RangeBounds<K>,
) -> RowIter<R> {
    scan(
        table,
        index,
        bound(range.start_bound()),
        bound(range.end_bound()),
    )
}

fn scan<R: TableRow>(table: u32, index: u32, lower: host::Bound, upper: host::Bound) -> RowIter<R> {
    RowIter::new(expect_ok(host::scan_index(table, index, &lower, &upper)))
}

/// Rows of a scan, fetched from the host in batches as you iterate.
pub struct RowIter<R> {
    cursor: Option<host::Cursor>,
    batch: Vec<u8>,
    offset: usize,
    left_in_batch: u32,
    marker: PhantomData<fn() -> R>,
}

impl<R> RowIter<R> {
    fn new(cursor: host::Cursor) -> Self {
        Self {
            cursor: Some(cursor),
            batch: Vec::new(),
            offset: 0,
            left_in_batch: 0,
            marker: PhantomData,
        }
    }
}

impl<R: DeserializeOwned> Iterator for RowIter<R> {
    type Item = R;

    fn next(&mut self) -> Option<R> {
        if self.left_in_batch == 0 {
            let batch = self.cursor.as_ref()?.next(BATCH_ROWS);
            if batch.count == 0 {
                self.cursor = None;
                return None;
            }
            self.batch = batch.data;
            self.offset = 0;
            self.left_in_batch = batch.count;
        }
        let (row, rest) = postcard::take_from_bytes(&self.batch[self.offset..])
            .unwrap_or_else(|e| panic!("the host returned a row that does not decode: {e}"));
        self.offset = self.batch.len() - rest.len();
        self.left_in_batch -= 1;
        Some(row)
    }
}
