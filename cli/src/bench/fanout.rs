//! `worldline bench fanout`: one commit to a row that N connections
//! subscribe to, timed until the last of them has received it.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use worldline_client::{Client, ConnectOptions, Event};
use worldline_transport::ReducerStatus;

use super::server::{self, ClientArgs, Prepared, protocol_name};
use super::stats::thousands;
use crate::context::GlobalArgs;
use crate::output::print_json;

/// Connections opened at once while subscribing.
const CONNECT_BATCH: usize = 64;

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

type Subscriber = (Client, UnboundedReceiver<Event>);

/// Runs `worldline bench fanout`.
pub fn run(args: FanoutArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.subscribers >= 1 && args.rounds >= 1,
        "--subscribers and --rounds must be at least 1"
    );
    let prepared = Prepared::new(global, &args.client, args.subscribers.max(64))?;
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
            let mut subscribers = subscribe_all(options, args.subscribers).await?;
            let mut times = Vec::with_capacity(args.rounds);
            for _ in 0..args.rounds {
                let waiting = arm(&mut subscribers);
                let started = Instant::now();
                let outcome = writer.call("transfer", &(0u32, 1u32, 1i64)).await?;
                anyhow::ensure!(
                    outcome.status == ReducerStatus::Committed,
                    "the transfer did not commit"
                );
                let last = last_arrival(waiting, &mut subscribers).await?;
                times.push(last.duration_since(started));
            }
            for (client, _) in &subscribers {
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

/// Connects `count` clients, each subscribed to account 0.
async fn subscribe_all(options: &ConnectOptions, count: usize) -> anyhow::Result<Vec<Subscriber>> {
    let mut subscribers = Vec::with_capacity(count);
    while subscribers.len() < count {
        let mut batch = JoinSet::new();
        for _ in 0..CONNECT_BATCH.min(count - subscribers.len()) {
            let options = options.clone();
            batch.spawn(async move {
                let client = server::connect(&options).await?;
                let events = client.take_events().context("the event stream")?;
                client
                    .subscribe(&["SELECT * FROM account WHERE id = 0"])
                    .await?;
                anyhow::Ok((client, events))
            });
        }
        while let Some(subscriber) = batch.join_next().await {
            subscribers.push(subscriber??);
        }
    }
    Ok(subscribers)
}

/// A subscriber's event stream handed back with the time its update arrived.
type Arrival = anyhow::Result<(usize, Instant, UnboundedReceiver<Event>)>;

/// Starts one task per subscriber that waits for its next transaction
/// update (the streams move into the tasks until [`last_arrival`]).
fn arm(subscribers: &mut [Subscriber]) -> JoinSet<Arrival> {
    let mut waiting = JoinSet::new();
    for (i, (_, events)) in subscribers.iter_mut().enumerate() {
        let mut events = std::mem::replace(events, tokio::sync::mpsc::unbounded_channel().1);
        waiting.spawn(async move {
            loop {
                match events.recv().await {
                    Some(Event::TransactionUpdate { .. }) => {
                        return Ok((i, Instant::now(), events));
                    }
                    Some(_) => {}
                    None => anyhow::bail!("a subscriber was disconnected"),
                }
            }
        });
    }
    waiting
}

/// Waits for every armed subscriber; returns when the last one had its
/// update, and gives the streams back.
async fn last_arrival(
    mut waiting: JoinSet<Arrival>,
    subscribers: &mut [Subscriber],
) -> anyhow::Result<Instant> {
    let mut last = None;
    while let Some(arrived) = waiting.join_next().await {
        let (i, at, events) = arrived??;
        last = Some(last.map_or(at, |l: Instant| l.max(at)));
        subscribers[i].1 = events;
    }
    last.context("no subscribers")
}
