//! Wire benchmarks on loopback, through the Rust client SDK:
//!
//! - reducer round trip (call → `ReducerResult`) over QUIC and over
//!   WebSocket, p50 and p99, for an empty reducer and for `bank.transfer`;
//! - fan-out: one commit to a row that 1,000 connections subscribe to, timed
//!   until the last of them has received the update.
//!
//! The server runs in this process on the same machine, with durability
//! `none` so that the figures are about the wire, not the disk.
//!
//! `cargo bench -p worldline-tests --bench wire`

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use worldline_client::{Client, ConnectOptions, Event, Trust};
use worldline_host::DurabilityPolicy;
use worldline_tests::live::LiveServer;
use worldline_transport::ReducerStatus;

const WARMUP: usize = 500;
const ROUND_TRIPS: usize = 5_000;
const SUBSCRIBERS: usize = 1_000;
const FAN_OUT_ROUNDS: usize = 10;

fn main() {
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.host.storage.durability = DurabilityPolicy::None;
    })
    .await;
    let seeder = websocket(&live).await;
    let outcome = seeder
        .call("seed", &(1_000u32, 1_000_000i64))
        .await
        .unwrap();
    assert_eq!(outcome.status, ReducerStatus::Committed);

    println!("reducer round trip on loopback ({ROUND_TRIPS} sequential calls each):");
    for (name, client) in [
        ("QUIC", quic(&live).await),
        ("WebSocket", websocket(&live).await),
    ] {
        for (reducer, transfer) in [("noop", false), ("transfer", true)] {
            let mut samples = Vec::with_capacity(ROUND_TRIPS);
            for i in 0..WARMUP + ROUND_TRIPS {
                let started = Instant::now();
                let outcome = if transfer {
                    let from = (i % 1000) as u32;
                    client
                        .call("transfer", &(from, (from + 1) % 1000, 1i64))
                        .await
                } else {
                    client.call("noop", &()).await
                };
                assert_eq!(outcome.unwrap().status, ReducerStatus::Committed);
                if i >= WARMUP {
                    samples.push(started.elapsed());
                }
            }
            samples.sort();
            println!(
                "  {name:<9} {reducer:<8}  p50 {:>7.1} µs   p99 {:>7.1} µs   ({:.0} calls/s)",
                micros(samples[samples.len() / 2]),
                micros(samples[samples.len() * 99 / 100]),
                ROUND_TRIPS as f64 / samples.iter().sum::<Duration>().as_secs_f64()
            );
        }
        client.close().await;
    }

    for (name, quic_clients) in [("WebSocket", false), ("QUIC", true)] {
        let mut subscribers = Vec::with_capacity(SUBSCRIBERS);
        for _ in 0..SUBSCRIBERS {
            let client = if quic_clients {
                quic(&live).await
            } else {
                websocket(&live).await
            };
            let events = client.take_events().expect("events");
            client
                .subscribe(&["SELECT * FROM account WHERE id = 0"])
                .await
                .expect("subscribing");
            subscribers.push((client, events));
        }
        let mut times = Vec::with_capacity(FAN_OUT_ROUNDS);
        for round in 0..FAN_OUT_ROUNDS {
            let started = Instant::now();
            let waits = subscribers.iter_mut().map(|(_, events)| async move {
                loop {
                    match events.recv().await {
                        Some(Event::TransactionUpdate { .. }) => return Instant::now(),
                        Some(_) => {}
                        None => panic!("a subscriber was disconnected"),
                    }
                }
            });
            let transfer = (0u32, 1u32, 1i64 + round as i64);
            let call = seeder.call("transfer", &transfer);
            let (arrivals, outcome) = tokio::join!(join_all(waits), call);
            assert_eq!(outcome.unwrap().status, ReducerStatus::Committed);
            let last = arrivals.iter().max().expect("subscribers");
            times.push(last.duration_since(started));
        }
        times.sort();
        println!(
            "fan-out of one commit to {SUBSCRIBERS} {name} subscribers: median {:.2} ms until the last received it (min {:.2} ms, max {:.2} ms, {FAN_OUT_ROUNDS} rounds)",
            millis(times[times.len() / 2]),
            millis(times[0]),
            millis(times[times.len() - 1]),
        );
        for (client, _) in subscribers {
            client.close().await;
        }
    }
    live.shutdown().await;
}

async fn quic(live: &LiveServer) -> Client {
    let trust = Trust::Fingerprint(live.server().fingerprint());
    Client::connect(ConnectOptions::quic(live.quic_addr(), trust, "bank"))
        .await
        .expect("connecting over QUIC")
}

async fn websocket(live: &LiveServer) -> Client {
    Client::connect(ConnectOptions::websocket(live.ws_url(), "bank"))
        .await
        .expect("connecting over WebSocket")
}

/// Two thousand and more sockets are open at once during the fan-out.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
