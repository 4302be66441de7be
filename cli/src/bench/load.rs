//! Pipelined bank transfers from many connections, shared by `bench
//! transfer` and `bench replay`.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use worldline_client::Client;
use worldline_transport::ReducerStatus;

use super::stats::{Recorder, Window, thousands};
use super::zipf::Zipf;

/// The options of the transfer load, shared by `bench transfer` and
/// `bench subscriptions` (and reported in their JSON).
#[derive(Args, Debug, Clone, Serialize)]
pub struct LoadArgs {
    /// How many accounts to seed.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub accounts: u32,
    /// How many connections call `transfer`.
    #[arg(long, value_name = "C", default_value_t = 4)]
    pub connections: usize,
    /// Calls in flight on each calling connection.
    #[arg(long, value_name = "P", default_value_t = 16)]
    pub in_flight: usize,
    /// Zipf exponent of the account choice (0: uniform; 1.5: a few hot accounts).
    #[arg(long, value_name = "ALPHA", default_value_t = 0.0)]
    pub alpha: f64,
    /// Seconds of load before each measured window.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    #[serde(rename = "warmup_s")]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    #[serde(rename = "duration_s")]
    pub duration: f64,
}

impl fmt::Display for LoadArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connection(s) x {} in flight, alpha {}, {} accounts, {} s measured after {} s \
             warm-up",
            self.connections,
            self.in_flight,
            self.alpha,
            thousands(f64::from(self.accounts)),
            self.duration,
            self.warmup
        )
    }
}

impl LoadArgs {
    /// Checks the options and returns the load, the warm-up and the
    /// measured window's length.
    pub fn checked(&self) -> anyhow::Result<(Load, Duration, Duration)> {
        anyhow::ensure!(self.accounts >= 2, "--accounts must be at least 2");
        anyhow::ensure!(
            self.connections >= 1 && self.in_flight >= 1,
            "--connections and --in-flight must be at least 1"
        );
        anyhow::ensure!(self.alpha >= 0.0, "--alpha must not be negative");
        let seconds = |value: f64, what: &str| {
            Duration::try_from_secs_f64(value)
                .map_err(|_| anyhow::anyhow!("--{what} {value} is not a number of seconds"))
        };
        let warmup = seconds(self.warmup, "warmup")?;
        let duration = seconds(self.duration, "duration")?;
        anyhow::ensure!(!duration.is_zero(), "--duration must be more than 0");
        let load = Load {
            in_flight: self.in_flight,
            accounts: self.accounts,
            alpha: self.alpha,
        };
        Ok((load, warmup, duration))
    }
}

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Calls kept in flight on each connection.
    pub in_flight: usize,
    /// Accounts `0..accounts` exist.
    pub accounts: u32,
    /// Zipf exponent of the account choice.
    pub alpha: f64,
}

/// What the calls came to.
#[derive(Debug, Default)]
pub struct Tally {
    /// Completions in the measured window.
    pub recorder: Recorder,
    /// Transfers that committed (warm-up included).
    pub committed: u64,
    /// Transfers the reducer refused for lack of funds.
    pub refused: u64,
    /// Calls that failed otherwise.
    pub errors: u64,
    /// The first such failure.
    pub first_error: Option<String>,
}

impl Tally {
    /// Adds another tally's counts (the first error stays the first).
    pub fn merge(&mut self, other: Tally) {
        self.recorder.merge(other.recorder);
        self.committed += other.committed;
        self.refused += other.refused;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// When the load stops.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    /// No call starts after this.
    pub at: Instant,
    /// At most this many calls in all.
    pub calls: u64,
}

/// Runs transfers of 1 unit on every client, `load.in_flight` at a time
/// each, until `stop`; counts every completion in `done`.
pub async fn transfers(
    clients: &[Arc<Client>],
    load: Load,
    window: Window,
    stop: Stop,
    done: Arc<AtomicU64>,
) -> Tally {
    let zipf = Arc::new(Zipf::new(load.accounts, load.alpha));
    let budget = Arc::new(AtomicU64::new(stop.calls));
    let mut workers = tokio::task::JoinSet::new();
    for (c, client) in clients.iter().enumerate() {
        for p in 0..load.in_flight {
            let client = Arc::clone(client);
            let zipf = Arc::clone(&zipf);
            let budget = Arc::clone(&budget);
            let done = Arc::clone(&done);
            let seed = (c * load.in_flight + p) as u64;
            workers.spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut tally = Tally::default();
                while Instant::now() < stop.at
                    && budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                        .is_ok()
                {
                    let (from, to) = zipf.pair(&mut rng);
                    let started = Instant::now();
                    let outcome = client.call("transfer", &(from, to, 1i64)).await;
                    let ended = Instant::now();
                    done.fetch_add(1, Ordering::Relaxed);
                    let failure = match outcome {
                        Ok(outcome) => match outcome.status {
                            ReducerStatus::Committed => {
                                tally.committed += 1;
                                tally.recorder.record(&window, started, ended);
                                continue;
                            }
                            ReducerStatus::Failed(m) if m.starts_with("insufficient funds") => {
                                tally.refused += 1;
                                continue;
                            }
                            other => super::server::status_text(&other),
                        },
                        Err(e) => e.to_string(),
                    };
                    tally.errors += 1;
                    tally.first_error.get_or_insert(failure);
                    if !client.is_connected() {
                        break;
                    }
                }
                tally
            });
        }
    }
    let mut total = Tally::default();
    while let Some(tally) = workers.join_next().await {
        if let Ok(tally) = tally {
            total.merge(tally);
        }
    }
    total
}

/// Prints a progress line to stderr every second while `done` grows,
/// until the task is aborted.
pub async fn progress(label: String, window: Window, done: Arc<AtomicU64>) {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = done.load(Ordering::Relaxed);
        let phase = if Instant::now() < window.opens {
            "warm-up"
        } else {
            "measuring"
        };
        let line = format!(
            "{label}: {phase} {:>4.0} s, {} calls/s, {} calls",
            started.elapsed().as_secs_f64(),
            thousands((now - last) as f64),
            thousands(now as f64)
        );
        last = now;
        if terminal {
            eprint!("\r{line}   ");
        } else {
            eprintln!("{line}");
        }
    }
}

/// Ends the progress line started by [`progress`].
pub fn end_progress() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}
