//! User callbacks: registered by id, run without any of the client's locks
//! held, each call shielded from the callback panicking.
//!
//! The reader task takes a snapshot of the callbacks a message concerns and
//! runs them after releasing the registry's lock, so a callback may register
//! or remove callbacks (itself included) and use the client. A callback that
//! panics is logged and stays registered; the client carries on.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use worldline_transport::ReducerEvent;

use crate::cache::RowChange;

/// A registered callback; pass it to [`Client::remove_callback`] to stop
/// the callback being called.
///
/// [`Client::remove_callback`]: crate::Client::remove_callback
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

pub(crate) type RowFn = dyn FnMut(&[u8]) + Send;
pub(crate) type UpdateFn = dyn FnMut(&[u8], &[u8]) + Send;
pub(crate) type EventFn = dyn FnMut(&ReducerEvent) + Send;

/// One registered callback.
struct Slot<F: ?Sized> {
    id: CallbackId,
    /// What it listens to, for the log when it panics.
    what: String,
    /// Set by removal: a snapshot taken earlier must not call it again.
    removed: AtomicBool,
    /// Locked only by the reader task, one callback at a time.
    callback: Mutex<Box<F>>,
}

impl<F: ?Sized> Slot<F> {
    /// Runs the callback unless it was removed, containing a panic.
    fn run(&self, call: impl FnOnce(&mut F)) {
        if self.removed.load(Ordering::Acquire) {
            return;
        }
        let mut callback = self.callback.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| call(&mut **callback))) {
            tracing::error!(
                "a callback on {} panicked ({}); it stays registered and the client carries on",
                self.what,
                panic_message(&*panic)
            );
        }
    }
}

/// The text of a panic's payload, when it has one.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

type Slots<F> = Vec<Arc<Slot<F>>>;

/// Every registered callback, by what it listens to.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<Lists>,
}

#[derive(Default)]
struct Lists {
    next_id: u64,
    inserts: HashMap<String, Slots<RowFn>>,
    deletes: HashMap<String, Slots<RowFn>>,
    updates: HashMap<String, Slots<UpdateFn>>,
    reducer_events: Slots<EventFn>,
}

impl Lists {
    fn slot<F: ?Sized>(&mut self, what: String, callback: Box<F>) -> Arc<Slot<F>> {
        self.next_id += 1;
        Arc::new(Slot {
            id: CallbackId(self.next_id),
            what,
            removed: AtomicBool::new(false),
            callback: Mutex::new(callback),
        })
    }
}

/// Which row changes of a table a row callback hears.
#[derive(Clone, Copy)]
pub(crate) enum RowKind {
    Insert,
    Delete,
}

/// The callbacks one message calls, taken from the registry in order.
#[derive(Default)]
pub(crate) struct Calls<'a> {
    calls: Vec<Call<'a>>,
}

enum Call<'a> {
    Row(Arc<Slot<RowFn>>, &'a [u8]),
    Update(Arc<Slot<UpdateFn>>, &'a [u8], &'a [u8]),
    Event(Arc<Slot<EventFn>>, &'a ReducerEvent),
}

impl Calls<'_> {
    /// Runs each call in order. No lock of the client's is held.
    pub(crate) fn run(self) {
        for call in self.calls {
            match call {
                Call::Row(slot, row) => slot.run(|f| f(row)),
                Call::Update(slot, old, new) => slot.run(|f| f(old, new)),
                Call::Event(slot, event) => slot.run(|f| f(event)),
            }
        }
    }
}

impl Registry {
    fn lists(&self) -> MutexGuard<'_, Lists> {
        // No user code runs under this lock, so it is never poisoned by a
        // callback; recover anyway rather than stop the client.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a callback on rows entering or leaving `table`.
    pub(crate) fn add_row(&self, kind: RowKind, table: &str, callback: Box<RowFn>) -> CallbackId {
        let mut lists = self.lists();
        let verb = match kind {
            RowKind::Insert => "inserts into",
            RowKind::Delete => "deletes from",
        };
        let slot = lists.slot(format!("{verb} `{table}`"), callback);
        let id = slot.id;
        let list = match kind {
            RowKind::Insert => &mut lists.inserts,
            RowKind::Delete => &mut lists.deletes,
        };
        list.entry(table.to_owned()).or_default().push(slot);
        id
    }

