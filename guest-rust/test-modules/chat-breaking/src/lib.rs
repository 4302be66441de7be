//! The chat example with incompatible schema changes, for hot-swap tests:
//! the `user` table is gone and `message.text` is a `u64` instead of a
//! string. A database running `chat` must refuse to swap to this module.

use worldline::{Identity, ReducerContext, Table, Timestamp, reducer, table};

/// A chat message whose text became a number.
#[table(name = message, public, index(name = by_sender_sent, btree(columns = [sender, sent])))]
pub struct Message {
    /// Assigned in sending order.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// Who sent it.
    #[index(btree)]
    pub sender: Identity,
    /// When it was sent.
    pub sent: Timestamp,
    /// What it says, now a number (was a string).
    pub text: u64,
}

/// Sends a numeric message from the caller.
#[reducer]
pub fn send_message(ctx: &ReducerContext, text: u64) {
    ctx.db.message().insert(Message {
        id: 0,
        sender: ctx.sender,
        sent: ctx.timestamp,
        text,
    });
}
