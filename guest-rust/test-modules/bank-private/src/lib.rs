//! The bank example with its `account` table private (only the database
//! owner may read it) and one reducer, which opens an account: swapping it
//! in over `bank` makes the table private, swapping `bank` back in makes it
//! public again, and every row stays.

use worldline::{ReducerContext, Table, reducer, table};

/// As in `bank`, but private.
#[table(name = account)]
pub struct Account {
    /// The account number.
    #[primary_key]
    pub id: u32,
    /// The balance, in the smallest currency unit.
    pub balance: i64,
}

/// Opens account `id` with `balance`.
#[reducer]
pub fn open_account(ctx: &ReducerContext, id: u32, balance: i64) {
    ctx.db.account().insert(Account { id, balance });
}
