//! A process for crash tests: drives `bank.transfer` against a persistent
//! host and prints `ack N` after transfer N is durable, until it is killed.
//!
//! Usage: `crash-harness DATA_DIR SEED [POLICY [MAX_FILE_BYTES]]`. On first
//! use it publishes the bank module as database `bank` and seeds it; it
//! prints `ready` once it is about to start transferring. Transfer N is the
//! N-th draw of [`worldline_tests::crash::transfers`] with this seed.
//!
//! With `MAX_FILE_BYTES`, files may not grow past that size once transfers
//! start (`RLIMIT_FSIZE`), so the commit log fails as on a full disk; the
//! harness then prints `failed: ...` and exits with status 3.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use worldline_host::{CallContext, CallError, DurabilityPolicy, Host, HostConfig, StorageConfig};
use worldline_tests::crash::{ACCOUNTS, DATABASE, INITIAL_BALANCE, transfers};
use worldline_tests::{ALICE, OWNER, args, guest_wasm};

fn main() -> ExitCode {
    match run() {
        // `run` returns only when the commit log failed.
        Ok(()) => ExitCode::from(3),
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
    let max_file_bytes: Option<u64> = argv.next().map(|n| n.parse()).transpose()?;
    let config = HostConfig {
        storage: StorageConfig {
            durability: policy,
            max_segment_bytes: 16 << 10,
            snapshot_every: Some(97),
            keep_snapshots: 2,
            ..StorageConfig::default()
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
    if let Some(limit) = max_file_bytes {
        limit_file_size(limit)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for (n, transfer) in transfers(seed).enumerate() {
        match db.call_reducer("transfer", &args(&transfer), CallContext::new(ALICE)) {
            // A refused transfer (insufficient funds) is part of the sequence too.
            Ok(_) | Err(CallError::Failed(_)) => writeln!(out, "ack {n}")?,
            Err(err) => {
                writeln!(out, "failed: {err}")?;
                out.flush()?;
                return Ok(());
            }
        }
        out.flush()?;
    }
    unreachable!("the sequence of transfers is endless")
}

/// Makes writes past `bytes` in any file fail with `EFBIG`, as a full disk would.
fn limit_file_size(bytes: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: plain system calls with valid arguments; ignoring SIGXFSZ turns
    // the signal for oversized writes into an EFBIG error.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
