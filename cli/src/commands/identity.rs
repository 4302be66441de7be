//! `worldline identity`: create, list and choose identities, print tokens.

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::context::Context;
use crate::hint::hinted;
use crate::output::{print_json, table};

/// Options of `worldline identity`.
#[derive(Args, Debug)]
pub struct IdentityArgs {
    #[command(subcommand)]
    command: IdentityCommand,
}

#[derive(Subcommand, Debug)]
enum IdentityCommand {
    /// Ask the server for a new identity and save it.
    New {
        /// Make it the default on this server even if there is one already.
        #[arg(long)]
        default: bool,
    },
    /// List the saved identities.
    List {
        /// Print them as JSON (tokens left out).
        #[arg(long)]
        json: bool,
    },
    /// Make an identity (given by its first hex digits) the default on this server.
    SetDefault {
        /// The identity, or enough of its first hex digits to pick one.
        identity: String,
    },
    /// Print the token of the default identity on this server (or of the one given).
    Token {
        /// The identity, or enough of its first hex digits to pick one.
        identity: Option<String>,
    },
}

/// One identity in `identity list --json`.
#[derive(Serialize)]
struct Listed<'a> {
    identity: &'a str,
    server: &'a str,
    default: bool,
}

/// Runs `worldline identity`.
pub fn run(args: IdentityArgs, mut context: Context) -> anyhow::Result<()> {
    match args.command {
        IdentityCommand::New { default } => {
            context.check_writable()?;
            let issued = context.api().new_identity()?;
            let identity = issued.identity.clone();
            context.remember(issued, default)?;
            println!("{identity}");
            eprintln!(
                "saved for {} in {}",
                context.server,
                context.path().display()
            );
        }
        IdentityCommand::List { json } => {
            let mut listed: Vec<Listed> = context
                .config
                .identities
                .iter()
                .map(|i| Listed {
                    identity: &i.identity,
                    server: &i.server,
                    default: false,
                })
                .collect();
            for entry in &mut listed {
                entry.default = context
                    .config
                    .default_identity(entry.server)
                    .is_some_and(|d| d.identity == entry.identity);
            }
            if json {
                return print_json(&listed);
            }
            if listed.is_empty() {
                println!("no identities yet; `worldline identity new` creates one");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|l| {
                    let mark = if l.default { "*" } else { "" };
                    vec![mark.to_owned(), l.identity.to_owned(), l.server.to_owned()]
                })
                .collect();
            let columns = ["default", "identity", "server"].map(String::from);
            print!("{}", table(&columns, &rows));
        }
        IdentityCommand::SetDefault { identity } => {
            let server = context.server.clone();
            let chosen = context.config.set_default(&server, &identity)?;
            context.save()?;
            println!("{chosen} is now the default identity on {server}");
        }
        IdentityCommand::Token { identity } => {
            let saved = match identity {
                Some(prefix) => context.config.find(&context.server, &prefix)?.clone(),
                None => context
                    .config
                    .default_identity(&context.server)
                    .cloned()
                    .ok_or_else(|| {
                        hinted(
                            format!("no identity saved for {}", context.server),
                            "create one with `worldline identity new`",
                        )
                    })?,
            };
            println!("{}", saved.token);
        }
    }
    Ok(())
}
