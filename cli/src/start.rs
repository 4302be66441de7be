//! `worldline start`: open a data directory, recover its databases, serve.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use worldline_host::{DurabilityPolicy, Host, HostConfig, HostError, StorageConfig};

/// Options of `worldline start`.
#[derive(Args)]
pub struct StartArgs {
    /// The data directory [default: $XDG_DATA_HOME/worldline or ~/.local/share/worldline]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// When a transaction counts as durable: `every` (fsync, group commit),
    /// an interval such as `10ms` (written at once, fsynced within it), or
    /// `none` (tests and benchmarks only).
    #[arg(long, value_name = "POLICY", default_value = "every")]
    durability: DurabilityPolicy,
    /// Write a snapshot every this many transactions per database.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    snapshot_every: u64,
}

/// The per-user data directory.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("worldline"));
    }
    let home = std::env::var_os("HOME")
        .context("neither XDG_DATA_HOME nor HOME is set; pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/worldline"))
}

pub fn run(args: StartArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let config = HostConfig {
        storage: StorageConfig {
            durability: args.durability,
            snapshot_every: Some(args.snapshot_every),
            ..StorageConfig::default()
        },
        ..HostConfig::default()
    };
    println!("worldline: data directory {}", data_dir.display());
    let started = std::time::Instant::now();
    let host = Host::open(&data_dir, config)?;
    for (name, report) in host.recovery_reports() {
        let snapshot = match report.snapshot {
            Some(offset) => format!("snapshot at transaction {offset}"),
            None => "no snapshot".into(),
        };
        println!(
            "worldline: recovered database {name}: {snapshot}, {} transactions replayed in {:.1} ms{}",
            report.replayed,
            report.duration.as_secs_f64() * 1e3,
            if report.truncated_bytes > 0 {
                format!(
                    ", cut off a torn final record of {} bytes",
                    report.truncated_bytes
                )
            } else {
                String::new()
            }
        );
    }
    println!(
        "worldline: {} databases ready in {:.1} ms (durability: {})",
        host.database_names().count(),
        started.elapsed().as_secs_f64() * 1e3,
        args.durability
    );
    println!("worldline: no network listeners yet; stop with Ctrl-C");
    loop {
        std::thread::park();
    }
}

/// A next step for errors a user can fix.
pub fn hint(err: &anyhow::Error) -> Option<&'static str> {
    match err.downcast_ref::<HostError>()? {
        HostError::DataDirLocked(_) => {
            Some("stop the other server, or pass a different --data-dir")
        }
        HostError::Storage(_) => {
            Some("the named file is damaged; restore the data directory from a backup")
        }
        _ => None,
    }
}
