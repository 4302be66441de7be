//! Where one table's row bytes live: in large pages, found through a dense
//! array of slots indexed by row id.
//!
//! Why this layout: an in-memory database's capacity is the number of rows
//! that fit, and small rows dominate (a `u32` key and an `i64` are 3 to 15
//! bytes of postcard). A map of row ids to individually allocated rows
//! spends several times a small row's size on the allocation header, the
//! reference count and the map's node for each row. Here a row costs its
//! bytes plus a one-byte length (for rows under 128 bytes) in a page shared
//! with other rows, and an 8-byte slot:
//!
//! - **Pages**: rows are appended to 64 KiB pages (a row larger than a page
//!   gets a page of its own), as a varint length followed by the bytes. A
//!   row replaced by one of the same length is overwritten in place (the
//!   common update: a balance changes, its encoding keeps its length);
//!   otherwise the old bytes become dead space. A page whose rows are all
//!   gone is freed at once and its place reused; when dead space outgrows
//!   the live rows, they are copied into fresh pages ([`RowStore::tidy`]).
//! - **Slots**: row ids grow with every insert, so ids give insertion order,
//!   which scans and index entries with equal keys follow. Slot `i` holds
//!   the page and offset of row `base + i`, or nothing once it was taken
//!   out. Empty slots at the front are dropped; when empty slots elsewhere
//!   outnumber the rows, [`RowStore::tidy`] gives the rows new ids, in the
//!   same order, from the next unused id on, and the table rebuilds its
//!   indexes. That happens only between transactions, so it never moves a
//!   row under a transaction's undo log; ids are never handed out twice, so
//!   a cursor kept past its transaction (the host closes them with the call
//!   that opened them) may return rows again after renumbering, never skip
//!   any.
//!
//! Rows handed out (scans, deltas, the undo log) are copied out of the
//! pages; a table holds no other copy of them.

use std::collections::VecDeque;

use crate::index::RowId;
use crate::table::Row;

/// The size of a page of small rows.
const PAGE: usize = 64 * 1024;

/// A slot with no row.
const EMPTY: u64 = u64::MAX;

/// Below this many empty slots (or dead bytes), tidying leaves them.
const TIDY_MIN: usize = 4096;

/// One table's rows by id, in pages.
#[derive(Debug, Default)]
pub(crate) struct RowStore {
    /// The id of the row in `slots[0]`.
    base: RowId,
    /// By `id - base`: the row's page (high 32 bits) and offset, or [`EMPTY`].
    slots: VecDeque<u64>,
    /// How many slots hold a row.
    len: usize,
    pages: Vec<Page>,
    /// Pages freed (their rows all gone), to be used again.
    free_pages: Vec<usize>,
    /// The page new rows are appended to.
    filling: Option<usize>,
    /// Bytes of rows (with their lengths) no longer stored, in pages not yet freed.
    dead: usize,
    /// Bytes of stored rows, with their lengths.
    live: usize,
}

#[derive(Debug, Default)]
struct Page {
    bytes: Vec<u8>,
    /// How many stored rows are in this page.
    rows: u32,
}

/// Bytes a row of `len` bytes takes in a page: its varint length and itself.
fn footprint(len: usize) -> usize {
    let mut prefix = 1;
    let mut rest = len >> 7;
    while rest > 0 {
        prefix += 1;
        rest >>= 7;
    }
    prefix + len
}

fn write_len(out: &mut Vec<u8>, mut len: usize) {
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

/// The row at `offset` of a page: its bytes' start and end.
fn read_at(page: &[u8], offset: usize) -> (usize, usize) {
    let mut len = 0usize;
    let mut shift = 0;
    let mut at = offset;
    loop {
        let byte = page[at];
        at += 1;
        len |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return (at, at + len);
        }
        shift += 7;
    }
}

fn split(loc: u64) -> (usize, usize) {
    ((loc >> 32) as usize, (loc & u64::from(u32::MAX)) as usize)
}

impl RowStore {
    /// How many rows are stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The id the next stored row gets.
    pub(crate) fn next_id(&self) -> RowId {
        self.base + self.slots.len() as RowId
    }

    fn slot(&self, id: RowId) -> Option<usize> {
        let at = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (at < self.slots.len() && self.slots[at] != EMPTY).then_some(at)
    }

    fn bytes_at(&self, loc: u64) -> &[u8] {
        let (page, offset) = split(loc);
        let page = &self.pages[page].bytes;
        let (start, end) = read_at(page, offset);
        &page[start..end]
    }

