//! The server a benchmark runs against: one this command starts on a
//! temporary data directory, or a running one named by `--server`; and the
//! bank module it publishes there.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use worldline_client::{Client, ConnectOptions, Endpoint, QuicSocket};
use worldline_host::DurabilityPolicy;
use worldline_transport::ReducerStatus;

use super::stats::Latency;

use crate::api::Api;
use crate::commands::subscribe::{Protocol, connect_options};
use crate::context::{Context, GlobalArgs};
use crate::hint::hinted;
use crate::module_build;

/// The database every benchmark publishes the bank module as.
pub const DATABASE: &str = "bench";

/// How long a started server may take to become ready (it recovers and
/// compiles every database in its data directory first).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the bank example lives in a checkout of the project.
const BANK_PROJECT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-rust/examples/bank");

/// Options every benchmark shares: the server it starts and the module.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// The durability policy of the server the benchmark starts: `every`,
    /// `none` or an interval such as `10ms` (not used with --server).
    #[arg(long, value_name = "POLICY", default_value = "every",
          value_parser = crate::start::parse_durability)]
    pub durability: DurabilityPolicy,
    /// The bank module as a built component [default: build
    /// guest-rust/examples/bank from source, as `publish` does].
    #[arg(long, value_name = "FILE", conflicts_with = "project_path")]
    pub wasm: Option<PathBuf>,
    /// The bank module's project (Rust, C++ or Python), built as `publish
    /// --project-path` builds it.
    #[arg(long, value_name = "DIR")]
    pub project_path: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of the benchmarks that measure clients, per transport.
#[derive(Args, Debug)]
pub struct ClientArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The transports to measure, one after the other.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ws,quic")]
    pub protocol: Vec<Protocol>,
}

/// The bank component's bytes: `--wasm`, or the project built from source.
pub fn bank_wasm(args: &TargetArgs) -> anyhow::Result<Vec<u8>> {
    let path = match (&args.wasm, &args.project_path) {
        (Some(wasm), _) => wasm.clone(),
        (None, Some(dir)) => module_build::build(dir)?,
        (None, None) => build_checkout_module(
            BANK_PROJECT,
            "the bank example",
            "pass --project-path to guest-rust/examples/bank of a checkout, or --wasm FILE",
        )?,
    };
    read_component(&path)
}

/// Builds the module project at `project` in the checkout this binary was
/// built from (a Rust, C++ or Python project, as `publish --project-path`
/// builds it); when the checkout is not there, says that `what` is missing,
/// with `hint`.
pub fn build_checkout_module(project: &str, what: &str, hint: &str) -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(project);
    if !dir.is_dir() {
        return Err(hinted(format!("{what} is not at {}", dir.display()), hint));
    }
    module_build::build(&dir)
}

/// Reads a built component.
pub fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    crate::component_file::read(path)
}

/// How a reducer call ended, as a person reads it.
pub fn status_text(status: &ReducerStatus) -> String {
    match status {
        ReducerStatus::Committed => "committed".into(),
        ReducerStatus::Failed(message) => format!("failed: {message}"),
        ReducerStatus::OutcomeUnknown(message) => {
            format!("its outcome is unknown (the commit log failed): {message}")
        }
    }
}