    /// Registers a callback on rows of `table` changed in place.
    pub(crate) fn add_update(&self, table: &str, callback: Box<UpdateFn>) -> CallbackId {
        let mut lists = self.lists();
        let slot = lists.slot(format!("updates of `{table}`"), callback);
        let id = slot.id;
        lists
            .updates
            .entry(table.to_owned())
            .or_default()
            .push(slot);
        id
    }

    /// Registers a callback on reducer events.
    pub(crate) fn add_event(&self, callback: Box<EventFn>) -> CallbackId {
        let mut lists = self.lists();
        let slot = lists.slot("reducer events".to_owned(), callback);
        let id = slot.id;
        lists.reducer_events.push(slot);
        id
    }

    /// Drops every callback (the connection ended: none will be called
    /// again), which also releases any client they hold.
    pub(crate) fn clear(&self) {
        let mut lists = self.lists();
        let next_id = lists.next_id;
        let dropped = std::mem::replace(
            &mut *lists,
            Lists {
                next_id,
                ..Lists::default()
            },
        );
        drop(lists);
        // Dropping runs the callbacks' captures' drop code: contain a panic
        // there as one in the callbacks themselves.
        if catch_unwind(AssertUnwindSafe(|| drop(dropped))).is_err() {
            tracing::error!("dropping a callback panicked; the client carries on");
        }
    }

    /// Unregisters a callback; `false` if it was not registered.
    pub(crate) fn remove(&self, id: CallbackId) -> bool {
        let mut lists = self.lists();
        let Lists {
            inserts,
            deletes,
            updates,
            reducer_events,
            ..
        } = &mut *lists;
        let row = inserts
            .values_mut()
            .chain(deletes.values_mut())
            .find_map(|slots| take(slots, id));
        let update = updates.values_mut().find_map(|slots| take(slots, id));
        let event = take(reducer_events, id);
        inserts.retain(|_, slots| !slots.is_empty());
        deletes.retain(|_, slots| !slots.is_empty());
        updates.retain(|_, slots| !slots.is_empty());
        // The callback is dropped after the lock is released: its captures'
        // drop code may use the client.
        drop(lists);
        row.is_some() || update.is_some() || event.is_some()
    }

    /// The calls a message makes: `event`'s callbacks, then each row
    /// change's, in order.
    pub(crate) fn calls<'a>(
        &self,
        event: Option<&'a ReducerEvent>,
        changes: &'a [RowChange],
    ) -> Calls<'a> {
        let lists = self.lists();
        let mut calls = Vec::new();
        if let Some(event) = event {
            calls.extend(
                lists
                    .reducer_events
                    .iter()
                    .map(|slot| Call::Event(slot.clone(), event)),
            );
        }
        for change in changes {
            match change {
                RowChange::Insert { table, row } => calls.extend(
                    lists
                        .inserts
                        .get(table)
                        .into_iter()
                        .flatten()
                        .map(|slot| Call::Row(slot.clone(), row)),
                ),
                RowChange::Delete { table, row } => calls.extend(
                    lists
                        .deletes
                        .get(table)
                        .into_iter()
                        .flatten()
                        .map(|slot| Call::Row(slot.clone(), row)),
                ),
                RowChange::Update { table, old, new } => calls.extend(
                    lists
                        .updates
                        .get(table)
                        .into_iter()
                        .flatten()
                        .map(|slot| Call::Update(slot.clone(), old, new)),
                ),
            }
        }
        Calls { calls }
    }
}

/// Takes the slot `id` out of `slots`, marked removed, if it is there.
fn take<F: ?Sized>(slots: &mut Slots<F>, id: CallbackId) -> Option<Arc<Slot<F>>> {
    let index = slots.iter().position(|slot| slot.id == id)?;
    let slot = slots.remove(index);
    slot.removed.store(true, Ordering::Release);
    Some(slot)
}
