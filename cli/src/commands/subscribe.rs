//! `worldline subscribe`: print a query's rows, then every committed change.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use worldline_client::{Client, ClientError, ConnectOptions, Event, Trust, parse_fingerprint};
use worldline_host::Identity;
use worldline_host::datastore::ModuleSchema;
use worldline_host::datastore::row_to_json;
use worldline_transport::{TableRows, TableUpdate};

use crate::api::Api;
use crate::context::Context;
use crate::hint::hinted;

/// Which transport `subscribe` (and `bench`) connects over.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// QUIC, pinning the certificate fingerprint the server reports.
    Quic,
    /// WebSocket on the HTTP port.
    Ws,
}

/// Options of `worldline subscribe`.
#[derive(Args, Debug)]
pub struct SubscribeArgs {
    /// The database.
    name: String,
    /// One or more `SELECT` queries, subscribed together.
    #[arg(required = true)]
    queries: Vec<String>,
    /// The transport to connect over.
    #[arg(long, value_enum, default_value = "ws")]
    protocol: Protocol,
    /// Exit after this many transaction updates (0: after the initial rows).
    #[arg(short = 'n', long = "num-updates", value_name = "N")]
    num_updates: Option<u64>,
    /// Exit after this many seconds (successfully); the initial rows are
    /// printed first however short it is (0: print them and exit).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<f64>,
    /// Pin this QUIC certificate fingerprint (64 hex digits) instead of the
    /// one the server reports over HTTP (with --protocol quic only).
    #[arg(long, value_name = "HEX", value_parser = parse_fingerprint_arg)]
    fingerprint: Option<String>,
    /// Print each event as one line of JSON.
    #[arg(long)]
    json: bool,
}

/// The longest `--timeout`, in seconds (about 31 years).
const MAX_TIMEOUT_SECONDS: f64 = 1e9;

/// Parses `--timeout`: a finite, non-negative number of seconds, at most
/// [`MAX_TIMEOUT_SECONDS`].
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..=MAX_TIMEOUT_SECONDS).contains(&seconds) => Ok(seconds),
        Ok(seconds) if seconds > MAX_TIMEOUT_SECONDS => Err(format!(
            "`{text}` seconds is too long: at most {MAX_TIMEOUT_SECONDS:.0} (leave --timeout \
             out to run until interrupted)"
        )),
        Ok(seconds) if seconds < 0.0 => Err(format!(
            "`{text}` is negative: pass a number of seconds such as 10 or 0.5"
        )),
        _ => Err(format!(
            "`{text}` is not a number of seconds: pass one such as 10 or 0.5"
        )),
    }
}

/// Parses `--fingerprint`: 64 hex digits (`:` between pairs allowed).
fn parse_fingerprint_arg(text: &str) -> Result<String, String> {
    parse_fingerprint(text)
        .map(|_| text.to_owned())
        .map_err(|_| format!("`{text}` is not a SHA-256 fingerprint (64 hex digits)"))
}

