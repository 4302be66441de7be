//! Drives the real `worldline` binary against a real `worldline start`
//! process on loopback, each test with its own data directory and config.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use worldline_tests::TempDir;

/// The binary under test.
pub const WORLDLINE: &str = env!("CARGO_BIN_EXE_worldline");

/// A `worldline start` process, killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// What the server printed up to and including its ready line.
    pub startup: Vec<String>,
    dir: Option<TempDir>,
}

impl ServerProcess {
    /// Starts a server on a new data directory and waits until it is ready.
    pub fn start() -> Self {
        Self::start_in(TempDir::new("worldline-cli-server"))
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.as_ref().expect("held until stopped").path()
    }

    /// Kills the server and hands back its data directory, to damage or
    /// start again.
    pub fn stop(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().expect("held until stopped")
    }

    /// Interrupts the server as Ctrl-C does, so that it shuts down
    /// cleanly, and waits for it; returns whether it exited successfully.
    pub fn interrupt(mut self) -> bool {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: a plain system call on the server's own process id.
        unsafe { libc::kill(pid, libc::SIGINT) };
        self.child.wait().expect("waiting for the server").success()
    }

    /// Starts a server on `dir` (a new one, or one a stopped server left)
    /// and waits until it is ready.
    pub fn start_in(dir: TempDir) -> Self {
        Self::start_in_with(dir, &[])
    }

    /// Like [`start_in`](Self::start_in), with more options for `worldline start`.
    pub fn start_in_with(dir: TempDir, options: &[&str]) -> Self {
        let mut child = start_command(dir.path())
            .args(options)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running worldline start");
        let mut url = None;
        let mut startup = Vec::new();
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        for line in lines.by_ref() {
            let line = line.expect("reading the server's output");
            if let Some(rest) = line.split("HTTP and WebSocket on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_owned);
            }
            let ready = line.starts_with("worldline: ready");
            startup.push(line);
            if ready {
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let Some(url) = url else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not print its HTTP address before it was ready");
        };
        Self {
            child,
            url,
            startup,
            dir: Some(dir),
        }
    }
}

/// `worldline start` on `dir`, listening on free loopback ports, with its
/// output piped.
pub fn start_command(dir: &Path) -> Command {
    let mut command = Command::new(WORLDLINE);
    command
        .args([
            "start",
            "--listen",
            "127.0.0.1:0",
            "--quic-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `worldline start` on `dir`, expecting it to exit (not to become
/// ready) within 30 s, and returns what it printed.
pub fn start_fails(dir: &Path) -> Run {
    let mut child = start_command(dir).spawn().expect("running worldline start");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("polling worldline start").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("worldline start kept running; it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let run: Run = child.wait_with_output().expect("its output").into();
    assert!(
        !run.success,
        "worldline start should have failed: {}",
        run.stdout
    );
    run
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One user of the CLI: a config file of their own, talking to one server.
pub struct User {
    server: String,
    _dir: TempDir,
    config: PathBuf,
}

/// What a finished command printed.
pub struct Run {
    /// Whether it exited successfully.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl User {
    /// A user with an empty config who talks to `server`.
    pub fn new(server: &str) -> Self {
        let dir = TempDir::new("worldline-cli-user");
        let config = dir.path().join("config.toml");
        Self {
            server: server.to_owned(),
            _dir: dir,
            config,
        }
    }

    /// The user's config file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Follows the server to a new address (a restarted server listens on
    /// a new port): the saved identities move with it.
    pub fn moved_to(&mut self, server: &str) {
        let text = std::fs::read_to_string(&self.config).expect("reading the config");
        std::fs::write(&self.config, text.replace(&self.server, server))
            .expect("writing the config");
        self.server = server.to_owned();
    }

    /// A `worldline` command as this user.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(WORLDLINE);
        command
            .args(args)
            .env("WORLDLINE_SERVER", &self.server)
            .env("WORLDLINE_CONFIG", &self.config)
            .stdin(Stdio::null());
        command
    }

    /// Runs a command to its end.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args)
            .output()
            .expect("running worldline")
            .into()
    }

    /// Runs a command that must succeed, returning its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            run.success,
            "worldline {args:?} failed\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        run.stdout
    }

    /// Runs a command that must fail, returning its standard error, which
    /// must say what went wrong. A hint follows where there is a next step
    /// (a refusal the server gives no hint for, such as a reducer's own
    /// error, gets none rather than the command's usage).
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert!(
            !run.success,
            "worldline {args:?} succeeded but should have failed\nstdout: {}",
            run.stdout
        );
        assert!(
            run.stderr.contains("error: "),
            "every failure says what went wrong: {}",
            run.stderr
        );
        run.stderr
    }

    /// Starts a long-running command (such as `subscribe`), reading its
    /// standard output line by line.
    pub fn spawn(&self, args: &[&str]) -> Streaming {
        self.spawn_with(args, Stdio::inherit())
    }

    /// Like [`spawn`](Self::spawn), keeping the command's standard error
    /// for [`Streaming::exit_within`].
    pub fn spawn_reading_stderr(&self, args: &[&str]) -> Streaming {
        self.spawn_with(args, Stdio::piped())
    }

    fn spawn_with(&self, args: &[&str], stderr: Stdio) -> Streaming {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("running worldline");
        let stderr = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
                text
            })
        });
        let stdout: ChildStdout = child.stdout.take().expect("piped");
        let (lines, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming {
            child,
            lines: receiver,
            stderr,
        }
    }
}

/// A running command whose output lines arrive as it prints them.
pub struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Reads the standard error of a command started with
    /// [`User::spawn_reading_stderr`].
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Streaming {
    /// The next line, waiting up to 30 s.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a line within 30 s")
    }

    /// The next line if one comes within `wait`.
    pub fn line_within(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Reads lines until one contains `text`, returning every line read.
    pub fn until(&self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.next_line();
            let found = line.contains(text);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }

    /// Waits up to `wait` for a command started with
    /// [`User::spawn_reading_stderr`] to exit on its own (panics if it does
    /// not), returning whether it succeeded and its standard error.
    pub fn exit_within(mut self, wait: Duration) -> (bool, String) {
        let deadline = std::time::Instant::now() + wait;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("checking on worldline") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the command did not exit within {wait:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = self.stderr.take().expect("started reading its stderr");
        (status.success(), stderr.join().expect("reading stderr"))
    }

    /// Waits for the command to exit, returning whether it succeeded and
    /// the lines it printed that were not read yet.
    pub fn finish(mut self) -> (bool, Vec<String>) {
        let status = self.child.wait().expect("waiting for worldline");
        (status.success(), self.lines.iter().collect())
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a guest component the tests crate built.
pub fn component(name: &str) -> String {
    worldline_tests::guest_path(name).display().to_string()
}

/// A plain HTTP server on loopback that answers every request with
/// `answer` (a whole HTTP response) and closes; returns its address. It
/// reads each request's whole head first, so that closing leaves no unread
/// request bytes (which would reset the connection under the answer), and
/// writes the answer in one piece.
pub fn fixed_answer_server(answer: String) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let address = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    address
}
