//! A test module for the host's end-to-end tests. Its reducers exercise
//! every kind of table access (unique, primary-key and multi-column btree
//! indexes, ranges, auto-increment, iteration, counting) and probe what the
//! sandbox allows; each writes what it saw into the private `observation`
//! table, which the tests read back.
//!
//! Its procedures (module `procedures`) exercise outbound HTTP and explicit
//! transactions, and its schedule (module `schedule`) the scheduled
//! reducers of `worldline:module@0.2.0`.

mod procedures;
mod schedule;

use worldline::{
    Deserialize, Identity, ReducerContext, Serialize, Table, WorldlineType, reducer, table,
};

/// A user-defined sum type used as a reducer argument.
#[derive(Debug, WorldlineType, Serialize, Deserialize)]
#[serde(crate = "worldline::__private::serde")]
pub enum Status {
    /// A unit case.
    Active,
    /// A case with named fields.
    Suspended {
        /// Why.
        reason: String,
        /// Until when, if known.
        until: Option<u64>,
    },
    /// A case with one unnamed field.
    Tagged(u8),
}

/// Records who ran `init`: the database owner.
#[reducer(init)]
pub fn init(ctx: &ReducerContext) {
    observe(ctx, "init_sender", ctx.sender.to_string());
}

/// Records a user-defined enum argument as the module decoded it.
#[reducer]
pub fn record_status(ctx: &ReducerContext, status: Status) {
    observe(ctx, "status", format!("{status:?}"));
}

/// An item with several kinds of index.
#[table(name = item, public, index(name = by_owner_rank, btree(columns = [owner, rank])))]
pub struct Item {
    /// Auto-incremented primary key.
    #[primary_key]
    #[auto_inc]
    pub id: u32,
    /// A unique stock-keeping unit.
    #[unique]
    pub sku: String,
    /// Who owns the item.
    pub owner: u32,
    /// The item's rank among its owner's items.
    pub rank: i32,
    /// Price in cents, with a btree index.
    #[index(btree)]
    pub price: u64,
}

/// What a reducer observed, by key. Private: only the owner may read it.
#[table(name = observation)]
pub struct Observation {
    /// What was observed.
    #[primary_key]
    pub key: String,
    /// What was seen.
    pub value: String,
}

fn observe(ctx: &ReducerContext, key: &str, value: String) {
    let row = Observation {
        key: key.to_owned(),
        value,
    };
    if ctx.db.observation().key().find(&row.key).is_some() {
        ctx.db.observation().key().update(row);
    } else {
        ctx.db.observation().insert(row);
    }
}

