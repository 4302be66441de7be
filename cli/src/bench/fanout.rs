//! `worldline bench fanout`: one commit to a row that N connections
//! subscribe to, timed until the last of them has received it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use worldline_client::{Client, ConnectOptions};
use worldline_transport::ReducerStatus;

use super::server::{self, ClientArgs, Prepared, protocol_name};
use super::stats::thousands;
use crate::context::GlobalArgs;
use crate::output::print_json;

/// Connections opened at once while subscribing.
const CONNECT_BATCH: usize = 64;
/// How long a commit may take to reach every subscriber before the
/// benchmark gives up.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of `worldline bench fanout`.
#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// How many subscribed connections.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    subscribers: usize,
    /// How many commits to time.
    #[arg(long, value_name = "N", default_value_t = 10)]
    rounds: usize,
}

/// The fan-out over one transport, in milliseconds until the last subscriber had it.
#[derive(Debug, Serialize)]
struct Run {
    protocol: &'static str,
    durability: String,
    subscribers: usize,
    rounds: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

/// Runs `worldline bench fanout`.
pub fn run(args: FanoutArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.subscribers >= 1 && args.rounds >= 1,
        "--subscribers and --rounds must be at least 1"
    );
    let prepared = Prepared::new(
        global,
        &args.client,
        args.subscribers.max(64),
        args.subscribers,
    )?;
    let mut runs = Vec::new();
    prepared.runtime.block_on(async {
        let writer = server::connect(&prepared.options[0].1).await?;
        server::seed(&writer, 2, 1_000_000_000).await?;
        for (protocol, options) in &prepared.options {
            eprintln!(
                "fanout over {}: connecting {} subscribers...",
                protocol_name(*protocol),
                args.subscribers
            );
            let arrivals = Arc::new(Arrivals::default());
            let subscribers = subscribe_all(options, args.subscribers, &arrivals).await?;
            let mut times = Vec::with_capacity(args.rounds);
            for _ in 0..args.rounds {
                arrivals.arm(subscribers.len());
                let started = Instant::now();
                let outcome = writer.call("transfer", &(0u32, 1u32, 1i64)).await?;
                anyhow::ensure!(
                    outcome.status == ReducerStatus::Committed,
                    "the transfer did not commit"
                );
                let last = arrivals.last().await?;
                times.push(last.duration_since(started));
            }
            for client in &subscribers {
                client.close().await;
            }
            times.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            runs.push(Run {
                protocol: protocol_name(*protocol),
                durability: prepared.target.durability_name(),
                subscribers: args.subscribers,
                rounds: args.rounds,
                median_ms: ms(times[times.len() / 2]),
                min_ms: ms(times[0]),
                max_ms: ms(times[times.len() - 1]),
            });
        }
        writer.close().await;
        anyhow::Ok(())
    })?;
    if args.client.target.json {
        print_json(&runs)?;
    } else {
        for run in &runs {
            println!(
                "fan-out of one commit to {} subscribers over {}, durability {}: median {:.2} ms until the last received it (min {:.2} ms, max {:.2} ms, {} commits)",
                thousands(run.subscribers as f64),
                run.protocol,
                run.durability,
                run.median_ms,
                run.min_ms,
                run.max_ms,
                run.rounds
            );
        }
    }
    prepared.target.stop()
}

/// When the subscribers received the commit being timed: each client's
/// reducer-event callback (run by its reader as soon as the update is
/// applied to its cache) counts down and keeps the latest arrival.
#[derive(Default)]
struct Arrivals {
    /// How many subscribers have not received the current commit.
    remaining: AtomicUsize,
    /// The latest arrival of the current commit.
    last: Mutex<Option<Instant>>,
    /// Notified when `remaining` reaches zero.
    all: Notify,
}

impl Arrivals {
    /// Expects the next commit at `count` subscribers.
    fn arm(&self, count: usize) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.remaining.store(count, Ordering::SeqCst);
    }

    /// One subscriber received it now.
    fn arrived(&self) {
        let now = Instant::now();
        {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            *last = Some(last.map_or(now, |l| l.max(now)));
        }
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.all.notify_one();
        }
    }

    /// Waits until every armed subscriber received the commit; returns when
    /// the last one did.
    async fn last(&self) -> anyhow::Result<Instant> {
        let waited = tokio::time::timeout(ARRIVAL_TIMEOUT, async {
            while self.remaining.load(Ordering::SeqCst) > 0 {
                self.all.notified().await;
            }
        })
        .await;
        anyhow::ensure!(
            waited.is_ok(),
            "{} subscriber(s) did not receive the commit within {} s",
            self.remaining.load(Ordering::SeqCst),
            ARRIVAL_TIMEOUT.as_secs()
        );
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .context("no subscribers")
    }
}

/// Connects `count` clients, each subscribed to account 0 and counting its
/// transaction updates in `arrivals`.
async fn subscribe_all(
    options: &ConnectOptions,
    count: usize,
    arrivals: &Arc<Arrivals>,
) -> anyhow::Result<Vec<Client>> {
    let mut subscribers = Vec::with_capacity(count);
    while subscribers.len() < count {
        let mut batch = JoinSet::new();
        // Each batch over a socket of its own: a thousand connections' updates
        // arriving at once would overflow one socket's receive buffer.
        let options = &server::with_new_quic_socket(options)?;
        for _ in 0..CONNECT_BATCH.min(count - subscribers.len()) {
            let options = options.clone();
            let arrivals = Arc::clone(arrivals);
            batch.spawn(async move {
                let client = server::connect(&options).await?;
                client
                    .subscribe(&["SELECT * FROM account WHERE id = 0"])
                    .await?;
                client.on_reducer_event(move |_| arrivals.arrived());
                anyhow::Ok(client)
            });
        }
        while let Some(subscriber) = batch.join_next().await {
            subscribers.push(subscriber??);
        }
    }
    Ok(subscribers)
}
