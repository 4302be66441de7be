//! A test module whose `init` misbehaves on purpose, picked by the first
//! byte of the owner's identity (the sender of `init`), after writing a
//! row: 1 traps, 2 fails, 3 loops forever, 4 allocates until memory runs
//! out, 5 recurses until the stack runs out; any other byte returns ok.
//! A publish whose `init` fails must create no database.

use worldline::{ReducerContext, Table, reducer, table};

/// Written by `init` before it misbehaves.
#[table(name = seeded, public)]
pub struct Seeded {
    /// Primary key.
    #[primary_key]
    pub id: u32,
}

/// Recurses `n` deep with a frame of 1 KiB, so that the stack runs out.
#[inline(never)]
fn deep(n: u64) -> u64 {
    let frame = std::hint::black_box([n as u8; 1024]);
    if n == u64::MAX {
        return 0;
    }
    deep(std::hint::black_box(n + 1)) + u64::from(frame[n as usize % 1024])
}

/// Allocates 1 MiB blocks, touching each, until the allocator fails.
fn exhaust_memory() -> usize {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(std::hint::black_box(vec![1u8; 1 << 20]));
        if blocks.len() == usize::MAX {
            return blocks.len();
        }
    }
}

/// Writes a row, then does what the owner's first byte says.
#[reducer(init)]
pub fn init(ctx: &ReducerContext) -> Result<(), String> {
    ctx.db.seeded().insert(Seeded { id: 1 });
    match ctx.sender.to_bytes()[0] {
        1 => std::process::abort(),
        2 => Err("init failed on purpose".to_owned()),
        3 => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        4 => Err(format!("{} blocks", exhaust_memory())),
        5 => Err(format!("{}", deep(0))),
        _ => Ok(()),
    }
}

/// Counts the rows of `seeded` into the log.
#[reducer]
pub fn count_seeded(ctx: &ReducerContext) {
    worldline::log::info(format!("{} seeded", ctx.db.seeded().iter().count()));
}
