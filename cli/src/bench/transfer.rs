//! `worldline bench transfer`: the bank transfer from C connections with P
//! calls in flight each, accounts drawn by Zipf's law; TPS, latency, server
//! CPU and memory; the balance sum checked at the end; optionally the same
//! transaction on SQLite or PostgreSQL for comparison; optionally the bank
//! example of each guest language (`--lang rust,cpp,python`), built from
//! this checkout and measured one after the other, side by side.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::baseline::BaselineResult;
use super::load::{self, Load, LoadArgs, Stop};
use super::postgres;
use super::server::{
    self, ClientArgs, Prepared, Usage, bank_wasm, build_checkout_module, protocol_name,
};
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

/// A guest language the bank example is written in, in this checkout.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Language {
    /// `guest-rust/examples/bank`, built with cargo.
    Rust,
    /// `guest-cpp/examples/bank`, built with make (the C++ SDK's rules).
    Cpp,
    /// `guest-python/examples/bank`, built with componentize-py.
    Python,
}

impl Language {
    /// The language as people write it.
    fn title(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Cpp => "C++",
            Language::Python => "Python",
        }
    }

    /// Builds this language's bank example from the checkout this binary
    /// was built from, as `publish --project-path` builds it.
    fn build_bank(self) -> anyhow::Result<Vec<u8>> {
        let project = match self {
            Language::Rust => concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-rust/examples/bank"),
            Language::Cpp => concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-cpp/examples/bank"),
            Language::Python => {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-python/examples/bank")
            }
        };
        let path = build_checkout_module(
            project,
            &format!("the {} bank example", self.title()),
            "--lang builds the examples of a checkout; pass --wasm FILE (without --lang) instead",
        )?;
        server::read_component(&path)
    }
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
    /// Run the transfer against the bank example written in each of these
    /// languages, built from this checkout (guest-rust, guest-cpp and
    /// guest-python `examples/bank`), one after the other, each on a fresh
    /// server, and print each one's TPS as a ratio to Rust's.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        conflicts_with_all = ["wasm", "project_path"]
    )]
    lang: Vec<Language>,
}

