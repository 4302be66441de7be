//! `worldline`: the Worldline command line.

mod api;
mod bench;
mod commands;
mod component_file;
mod config;
mod context;
mod generate;
mod hint;
mod init;
mod module_build;
mod output;
mod repair;
mod start;
mod time;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use commands::{call, databases, identity, logs, publish, sql, subscribe};
use context::{Context, GlobalArgs};

/// Worldline: a database that is also your application server.
#[derive(Parser)]
#[command(name = "worldline", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a server on a data directory, recovering every database in it.
    Start(start::StartArgs),
    /// Build a module and publish it as a database: create it, or hot-swap
    /// the module of an existing one, keeping its data and clients.
    Publish(publish::PublishArgs),
    /// Call a reducer or a procedure with JSON arguments.
    Call(call::CallArgs),
    /// Run a SQL query once and print the rows.
    Sql(sql::SqlArgs),
    /// Subscribe to SQL queries: print the matching rows, then every change.
    Subscribe(subscribe::SubscribeArgs),
    /// Print a database's module log.
    Logs(logs::LogsArgs),
    /// Show a database's tables, indexes and reducers.
    Describe(databases::DescribeArgs),
    /// List the server's databases.
    List(databases::ListArgs),
    /// Delete a database and all its data.
    Delete(databases::DeleteArgs),
    /// Cut a damaged commit log where the damage starts (server stopped):
    /// keep every transaction before it, set the rest aside.
    Repair(repair::RepairArgs),
    /// Manage identities: create, list, choose the default, print a token.
    Identity(identity::IdentityArgs),
    /// Create a new module project that builds and publishes as it stands.
    Init(init::InitArgs),
    /// Generate typed client bindings for a module.
    Generate(generate::GenerateArgs),
    /// Benchmarks: transfer throughput, round trip, fan-out, replay, publish,
    /// subscriptions at scale, memory per row.
    Bench(bench::BenchArgs),
}

impl Command {
    /// The subcommand's name, for hints.
    fn name(&self) -> &'static str {
        match self {
            Command::Start(_) => "start",
            Command::Publish(_) => "publish",
            Command::Call(_) => "call",
            Command::Sql(_) => "sql",
            Command::Subscribe(_) => "subscribe",
            Command::Logs(_) => "logs",
            Command::Describe(_) => "describe",
            Command::List(_) => "list",
            Command::Delete(_) => "delete",
            Command::Repair(_) => "repair",
            Command::Identity(_) => "identity",
            Command::Init(_) => "init",
            Command::Generate(_) => "generate",
            Command::Bench(_) => "bench",
        }
    }
}

fn run(command: Command, global: &GlobalArgs) -> anyhow::Result<()> {
    match command {
        Command::Start(args) => start::run(args),
        Command::Init(args) => init::run(args),
        Command::Repair(args) => repair::run(args),
        Command::Generate(args) => generate::run(args, global),
        Command::Bench(args) => bench::run(args, global),
        Command::Publish(args) => publish::run(args, Context::load(global)?),
        Command::Call(args) => call::run(args, Context::load(global)?),
        Command::Sql(args) => sql::run(args, Context::load(global)?),
        Command::Subscribe(args) => subscribe::run(args, Context::load(global)?),
        Command::Logs(args) => logs::run(args, Context::load(global)?),
        Command::Describe(args) => databases::describe(args, Context::load(global)?),
        Command::List(args) => databases::list(args, Context::load(global)?),
        Command::Delete(args) => databases::delete(args, Context::load(global)?),
        Command::Identity(args) => identity::run(args, Context::load(global)?),
    }
}

/// Exits with a usage error (status 2), as clap does for a command line
/// that does not parse: for combinations of options clap cannot check.
pub fn usage_error(kind: clap::error::ErrorKind, message: &str) -> ! {
    Cli::command().error(kind, message).exit()
}

/// Whether `--server` was given on the command line, at any level of
/// subcommands, rather than taken from `WORLDLINE_SERVER`.
fn server_on_command_line(matches: &ArgMatches) -> bool {
    let mut level = Some(matches);
    while let Some(matches) = level {
        if matches.value_source("server") == Some(ValueSource::CommandLine) {
            return true;
        }
        level = matches.subcommand().map(|(_, sub)| sub);
    }
    false
}

/// Lets a closed standard output end the process quietly, as it ends `cat`
/// or `grep` (`worldline sql ... | head`): the Rust runtime ignores
/// SIGPIPE, so every later `println!` would panic instead. The server keeps
/// ignoring it: a closed log pipe must not stop it.
fn die_quietly_on_closed_stdout(command: &Command) {
    if !matches!(command, Command::Start(_)) {
        // SAFETY: restores the default disposition of one signal before any
        // other thread exists; no handler is installed.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
}

/// Makes a write past the file-size limit (`ulimit -f`, `LimitFSIZE=`)
/// fail with `EFBIG` in the server, as a full disk fails with `ENOSPC`,
/// instead of killing the whole process with `SIGXFSZ`: the database whose
/// commit log hit the limit stops taking writes (its callers are told the
/// outcome is unknown) and every other database goes on serving.
fn survive_the_file_size_limit(command: &Command) {
    if matches!(command, Command::Start(_)) {
        // SAFETY: sets the disposition of one signal to "ignore" before
        // any other thread exists; no handler is installed.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A line that cannot be written (the log's disk is full, its pipe
        // closed) is lost, not reported with `eprintln!`, which panics when
        // standard error fails: the panic would stop the thread that logged
        // it, a database's thread included.
        .log_internal_errors(false)
        .init();
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    cli.global.server_on_command_line = server_on_command_line(&matches);
    die_quietly_on_closed_stdout(&cli.command);
    survive_the_file_size_limit(&cli.command);
    let name = cli.command.name();
    match run(cli.command, &cli.global) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A message may carry a module's or a client's text: its
            // control characters are shown, not sent to the terminal.
            let safe = output::escape_controls_but_lines;
            eprintln!("error: {}", safe(&hint::message_of(&err)));
            for line in hint::diff_of(&err) {
                eprintln!("  {}", safe(line));
            }
            if let Some(hint) = hint::hint_for(&err, name) {
                eprintln!("hint: {}", safe(&hint));
            }
            ExitCode::FAILURE
        }
    }
}
