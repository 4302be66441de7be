//! `worldline bench replay`: log M transfers without a snapshot, restart
//! the server, and time how fast recovery replays them.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use super::load::{self, Load, Stop};
use super::server::{self, DATABASE, ScratchDir, Target, TargetArgs, raise_open_file_limit};
use super::stats::{Window, thousands};
use crate::commands::subscribe::Protocol;
use crate::context::GlobalArgs;
use crate::hint::hinted;
use crate::output::print_json;

/// Connections and calls in flight while logging the transactions.
const CONNECTIONS: usize = 4;
const IN_FLIGHT: usize = 16;

/// Options of `worldline bench replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// How many transfers to log before restarting.
    #[arg(long, value_name = "M", default_value_t = 1_000_000)]
    transactions: u64,
    /// How many accounts to seed.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    accounts: u32,
}

#[derive(Debug, Serialize)]
struct Report {
    durability: String,
    /// Transactions in the log: the seed and the committed transfers.
    logged: u64,
    /// What the server reported replaying.
    replayed: u64,
    replay_ms: f64,
    transactions_per_second: f64,
    /// From starting the process until it was ready.
    restart_ms: f64,
    balance_unchanged: bool,
}

/// Runs `worldline bench replay`.
pub fn run(args: ReplayArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if global.server.is_some() {
        return Err(hinted(
            "bench replay restarts the server, so it cannot use --server",
            "run it without --server; it starts its own",
        ));
    }
    anyhow::ensure!(args.accounts >= 2, "--accounts must be at least 2");
    raise_open_file_limit();
    let wasm = server::bank_wasm(&args.target)?;
    let dir = ScratchDir::new()?;
    // No snapshot: recovery replays the whole log.
    let no_snapshot = ["--snapshot-every", &u64::MAX.to_string()];
    let target = Target::start(dir.path(), args.target.durability, &no_snapshot)?;
    target.publish(DATABASE, &wasm)?;
    let options = target.connect_options(Protocol::Ws, DATABASE)?;
    let runtime = server::runtime()?;
    let (committed, sum_before) = runtime.block_on(async {
        let seeder = server::connect(&options).await?;
        server::seed(&seeder, args.accounts, 1_000_000_000).await?;
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            clients.push(Arc::new(server::connect(&options).await?));
        }
        let window = Window::after(Duration::ZERO, Duration::from_secs(1));
        let done = Arc::new(AtomicU64::new(0));
        let label = format!(
            "replay: logging {} transfers",
            thousands(args.transactions as f64)
        );
        let progress = tokio::spawn(load::progress(label, window, Arc::clone(&done)));
        let load = Load {
            in_flight: IN_FLIGHT,
            accounts: args.accounts,
            alpha: 0.0,
        };
        let stop = Stop {
            at: Instant::now() + Duration::from_secs(24 * 3600),
            calls: args.transactions,
        };
        let tally = load::transfers(&clients, load, window, stop, done).await;
        progress.abort();
        load::end_progress();
        if let Some(error) = tally.first_error {
            anyhow::bail!("{} transfers failed, the first: {error}", tally.errors);
        }
        for client in &clients {
            client.close().await;
        }
        let (_, sum) = server::balances(&seeder).await?;
        seeder.close().await;
        anyhow::Ok((tally.committed, sum))
    })?;
    let durability = target.durability_name();
    target.stop()?;
    eprintln!("replay: restarting the server...");
    let started = Instant::now();
    let target = Target::start(dir.path(), args.target.durability, &no_snapshot)?;
    let restart = started.elapsed();
    let output = target.process().map(|p| p.output()).unwrap_or_default();
    let (replayed, replay_ms) = recovery_line(&output)?;
    let options = target.connect_options(Protocol::Ws, DATABASE)?;
    let sum_after = runtime.block_on(async {
        let client = server::connect(&options).await?;
        let (_, sum) = server::balances(&client).await?;
        client.close().await;
        anyhow::Ok(sum)
    })?;
    target.stop()?;
    let report = Report {
        durability,
        logged: committed + 1,
        replayed,
        replay_ms,
        transactions_per_second: replayed as f64 / (replay_ms / 1e3),
        restart_ms: restart.as_secs_f64() * 1e3,
        balance_unchanged: sum_before == sum_after,
    };
    if args.target.json {
        print_json(&report)?;
    } else {
        println!(
            "replay of {} logged transactions (durability {}), no snapshot: {} replayed in {:.1} ms, {} tx/s; restart until ready {:.1} ms; balance sum {}",
            thousands(report.logged as f64),
            report.durability,
            thousands(report.replayed as f64),
            report.replay_ms,
            thousands(report.transactions_per_second),
            report.restart_ms,
            if report.balance_unchanged {
                "unchanged"
            } else {
                "CHANGED"
            }
        );
    }
    anyhow::ensure!(
        report.balance_unchanged,
        "the balance sum changed across the restart"
    );
    Ok(())
}

/// The count and milliseconds from the server's line
/// `recovered database bench: ..., N transactions replayed in X ms`.
fn recovery_line(output: &[String]) -> anyhow::Result<(u64, f64)> {
    let prefix = format!("worldline: recovered database {DATABASE}: ");
    let line = output
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .context("the server printed no recovery line for the database")?;
    let parse = || -> Option<(u64, f64)> {
        let (before, after) = line
            .split_once(" transactions replayed in ")
            .or_else(|| line.split_once(" transaction replayed in "))?;
        let count = before.rsplit(' ').next()?.parse().ok()?;
        let ms = after.split(' ').next()?.parse().ok()?;
        Some((count, ms))
    };
    parse().with_context(|| format!("cannot read the recovery line `{line}`"))
}