/// One measured run over one transport.
#[derive(Debug, Serialize)]
struct Run {
    protocol: &'static str,
    /// The bank module's language (`--lang`); `null` for `--wasm`,
    /// `--project-path` or the default build.
    language: Option<Language>,
    /// This run's TPS over the Rust module's on the same protocol, when
    /// `--lang` names Rust.
    tps_ratio_to_rust: Option<f64>,
    durability: String,
    /// With `--durability every`: a small write and `fdatasync` in the
    /// server's directory, timed before it started; each transfer waits
    /// for at least one.
    disk_sync: Option<Latency>,
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
    /// The part of `cpu_cores` taken by the commit-log (durability)
    /// threads: writing and syncing the log.
    commit_log_cpu_cores: f64,
    /// The benchmark's own process (the clients) over the window, in cores.
    client_cpu_cores: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

/// The name (as `/proc` shows it) the server's commit-log threads start with.
const COMMIT_LOG_THREAD: &str = "worldline-durab";

/// A baseline's run, and Worldline's TPS as a ratio to it per transport
/// (and language, with `--lang`).
#[derive(Debug, Serialize)]
struct BaselineRun {
    #[serde(flatten)]
    run: BaselineResult,
    /// Worldline's TPS divided by this one, per protocol (`ws`, or `ws
    /// (C++)` with `--lang`).
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
    let mut languages = Vec::new();
    for &language in &args.lang {
        anyhow::ensure!(
            !languages.contains(&Some(language)),
            "--lang names {} twice",
            language.title()
        );
        languages.push(Some(language));
    }
    if languages.is_empty() {
        languages.push(None);
    }
    // Every module is built before anything is measured: a build that
    // fails does so at once, and no build runs beside a measurement.
    let modules = languages
        .into_iter()
        .map(|language| match language {
            Some(language) => Ok((Some(language), language.build_bank()?)),
            None => Ok((None, bank_wasm(&args.client.target)?)),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut runs = Vec::new();
    for (language, wasm) in &modules {
        let prepared = Prepared::with_wasm(
            global,
            &args.client,
            args.load.connections.max(64),
            args.load.connections,
            wasm,
        )?;
        runs.extend(measure(
            &prepared,
            &args,
            load,
            (warmup, duration),
            *language,
        )?);
        prepared.target.stop()?;
    }
    let rust_tps: Vec<(&str, f64)> = runs
        .iter()
        .filter(|r| r.language == Some(Language::Rust))
        .map(|r| (r.protocol, r.tps))
        .collect();
    for run in runs.iter_mut().filter(|r| r.language.is_some()) {
        run.tps_ratio_to_rust = rust_tps
            .iter()
            .find(|(protocol, _)| *protocol == run.protocol)
            .map(|(_, rust)| run.tps / rust);
    }
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
                .map(|r| (r.label(), r.tps / run.summary.per_second))
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

/// Seeds the bank of `prepared` and runs the transfer load over each
/// protocol in turn, with the bank written in `language` (if known).
fn measure(
    prepared: &Prepared,
    args: &TransferArgs,
    load: Load,
    (warmup, duration): (Duration, Duration),
    language: Option<Language>,
) -> anyhow::Result<Vec<Run>> {
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
            let label = match language {
                Some(language) => format!(
                    "transfer over {} ({})",
                    protocol_name(*protocol),
                    language.title()
                ),
                None => format!("transfer over {}", protocol_name(*protocol)),
            };
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
                language,
                tps_ratio_to_rust: None,
                durability: target.durability_name(),
                disk_sync: target.disk_sync.clone(),
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
    Ok(runs)
}

impl Run {
    /// The protocol, and the language with `--lang`: `ws (C++)`.
    fn label(&self) -> String {
        match self.language {
            Some(language) => format!("{} ({})", self.protocol, language.title()),
            None => self.protocol.to_owned(),
        }
    }
}

/// The server's CPU time and memory over `window` (none without a pid).
async fn usage_over(pid: Option<u32>, window: Window) -> anyhow::Result<Option<ServerUsage>> {
    let Some(pid) = pid else { return Ok(None) };
    let client = std::process::id();
    tokio::time::sleep_until(window.opens.into()).await;
    let before: Usage = server::usage(pid)?;
    let log_before = server::threads_cpu_seconds(pid, COMMIT_LOG_THREAD)?;
    let client_before = server::usage(client)?.cpu_seconds;
    tokio::time::sleep_until(window.closes().into()).await;
    let after = server::usage(pid)?;
    let log_after = server::threads_cpu_seconds(pid, COMMIT_LOG_THREAD)?;
    let client_after = server::usage(client)?.cpu_seconds;
    let cpu_seconds = after.cpu_seconds - before.cpu_seconds;
    let seconds = window.duration.as_secs_f64();
    Ok(Some(ServerUsage {
        cpu_seconds,
        cpu_cores: cpu_seconds / seconds,
        commit_log_cpu_cores: (log_after - log_before).max(0.0) / seconds,
        client_cpu_cores: (client_after - client_before) / seconds,
        rss_mib: after.rss_mib,
        peak_rss_mib: after.peak_rss_mib,
    }))
}

fn print_text(report: &Report) {
    for run in &report.runs {
        let language = run
            .language
            .map(|l| format!(", the bank in {}", l.title()))
            .unwrap_or_default();
        println!(
            "transfer over {}{language}, durability {}: {}",
            run.protocol, run.durability, run.load
        );
        if let Some(sync) = &run.disk_sync {
            println!(
                "  disk: a 2 KiB write made durable in the server's directory takes p50 {:.0} \
                 µs, p99 {:.0} µs (timed before the run); each transfer waits for at least one",
                sync.p50_us, sync.p99_us
            );
        }
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
                "  server: CPU {:.2} s in the window ({:.2} cores, {:.2} of them writing the \
                 commit log), RSS {:.1} MiB (peak {:.1} MiB); clients (this process): {:.2} cores",
                s.cpu_seconds,
                s.cpu_cores,
                s.commit_log_cpu_cores,
                s.rss_mib,
                s.peak_rss_mib,
                s.client_cpu_cores
            ),
            None => println!("  server: CPU n/a, RSS n/a (a server this command did not start)"),
        }
        print_balance(run.balance_sum_before, run.balance_sum_after);
    }
    print_side_by_side(&report.runs);
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

/// With `--lang`: one line per protocol and language, TPS and latency,
/// and the TPS as a ratio to Rust's over the same protocol.
fn print_side_by_side(runs: &[Run]) {
    let mut runs: Vec<&Run> = runs.iter().filter(|r| r.language.is_some()).collect();
    if runs.is_empty() {
        return;
    }
    // By protocol (in the order measured), then language (as given).
    let protocols: Vec<&str> = runs.iter().fold(Vec::new(), |mut seen, r| {
        if !seen.contains(&r.protocol) {
            seen.push(r.protocol);
        }
        seen
    });
    runs.sort_by_key(|r| protocols.iter().position(|p| *p == r.protocol));
    println!("the bank by language, side by side:");
    for run in runs {
        let ratio = run
            .tps_ratio_to_rust
            .map_or_else(|| "n/a (no Rust run)".to_owned(), |r| format!("{r:.2}x"));
        println!(
            "  {:<5} {:<7} TPS {:>9}   latency p50 {:.0} µs, p99 {:.0} µs   vs Rust {ratio}",
            run.protocol,
            run.language.map_or("", Language::title),
            thousands(run.tps),
            run.latency.p50_us,
            run.latency.p99_us
        );
    }
}

/// One line of latency percentiles.
pub fn print_latency(latency: &Latency) {
    println!(
        "  latency p50 {:.0} µs, p95 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        latency.p50_us, latency.p95_us, latency.p99_us, latency.max_us
    );
}