    /// The bytes of row `id`.
    pub(crate) fn get(&self, id: RowId) -> Option<&[u8]> {
        Some(self.bytes_at(self.slots[self.slot(id)?]))
    }

    /// Copies `bytes` into a page and returns where.
    fn append(&mut self, bytes: &[u8]) -> u64 {
        let needed = footprint(bytes.len());
        let index = match self.filling {
            Some(i) if self.pages[i].bytes.capacity() - self.pages[i].bytes.len() >= needed => i,
            filled => {
                let page = Page {
                    bytes: Vec::with_capacity(needed.max(PAGE)),
                    rows: 0,
                };
                let index = match self.free_pages.pop() {
                    Some(i) => {
                        self.pages[i] = page;
                        i
                    }
                    None => {
                        self.pages.push(page);
                        self.pages.len() - 1
                    }
                };
                self.filling = Some(index);
                // A filled page whose rows all went while it was filled.
                if let Some(filled) = filled
                    && self.pages[filled].rows == 0
                {
                    self.free_page(filled, 0);
                }
                index
            }
        };
        let page = &mut self.pages[index];
        let offset = page.bytes.len();
        write_len(&mut page.bytes, bytes.len());
        page.bytes.extend_from_slice(bytes);
        page.rows += 1;
        self.live += needed;
        ((index as u64) << 32) | offset as u64
    }

    /// Forgets the row at `loc`, freeing its page if it was the page's last
    /// row (and the page is not the one being filled).
    fn release(&mut self, loc: u64) {
        let (index, _) = split(loc);
        let size = footprint(self.bytes_at(loc).len());
        self.live -= size;
        let page = &mut self.pages[index];
        page.rows -= 1;
        if page.rows == 0 && self.filling != Some(index) {
            self.free_page(index, size);
        } else {
            self.dead += size;
        }
    }

    /// Frees page `index`, whose rows are all gone; `size` bytes of them
    /// were not counted as dead yet.
    fn free_page(&mut self, index: usize, size: usize) {
        let page = &mut self.pages[index];
        self.dead -= page.bytes.len() - size;
        page.bytes = Vec::new();
        self.free_pages.push(index);
    }

