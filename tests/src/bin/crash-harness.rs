//! A process for crash tests: drives `bank.transfer` against a persistent
//! host and prints `ack N` after transfer N is durable, until it is killed.
//!
//! Usage: `crash-harness DATA_DIR SEED [POLICY]`. On first use it publishes
//! the bank module as database `bank` and seeds it; it prints `ready` once
//! it is about to start transferring. Transfer N is the N-th draw of
//! [`worldline_tests::crash::transfers`] with this seed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use worldline_host::{CallContext, DurabilityPolicy, Host, HostConfig, StorageConfig};
use worldline_tests::crash::{ACCOUNTS, DATABASE, INITIAL_BALANCE, transfers};
use worldline_tests::{ALICE, OWNER, args, guest_wasm};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("crash-harness: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv = std::env::args().skip(1);
    let (Some(dir), Some(seed)) = (argv.next(), argv.next()) else {
        return Err("usage: crash-harness DATA_DIR SEED [POLICY]".into());
    };
    let seed: u64 = seed.parse()?;
    let policy: DurabilityPolicy = argv.next().as_deref().unwrap_or("every").parse()?;
    let config = HostConfig {
        storage: StorageConfig {
            durability: policy,
            max_segment_bytes: 16 << 10,
            snapshot_every: Some(97),
            keep_snapshots: 2,
        },
        ..HostConfig::default()
    };
    let mut host = Host::open(&PathBuf::from(dir), config)?;
    if host.database(DATABASE).is_none() {
        let db = host.publish(DATABASE, &guest_wasm("bank"), OWNER)?;
        db.call_reducer(
            "seed",
            &args(&(ACCOUNTS, INITIAL_BALANCE)),
            CallContext::new(OWNER),
        )?;
    }
    let db = host
        .database_mut(DATABASE)
        .ok_or("the bank database vanished")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for (n, transfer) in transfers(seed).enumerate() {
        // Failed transfers (insufficient funds) are part of the sequence too.
        let _ = db.call_reducer("transfer", &args(&transfer), CallContext::new(ALICE));
        writeln!(out, "ack {n}")?;
        out.flush()?;
    }
    Ok(())
}
