//! RECONSTRUCTED FILE. The helper writing `worldline init`/`generate`
//! accidentally overwrote the original of this file; this is a
//! reconstruction from how `flow.rs` uses it, written so that `flow.rs`
//! compiles. Replace it with the original if you have it.
//!
//! What the flow tests share: a real `worldline start` process and users,
//! each with their own configuration file, running the real binary.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use worldline_tests::{TempDir, guest_path};

/// The binary under test.
pub const WORLDLINE: &str = env!("CARGO_BIN_EXE_worldline");

/// How long to wait for a line from a child process.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// The path of a guest component built from `guest-rust/`, as a string.
pub fn component(name: &str) -> String {
    guest_path(name).to_string_lossy().into_owned()
}

/// A `worldline start` process on a fresh data directory, killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// The server's HTTP URL.
    pub url: String,
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts a server on free loopback ports and waits until it is ready.
    pub fn start() -> Self {
        let dir = TempDir::new("worldline-cli-flow-server");
        let mut child = Command::new(WORLDLINE)
            .args([
                "start",
                "--listen",
                "127.0.0.1:0",
                "--quic-listen",
                "127.0.0.1:0",
                "--durability",
                "none",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running worldline start");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut url = None;
        let mut seen = Vec::new();
        for line in lines {
            let line = line.expect("reading the server's output");
            if let Some(rest) = line.split("HTTP and WebSocket on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_owned);
            }
            let ready = line.contains("ready;");
            seen.push(line);
            if ready {
                break;
            }
        }
        let url = url.unwrap_or_else(|| panic!("the server printed no HTTP address: {seen:?}"));
        Self {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Someone using the CLI against one server, with their own configuration file.
pub struct User {
    server: String,
    dir: TempDir,
}

impl User {
    /// A user of the server at `url` with no identities yet.
    pub fn new(url: &str) -> Self {
        Self {
            server: url.to_owned(),
            dir: TempDir::new("worldline-cli-flow-user"),
        }
    }

    /// The user's configuration file.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(WORLDLINE);
        command
            .args(args)
            .env("WORLDLINE_SERVER", &self.server)
            .env("WORLDLINE_CONFIG", self.config());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running worldline")
    }

    /// Runs `worldline ARGS`, which must succeed, and returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "worldline {args:?} failed:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs `worldline ARGS`, which must fail, and returns its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !output.status.success(),
            "worldline {args:?} succeeded:\n{}{stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        stderr
    }

    /// Starts `worldline ARGS` in the background, reading its output line by line.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running worldline");
        let stdout = child.stdout.take().expect("piped");
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }
}

/// A `worldline` process running in the background.
pub struct Running {
    child: Child,
    lines: Receiver<String>,
}

impl Running {
    /// The next line it prints.
    pub fn next_line(&self) -> String {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no line within {LINE_TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the process closed its output"),
        }
    }

    /// The lines it prints up to and including the first that contains `text`.
    pub fn until(&self, text: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.next_line();
            let found = line.contains(text);
            lines.push(line);
            if found {
                return lines;
            }
        }
    }

    /// Waits for it to exit: whether it succeeded, and the lines it printed
    /// that were not read yet.
    pub fn finish(mut self) -> (bool, Vec<String>) {
        let status = self.child.wait().expect("waiting for worldline");
        let lines = self.lines.iter().collect();
        (status.success(), lines)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