    /// Stores a row under the next id and returns the id.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> RowId {
        let id = self.next_id();
        let loc = self.append(bytes);
        self.slots.push_back(loc);
        self.len += 1;
        id
    }

    /// Stores a row under `id`, which must be free: taken out earlier in
    /// this transaction (when rolling back), or not yet handed out.
    pub(crate) fn put_at(&mut self, id: RowId, bytes: &[u8]) {
        while self.next_id() <= id {
            self.slots.push_back(EMPTY);
        }
        let at = (id - self.base) as usize;
        debug_assert_eq!(self.slots[at], EMPTY, "row {id} is stored already");
        self.slots[at] = self.append(bytes);
        self.len += 1;
    }

    /// Takes row `id` out and returns its bytes.
    pub(crate) fn take(&mut self, id: RowId) -> Option<Row> {
        let at = self.slot(id)?;
        let loc = self.slots[at];
        let row = Row::from(self.bytes_at(loc));
        self.release(loc);
        self.slots[at] = EMPTY;
        self.len -= 1;
        Some(row)
    }

    /// Takes row `id` out, without copying it.
    pub(crate) fn remove(&mut self, id: RowId) -> bool {
        let Some(at) = self.slot(id) else {
            return false;
        };
        self.release(self.slots[at]);
        self.slots[at] = EMPTY;
        self.len -= 1;
        true
    }

    /// Replaces the bytes of row `id`, in place when they keep their length.
    pub(crate) fn replace(&mut self, id: RowId, bytes: &[u8]) -> bool {
        let Some(at) = self.slot(id) else {
            return false;
        };
        let loc = self.slots[at];
        let (index, offset) = split(loc);
        let (start, end) = read_at(&self.pages[index].bytes, offset);
        if end - start == bytes.len() {
            self.pages[index].bytes[start..end].copy_from_slice(bytes);
        } else {
            self.release(loc);
            self.slots[at] = self.append(bytes);
        }
        true
    }

    /// The rows from id `from` on, in id order.
    pub(crate) fn iter_from(&self, from: RowId) -> impl Iterator<Item = (RowId, &[u8])> + '_ {
        let start = usize::try_from(from.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.slots.len());
        self.slots
            .range(start..)
            .enumerate()
            .filter(|(_, loc)| **loc != EMPTY)
            .map(move |(i, &loc)| (self.base + (start + i) as RowId, self.bytes_at(loc)))
    }

    /// Every row, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (RowId, &[u8])> + '_ {
        self.iter_from(0)
    }

    /// Between transactions: drops empty slots at the front, copies the
    /// rows into fresh pages when dead space outgrows them, and renumbers
    /// the rows, in order, from the next unused id on when empty slots
    /// outnumber them. Returns whether it renumbered (the table's indexes
    /// must then be rebuilt).
    pub(crate) fn tidy(&mut self) -> bool {
        while self.slots.front() == Some(&EMPTY) {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.slots.is_empty() {
            self.pages.clear();
            self.free_pages.clear();
            self.filling = None;
            (self.dead, self.live) = (0, 0);
        }
        if self.dead > TIDY_MIN.max(self.live) {
            self.repack();
        }
        let holes = self.slots.len() - self.len;
        if holes > TIDY_MIN.max(self.len) {
            self.base = self.next_id();
            self.slots.retain(|&loc| loc != EMPTY);
            self.slots.shrink_to_fit();
            return true;
        }
        false
    }

    /// Copies every stored row into fresh pages, leaving no dead space.
    fn repack(&mut self) {
        let old = std::mem::take(&mut self.pages);
        self.free_pages.clear();
        self.filling = None;
        let mut slots = std::mem::take(&mut self.slots);
        let (dead, live) = (self.dead, self.live);
        self.live = 0;
        for loc in slots.iter_mut().filter(|l| **l != EMPTY) {
            let (page, offset) = split(*loc);
            let (start, end) = read_at(&old[page].bytes, offset);
            *loc = self.append(&old[page].bytes[start..end]);
        }
        debug_assert_eq!(self.live, live, "{dead} dead bytes");
        self.slots = slots;
        self.dead = 0;
    }

    /// Room the store holds beyond its rows' own bytes, for tests.
    #[cfg(test)]
    fn dead(&self) -> usize {
        self.dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_replaces_and_takes_rows_in_id_order() {
        let mut store = RowStore::default();
        let a = store.push(b"alpha");
        let b = store.push(&[7u8; 300]);
        let c = store.push(b"");
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(store.get(b), Some(&[7u8; 300][..]));
        assert!(store.replace(a, b"omega"));
        assert_eq!(store.dead(), 0, "same length: in place");
        assert!(store.replace(a, b"longer row"));
        assert_eq!(store.dead(), 6);
        assert_eq!(store.take(b).as_deref(), Some(&[7u8; 300][..]));
        assert!(store.get(b).is_none() && !store.remove(b));
        let rows: Vec<_> = store.iter().collect();
        assert_eq!(rows, [(0, &b"longer row"[..]), (2, &b""[..])]);
        assert_eq!(store.iter_from(1).count(), 1);
        store.put_at(b, b"back");
        assert_eq!(store.get(b), Some(&b"back"[..]));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn a_queue_of_rows_reuses_its_pages() {
        let mut store = RowStore::default();
        let row = [5u8; 100];
        let first = store.push(&row);
        for oldest in first..first + 100_000 {
            store.push(&row);
            store.remove(oldest);
            store.tidy();
        }
        // 100,000 rows of 101 bytes went through; one is left.
        assert!(store.pages.len() <= 3, "{} pages", store.pages.len());
        assert_eq!(store.len(), 1);
        assert_eq!(store.iter().count(), 1);
    }

    #[test]
    fn frees_empty_pages_and_renumbers_sparse_slots() {
        let mut store = RowStore::default();
        let big = vec![1u8; PAGE * 2];
        let id = store.push(&big);
        store.push(b"after");
        assert!(store.remove(id));
        assert_eq!(store.dead(), 0, "a page of its own is freed at once");
        for i in 0..20_000u32 {
            store.push(&i.to_le_bytes());
        }
        // Keep every tenth row: empty slots outnumber rows.
        for id in 0..store.next_id() {
            if id % 10 != 0 {
                store.remove(id);
            }
        }
        let before: Vec<Vec<u8>> = store.iter().map(|(_, r)| r.to_vec()).collect();
        assert!(store.tidy(), "renumbered");
        let after: Vec<(RowId, Vec<u8>)> = store.iter().map(|(i, r)| (i, r.to_vec())).collect();
        assert_eq!(after.len(), before.len());
        let first = after[0].0;
        assert!(first >= 20_002, "ids are not handed out twice");
        assert!(
            after
                .iter()
                .enumerate()
                .all(|(i, (id, _))| *id == first + i as RowId)
        );
        assert!(after.iter().map(|(_, r)| r).eq(before.iter()));
        assert_eq!(store.dead(), 0, "repacked");
        assert!(!store.tidy());
    }
}
