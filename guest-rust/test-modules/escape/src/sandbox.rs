//! Attempts on the WASI sandbox: files, preopens, environment, arguments,
//! standard streams, sockets and name lookup. Each returns a report of what
//! the host answered, `name: ok(...)` or `name: err(...)`.

use std::io::{Read, Write};

use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Network};
use wasip2::sockets::{instance_network, ip_name_lookup, tcp_create_socket, udp_create_socket};

fn outcome<T: std::fmt::Debug, E: std::fmt::Debug>(name: &str, result: Result<T, E>) -> String {
    match result {
        Ok(value) => format!("{name}: ok({value:?})"),
        Err(error) => format!("{name}: err({error:?})"),
    }
}

/// Reads `/etc/passwd`, lists `.` and `/`, and counts the preopened directories.
pub fn read_files() -> String {
    let passwd = std::fs::read("/etc/passwd").map(|bytes| bytes.len());
    let dot = std::fs::read_dir(".").map(|entries| entries.count());
    let root = std::fs::read_dir("/").map(|entries| entries.count());
    let created = std::fs::write("escape.txt", b"out");
    let preopens: Vec<String> = wasip2::filesystem::preopens::get_directories()
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    [
        outcome("passwd", passwd),
        outcome("dot", dot),
        outcome("root", root),
        outcome("create", created),
        format!("preopens: {preopens:?}"),
    ]
    .join("; ")
}

/// Counts the environment variables and arguments, and reads the raw WASI ones too.
pub fn env_and_args() -> String {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let args: Vec<String> = std::env::args().collect();
    let wasi_vars = wasip2::cli::environment::get_environment();
    let wasi_args = wasip2::cli::environment::get_arguments();
    let cwd = wasip2::cli::environment::initial_cwd();
    format!(
        "env: {vars:?}; args: {args:?}; wasi env: {wasi_vars:?}; wasi args: {wasi_args:?}; cwd: {cwd:?}"
    )
}

/// Reads standard input to its end.
pub fn read_stdin() -> String {
    let mut input = Vec::new();
    outcome("stdin", std::io::stdin().read_to_end(&mut input))
}

/// Writes a lot to standard output; the host discards it.
pub fn write_stdout() -> String {
    let line = "escape to stdout\n".repeat(64);
    let mut stdout = std::io::stdout();
    let mut written = 0usize;
    for _ in 0..1024 {
        if stdout.write_all(line.as_bytes()).is_ok() {
            written += line.len();
        }
    }
    let flushed = stdout.flush();
    format!(
        "stdout: wrote {written} bytes; {}",
        outcome("flush", flushed)
    )
}

/// Writes 8 KiB of filler to standard error, then `marker`, then traps.
pub fn stderr_then_trap(marker: &str) -> String {
    let mut stderr = std::io::stderr();
    let _ = stderr.write_all("filler ".repeat(8 << 7).as_bytes());
    let _ = writeln!(stderr, "{marker}");
    let _ = stderr.flush();
    std::process::abort()
}

/// Tries TCP (std and raw WASI) to `addr` (`ip:port`), UDP, and name lookups.
pub fn sockets(addr: &str) -> String {
    let std_tcp = std::net::TcpStream::connect(addr).map(|_| "connected");
    let std_lookup =
        std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)).map(|found| found.count());
    let network = instance_network::instance_network();
    [
        outcome("std tcp", std_tcp),
        outcome("std lookup", std_lookup),
        outcome("wasi tcp", wasi_connect(&network, addr)),
        outcome("wasi udp", wasi_udp(&network)),
        outcome("wasi lookup localhost", wasi_lookup(&network, "localhost")),
        outcome(
            "wasi lookup example.com",
            wasi_lookup(&network, "example.com"),
        ),
    ]
    .join("; ")
}

fn wasi_connect(network: &Network, addr: &str) -> Result<&'static str, String> {
    let target: std::net::SocketAddrV4 = addr.parse().map_err(|e| format!("{e}"))?;
    let [a, b, c, d] = target.ip().octets();
    let socket = tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("create: {e:?}"))?;
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: target.port(),
        address: (a, b, c, d),
    });
    socket
        .start_connect(network, remote)
        .map_err(|e| format!("start_connect: {e:?}"))?;
    socket.subscribe().block();
    socket
        .finish_connect()
        .map(|_| "connected")
        .map_err(|e| format!("finish_connect: {e:?}"))
}

fn wasi_udp(network: &Network) -> Result<&'static str, String> {
    let socket = udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("create: {e:?}"))?;
    let local = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: 0,
        address: (0, 0, 0, 0),
    });
    socket
        .start_bind(network, local)
        .map_err(|e| format!("start_bind: {e:?}"))?;
    socket.subscribe().block();
    socket
        .finish_bind()
        .map(|_| "bound")
        .map_err(|e| format!("finish_bind: {e:?}"))
}

fn wasi_lookup(network: &Network, name: &str) -> Result<usize, String> {
    let stream =
        ip_name_lookup::resolve_addresses(network, name).map_err(|e| format!("resolve: {e:?}"))?;
    let mut found = 0;
    loop {
        match stream.resolve_next_address() {
            Ok(Some(_)) => found += 1,
            Ok(None) => return Ok(found),
            Err(wasip2::sockets::network::ErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(e) => return Err(format!("next: {e:?}")),
        }
    }
}
