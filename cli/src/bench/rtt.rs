//! `worldline bench rtt`: the round trip of one reducer call at a time, per
//! transport.

use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use worldline_transport::ReducerStatus;

use super::server::{self, ClientArgs, Prepared, protocol_name};
use super::stats::{Latency, thousands};
use super::transfer::print_latency;
use crate::context::GlobalArgs;
use crate::output::print_json;

/// Options of `worldline bench rtt`.
#[derive(Args, Debug)]
pub struct RttArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Calls measured per transport.
    #[arg(long, value_name = "N", default_value_t = 5_000)]
    calls: usize,
    /// Calls made first and not measured.
    #[arg(long, value_name = "N", default_value_t = 500)]
    warmup_calls: usize,
}

/// The round trips over one transport.
#[derive(Debug, Serialize)]
struct Run {
    protocol: &'static str,
    durability: String,
    reducer: &'static str,
    calls: usize,
    latency: Latency,
    calls_per_second: f64,
}

/// Runs `worldline bench rtt`.
pub fn run(args: RttArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.calls >= 1, "--calls must be at least 1");
    let prepared = Prepared::new(global, &args.client, 64, 1)?;
    let mut runs = Vec::new();
    prepared.runtime.block_on(async {
        for (protocol, options) in &prepared.options {
            let client = server::connect(options).await?;
            let (warmup, calls) = (args.warmup_calls, args.calls);
            // The caller is a task on the runtime, as in a client program,
            // not the thread blocked on the runtime.
            let (client, samples) = tokio::spawn(async move {
                let mut samples = Vec::with_capacity(calls);
                for i in 0..warmup + calls {
                    let started = Instant::now();
                    let outcome = client.call("noop", &()).await?;
                    let elapsed = started.elapsed();
                    anyhow::ensure!(
                        outcome.status == ReducerStatus::Committed,
                        "noop did not commit: {}",
                        super::server::status_text(&outcome.status)
                    );
                    if i >= warmup {
                        samples.push(elapsed);
                    }
                }
                anyhow::Ok((client, samples))
            })
            .await??;
            client.close().await;
            let total: Duration = samples.iter().sum();
            runs.push(Run {
                protocol: protocol_name(*protocol),
                durability: prepared.target.durability_name(),
                reducer: "noop",
                calls: args.calls,
                latency: Latency::of(&samples),
                calls_per_second: args.calls as f64 / total.as_secs_f64(),
            });
        }
        anyhow::Ok(())
    })?;
    if args.client.target.json {
        print_json(&runs)?;
    } else {
        for run in &runs {
            println!(
                "round trip over {}, durability {}: {} sequential `{}` calls, {} calls/s",
                run.protocol,
                run.durability,
                thousands(run.calls as f64),
                run.reducer,
                thousands(run.calls_per_second)
            );
            print_latency(&run.latency);
        }
    }
    prepared.target.stop()
}
