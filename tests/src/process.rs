//! The real `worldline` binary as a process, for tests that must run the
//! server as an operator does: SIGKILL it, SIGSTOP it, restart it on the
//! same data directory. And a small HTTP client for its API.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use worldline_client::parse_fingerprint;

/// How long an HTTP request may take before the client gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The `worldline` binary, built (or found up to date) once per test run.
pub fn worldline_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test runs as <target>/<profile>/deps/server_crash-HASH; the
        // binary goes to <target>/<profile>/worldline.
        let exe = std::env::current_exe().expect("the test's own path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from <target>/<profile>/deps");
        // Built as `cargo test --workspace` builds it, which then finds it
        // up to date: features resolved for the whole workspace with its
        // tests (`--package worldline-cli` alone would resolve fewer and
        // rebuild wasmtime and much else, minutes on a fresh machine).
        let mut build = Command::new(env!("CARGO"));
        build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--workspace",
            "--tests",
            "--bin",
            "worldline",
        ]);
        // Cargo gives this test its package's variables; build scripts that
        // watch them (ring's does) would rebuild for the change, and again
        // for the next ordinary build. Build as from a shell.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_this_test = name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || [
                    "OUT_DIR",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                ]
                .contains(&&*name);
            if set_for_this_test {
                build.env_remove(&*name);
            }
        }
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo to build `worldline`");
        assert!(status.success(), "building `worldline` failed: {status}");
        profile_dir.join("worldline")
    })
}

/// A running `worldline start`, killed with SIGKILL when dropped.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub http: String,
    /// Where QUIC clients connect.
    pub quic: SocketAddr,
    /// The SHA-256 fingerprint of the server's QUIC certificate.
    pub fingerprint: [u8; 32],
    /// What it printed up to its ready line.
    pub printed: Vec<String>,
}

impl ServerProcess {
    /// `worldline start` on `dir` (durability `every`, a snapshot every 200
    /// transactions, free ports), its standard output piped and its
    /// standard error (the server's log) to `stderr`.
    pub fn spawn(dir: &Path, stderr: Stdio) -> Child {
        Self::command(dir, stderr)
            .spawn()
            .expect("running worldline start")
    }