/// A directory removed with everything in it when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates a new, empty directory under the system's temporary
    /// directory, private to this user (the server it holds writes its
    /// signing key there).
    pub fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("worldline-bench-{}-{nanos}", std::process::id()));
        worldline_host::create_private_dir_all(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `worldline start` child process, killed when dropped.
pub struct ServerProcess {
    child: Child,
    url: String,
    output: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts this executable's `worldline start` on `data_dir`, on free
    /// loopback ports, and waits until it is ready.
    pub fn start(
        data_dir: &Path,
        durability: DurabilityPolicy,
        options: &[&str],
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the worldline executable")?;
        let mut command = Command::new(exe);
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls prctl, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // The server dies with this command, even when it is killed.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .args([
                "start",
                "--listen",
                "127.0.0.1:0",
                "--quic-listen",
                "127.0.0.1:0",
            ])
            .arg("--durability")
            .arg(durability.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("running `worldline start`")?;
        let stdout = child.stdout.take().context("the server's output")?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines) = mpsc::channel();
        let kept = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut url = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("HTTP and WebSocket on ").nth(1) {
                        url = rest.split_whitespace().next().map(str::to_owned);
                    }
                    if line.starts_with("worldline: ready") {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    anyhow::bail!("the server was not ready within {READY_TIMEOUT:?}");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait()?;
                    anyhow::bail!("the server exited before it was ready ({status})");
                }
            }
        }
        let url = url.context("the server did not print its HTTP address")?;
        Ok(Self { child, url, output })
    }

    /// The process id, to read its CPU time and memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line the server printed so far.
    pub fn output(&self) -> Vec<String> {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the server as Ctrl-C would, and waits for it to exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("the server's pid")?;
        // SAFETY: kill only sends a signal to the child this value owns.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server did not stop within 30 s of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server a benchmark talks to, as an identity of its own.
pub struct Target {
    url: String,
    api: Api,
    token: String,
    process: Option<ServerProcess>,
    remote: bool,
    /// The started server's durability policy (`None` for `--server`).
    pub durability: Option<DurabilityPolicy>,
    /// With `--durability every`: how long its disk took to make a small
    /// write durable, timed before the server started.
    pub disk_sync: Option<Latency>,
}

impl Target {
    /// `--server` if given, else a server started on `dir` with `options`
    /// for `worldline start`.
    pub fn open(
        global: &GlobalArgs,
        args: &TargetArgs,
        dir: &ScratchDir,
        options: &[&str],
    ) -> anyhow::Result<Self> {
        if global.server.is_none() {
            return Self::start(dir.path(), args.durability, options);
        }
        let mut context = Context::load(global)?;
        let api = context.api_as_identity()?;
        let token = context
            .config
            .default_identity(&context.server)
            .map(|i| i.token.clone())
            .context("no identity for the server")?;
        Ok(Self {
            url: context.server.clone(),
            api,
            token,
            process: None,
            remote: true,
            durability: None,
            disk_sync: None,
        })
    }

    /// Starts a server on `dir` and takes a new identity on it.
    pub fn start(
        dir: &Path,
        durability: DurabilityPolicy,
        options: &[&str],
    ) -> anyhow::Result<Self> {
        let disk_sync = match durability {
            DurabilityPolicy::Every => Some(super::disk::sync_latency(dir)?),
            _ => None,
        };
        let process = ServerProcess::start(dir, durability, options)?;
        let issued = Api::new(&process.url, None).new_identity()?;
        Ok(Self {
            url: process.url.clone(),
            api: Api::new(&process.url, Some(issued.token.clone())),
            token: issued.token,
            process: Some(process),
            remote: false,
            durability: Some(durability),
            disk_sync,
        })
    }

    /// The durability policy as printed: the started server's, or "n/a".
    pub fn durability_name(&self) -> String {
        self.durability
            .map_or_else(|| "n/a (--server)".into(), |d| d.to_string())
    }

    /// The HTTP API as this benchmark's identity.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// The started server process, if this command started it.
    pub fn process(&self) -> Option<&ServerProcess> {
        self.process.as_ref()
    }

    /// Stops the started server and hands it back no more.
    pub fn stop(mut self) -> anyhow::Result<()> {
        match self.process.take() {
            Some(process) => process.stop(),
            None => Ok(()),
        }
    }

    /// Publishes `wasm` as `database`, replacing its data on a server this
    /// command did not start, and returns how long the server took.
    pub fn publish(&self, database: &str, wasm: &[u8]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.api
            .publish(database, wasm, self.remote, None)
            .with_context(|| format!("publishing the bank module as `{database}`"))?;
        Ok(started.elapsed())
    }

    /// What a client needs to connect to `database` over `protocol`.
    pub fn connect_options(
        &self,
        protocol: Protocol,
        database: &str,
    ) -> anyhow::Result<ConnectOptions> {
        Ok(
            connect_options(protocol, None, database, &self.api, &self.url)?
                .with_token(self.token.clone()),
        )
    }
}

/// The name a protocol is printed as.
pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Quic => "quic",
        Protocol::Ws => "ws",
    }
}

/// Connects with `options`.
pub async fn connect(options: &ConnectOptions) -> anyhow::Result<Client> {
    Client::connect(options.clone())
        .await
        .with_context(|| format!("connecting to database `{}`", options.database))
}

/// Calls `seed`: accounts `0..accounts`, each holding `balance`.
pub async fn seed(client: &Client, accounts: u32, balance: i64) -> anyhow::Result<()> {
    let outcome = client.call("seed", &(accounts, balance)).await?;
    match outcome.status {
        ReducerStatus::Committed => Ok(()),
        ReducerStatus::Failed(message) if message.starts_with("no reducer named") => Err(hinted(
            format!("seeding {accounts} accounts failed: {message}"),
            "the benchmark needs the bank example's module (reducers `seed`, `transfer`, \
             `noop`): leave out --wasm / --project-path, or pass a build of \
             guest-rust/examples/bank",
        )),
        other => anyhow::bail!(
            "seeding {accounts} accounts failed: {}",
            status_text(&other)
        ),
    }
}

/// The number of accounts and the sum of their balances.
pub async fn balances(client: &Client) -> anyhow::Result<(usize, i128)> {
    let tables = client.query("SELECT * FROM account").await?;
    let mut count = 0;
    let mut sum = 0i128;
    for row in tables.iter().flat_map(|t| &t.rows) {
        let (_, balance): (u32, i64) =
            postcard::from_bytes(row).context("decoding an account row")?;
        count += 1;
        sum += i128::from(balance);
    }
    Ok((count, sum))
}