fn ids(items: impl Iterator<Item = Item>) -> String {
    items
        .map(|i| i.id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Inserts an item; its id comes from the auto-increment sequence.
#[reducer]
pub fn add_item(
    ctx: &ReducerContext,
    sku: String,
    owner: u32,
    rank: i32,
    price: u64,
) -> Result<(), String> {
    let item = ctx
        .db
        .item()
        .try_insert(Item {
            id: 0,
            sku,
            owner,
            rank,
            price,
        })
        .map_err(|e| e.to_string())?;
    observe(ctx, "last_id", item.id.to_string());
    Ok(())
}

/// Records the ids of `owner`'s items in rank order (a prefix scan of a two-column index).
#[reducer]
pub fn items_of_owner(ctx: &ReducerContext, owner: u32) {
    observe(
        ctx,
        "items_of_owner",
        ids(ctx.db.item().by_owner_rank().filter_prefix(&owner)),
    );
}

/// Records the ids of `owner`'s items with `low <= rank < high` (a range on the full two-column key).
#[reducer]
pub fn items_of_owner_ranked(ctx: &ReducerContext, owner: u32, low: i32, high: i32) {
    let found = ctx
        .db
        .item()
        .by_owner_rank()
        .range((owner, low)..(owner, high));
    observe(ctx, "items_of_owner_ranked", ids(found));
}

/// Records the ids of items with `low <= price <= high`, in price order.
#[reducer]
pub fn items_priced(ctx: &ReducerContext, low: u64, high: u64) {
    observe(
        ctx,
        "items_priced",
        ids(ctx.db.item().price().range(low..=high)),
    );
}

/// Records the id of the item with this sku, or `none`.
#[reducer]
pub fn find_sku(ctx: &ReducerContext, sku: String) {
    let found = ctx.db.item().sku().find(&sku).map(|i| i.id.to_string());
    observe(ctx, "find_sku", found.unwrap_or_else(|| "none".into()));
}

/// Changes the price of the item with this sku.
#[reducer]
pub fn reprice(ctx: &ReducerContext, sku: String, price: u64) -> Result<(), String> {
    let mut item = ctx
        .db
        .item()
        .sku()
        .find(&sku)
        .ok_or_else(|| format!("no item {sku}"))?;
    item.price = price;
    ctx.db.item().sku().update(item);
    Ok(())
}

/// Deletes the item with this sku and records whether one existed.
#[reducer]
pub fn delete_sku(ctx: &ReducerContext, sku: String) {
    let deleted = ctx.db.item().sku().delete(&sku);
    observe(ctx, "delete_sku", deleted.to_string());
}

/// Records the count and the ids of all items, in insertion order.
#[reducer]
pub fn survey(ctx: &ReducerContext) {
    observe(ctx, "count", ctx.db.item().count().to_string());
    observe(ctx, "all_ids", ids(ctx.db.item().iter()));
}

/// Inserts `n` items in one transaction, then deletes every second one while iterating.
#[reducer]
pub fn churn(ctx: &ReducerContext, n: u32) {
    for i in 0..n {
        ctx.db.item().insert(Item {
            id: 0,
            sku: format!("churn-{i}"),
            owner: 99,
            rank: i as i32,
            price: u64::from(i),
        });
    }
    let mut deleted = 0u32;
    for item in ctx.db.item().by_owner_rank().filter_prefix(&99u32) {
        if item.rank % 2 == 0 && ctx.db.item().id().delete(&item.id) {
            deleted += 1;
        }
    }
    observe(ctx, "churn_deleted", deleted.to_string());
}

/// Tries what a sandboxed module must not be able to do and records each outcome.
#[reducer]
pub fn probe_sandbox(ctx: &ReducerContext, tcp_addr: String) {
    observe(
        ctx,
        "file",
        outcome(std::fs::read("/etc/hostname").map(|b| b.len())),
    );
    observe(
        ctx,
        "dir",
        outcome(std::fs::read_dir(".").map(|d| d.count())),
    );
    observe(ctx, "env", std::env::vars().count().to_string());
    observe(ctx, "args", std::env::args().count().to_string());
    println!("stdout is not inherited");
    eprintln!("stderr is not inherited");
    observe(
        ctx,
        "tcp",
        outcome(std::net::TcpStream::connect(tcp_addr.as_str()).map(|_| 0)),
    );
}

fn outcome<T: std::fmt::Debug>(result: std::io::Result<T>) -> String {
    match result {
        Ok(value) => format!("allowed: {value:?}"),
        Err(err) => format!("denied: {err}"),
    }
}

/// Someone the database owner has banned from connecting.
#[table(name = banned)]
pub struct Banned {
    /// Who.
    #[primary_key]
    pub identity: Identity,
}

/// Bans `identity` from connecting. (A real module would check that the
/// caller may; this test module lets anyone.)
#[reducer]
pub fn ban(ctx: &ReducerContext, identity: Identity) {
    ctx.db.banned().insert(Banned { identity });
}

/// Refuses connections from banned identities.
#[reducer(client_connected)]
pub fn client_connected(ctx: &ReducerContext) -> Result<(), String> {
    match ctx.db.banned().identity().find(&ctx.sender) {
        Some(_) => Err(format!("{} is banned", ctx.sender)),
        None => Ok(()),
    }
}
