//! The SQLite baseline of `bench transfer`: the same transfer, run in this
//! process on SQLite in WAL mode, one transaction at a time.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rusqlite::{Connection, OptionalExtension, params};

use super::baseline::BaselineResult;
use super::server::ScratchDir;
use super::stats::{Recorder, Window};
use super::zipf::Zipf;

/// Runs transfers of 1 unit between `accounts` accounts holding `balance`
/// each, drawn with Zipf exponent `alpha`, for `warmup` then `duration`,
/// with `synchronous` `FULL` (fsync at every commit) or `NORMAL` (fsync at
/// checkpoints).
pub fn run(
    synchronous: &'static str,
    accounts: u32,
    balance: i64,
    alpha: f64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<BaselineResult> {
    let dir = ScratchDir::new()?;
    let mut db = Connection::open(dir.path().join("bank.sqlite")).context("opening SQLite")?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", synchronous)?;
    db.execute_batch("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")?;
    {
        let seed = db.transaction()?;
        {
            let mut insert = seed.prepare("INSERT INTO account (id, balance) VALUES (?1, ?2)")?;
            for id in 0..accounts {
                insert.execute(params![id, balance])?;
            }
        }
        seed.commit()?;
    }
    let sum_before = balance_sum(&db)?;
    let zipf = Zipf::new(accounts, alpha);
    let mut rng = StdRng::seed_from_u64(0);
    let window = Window::after(warmup, duration);
    let mut recorder = Recorder::default();
    let mut refused = 0;
    while Instant::now() < window.closes() {
        let (from, to) = zipf.pair(&mut rng);
        let started = Instant::now();
        if transfer(&mut db, from, to, 1)? {
            recorder.record(&window, started, Instant::now());
        } else {
            refused += 1;
        }
    }
    let balance_unchanged = balance_sum(&db)? == sum_before;
    Ok(BaselineResult {
        system: format!("sqlite WAL synchronous={synchronous}"),
        summary: recorder.summary(&window),
        refused,
        balance_unchanged,
    })
}

/// The bank's `transfer` in SQL; false when `from` lacks the funds.
fn transfer(db: &mut Connection, from: u32, to: u32, amount: i64) -> anyhow::Result<bool> {
    let tx = db.transaction()?;
    let read = |id: u32| -> anyhow::Result<Option<i64>> {
        Ok(tx
            .prepare_cached("SELECT balance FROM account WHERE id = ?1")?
            .query_row(params![id], |row| row.get(0))
            .optional()?)
    };
    let source = read(from)?.with_context(|| format!("no account {from}"))?;
    read(to)?.with_context(|| format!("no account {to}"))?;
    if source < amount {
        return Ok(false);
    }
    {
        let mut update =
            tx.prepare_cached("UPDATE account SET balance = balance + ?2 WHERE id = ?1")?;
        update.execute(params![from, -amount])?;
        update.execute(params![to, amount])?;
    }
    tx.commit()?;
    Ok(true)
}

fn balance_sum(db: &Connection) -> anyhow::Result<i64> {
    Ok(
        db.query_row("SELECT COALESCE(SUM(balance), 0) FROM account", [], |row| {
            row.get(0)
        })?,
    )
}