/// CPU time and memory of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    /// User and system CPU time so far, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory now, in MiB.
    pub rss_mib: f64,
    /// The most resident memory so far, in MiB.
    pub peak_rss_mib: f64,
}

/// Reads the CPU time and memory of process `pid`.
pub fn usage(pid: u32) -> anyhow::Result<Usage> {
    let cpu_seconds = stat_cpu_seconds(&format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(Usage {
        cpu_seconds,
        rss_mib: kib("VmRSS:") / 1024.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
    })
}

/// The CPU time, in seconds, of the threads of process `pid` whose name
/// starts with `name` (as `/proc` shows it: at most 15 bytes).
pub fn threads_cpu_seconds(pid: u32, name: &str) -> anyhow::Result<f64> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = 0.0;
    for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let task = task?.path();
        // A thread may end between the listing and these reads.
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if comm.trim_end().starts_with(name)
            && let Ok(seconds) = stat_cpu_seconds(&task.join("stat").to_string_lossy())
        {
            total += seconds;
        }
    }
    Ok(total)
}

/// User and system CPU time, in seconds, from a `/proc` `stat` file.
fn stat_cpu_seconds(path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) start at `state`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("a short /proc stat line")?
            .parse::<f64>()?)
    };
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((ticks(11)? + ticks(12)?) / per_second)
}

/// A multi-threaded async runtime for the clients.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The runtime for `clients` connections running at once: one thread for
/// a single client (as a game client runs its connection: each message
/// then wakes no other thread of this process), several for more.
fn runtime_for(clients: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    if clients > 1 {
        return runtime();
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Lets this process (and the server it starts) hold thousands of sockets.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// `options`, with every QUIC connection made from them going over one
/// UDP socket bound on `runtime`, as a process holding many connections
/// would (a socket each costs a reading task and system calls each).
fn share_quic_socket(
    options: ConnectOptions,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ConnectOptions> {
    let _entered = runtime.enter();
    with_new_quic_socket(&options)
}

/// `options` with a UDP socket of their own for the QUIC connections made
/// from them (unchanged for WebSocket). Must run inside the runtime the
/// connections will run on.
pub fn with_new_quic_socket(options: &ConnectOptions) -> anyhow::Result<ConnectOptions> {
    let Endpoint::Quic { addr, .. } = &options.endpoint else {
        return Ok(options.clone());
    };
    let socket = QuicSocket::bind(*addr).context("binding the benchmark's QUIC socket")?;
    Ok(options.clone().with_quic_socket(socket))
}

/// A server with the bank module published as [`DATABASE`], ready for clients.
pub struct Prepared {
    /// The server.
    pub target: Target,
    /// How to connect over each protocol asked for, in order.
    pub options: Vec<(Protocol, ConnectOptions)>,
    /// The runtime the clients run on.
    pub runtime: tokio::runtime::Runtime,
    // Dropped last: the started server's data directory.
    _dir: ScratchDir,
}

impl Prepared {
    /// Starts (or targets) the server, publishes the bank module and works
    /// out how to connect over each of `protocols`.
    /// `connections` is how many connections the benchmark opens at most:
    /// a server it starts lets that many come from one address. `clients`
    /// is how many of them run at once (one runs on one thread).
    pub fn new(
        global: &GlobalArgs,
        args: &ClientArgs,
        connections: usize,
        clients: usize,
    ) -> anyhow::Result<Self> {
        let wasm = bank_wasm(&args.target)?;
        Self::with_wasm(global, args, connections, clients, &wasm)
    }

    /// The same as [`Prepared::new`], publishing the bank component `wasm`
    /// instead of the one `args` name.
    pub fn with_wasm(
        global: &GlobalArgs,
        args: &ClientArgs,
        connections: usize,
        clients: usize,
        wasm: &[u8],
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!args.protocol.is_empty(), "name at least one --protocol");
        raise_open_file_limit();
        let dir = ScratchDir::new()?;
        // One more for the client that seeds and checks the balances.
        let limit = (connections + 1).to_string();
        let server_options = ["--max-connections-per-ip", limit.as_str()];
        let target = Target::open(global, &args.target, &dir, &server_options)?;
        target.publish(DATABASE, wasm)?;
        let runtime = runtime_for(clients)?;
        let options = args
            .protocol
            .iter()
            .map(|&p| target.connect_options(p, DATABASE).map(|o| (p, o)))
            .map(|options| options.and_then(|(p, o)| Ok((p, share_quic_socket(o, &runtime)?))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            target,
            options,
            runtime,
            _dir: dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_scratch_directory_is_private_and_removed_when_dropped() {
        let dir = ScratchDir::new().expect("a scratch directory");
        let path = dir.path().to_owned();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        drop(dir);
        assert!(!path.exists());
    }
}
