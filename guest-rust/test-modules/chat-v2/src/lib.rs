//! Version 2 of the chat example, for hot-swap tests: everything `chat`
//! has, plus a btree index on `message.sent`, a `reaction` table and the
//! reducers `init`, `react` and `forget_before`. Every change is compatible, so a
//! database running `chat` can swap to this module and keep its rows.

use worldline::{Identity, ReducerContext, Table, Timestamp, reducer, table};

/// Someone who has connected or set a name.
#[table(name = user, public)]
pub struct User {
    /// Who they are.
    #[primary_key]
    pub identity: Identity,
    /// The name they chose, if any.
    pub name: Option<String>,
    /// Whether they are connected now.
    pub online: bool,
}

/// A chat message.
#[table(name = message, public, index(name = by_sender_sent, btree(columns = [sender, sent])))]
pub struct Message {
    /// Assigned in sending order.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// Who sent it.
    #[index(btree)]
    pub sender: Identity,
    /// When it was sent (new in version 2: indexed).
    #[index(btree)]
    pub sent: Timestamp,
    /// What it says.
    pub text: String,
}

/// Posts a welcome message when a database is created with this version
/// (new in version 2; a hot swap from version 1 does not run it).
#[reducer(init)]
pub fn init(ctx: &ReducerContext) {
    ctx.db.message().insert(Message {
        id: 0,
        sender: ctx.sender,
        sent: ctx.timestamp,
        text: "welcome".into(),
    });
}

/// A reaction to a message (new in version 2).
#[table(name = reaction, public)]
pub struct Reaction {
    /// Assigned in reaction order.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// The message reacted to.
    #[index(btree)]
    pub message_id: u64,
    /// Who reacted.
    pub reactor: Identity,
    /// The reaction.
    pub emoji: String,
}

/// Reacts to a message (new in version 2).
#[reducer]
pub fn react(ctx: &ReducerContext, message_id: u64, emoji: String) -> Result<(), String> {
    if ctx.db.message().id().find(&message_id).is_none() {
        return Err(format!("no message has id {message_id}"));
    }
    ctx.db.reaction().insert(Reaction {
        id: 0,
        message_id,
        reactor: ctx.sender,
        emoji,
    });
    Ok(())
}

/// Deletes the messages sent before `before`, found through the `sent`
/// index (new in version 2).
#[reducer]
pub fn forget_before(ctx: &ReducerContext, before: Timestamp) {
    let old: Vec<u64> = ctx
        .db
        .message()
        .sent()
        .range(..before)
        .map(|message| message.id)
        .collect();
    for id in old {
        ctx.db.message().id().delete(&id);
    }
}

/// Sets the caller's name.
#[reducer]
pub fn set_name(ctx: &ReducerContext, name: String) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("names must not be empty".into());
    }
    match ctx.db.user().identity().find(&ctx.sender) {
        Some(user) => {
            ctx.db.user().identity().update(User {
                name: Some(name.to_owned()),
                ..user
            });
        }
        None => {
            ctx.db.user().insert(User {
                identity: ctx.sender,
                name: Some(name.to_owned()),
                online: false,
            });
        }
    }
    Ok(())
}

/// Sends a message from the caller.
#[reducer]
pub fn send_message(ctx: &ReducerContext, text: String) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("messages must not be empty".into());
    }
    let message = ctx.db.message().insert(Message {
        id: 0,
        sender: ctx.sender,
        sent: ctx.timestamp,
        text,
    });
    worldline::log::info(format!("message {} from {}", message.id, ctx.sender));
    Ok(())
}

/// Marks the caller online, creating their user row on first connect.
#[reducer(client_connected)]
pub fn client_connected(ctx: &ReducerContext) {
    set_online(ctx, true);
}

/// Marks the caller offline.
#[reducer(client_disconnected)]
pub fn client_disconnected(ctx: &ReducerContext) {
    set_online(ctx, false);
}

fn set_online(ctx: &ReducerContext, online: bool) {
    match ctx.db.user().identity().find(&ctx.sender) {
        Some(user) => {
            ctx.db.user().identity().update(User { online, ..user });
        }
        None => {
            ctx.db.user().insert(User {
                identity: ctx.sender,
                name: None,
                online,
            });
        }
    }
}
