//! `worldline bench transfer`: the bank transfer from C connections with P
//! calls in flight each, accounts drawn by Zipf's law; TPS, latency, server
//! CPU and memory; the balance sum checked at the end; optionally the same
//! transaction on SQLite or PostgreSQL for comparison.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::baseline::BaselineResult;
use super::load::{self, LoadArgs, Stop};
use super::postgres;
use super::server::{self, ClientArgs, Prepared, Usage, protocol_name};
use super::sqlite;
use super::stats::{Latency, Spread, Window, print_balance, thousands};
use crate::context::GlobalArgs;
use crate::output::print_json;

/// A system to run the same transaction on, for comparison.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Baseline {
    /// SQLite in this process, WAL mode, synchronous=FULL and =NORMAL.
    Sqlite,
    /// A PostgreSQL server (`--postgres-url`), the transfer as a stored
    /// function, synchronous_commit=on and =off.
    Postgres,
}

/// Options of `worldline bench transfer`.
#[derive(Args, Debug)]
pub struct TransferArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// Each account's opening balance; transfers move 1 unit, so no account
    /// runs dry within a window unless this is small.
    #[arg(long, value_name = "UNITS", default_value_t = 1_000_000_000)]
    balance: i64,
    /// Also run the same transfers on this system and print the ratio.
    #[arg(long, value_enum, value_delimiter = ',')]
    baseline: Vec<Baseline>,
    /// The PostgreSQL server of `--baseline postgres`, as a connection
    /// string (`host=127.0.0.1 user=bench password=...` or
    /// `postgresql://bench:...@127.0.0.1/postgres`); the role needs
    /// CREATEDB: a scratch database is created and dropped.
    #[arg(long, value_name = "URL", env = "WORLDLINE_BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
}

/// One measured run over one transport.
#[derive(Debug, Serialize)]
struct Run {
    protocol: &'static str,
    durability: String,
    #[serde(flatten)]
    load: LoadArgs,
    /// Committed transfers per second in the window.
    tps: f64,
    /// Committed transfers in each second of the window.
    tps_per_second: Spread,
    latency: Latency,
    /// Over warm-up and window together.
    committed: u64,
    refused: u64,
    errors: u64,
    first_error: Option<String>,
    /// The started server in the window (`null` with `--server`).
    server: Option<ServerUsage>,
    balance_sum_before: i128,
    balance_sum_after: i128,
    balance_unchanged: bool,
}

