//! `worldline bench subscriptions`: N distinct point subscriptions
//! (`SELECT * FROM account WHERE id = k` for every k < N) held by a few
//! connections while the load of `bench transfer` runs. Per transport it
//! alternates, in rounds, a window of the load with no subscriptions and
//! a window with all N live: between the two it subscribes them while one
//! client keeps calling (how long subscribing takes and how the calls
//! fared meanwhile), and after the second it unsubscribes them again
//! (except after the last round). Alternating short windows compares the
//! two under the same conditions on a machine whose speed drifts from
//! second to second. At the end the subscribers' caches must equal the
//! table and the balance sum must be unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use tokio::task::JoinSet;
use worldline_client::{Client, ConnectOptions, QuerySetId};
use worldline_transport::{ReducerStatus, TableRows};

use super::load::{self, Load, LoadArgs, Stop, Tally};
use super::server::{self, ClientArgs, Prepared, protocol_name};
use super::stats::{Latency, Window, print_balance, thousands};
use super::transfer::print_latency;
use crate::context::GlobalArgs;
use crate::output::print_json;

/// Queries per subscribe message: the most a server accepts in one query set.
const QUERIES_PER_SET: usize = 64;

/// Query sets one connection may hold on a server.
const SETS_PER_CONNECTION: usize = 256;

/// Options of `worldline bench subscriptions`.
#[derive(Args, Debug)]
pub struct SubscriptionsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// How many distinct point subscriptions: accounts 0..N, one query each.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    distinct: u32,
    /// How many connections hold the subscriptions (each an equal share).
    #[arg(long, value_name = "H", default_value_t = 10)]
    holders: usize,
    /// How many times to alternate a window without the subscriptions and
    /// one with them; each window is --duration / R seconds long, after
    /// --warmup seconds of load.
    #[arg(long, value_name = "R", default_value_t = 5)]
    rounds: u32,
    #[command(flatten)]
    load: LoadArgs,
}

