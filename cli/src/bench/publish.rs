//! `worldline bench publish`: how long publishing the bank module takes,
//! the first time (the server compiles it) and again with the same component.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::server::{self, ScratchDir, Target, TargetArgs};
use crate::context::GlobalArgs;
use crate::output::print_json;

/// Options of `worldline bench publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// How many times to publish the same component again, each as a new database.
    #[arg(long, value_name = "N", default_value_t = 5)]
    repeat: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    component_kib: usize,
    /// The first publish of the component on this server.
    cold_ms: f64,
    /// The same component again, as other databases: median and lowest.
    cached_median_ms: f64,
    cached_min_ms: f64,
    repeats: usize,
}

/// Runs `worldline bench publish`.
pub fn run(args: PublishArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.repeat >= 1, "--repeat must be at least 1");
    let wasm = server::bank_wasm(&args.target)?;
    let dir = ScratchDir::new()?;
    let target = Target::open(global, &args.target, &dir, &[])?;
    let names: Vec<String> = (0..=args.repeat)
        .map(|i| format!("bench-publish-{i}"))
        .collect();
    let mut times = Vec::with_capacity(names.len());
    for name in &names {
        times.push(target.publish(name, &wasm)?);
    }
    if target.process().is_none() {
        for name in &names {
            target.api().delete(name)?;
        }
    }
    target.stop()?;
    let cold = times[0];
    let mut cached: Vec<Duration> = times[1..].to_vec();
    cached.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let report = Report {
        component_kib: wasm.len().div_ceil(1024),
        cold_ms: ms(cold),
        cached_median_ms: ms(cached[cached.len() / 2]),
        cached_min_ms: ms(cached[0]),
        repeats: cached.len(),
    };
    if args.target.json {
        return print_json(&report);
    }
    println!(
        "publish of the bank module ({} KiB): cold {:.1} ms; the same component again as a new database: median {:.1} ms, min {:.1} ms ({} times)",
        report.component_kib,
        report.cold_ms,
        report.cached_median_ms,
        report.cached_min_ms,
        report.repeats
    );
    Ok(())
}
