//! `worldline bench memory`: how many bytes of server memory (RSS) each row
//! takes, after loading N rows and again after a restart, when the rows come
//! back by recovery (snapshot and log replay).
//!
//! Two tables: a narrow one, the bank's `account` (a `u32` primary key and an
//! `i64`), seeded by one `seed` call, and a wide one, the `item` table of the
//! `features` test module (a `u32` auto-increment primary key, a unique
//! string, two more integer columns and a `u64`, with four indexes), loaded
//! by pipelined `add_item` calls. Each table is measured on a server of its
//! own: bytes per row = (RSS with the rows − RSS of the same server with the
//! module published and no rows) / rows. The rows are counted after each
//! measurement (so that the query's buffers do not count).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use worldline_client::{Client, ConnectOptions};
use worldline_transport::ReducerStatus;

use super::server::{
    self, DATABASE, ScratchDir, Target, TargetArgs, build_checkout_module, raise_open_file_limit,
    read_component,
};
use super::stats::thousands;
use crate::commands::subscribe::Protocol;
use crate::context::GlobalArgs;
use crate::hint::hinted;

/// Where the module with the wide table lives in a checkout of the project.
const WIDE_PROJECT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../guest-rust/test-modules/features"
);

/// Connections and calls in flight each while loading the wide table.
const CONNECTIONS: usize = 4;
const IN_FLIGHT: usize = 32;

/// Each account's balance when seeded.
const BALANCE: i64 = 1_000;

/// Options of `worldline bench memory`.
#[derive(Args, Debug)]
pub struct MemoryArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Rows of the narrow table (`account`); 0 skips it.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    rows: u32,
    /// Rows of the wide table (`item`); 0 skips it.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    wide_rows: u32,
    /// The `features` test module, which has the wide table, as a built
    /// component [default: build guest-rust/test-modules/features from source].
    #[arg(long, value_name = "FILE")]
    wide_wasm: Option<PathBuf>,
}

/// What one table came to.
#[derive(Debug, Serialize)]
struct TableReport {
    table: &'static str,
    rows: u64,
    /// RSS of the server with the module published and no rows.
    empty_rss_mib: f64,
    loaded_rss_mib: f64,
    recovered_rss_mib: f64,
    loaded_bytes_per_row: f64,
    recovered_bytes_per_row: f64,
    /// Rows counted before and after the restart.
    rows_before_restart: u64,
    rows_after_restart: u64,
    /// How long the restart took until the server was ready.
    restart_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    durability: String,
    tables: Vec<TableReport>,
}

/// One table to measure: its module and how to fill and count it.
#[derive(Clone, Copy)]
enum Kind {
    Narrow,
    Wide,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Narrow => "account",
            Kind::Wide => "item",
        }
    }
}

/// Runs `worldline bench memory`.
pub fn run(args: MemoryArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if global.server.is_some() {
        return Err(hinted(
            "bench memory restarts the server and reads its memory, so it cannot use --server",
            "run it without --server; it starts its own",
        ));
    }
    raise_open_file_limit();
    let mut tables = Vec::new();
    if args.rows > 0 {
        let wasm = server::bank_wasm(&args.target)?;
        tables.push(measure(&args, Kind::Narrow, &wasm, args.rows)?);
    }
    if args.wide_rows > 0 {
        let wasm = wide_wasm(&args)?;
        tables.push(measure(&args, Kind::Wide, &wasm, args.wide_rows)?);
    }
    let report = Report {
        durability: args.target.durability.to_string(),
        tables,
    };
    if args.target.json {
        crate::output::print_json(&report)?;
    } else {
        for t in &report.tables {
            println!(
                "memory of {} `{}` rows (durability {}): server RSS {:.1} MiB empty, {:.1} MiB loaded ({:.1} bytes/row), {:.1} MiB after a restart ({:.1} bytes/row, restart {:.0} ms); rows counted {} before and {} after the restart",
                thousands(t.rows as f64),
                t.table,
                report.durability,
                t.empty_rss_mib,
                t.loaded_rss_mib,
                t.loaded_bytes_per_row,
                t.recovered_rss_mib,
                t.recovered_bytes_per_row,
                t.restart_ms,
                thousands(t.rows_before_restart as f64),
                thousands(t.rows_after_restart as f64),
            );
        }
    }
    for t in &report.tables {
        anyhow::ensure!(
            t.rows_before_restart == t.rows && t.rows_after_restart == t.rows,
            "table `{}` should hold {} rows, counted {} before and {} after the restart",
            t.table,
            t.rows,
            t.rows_before_restart,
            t.rows_after_restart
        );
    }
    Ok(())
}

