//! `worldline logs`: print (and follow) a database's module log.

use clap::Args;

use crate::context::Context;
use crate::output::print_json;

/// Options of `worldline logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The database.
    name: String,
    /// Keep printing new lines as the module writes them, until interrupted.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Start with at most this many of the newest lines.
    #[arg(long, short = 'n', value_name = "N")]
    tail: Option<usize>,
    /// Print each line as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `worldline logs`.
pub fn run(args: LogsArgs, mut context: Context) -> anyhow::Result<()> {
    let api = context.api_as_identity()?;
    api.logs(&args.name, args.follow, args.tail, |line| {
        if args.json {
            print_json(&line)
        } else {
            println!(
                "{} {:5} {}",
                crate::time::format_micros(line.timestamp),
                line.level,
                // One line per record, and none that drives the terminal:
                // a module may log what its clients sent.
                crate::output::escape_controls(&line.message)
            );
            Ok(())
        }
    })
}