/// The server process over the measured window.
#[derive(Debug, Serialize)]
struct ServerUsage {
    cpu_seconds: f64,
    /// CPU time over wall time: 2.0 is two cores busy.
    cpu_cores: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

/// A baseline's run, and Worldline's TPS as a ratio to it per transport.
#[derive(Debug, Serialize)]
struct BaselineRun {
    #[serde(flatten)]
    run: BaselineResult,
    /// Worldline's TPS divided by this one, per protocol.
    ratios: Vec<(String, f64)>,
}

#[derive(Debug, Serialize)]
struct Report {
    runs: Vec<Run>,
    baselines: Vec<BaselineRun>,
}

/// Runs `worldline bench transfer`.
pub fn run(args: TransferArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (load, warmup, duration) = args.load.checked()?;
    let postgres = match (
        args.baseline.contains(&Baseline::Postgres),
        &args.postgres_url,
    ) {
        (false, _) => None,
        (true, None) => anyhow::bail!(
            "--baseline postgres needs --postgres-url: a PostgreSQL server and a role that may \
             create databases"
        ),
        (true, Some(url)) => Some(postgres::parse_url(url)?),
    };
    let prepared = Prepared::new(global, &args.client, args.load.connections.max(64))?;
    let (target, options) = (&prepared.target, &prepared.options);
    let mut runs = Vec::new();
    prepared.runtime.block_on(async {
        let seeder = server::connect(&options[0].1).await?;
        server::seed(&seeder, args.load.accounts, args.balance).await?;
        for (protocol, options) in options {
            let (_, before) = server::balances(&seeder).await?;
            let mut clients = Vec::with_capacity(args.load.connections);
            for _ in 0..args.load.connections {
                clients.push(Arc::new(server::connect(options).await?));
            }
            let window = Window::after(warmup, duration);
            let pid = target.process().map(|p| p.pid());
            let usage = tokio::spawn(usage_over(pid, window));
            let done = Arc::new(AtomicU64::new(0));
            let label = format!("transfer over {}", protocol_name(*protocol));
            let progress = tokio::spawn(load::progress(label, window, Arc::clone(&done)));
            let stop = Stop {
                at: window.closes(),
                calls: u64::MAX,
            };
            let tally = load::transfers(&clients, load, window, stop, done).await;
            progress.abort();
            load::end_progress();
            let server = usage.await??;
            for client in &clients {
                client.close().await;
            }
            let (_, after) = server::balances(&seeder).await?;
            let summary = tally.recorder.summary(&window);
            runs.push(Run {
                protocol: protocol_name(*protocol),
                durability: target.durability_name(),
                load: args.load.clone(),
                tps: summary.per_second,
                tps_per_second: summary.spread,
                latency: summary.latency,
                committed: tally.committed,
                refused: tally.refused,
                errors: tally.errors,
                first_error: tally.first_error,
                server,
                balance_sum_before: before,
                balance_sum_after: after,
                balance_unchanged: before == after,
            });
        }
        seeder.close().await;
        anyhow::Ok(())
    })?;
    prepared.target.stop()?;
    let mut results = Vec::new();
    for &baseline in &args.baseline {
        match baseline {
            Baseline::Sqlite => {
                for synchronous in ["FULL", "NORMAL"] {
                    eprintln!("SQLite WAL synchronous={synchronous}: running...");
                    results.push(sqlite::run(
                        synchronous,
                        args.load.accounts,
                        args.balance,
                        args.load.alpha,
                        warmup,
                        duration,
                    )?);
                }
            }
            Baseline::Postgres => {
                let load = postgres::Load {
                    accounts: args.load.accounts,
                    balance: args.balance,
                    alpha: args.load.alpha,
                    connections: args.load.connections,
                    in_flight: args.load.in_flight,
                    warmup,
                    duration,
                };
                if let Some(config) = &postgres {
                    results.extend(postgres::run(config, load)?);
                }
            }
        }
    }
    let baselines = results
        .into_iter()
        .map(|run| BaselineRun {
            ratios: runs
                .iter()
                .map(|r| (r.protocol.to_string(), r.tps / run.summary.per_second))
                .collect(),
            run,
        })
        .collect();
    let report = Report { runs, baselines };
    if args.client.target.json {
        print_json(&report)?;
    } else {
        print_text(&report);
    }
    let broken = report.runs.iter().any(|r| !r.balance_unchanged)
        || report.baselines.iter().any(|b| !b.run.balance_unchanged);
    anyhow::ensure!(
        !broken,
        "the balance sum changed: transfers lost or made money"
    );
    Ok(())
}

/// The server's CPU time and memory over `window` (none without a pid).
async fn usage_over(pid: Option<u32>, window: Window) -> anyhow::Result<Option<ServerUsage>> {
    let Some(pid) = pid else { return Ok(None) };
    tokio::time::sleep_until(window.opens.into()).await;
    let before: Usage = server::usage(pid)?;
    tokio::time::sleep_until(window.closes().into()).await;
    let after = server::usage(pid)?;
    let cpu_seconds = after.cpu_seconds - before.cpu_seconds;
    Ok(Some(ServerUsage {
        cpu_seconds,
        cpu_cores: cpu_seconds / window.duration.as_secs_f64(),
        rss_mib: after.rss_mib,
        peak_rss_mib: after.peak_rss_mib,
    }))
}

fn print_text(report: &Report) {
    for run in &report.runs {
        println!(
            "transfer over {}, durability {}: {}",
            run.protocol, run.durability, run.load
        );
        println!(
            "  TPS {}   per second: min {}, median {}, max {}",
            thousands(run.tps),
            thousands(run.tps_per_second.min),
            thousands(run.tps_per_second.median),
            thousands(run.tps_per_second.max)
        );
        print_latency(&run.latency);
        println!(
            "  committed {}, refused for lack of funds {}, errors {}",
            thousands(run.committed as f64),
            thousands(run.refused as f64),
            thousands(run.errors as f64)
        );
        if let Some(error) = &run.first_error {
            println!("  first error: {error}");
        }
        match &run.server {
            Some(s) => println!(
                "  server: CPU {:.2} s in the window ({:.2} cores), RSS {:.1} MiB (peak {:.1} MiB)",
                s.cpu_seconds, s.cpu_cores, s.rss_mib, s.peak_rss_mib
            ),
            None => println!("  server: CPU n/a, RSS n/a (a server this command did not start)"),
        }
        print_balance(run.balance_sum_before, run.balance_sum_after);
    }
    for baseline in &report.baselines {
        let summary = &baseline.run.summary;
        println!(
            "{}: TPS {}   per second: min {}, median {}, max {}",
            baseline.run.system,
            thousands(summary.per_second),
            thousands(summary.spread.min),
            thousands(summary.spread.median),
            thousands(summary.spread.max)
        );
        print_latency(&summary.latency);
        for (protocol, ratio) in &baseline.ratios {
            println!("  Worldline over {protocol}: {ratio:.2}x its TPS");
        }
    }
}

/// One line of latency percentiles.
pub fn print_latency(latency: &Latency) {
    println!(
        "  latency p50 {:.0} µs, p95 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        latency.p50_us, latency.p95_us, latency.p99_us, latency.max_us
    );
}