/// Runs `worldline subscribe`.
pub fn run(args: SubscribeArgs, mut context: Context) -> anyhow::Result<()> {
    if args.fingerprint.is_some() && args.protocol != Protocol::Quic {
        crate::usage_error(
            clap::error::ErrorKind::ArgumentConflict,
            "--fingerprint pins the QUIC certificate: it needs --protocol quic",
        );
    }
    let api = context.api_as_identity()?;
    let schema = api.schema(&args.name)?;
    let token = context
        .config
        .default_identity(&context.server)
        .map(|i| i.token.clone());
    let options = connect_options(
        args.protocol,
        args.fingerprint.as_deref(),
        &args.name,
        &api,
        &context.server,
    )?;
    let options = match token {
        Some(token) => options.with_token(token),
        None => options,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let deadline = args
        .timeout
        .map(|seconds| tokio::time::Instant::now() + Duration::from_secs_f64(seconds));
    runtime.block_on(subscribe(&args, options, &schema, deadline))
}

/// Subscribes and prints the initial rows, then updates until `-n` of
/// them or the `deadline`, if any (which does not cut the initial rows
/// short: a timeout of 0 prints them and exits).
async fn subscribe(
    args: &SubscribeArgs,
    options: ConnectOptions,
    schema: &ModuleSchema,
    deadline: Option<tokio::time::Instant>,
) -> anyhow::Result<()> {
    let client = Client::connect(options)
        .await
        .with_context(|| format!("connecting to database `{}`", args.name))?;
    let mut events = client.take_events().context("the event stream was taken")?;
    let queries: Vec<&str> = args.queries.iter().map(String::as_str).collect();
    client
        .subscribe(&queries)
        .await
        .map_err(|e| subscription_refused(&e))?;
    let mut updates = 0;
    let mut initial_printed = false;
    while !initial_printed || args.num_updates.is_none_or(|n| updates < n) {
        let next = match deadline {
            Some(deadline) if initial_printed => {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            }
            _ => events.recv().await,
        };
        let Some(event) = next else {
            break;
        };
        match event {
            Event::SubscribeApplied { tables, .. } => {
                print_initial(args.json, schema, &tables)?;
                initial_printed = true;
            }
            Event::TransactionUpdate { tables, event } => {
                updates += 1;
                // Written as row values of type `identity` are ("0x" and hex), so
                // that it compares equal to a column such as `sender`.
                let caller = format!("0x{}", Identity::from_bytes(event.caller));
                print_update(args.json, schema, &event.reducer, &caller, &tables)?;
            }
            Event::Error { message } => eprintln!(
                "server: {}",
                crate::output::escape_controls_but_lines(&message)
            ),
            Event::Disconnected { reason } => {
                let hint = disconnect_hint(&reason);
                return Err(hinted(
                    format!("the server closed the connection: {reason}"),
                    hint,
                ));
            }
            Event::UnsubscribeApplied { .. } => {
                // This command never unsubscribes: the server ended its
                // query set (a hot swap made a query invalid, such as one
                // on a table made private), and says why next.
                let reason = match events.recv().await {
                    Some(Event::Error { message }) => message,
                    _ => "the server ended the query set".to_owned(),
                };
                return Err(subscription_ended(&reason));
            }
        }
    }
    client.close().await;
    Ok(())
}

/// The hint for a subscription the server refused or ended for `message`.
fn subscription_hint(message: &str) -> &'static str {
    if message.contains("is private") {
        "only the database's owner may read a private table: subscribe as the owner's identity \
         (`worldline identity set-default`), or declare the table `public` in the module"
    } else {
        "see transport/PROTOCOL.md in the Worldline repository for the SQL subscriptions accept"
    }
}

/// The error for a subscription the server ended after applying it.
fn subscription_ended(message: &str) -> anyhow::Error {
    hinted(
        format!("the subscription ended: {message}"),
        subscription_hint(message),
    )
}

/// The error for a refused subscription, with a hint that fits why.
fn subscription_refused(error: &ClientError) -> anyhow::Error {
    let ClientError::Subscription(message) = error else {
        return anyhow::Error::new(error.clone()).context("subscribing");
    };
    hinted(
        format!("the subscription was refused: {message}"),
        subscription_hint(message),
    )
}

/// The next step after the server closed a subscription's connection for
/// `reason`.
fn disconnect_hint(reason: &str) -> &'static str {
    if reason.contains("shutting down") {
        "the server stopped; subscribe again once it is running"
    } else if reason.contains("database `") {
        "check that the database still exists and is available (`worldline list`)"
    } else {
        "check that the server is still running, and that the database still exists \
         (`worldline list`)"
    }
}