    /// The command [`spawn`](Self::spawn) runs.
    fn command(dir: &Path, stderr: Stdio) -> Command {
        let mut command = Command::new(worldline_binary());
        command
            .args(["start", "--durability", "every", "--snapshot-every", "200"])
            .args(["--listen", "127.0.0.1:0", "--quic-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(stderr);
        command
    }

    /// Like [`start_with_stderr`](Self::start_with_stderr), with the
    /// server's files limited to `bytes` (`RLIMIT_FSIZE`, as `ulimit -f` or
    /// systemd's `LimitFSIZE=` set it) and `SIGXFSZ` at its default action
    /// (ending the process), as a service manager starts it.
    pub fn start_with_file_size_limit(dir: &Path, bytes: u64, stderr: Stdio) -> Self {
        Self::start_with_limit(dir, libc::RLIMIT_FSIZE, (bytes, bytes), stderr)
    }

    /// Like [`start_with_stderr`](Self::start_with_stderr), with the
    /// server's open files limited to `soft` (`ulimit -n`), which it may
    /// raise up to `hard`.
    pub fn start_with_open_file_limit(dir: &Path, soft: u64, hard: u64) -> Self {
        Self::start_with_limit(dir, libc::RLIMIT_NOFILE, (soft, hard), Stdio::inherit())
    }

    /// Starts the server with resource limit `resource` at `(soft, hard)`
    /// and `SIGXFSZ` at its default action, as a service manager starts it.
    fn start_with_limit(
        dir: &Path,
        resource: libc::__rlimit_resource_t,
        (soft, hard): (u64, u64),
        stderr: Stdio,
    ) -> Self {
        let mut command = Self::command(dir, stderr);
        // SAFETY: between fork and exec the closure calls only
        // async-signal-safe functions (setrlimit, signal) on valid arguments.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
                Ok(())
            });
        }
        Self::ready(command.spawn().expect("running worldline start"))
    }

    /// Starts the server on `dir` and SIGKILLs it `after` that long, most
    /// likely while it recovers its databases or before it is ready.
    pub fn kill_while_starting(dir: &Path, after: Duration) {
        let mut child = Self::spawn(dir, Stdio::inherit());
        std::thread::sleep(after);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping the server");
    }

    /// Starts the server on `dir` and waits for its ready line.
    pub fn start(dir: &Path) -> Self {
        Self::start_with_stderr(dir, Stdio::inherit())
    }

    /// Like [`start`](Self::start), with the server's standard error (its
    /// log) going to `stderr`, such as a file the test reads.
    pub fn start_with_stderr(dir: &Path, stderr: Stdio) -> Self {
        Self::ready(Self::spawn(dir, stderr))
    }

    /// Starts a server on `dir/data` with its log (standard error) written
    /// to a file in `dir`, which the returned [`ServerLog`] reads.
    pub fn start_logged(dir: &Path) -> (Self, ServerLog) {
        let path = dir.join("server-stderr.log");
        let file = std::fs::File::create(&path).expect("a file for the server's log");
        let server = Self::start_with_stderr(&dir.join("data"), file.into());
        (server, ServerLog(path))
    }

    /// Waits for `child`, a server just started, to print its ready line.
    fn ready(mut child: Child) -> Self {
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let (mut http, mut quic) = (None, None);
        let mut printed = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("reading the server's output");
            if let Some(rest) = line.strip_prefix("worldline: HTTP and WebSocket on ") {
                http = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.strip_prefix("worldline: QUIC on ") {
                let mut words = rest.split_whitespace();
                let addr = words.next().and_then(|a| a.parse::<SocketAddr>().ok());
                let fingerprint = words
                    .last()
                    .and_then(|f| parse_fingerprint(f.trim_end_matches(')')).ok());
                quic = addr.zip(fingerprint);
            }
            let ready = line.starts_with("worldline: ready");
            printed.push(line);
            if ready {
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let (Some(http), Some((quic, fingerprint))) = (http, quic) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not print its addresses before it was ready");
        };
        Self {
            child,
            http,
            quic,
            fingerprint,
            printed,
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the server");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client of one server, as the identity of `token` (if any).
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Http {
    /// A client of `base` (`http://host:port`) presenting `token`, if any.
    pub fn new(base: &str, token: Option<&str>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Self {
            agent,
            base: base.to_owned(),
            token: token.map(str::to_owned),
        }
    }

    /// `GET path`: the status and the answer's text, or why the request
    /// got no answer.
    pub fn get(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call()?;
        let text = response.body_mut().read_to_string()?;
        Ok((response.status().as_u16(), text))
    }

    /// `POST path` with `body`: the status and the answer's text, or why the
    /// request got no answer.
    pub fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, String), ureq::Error> {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.content_type(content_type).send(body)?;
        let text = response.body_mut().read_to_string()?;
        Ok((response.status().as_u16(), text))
    }

    /// `POST path` that must answer 2xx with JSON.
    pub fn post_ok(&self, path: &str, content_type: &str, body: &[u8]) -> Value {
        let (status, text) = self
            .post(path, content_type, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert!((200..300).contains(&status), "POST {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"))
    }
}

impl ServerProcess {
    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("{}/v1/ws", self.http.replacen("http://", "ws://", 1))
    }
}

impl Http {
    /// Issues a new identity (`POST /v1/identity`) and returns a client
    /// acting as it.
    pub fn new_identity(base: &str) -> Self {
        let identity = Self::new(base, None).post_ok("/v1/identity", "application/json", b"");
        let token = identity["token"].as_str().expect("a token");
        Self::new(base, Some(token))
    }

    /// The token this client presents.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Every row of `table` in `database`, each as its column values, read
    /// with `SELECT *` through the SQL endpoint.
    pub fn rows(&self, database: &str, table: &str) -> Vec<Vec<Value>> {
        let answer = self.post_ok(
            &format!("/v1/database/{database}/sql"),
            "text/plain",
            format!("SELECT * FROM {table}").as_bytes(),
        );
        answer["tables"][0]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|row| row.as_array().cloned().expect("a row is an array"))
            .collect()
    }

    /// Publishes `wasm` as database `name`.
    pub fn publish(&self, name: &str, wasm: &[u8]) {
        self.post_ok(&format!("/v1/database/{name}"), "application/wasm", wasm);
    }

    /// The messages of `database`'s module log (its newest `tail` lines,
    /// or every line it keeps), read through the HTTP API.
    pub fn module_log(&self, database: &str, tail: Option<usize>) -> Vec<String> {
        let mut url = format!("{}/v1/database/{database}/logs", self.base);
        if let Some(tail) = tail {
            url.push_str(&format!("?tail={tail}"));
        }
        let mut request = self.agent.get(url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().expect("reading the log");
        let body = response.body_mut().read_to_string().expect("its body");
        assert_eq!(response.status(), 200, "reading the log: {body}");
        body.lines()
            .map(|line| {
                let line: Value = serde_json::from_str(line).expect("a JSON line");
                line["message"].as_str().expect("a message").to_owned()
            })
            .collect()
    }

    /// Calls `reducer` of `database` with JSON `args`, which must commit.
    pub fn call_ok(&self, database: &str, reducer: &str, args: &Value) {
        let path = format!("/v1/database/{database}/call/{reducer}");
        self.post_ok(&path, "application/json", args.to_string().as_bytes());
    }
}

/// The log file of a server started with [`ServerProcess::start_logged`].
pub struct ServerLog(PathBuf);

impl ServerLog {
    /// Asserts that the server wrote lines containing `needle` (about
    /// `what`), but no more than a log throttle lets through in `seconds`:
    /// a burst of 10, then one a second. Returns them.
    pub fn assert_throttled(&self, needle: &str, what: &str, seconds: usize) -> Vec<String> {
        let lines: Vec<String> = std::fs::read_to_string(&self.0)
            .expect("the server's log")
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect();
        assert!(
            !lines.is_empty() && lines.len() <= 10 + seconds + 1,
            "{} server log lines about {what} in {seconds} s: {:?}",
            lines.len(),
            &lines[..lines.len().min(3)]
        );
        lines
    }
}
