//! `worldline start`: open a data directory, recover its databases, serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use worldline_host::outbound::PrivateOverride;
use worldline_host::{
    DurabilityPolicy, EngineConfig, HostConfig, HostError, Identity, StorageConfig,
};
use worldline_server::{
    DEFAULT_HTTP_LISTEN, DEFAULT_QUIC_LISTEN, Server, ServerConfig, ServerError, fingerprint_hex,
};

/// Options of `worldline start`.
#[derive(Args)]
pub struct StartArgs {
    /// The data directory [default: $XDG_DATA_HOME/worldline or ~/.local/share/worldline]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// When a transaction counts as durable: `every` (fsync, group commit),
    /// an interval such as `10ms` (written at once, fsynced within it), or
    /// `none` (tests and benchmarks only).
    #[arg(long, value_name = "POLICY", default_value = "every", value_parser = parse_durability)]
    durability: DurabilityPolicy,
    /// Write a snapshot every this many transactions per database (at least 1).
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: u64,
    /// Address of the HTTP API and WebSocket endpoint, `IP:PORT` or
    /// `HOST:PORT` such as `localhost:3000` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_HTTP_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,
    /// UDP address of the QUIC endpoint, like --listen (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_QUIC_LISTEN, value_parser = parse_listen)]
    quic_listen: SocketAddr,
    /// How many module instances the server may hold at once (each
    /// database holds one, and one more while it is published or swapped;
    /// running procedures hold one each, at most a quarter of them).
    #[arg(long, value_name = "N", default_value_t = EngineConfig::default().max_instances,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_instances: u32,
    /// How many connections (QUIC and WebSocket together) one IP address
    /// may hold at once (at least 1); an IPv6 address counts as its /64.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::new("").max_connections_per_ip,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections_per_ip: usize,
    /// How many connections the server holds at once from all addresses
    /// (TCP connections to the HTTP port, WebSocket sessions included, and
    /// QUIC connections together; at least 1); more are refused. Lowered to
    /// half the open-file limit (`ulimit -n`, raised to its hard limit at
    /// start) so that clients cannot take the descriptors the data needs.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::new("").max_connections,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: usize,
    /// How many bytes of messages the server may hold for all its WebSocket
    /// and QUIC clients together (each message counted once, however many
    /// clients it goes to); past it, clients that are behind are dropped and
    /// large answers refused. At least the 67108864 bytes one client may
    /// have waiting.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::new("").max_outgoing_bytes,
          value_parser = clap::value_parser!(u64)
              .range(u64::from(ServerConfig::new("").max_queued_bytes)..))]
    max_outgoing_bytes: u64,
    /// How many bytes of messages partly received the server may hold for
    /// all its WebSocket and QUIC clients together, beyond the first 128 KiB
    /// of each connection's; past it, a client sending a larger message
    /// waits for room. At least the 4194304 bytes of the largest message.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::new("").max_incoming_bytes,
          value_parser = clap::value_parser!(u64)
              .range(u64::from(ServerConfig::new("").max_frame)..))]
    max_incoming_bytes: u64,
    /// For development only: lets procedures' HTTP requests reach this
    /// exact internal address and port (e.g. `127.0.0.1:8080`), which the
    /// address guard refuses otherwise (loopback, private, link-local,
    /// metadata addresses); not `0.0.0.0`, `::`, port 0, a broadcast or a
    /// public address. Repeatable. The database's allow-list must still
    /// name the host. Never use it with modules you do not trust.
    #[arg(long = "http-allow-private-address", value_name = "IP:PORT",
          value_parser = parse_private_address)]
    http_allow_private: Vec<SocketAddr>,
    /// Lets web pages of this origin call the HTTP API from a browser
    /// (CORS), written as a browser sends it (`https://app.example.com`,
    /// `http://localhost:8080`), or `*` for any origin. Repeatable. Without
    /// it the API sends no CORS headers; the WebSocket endpoint takes any
    /// origin either way.
    #[arg(long = "allow-origin", value_name = "ORIGIN", value_parser = parse_origin)]
    allow_origins: Vec<String>,
    /// Lets only this identity (64 hex digits, as `worldline identity list`
    /// shows it) and the others named create databases. Repeatable.
    /// Without it any identity may; owners always update, replace and
    /// delete their own.
    #[arg(long = "publisher", value_name = "IDENTITY", value_parser = parse_publisher)]
    publishers: Vec<Identity>,
}

/// Parses `--publisher`: an identity's 64 hex digits.
fn parse_publisher(text: &str) -> Result<Identity, String> {
    Identity::from_hex(text).ok_or_else(|| {
        format!(
            "`{text}` is not an identity: 64 hex digits, as `worldline identity list` shows them"
        )
    })
}

/// Parses `--http-allow-private-address`: one internal address and port
/// a service listens on.
fn parse_private_address(text: &str) -> Result<SocketAddr, String> {
    let address: SocketAddr = text
        .parse()
        .map_err(|_| format!("`{text}` is not an IP:PORT such as 127.0.0.1:8080 or [::1]:8080"))?;
    match worldline_host::outbound::override_refusal(address) {
        None => Ok(address),
        Some(reason) => Err(format!("{address}: {reason}")),
    }
}