/// Where to connect to `database`, from the server's HTTP address and (for
/// QUIC) its `/v1/server`, pinning `fingerprint` if given.
pub fn connect_options(
    protocol: Protocol,
    fingerprint: Option<&str>,
    database: &str,
    api: &Api,
    server: &str,
) -> anyhow::Result<ConnectOptions> {
    let (scheme, rest) = server.split_once("://").unwrap_or(("http", server));
    let authority = rest.split('/').next().unwrap_or(rest);
    match protocol {
        Protocol::Ws => {
            let ws = if scheme == "https" { "wss" } else { "ws" };
            let url = format!("{ws}://{authority}{}", worldline_transport::WEBSOCKET_PATH);
            Ok(ConnectOptions::websocket(url, database))
        }
        Protocol::Quic => {
            let info = api.server_info()?;
            let bound: SocketAddr = info.quic_addr.parse().with_context(|| {
                format!("the server reported QUIC address `{}`", info.quic_addr)
            })?;
            let addr = if bound.ip().is_unspecified() {
                let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
                (host.trim_matches(['[', ']']), bound.port())
                    .to_socket_addrs()
                    .with_context(|| format!("resolving {host}"))?
                    .next()
                    .with_context(|| format!("{host} has no address"))?
            } else {
                bound
            };
            let fingerprint = parse_fingerprint(fingerprint.unwrap_or(&info.quic_fingerprint))?;
            Ok(ConnectOptions::quic(
                addr,
                Trust::Fingerprint(fingerprint),
                database,
            ))
        }
    }
}

/// A row as JSON, decoded with its table's columns.
fn row_json(schema: &ModuleSchema, table: &str, row: &[u8]) -> Value {
    let decoded = schema
        .table_id(table)
        .and_then(|id| row_to_json(&schema.tables[id].columns, row).ok());
    decoded.unwrap_or_else(|| {
        let hex: String = row.iter().map(|b| format!("{b:02x}")).collect();
        json!({ "undecoded": hex })
    })
}

fn print_initial(as_json: bool, schema: &ModuleSchema, tables: &[TableRows]) -> anyhow::Result<()> {
    if as_json {
        let tables: Vec<Value> = tables
            .iter()
            .map(|t| {
                let rows: Vec<Value> = t
                    .rows
                    .iter()
                    .map(|r| row_json(schema, &t.table, r))
                    .collect();
                json!({ "table": t.table, "rows": rows })
            })
            .collect();
        println!("{}", json!({ "event": "initial", "tables": tables }));
        return Ok(());
    }
    for table in tables {
        for row in &table.rows {
            println!(
                "[initial] {}: {}",
                table.table,
                row_json(schema, &table.table, row)
            );
        }
    }
    Ok(())
}

fn print_update(
    as_json: bool,
    schema: &ModuleSchema,
    reducer: &str,
    caller: &str,
    tables: &[TableUpdate],
) -> anyhow::Result<()> {
    if as_json {
        let tables: Vec<Value> = tables
            .iter()
            .map(|t| {
                let rows = |rows: &[serde_bytes::ByteBuf]| -> Vec<Value> {
                    rows.iter().map(|r| row_json(schema, &t.table, r)).collect()
                };
                let updates: Vec<Value> = t
                    .updates
                    .iter()
                    .map(|u| json!({ "old": row_json(schema, &t.table, &u.old), "new": row_json(schema, &t.table, &u.new) }))
                    .collect();
                json!({ "table": t.table, "inserts": rows(&t.inserts), "deletes": rows(&t.deletes), "updates": updates })
            })
            .collect();
        let line = json!({ "event": "transaction", "reducer": reducer, "caller": caller, "tables": tables });
        println!("{line}");
        return Ok(());
    }
    for table in tables {
        let name = &table.table;
        for row in &table.inserts {
            println!("[{reducer}] + {name}: {}", row_json(schema, name, row));
        }
        for update in &table.updates {
            println!(
                "[{reducer}] ~ {name}: {} -> {}",
                row_json(schema, name, &update.old),
                row_json(schema, name, &update.new)
            );
        }
        for row in &table.deletes {
            println!("[{reducer}] - {name}: {}", row_json(schema, name, row));
        }
    }
    Ok(())
}
