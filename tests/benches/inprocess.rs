//! In-process benchmark: `bank.transfer` over 100,000 seeded accounts with
//! uniformly random pairs, next to the bare cost of an empty reducer call.
//! No network, no disk. Run with `cargo bench -p worldline-tests --bench inprocess`.
//!
//! Environment: `WORLDLINE_BENCH_CALLS` (default 200000) calls per measurement.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use worldline_host::{CallContext, Database, Engine, EngineConfig};
use worldline_tests::{ALICE, OWNER, args, guest_wasm};

const ACCOUNTS: u32 = 100_000;

fn main() {
    let calls: u32 = std::env::var("WORLDLINE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let wasm = guest_wasm("bank");

    let started = Instant::now();
    let mut db = Database::create(&engine, &wasm, OWNER).expect("create bank database");
    println!(
        "publish (compile + instantiate + describe) of bank.wasm ({} KiB): {:.1} ms, pooling allocator: {}",
        wasm.len() / 1024,
        ms(started.elapsed()),
        engine.uses_pooling()
    );

    let started = Instant::now();
    db.call_reducer(
        "seed",
        &args(&(ACCOUNTS, 1_000_000i64)),
        CallContext::new(OWNER),
    )
    .expect("seed");
    println!(
        "seed {ACCOUNTS} accounts in one transaction: {:.1} ms",
        ms(started.elapsed())
    );

    let ctx = CallContext::new(ALICE);
    let noop = args(&());
    let elapsed = time(calls, || {
        db.call_reducer("noop", &noop, ctx).expect("noop");
    });
    println!(
        "empty reducer call: {:.2} us/call ({:.0} calls/s) over {calls} calls",
        elapsed.as_secs_f64() * 1e6 / f64::from(calls),
        f64::from(calls) / elapsed.as_secs_f64()
    );

    let mut rng = StdRng::seed_from_u64(42);
    let pairs: Vec<Vec<u8>> = (0..calls)
        .map(|_| {
            let from = rng.random_range(0..ACCOUNTS);
            let mut to = rng.random_range(0..ACCOUNTS - 1);
            if to >= from {
                to += 1;
            }
            args(&(from, to, 1i64))
        })
        .collect();
    let mut pairs_iter = pairs.iter();
    let elapsed = time(calls, || {
        let transfer = pairs_iter.next().expect("one argument list per call");
        db.call_reducer("transfer", transfer, ctx)
            .expect("transfer");
    });
    println!(
        "bank.transfer, uniform pairs over {ACCOUNTS} accounts: {:.0} transfers/s ({:.2} us/transfer) over {calls} transfers",
        f64::from(calls) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(calls)
    );
}

fn time(calls: u32, mut call: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..calls {
        call();
    }
    started.elapsed()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