/// The measured windows of transfers in one state, all rounds together.
#[derive(Debug, Serialize)]
struct Measured {
    /// Committed transfers per second over all the windows.
    tps: f64,
    latency: Latency,
    committed: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Subscribing all N while a client keeps calling, the slowest of the rounds.
#[derive(Debug, Serialize)]
struct Subscribing {
    /// From the first subscribe sent until every one was applied, in the
    /// round where this took longest.
    seconds: f64,
    /// Calls the probing client completed meanwhile, one at a time, in all rounds.
    calls: u64,
    /// The slowest of them, in milliseconds.
    slowest_call_ms: f64,
}

impl Subscribing {
    /// Both subscribings: the slower, and the calls of both.
    fn and(self, other: Subscribing) -> Subscribing {
        Subscribing {
            seconds: self.seconds.max(other.seconds),
            calls: self.calls + other.calls,
            slowest_call_ms: self.slowest_call_ms.max(other.slowest_call_ms),
        }
    }
}

/// The benchmark over one transport.
#[derive(Debug, Serialize)]
struct Run {
    protocol: &'static str,
    durability: String,
    distinct: u32,
    holders: usize,
    rounds: u32,
    #[serde(flatten)]
    load: LoadArgs,
    without_subscriptions: Measured,
    subscribing: Subscribing,
    with_subscriptions: Measured,
    /// TPS with the subscriptions live over TPS without.
    tps_ratio: f64,
    /// Row updates the holders received while the load ran.
    updates_received: u64,
    /// Whether the holders' caches ended equal to the subscribed accounts.
    caches_match: bool,
    balance_sum_before: i128,
    balance_sum_after: i128,
    balance_unchanged: bool,
}

/// Runs `worldline bench subscriptions`.
pub fn run(args: SubscriptionsArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (load, warmup, duration) = args.load.checked()?;
    anyhow::ensure!(
        args.distinct >= 1 && args.distinct <= args.load.accounts,
        "--distinct must be between 1 and --accounts ({})",
        args.load.accounts
    );
    anyhow::ensure!(args.holders >= 1, "--holders must be at least 1");
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let sets_per_holder = (args.distinct as usize)
        .div_ceil(QUERIES_PER_SET)
        .div_ceil(args.holders);
    anyhow::ensure!(
        sets_per_holder <= SETS_PER_CONNECTION,
        "a connection holds at most {SETS_PER_CONNECTION} query sets of {QUERIES_PER_SET} \
         queries; use more --holders"
    );
    let prepared = Prepared::new(
        global,
        &args.client,
        args.load.connections + args.holders,
        args.load.connections + args.holders,
    )?;
    let mut runs = Vec::new();
    prepared.runtime.block_on(async {
        let seeder = server::connect(&prepared.options[0].1).await?;
        server::seed(&seeder, args.load.accounts, 1_000_000_000).await?;
        let subscribed = format!("SELECT * FROM account WHERE id < {}", args.distinct);
        for (protocol, options) in &prepared.options {
            let (_, before) = server::balances(&seeder).await?;
            let (mut run, cached) = run_over(
                &args,
                load,
                options,
                protocol_name(*protocol),
                warmup,
                duration,
            )
            .await?;
            let mut table = rows(&seeder.query(&subscribed).await?);
            table.sort_unstable();
            let (_, after) = server::balances(&seeder).await?;
            run.durability = prepared.target.durability_name();
            run.caches_match = cached == table;
            run.balance_sum_before = before;
            run.balance_sum_after = after;
            run.balance_unchanged = before == after;
            runs.push(run);
        }
        seeder.close().await;
        anyhow::Ok(())
    })?;
    prepared.target.stop()?;
    if args.client.target.json {
        print_json(&runs)?;
    } else {
        runs.iter().for_each(print_text);
    }
    anyhow::ensure!(
        runs.iter().all(|r| r.balance_unchanged),
        "the balance sum changed: transfers lost or made money"
    );
    anyhow::ensure!(
        runs.iter().all(|r| r.caches_match),
        "the subscribers' caches do not match the table"
    );
    Ok(())
}

/// The rows of query results, in one list.
fn rows(tables: &[TableRows]) -> Vec<Vec<u8>> {
    tables
        .iter()
        .flat_map(|t| t.rows.iter().map(|row| row.to_vec()))
        .collect()
}

/// The benchmark over one transport, with the holders' cached rows at the
/// end (sorted); the caller fills in the checks against the table.
async fn run_over(
    args: &SubscriptionsArgs,
    load: Load,
    options: &ConnectOptions,
    protocol: &'static str,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(Run, Vec<Vec<u8>>)> {
    let mut callers = Vec::with_capacity(args.load.connections);
    for _ in 0..args.load.connections {
        callers.push(Arc::new(server::connect(options).await?));
    }
    // The holders are connected in both states, so that the windows
    // without subscriptions differ from the others only in them.
    let updates = Arc::new(AtomicU64::new(0));
    let mut holders = Vec::with_capacity(args.holders);
    for _ in 0..args.holders {
        let holder = Arc::new(server::connect(options).await?);
        let counter = Arc::clone(&updates);
        holder.on_update::<(u32, i64), _>("account", move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        holders.push(holder);
    }
    let window = duration / args.rounds;
    let (mut without, mut with) = (Phase::default(), Phase::default());
    let mut subscribing: Option<Subscribing> = None;
    for round in 1..=args.rounds {
        let of = format!("round {round} of {}", args.rounds);
        let label = format!("transfer over {protocol} without subscriptions ({of})");
        without.add(measure(&callers, load, warmup, window, label).await, window);
        eprintln!(
            "subscriptions over {protocol}: subscribing {} distinct queries from {} connections \
             ({of})...",
            thousands(f64::from(args.distinct)),
            args.holders
        );
        let (sets, this) =
            subscribe_all(&holders, &callers[0], args.distinct, args.load.accounts).await?;
        subscribing = Some(match subscribing {
            Some(before) => before.and(this),
            None => this,
        });
        let label = format!(
            "transfer over {protocol} with {} subscriptions ({of})",
            thousands(f64::from(args.distinct))
        );
        with.add(measure(&callers, load, warmup, window, label).await, window);
        if round < args.rounds {
            for (holder, set) in sets {
                holder.unsubscribe(set).await?;
            }
        }
    }
    // A query's answer comes after every update sent to the connection before it.
    let mut cached = Vec::new();
    for holder in &holders {
        holder.query("SELECT * FROM account WHERE id = 0").await?;
        cached.extend(holder.rows_raw("account"));
    }
    cached.sort_unstable();
    for client in callers.iter().chain(&holders) {
        client.close().await;
    }
    let (without, with) = (without.measured(), with.measured());
    let run = Run {
        protocol,
        durability: String::new(),
        distinct: args.distinct,
        holders: args.holders,
        rounds: args.rounds,
        load: args.load.clone(),
        tps_ratio: with.tps / without.tps,
        without_subscriptions: without,
        subscribing: subscribing.context("no round ran")?,
        with_subscriptions: with,
        updates_received: updates.load(Ordering::Relaxed),
        caches_match: false,
        balance_sum_before: 0,
        balance_sum_after: 0,
        balance_unchanged: false,
    };
    Ok((run, cached))
}

/// The windows measured in one state (with or without the subscriptions).
#[derive(Default)]
struct Phase {
    tally: Tally,
    /// The windows' lengths added up.
    measured: Duration,
}

impl Phase {
    /// Adds the tally of a window `length` long.
    fn add(&mut self, tally: Tally, length: Duration) {
        self.tally.merge(tally);
        self.measured += length;
    }

    /// What the windows came to together.
    fn measured(self) -> Measured {
        let (completions, latency) = self.tally.recorder.completions_and_latency();
        Measured {
            tps: completions as f64 / self.measured.as_secs_f64(),
            latency,
            committed: self.tally.committed,
            errors: self.tally.errors,
            first_error: self.tally.first_error,
        }
    }
}

/// Runs the transfer load on `callers` for `warmup`, then through a
/// measured window of `length`; returns its tally.
async fn measure(
    callers: &[Arc<Client>],
    load: Load,
    warmup: Duration,
    length: Duration,
    label: String,
) -> Tally {
    let window = Window::after(warmup, length);
    let done = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(load::progress(label, window, Arc::clone(&done)));
    let stop = Stop {
        at: window.closes(),
        calls: u64::MAX,
    };
    let tally = load::transfers(callers, load, window, stop, done).await;
    progress.abort();
    load::end_progress();
    tally
}

/// Subscribes accounts `0..distinct`, one query each, in sets of
/// [`QUERIES_PER_SET`] dealt round the holders and all sent at once, while
/// `prober` calls `transfer` one call at a time. Returns each set with
/// its holder, and how subscribing went.
async fn subscribe_all(
    holders: &[Arc<Client>],
    prober: &Arc<Client>,
    distinct: u32,
    accounts: u32,
) -> anyhow::Result<(Vec<(Arc<Client>, QuerySetId)>, Subscribing)> {
    let stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(probe(Arc::clone(prober), accounts, Arc::clone(&stop)));
    let started = Instant::now();
    let ids: Vec<u32> = (0..distinct).collect();
    let mut subscribing = JoinSet::new();
    for (n, chunk) in ids.chunks(QUERIES_PER_SET).enumerate() {
        let holder = Arc::clone(&holders[n % holders.len()]);
        let queries: Vec<String> = chunk
            .iter()
            .map(|k| format!("SELECT * FROM account WHERE id = {k}"))
            .collect();
        subscribing.spawn(async move {
            let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
            let set = holder.subscribe(&queries).await?;
            anyhow::Ok((holder, set))
        });
    }
    let mut sets = Vec::with_capacity(subscribing.len());
    while let Some(applied) = subscribing.join_next().await {
        sets.push(applied.context("a subscribing task")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (calls, slowest) = probe.await.context("the probing task")??;
    let subscribing = Subscribing {
        seconds,
        calls,
        slowest_call_ms: slowest.as_secs_f64() * 1e3,
    };
    Ok((sets, subscribing))
}

/// Calls `transfer` between neighbouring accounts one call at a time until
/// `stop`; returns how many calls committed and the slowest call.
async fn probe(
    client: Arc<Client>,
    accounts: u32,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(u64, Duration)> {
    let (mut calls, mut slowest) = (0u64, Duration::ZERO);
    while !stop.load(Ordering::Relaxed) {
        let from = (calls % u64::from(accounts)) as u32;
        let to = (from + 1) % accounts;
        let started = Instant::now();
        let outcome = client.call("transfer", &(from, to, 1i64)).await?;
        anyhow::ensure!(
            outcome.status == ReducerStatus::Committed,
            "a transfer while subscribing did not commit: {}",
            super::server::status_text(&outcome.status)
        );
        slowest = slowest.max(started.elapsed());
        calls += 1;
    }
    Ok((calls, slowest))
}

fn print_text(run: &Run) {
    println!(
        "subscriptions over {}, durability {}: {} distinct point subscriptions held by {} \
         connection(s); transfers from {}, split into {} round(s) of a {} s window without the \
         subscriptions and one with them, each after the warm-up",
        run.protocol,
        run.durability,
        thousands(f64::from(run.distinct)),
        run.holders,
        run.load,
        run.rounds,
        run.load.duration / f64::from(run.rounds)
    );
    let measured = |label: &str, m: &Measured| {
        println!("  {label}: TPS {}", thousands(m.tps));
        print_latency(&m.latency);
        if m.errors > 0 {
            println!(
                "  errors {}, first: {}",
                thousands(m.errors as f64),
                m.first_error.as_deref().unwrap_or("")
            );
        }
    };
    measured("without subscriptions", &run.without_subscriptions);
    let s = &run.subscribing;
    println!(
        "  subscribing all {}: {:.3} s (the slowest of {} round(s)); meanwhile {} calls \
         committed one at a time, the slowest in {:.1} ms",
        thousands(f64::from(run.distinct)),
        s.seconds,
        run.rounds,
        thousands(s.calls as f64),
        s.slowest_call_ms
    );
    measured("with the subscriptions live", &run.with_subscriptions);
    println!(
        "  TPS with / without: {:.1}%; subscribers received {} row updates; their caches match \
         the table: {}",
        run.tps_ratio * 100.0,
        thousands(run.updates_received as f64),
        if run.caches_match { "yes" } else { "NO" }
    );
    print_balance(run.balance_sum_before, run.balance_sum_after);
}