/// Parses `--allow-origin`: `*` or a web origin.
fn parse_origin(text: &str) -> Result<String, String> {
    worldline_server::check_allowed_origin(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

/// The longest `--durability` interval: a power loss loses at most that
/// much acknowledged work, so anything longer is surely a mistake.
const MAX_DURABILITY_INTERVAL: Duration = Duration::from_secs(10);

/// Parses `--durability` (`every`, `none` or `1ms` to `10000ms`).
pub fn parse_durability(text: &str) -> Result<DurabilityPolicy, String> {
    match text.parse()? {
        DurabilityPolicy::Interval(interval) if interval.is_zero() => Err(format!(
            "`{text}` is not a durability interval: use `1ms` to `{}ms`, or `every` to fsync \
             every commit",
            MAX_DURABILITY_INTERVAL.as_millis()
        )),
        DurabilityPolicy::Interval(interval) if interval > MAX_DURABILITY_INTERVAL => Err(format!(
            "`{text}` is too long a durability interval (a power loss loses up to that \
                 much acknowledged work): use `1ms` to `{}ms`",
            MAX_DURABILITY_INTERVAL.as_millis()
        )),
        policy => Ok(policy),
    }
}

/// Parses a listening address: `IP:PORT`, or `HOST:PORT` resolved here
/// (an IPv4 address first, so `localhost` listens where clients of
/// `localhost` look first).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let usage = "use IP:PORT or HOST:PORT, such as 127.0.0.1:3000 or localhost:3000";
    let addresses: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(text)
        .map_err(|e| format!("`{text}` is not an address to listen on ({e}): {usage}"))?
        .collect();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("`{text}` has no address to listen on: {usage}"))
}

/// Prints a line of the server's output. One that cannot be written (the
/// disk of the file it goes to is full, its pipe closed) is lost and the
/// server goes on: `println!` would panic and stop it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The per-user data directory.
pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("worldline"));
    }
    let home = std::env::var_os("HOME")
        .context("neither XDG_DATA_HOME nor HOME is set; pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/worldline"))
}

/// `wanted`, or half the process's open-file limit if that is lower (with a
/// warning): each TCP connection holds a descriptor, and the commit logs,
/// snapshots and module logs need theirs. The soft limit is first raised
/// to the hard one (many systems start processes at 1,024).
fn connections_within_file_limit(wanted: usize) -> usize {
    let Some(files) = raise_open_file_limit() else {
        return wanted;
    };
    let room = usize::try_from(files / 2).unwrap_or(usize::MAX).max(1);
    if room < wanted {
        say!(
            "worldline: warning: taking at most {room} connections, half the open-file limit of \
             {files} (raise it with `ulimit -n` to take the {wanted} of --max-connections)"
        );
    }
    wanted.min(room)
}

/// Raises the soft limit on open files to the hard limit and returns the
/// limit now in force (`None`: unlimited, or it could not be read).
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit, read by the call only.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

pub fn run(args: StartArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let mut config = ServerConfig::new(&data_dir);
    config.host = HostConfig {
        storage: StorageConfig {
            durability: args.durability,
            snapshot_every: Some(args.snapshot_every),
            ..StorageConfig::default()
        },
        engine: EngineConfig {
            max_instances: args.max_instances,
            http_private_override: PrivateOverride::new(args.http_allow_private.iter().copied()),
            ..EngineConfig::default()
        },
    };
    config.http_listen = args.listen;
    config.quic_listen = args.quic_listen;
    config.max_connections_per_ip = args.max_connections_per_ip;
    config.max_connections = connections_within_file_limit(args.max_connections);
    config.max_outgoing_bytes = args.max_outgoing_bytes;
    config.max_incoming_bytes = args.max_incoming_bytes;
    config.allowed_origins = args.allow_origins;
    config.publishers = args.publishers;
    say!("worldline: data directory {}", data_dir.display());
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let started = std::time::Instant::now();
        let server = Server::start(config).await?;
        for (name, report) in server.recovery_reports() {
            say!("worldline: recovered database {name}: {}", describe(report));
        }
        let unavailable = server.unavailable_databases();
        for database in &unavailable {
            say!(
                "worldline: database {} is UNAVAILABLE (it answers 503): {}\n  hint: {}",
                database.name,
                database.reason,
                database.remedy_hint()
            );
        }
        let unavailable = if unavailable.is_empty() {
            String::new()
        } else {
            format!(", {} unavailable", unavailable.len())
        };
        let ready = server.recovery_reports().len();
        say!(
            "worldline: {ready} database{} ready{unavailable} in {:.1} ms (durability: {})",
            if ready == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64() * 1e3,
            args.durability
        );
        let http = server.http_addr();
        let quic = server.quic_addr();
        if http.ip().is_unspecified() {
            let from_here = loopback_of(http);
            say!(
                "worldline: HTTP and WebSocket on http://{http} (every address of this machine: \
                 clients connect to ws://HOST:{}/v1/ws, from this machine ws://{from_here}/v1/ws)",
                http.port()
            );
        } else {
            say!(
                "worldline: HTTP and WebSocket on http://{http} (clients connect to \
                 ws://{http}/v1/ws)"
            );
        }
        say!(
            "worldline: QUIC on {quic} ({}certificate SHA-256 fingerprint {})",
            if quic.ip().is_unspecified() {
                "every address of this machine; "
            } else {
                ""
            },
            fingerprint_hex(&server.fingerprint())
        );
        for address in &args.http_allow_private {
            say!(
                "worldline: WARNING: procedures may send HTTP requests to the internal address \
                 {address} (--http-allow-private-address; for development only)"
            );
        }
        // Both handlers are installed before the ready line, so that a
        // signal sent as soon as it is printed is not missed.
        let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
        say!("worldline: ready; stop with Ctrl-C (SIGINT) or SIGTERM");
        let received = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        say!("worldline: shutting down ({received})");
        server.shutdown().await;
        anyhow::Ok(())
    })
}

