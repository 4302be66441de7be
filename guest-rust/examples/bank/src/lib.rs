//! The bank example: accounts and transfers between them. `transfer` is the
//! workload of the headline benchmark: it reads two rows and writes two rows.
//!
//! The other reducers exist for the host's failure-mode tests.

use worldline::{ReducerContext, Table, reducer, table};

/// An account and its balance.
#[table(name = account, public)]
pub struct Account {
    /// The account number.
    #[primary_key]
    pub id: u32,
    /// The balance, in the smallest currency unit.
    pub balance: i64,
}

/// Opens accounts `0..n`, each with `balance`.
#[reducer]
pub fn seed(ctx: &ReducerContext, n: u32, balance: i64) {
    for id in 0..n {
        ctx.db.account().insert(Account { id, balance });
    }
}

/// Moves `amount` from account `from` to account `to`.
#[reducer]
pub fn transfer(ctx: &ReducerContext, from: u32, to: u32, amount: i64) -> Result<(), String> {
    if amount <= 0 {
        return Err(format!("the amount must be positive, got {amount}"));
    }
    if from == to {
        return Err(format!(
            "cannot transfer from account {from} to the same account"
        ));
    }
    let accounts = ctx.db.account();
    let mut source = accounts
        .id()
        .find(&from)
        .ok_or_else(|| format!("no account {from}"))?;
    let mut target = accounts
        .id()
        .find(&to)
        .ok_or_else(|| format!("no account {to}"))?;
    if source.balance < amount {
        return Err(format!(
            "insufficient funds: account {from} has {}, needs {amount}",
            source.balance
        ));
    }
    source.balance -= amount;
    target.balance += amount;
    accounts.id().update(source);
    accounts.id().update(target);
    Ok(())
}

/// Does nothing: measures the bare cost of a reducer call.
#[reducer]
pub fn noop(_ctx: &ReducerContext) {}

/// Adds 1 to account `id`, then panics.
#[reducer]
pub fn panic_after_write(ctx: &ReducerContext, id: u32) {
    bump(ctx, id);
    panic!("boom");
}

/// Adds 1 to account `id`, then returns an error.
#[reducer]
pub fn fail_after_write(ctx: &ReducerContext, id: u32) -> Result<(), String> {
    bump(ctx, id);
    Err("failed on purpose after writing".into())
}

/// Loops forever; the host must stop it at the deadline.
#[reducer]
pub fn spin(ctx: &ReducerContext) {
    let mut x = ctx.rng().next_u64();
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Allocates and touches `mb` MiB and keeps it.
#[reducer]
pub fn hog_memory(_ctx: &ReducerContext, mb: u32) {
    let mut kept = Vec::new();
    for _ in 0..mb {
        kept.push(vec![1u8; 1 << 20]);
    }
    std::mem::forget(std::hint::black_box(kept));
}

/// Inserts an account with an id that exists: the insert panics.
#[reducer]
pub fn insert_duplicate(ctx: &ReducerContext, id: u32) {
    bump(ctx, id);
    ctx.db.account().insert(Account { id, balance: 0 });
}

fn bump(ctx: &ReducerContext, id: u32) {
    if let Some(mut account) = ctx.db.account().id().find(&id) {
        account.balance += 1;
        ctx.db.account().id().update(account);
    }
}