/// The `features` component: `--wide-wasm`, or built from source.
fn wide_wasm(args: &MemoryArgs) -> anyhow::Result<Vec<u8>> {
    let path = match &args.wide_wasm {
        Some(path) => path.clone(),
        None => build_checkout_module(
            WIDE_PROJECT,
            "the features module",
            "pass --wide-wasm FILE, or --wide-rows 0 to skip the wide table",
        )?,
    };
    read_component(&path)
}

/// Loads `rows` rows into a fresh server, restarts it, and measures both.
fn measure(args: &MemoryArgs, kind: Kind, wasm: &[u8], rows: u32) -> anyhow::Result<TableReport> {
    let dir = ScratchDir::new()?;
    let durability = args.target.durability;
    let target = Target::start(dir.path(), durability, &[])?;
    target.publish(DATABASE, wasm)?;
    let options = target.connect_options(Protocol::Ws, DATABASE)?;
    let runtime = server::runtime()?;
    let rss = |target: &Target| -> anyhow::Result<f64> {
        let process = target.process().context("the started server")?;
        Ok(server::usage(process.pid())?.rss_mib)
    };
    let empty = rss(&target)?;
    eprintln!(
        "memory: loading {} `{}` rows...",
        thousands(rows.into()),
        kind.table()
    );
    runtime.block_on(load(&options, kind, rows))?;
    let loaded = rss(&target)?;
    let before = runtime.block_on(count(&options, kind))?;
    target.stop()?;
    eprintln!("memory: restarting the server...");
    let started = std::time::Instant::now();
    let target = Target::start(dir.path(), durability, &[])?;
    let restart = started.elapsed();
    let recovered = rss(&target)?;
    let options = target.connect_options(Protocol::Ws, DATABASE)?;
    let after = runtime.block_on(count(&options, kind))?;
    target.stop()?;
    let per_row = |mib: f64| (mib - empty) * 1024.0 * 1024.0 / f64::from(rows);
    Ok(TableReport {
        table: kind.table(),
        rows: rows.into(),
        empty_rss_mib: empty,
        loaded_rss_mib: loaded,
        recovered_rss_mib: recovered,
        loaded_bytes_per_row: per_row(loaded),
        recovered_bytes_per_row: per_row(recovered),
        rows_before_restart: before,
        rows_after_restart: after,
        restart_ms: restart.as_secs_f64() * 1e3,
    })
}

/// Fills the table with `rows` rows.
async fn load(options: &ConnectOptions, kind: Kind, rows: u32) -> anyhow::Result<()> {
    match kind {
        Kind::Narrow => {
            let client = server::connect(options).await?;
            server::seed(&client, rows, BALANCE).await?;
            client.close().await;
        }
        Kind::Wide => {
            let next = Arc::new(AtomicU64::new(0));
            let mut workers = tokio::task::JoinSet::new();
            let mut clients = Vec::with_capacity(CONNECTIONS);
            for _ in 0..CONNECTIONS {
                clients.push(Arc::new(server::connect(options).await?));
            }
            for client in &clients {
                for _ in 0..IN_FLIGHT {
                    let (client, next) = (Arc::clone(client), Arc::clone(&next));
                    workers.spawn(add_items(client, next, rows));
                }
            }
            while let Some(done) = workers.join_next().await {
                done.context("a loading task")??;
            }
            for client in &clients {
                client.close().await;
            }
        }
    }
    Ok(())
}

/// Adds items numbered from `next` until `rows` are taken.
async fn add_items(client: Arc<Client>, next: Arc<AtomicU64>, rows: u32) -> anyhow::Result<()> {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= u64::from(rows) {
            return Ok(());
        }
        let args = (format!("sku-{i:09}"), (i % 1000) as u32, i as i32, i * 7);
        let outcome = client.call("add_item", &args).await?;
        if !matches!(outcome.status, ReducerStatus::Committed) {
            anyhow::bail!(
                "add_item {i} {}",
                super::server::status_text(&outcome.status)
            );
        }
    }
}

/// How many rows the table holds, and (narrow) that every balance is intact.
async fn count(options: &ConnectOptions, kind: Kind) -> anyhow::Result<u64> {
    let client = server::connect(options).await?;
    let counted = match kind {
        Kind::Narrow => {
            let (count, sum) = server::balances(&client).await?;
            anyhow::ensure!(
                sum == count as i128 * i128::from(BALANCE),
                "the balances sum to {sum}, not {count} x {BALANCE}"
            );
            count as u64
        }
        Kind::Wide => {
            let tables = client.query("SELECT * FROM item").await?;
            tables.iter().map(|t| t.rows.len() as u64).sum()
        }
    };
    client.close().await;
    Ok(counted)
}