/// The loopback address, of the same family and port, at which a client on
/// this machine reaches a server listening on every address (`0.0.0.0`,
/// `::`), an address no client can connect to.
fn loopback_of(listening: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let loopback = match listening.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    std::net::SocketAddr::new(loopback, listening.port())
}

/// One line on what recovery did for a database.
fn describe(report: &worldline_host::RecoveryReport) -> String {
    let snapshot = match report.snapshot {
        Some(offset) => format!("snapshot at transaction {offset}"),
        None => "no snapshot".into(),
    };
    let torn = if report.torn {
        format!(
            ", cut off a torn final record of {} bytes",
            report.truncated_bytes
        )
    } else {
        String::new()
    };
    format!(
        "{snapshot}, {} replayed in {:.1} ms{torn}",
        crate::output::count_of(report.replayed, "transaction"),
        report.duration.as_secs_f64() * 1e3,
    )
}

/// A next step for errors a user can fix.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    let host_error =
        match err.downcast_ref::<ServerError>()? {
            ServerError::Host(e) => e,
            ServerError::Secret(e) => return e.chmod_hint().or_else(|| io_hint(err)),
            ServerError::Certificate { .. } => {
                return Some(
                "delete quic-cert.der and quic-key.der from the data directory and start again: \
                 the server makes a new certificate (clients that pinned the old fingerprint \
                 must pin the new one)"
                    .into(),
            );
            }
            ServerError::Bind { source, .. } => {
                return Some(match source.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "stop whatever uses the port, or pass --listen / --quic-listen"
                }
                _ => "pass --listen / --quic-listen with an address of this machine, such as \
                      127.0.0.1:3000 (port 0 picks a free port)",
            }
            .into());
            }
            _ => return io_hint(err),
        };
    match host_error {
        HostError::DataDirLocked(_) => {
            Some("stop the other server, or pass a different --data-dir".into())
        }
        HostError::Secret(e) => e.chmod_hint().or_else(|| io_hint(err)),
        HostError::DataDir { .. } => io_hint(err).or_else(|| {
            Some(
                "--data-dir must name a directory this user can create or write (not a file)"
                    .into(),
            )
        }),
        HostError::Storage(_) => io_hint(err).or_else(|| {
            Some("the named file is damaged; restore the data directory from a backup".into())
        }),
        _ => io_hint(err),
    }
}

/// The next step after an operating-system error reading or writing the
/// data directory, by its kind: the files are not damaged, so nothing is
/// to be restored.
fn io_hint(err: &anyhow::Error) -> Option<String> {
    use std::io::ErrorKind;
    let io = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<std::io::Error>())?;
    Some(
        match io.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
                "free space on the data directory's disk (or pass a different --data-dir), then \
                 start again"
            }
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                "give this user read and write access to the data directory and its files (or \
                 pass a different --data-dir), then start again"
            }
            ErrorKind::NotADirectory | ErrorKind::AlreadyExists => {
                "--data-dir must name a directory this user can create or write (not a file)"
            }
            _ => "check the data directory's disk and file system, then start again",
        }
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hint for a data directory that failed with `kind`.
    fn data_dir_hint(kind: std::io::ErrorKind) -> String {
        let error = anyhow::Error::from(ServerError::Host(HostError::DataDir {
            path: "data".into(),
            source: std::io::Error::from(kind),
        }));
        hint(&error).expect("a hint")
    }

    // A full disk or a permission problem is not damage to restore from a
    // backup, nor a usage mistake: the hint says what to fix.
    #[test]
    fn data_directory_errors_get_hints_for_their_cause() {
        assert!(data_dir_hint(std::io::ErrorKind::StorageFull).starts_with("free space"));
        assert!(
            data_dir_hint(std::io::ErrorKind::PermissionDenied)
                .starts_with("give this user read and write access")
        );
        assert!(
            data_dir_hint(std::io::ErrorKind::NotADirectory)
                .starts_with("--data-dir must name a directory")
        );
    }
}
