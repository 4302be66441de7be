//! `worldline bench`: benchmarks as a product feature. Each subcommand starts
//! its own server on a temporary data directory (or targets `--server`),
//! publishes the bank example and prints what it measured; `--json` prints
//! one JSON document instead, for scripts.

mod baseline;
mod disk;
mod fanout;
mod load;
mod memory;
mod postgres;
mod publish;
mod replay;
mod rtt;
mod server;
mod sqlite;
mod stats;
mod subscriptions;
mod transfer;
mod zipf;

use clap::{Args, Subcommand};

use crate::context::GlobalArgs;

/// Options of `worldline bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Transfers between bank accounts from many pipelined connections:
    /// TPS, latency, server CPU and memory, and the balance invariant.
    Transfer(transfer::TransferArgs),
    /// Round trip of sequential reducer calls, per transport.
    Rtt(rtt::RttArgs),
    /// One commit to many subscribers: time until the last received it.
    Fanout(fanout::FanoutArgs),
    /// Recovery of a commit log without a snapshot, in transactions per second.
    Replay(replay::ReplayArgs),
    /// Publishing the bank module: cold, then with the same component again.
    Publish(publish::PublishArgs),
    /// Transfers while N distinct point subscriptions are live, against none;
    /// and the time to subscribe them all.
    Subscriptions(subscriptions::SubscriptionsArgs),
    /// Server memory per row after loading rows and after a restart.
    Memory(memory::MemoryArgs),
}

/// Runs `worldline bench`.
pub fn run(args: BenchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    // A benchmark replaces database `bench` on the server it uses: it uses
    // an existing one only when `--server` is on its command line, never
    // because `WORLDLINE_SERVER` (or the config's default) names one.
    let global = &GlobalArgs {
        server: global
            .server
            .clone()
            .filter(|_| global.server_on_command_line),
        config: global.config.clone(),
        server_on_command_line: global.server_on_command_line,
    };
    match args.command {
        BenchCommand::Transfer(args) => transfer::run(args, global),
        BenchCommand::Rtt(args) => rtt::run(args, global),
        BenchCommand::Fanout(args) => fanout::run(args, global),
        BenchCommand::Replay(args) => replay::run(args, global),
        BenchCommand::Publish(args) => publish::run(args, global),
        BenchCommand::Subscriptions(args) => subscriptions::run(args, global),
        BenchCommand::Memory(args) => memory::run(args, global),
    }
}
