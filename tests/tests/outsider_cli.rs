//! The `worldline` command line as a newcomer at a terminal uses it: the
//! real binary against a real server, with the mistakes people make.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use worldline_tests::TempDir;
use worldline_tests::guest_path;
use worldline_tests::process::{ServerProcess, worldline_binary};

/// One user's `worldline` command line: a config file of their own, and
/// nothing from the environment of whoever runs the tests.
struct Cli {
    config: PathBuf,
}

/// What a command did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Ran {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// Panics unless the command exited 0.
    fn ok(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "the command failed:\n{}{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command failed as an error (exit 1), with an
    /// `error:` line and no panic.
    fn failed(self) -> Self {
        assert_eq!(
            self.code,
            Some(1),
            "expected an error (exit 1):\n{}{}",
            self.stdout,
            self.stderr
        );
        assert!(self.stderr.contains("error: "), "{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

impl Cli {
    /// A user whose config file is `config.toml` in `home`.
    fn new(home: &Path) -> Self {
        Self {
            config: home.join("config.toml"),
        }
    }

    /// The command `worldline ARGS...` in `cwd`, its output captured.
    fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(worldline_binary());
        command
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .current_dir(cwd)
            .env_remove("WORLDLINE_SERVER")
            .env_remove("WORLDLINE_CONFIG")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// `worldline ARGS...` in `cwd`.
    fn run_in(&self, cwd: &Path, args: &[&str]) -> Ran {
        let output = self.command(cwd, args).output().expect("running worldline");
        Ran::from(output)
    }

    /// `worldline ARGS...` in the config file's directory.
    fn run(&self, args: &[&str]) -> Ran {
        self.run_in(self.config.parent().expect("a directory"), args)
    }
}

/// `--server HTTP://127.0.0.1:PORT/` is the server `http://127.0.0.1:PORT`:
/// URLs compare scheme and host without regard to case, so the user's
/// identity there is used, not a new one that does not own their database.
#[test]
fn a_server_url_written_in_another_case_keeps_the_users_identity() {
    let data = TempDir::new("outsider-cli-case-data");
    let home = TempDir::new("outsider-cli-case-home");
    let server = ServerProcess::start(data.path());
    let cli = Cli::new(home.path());
    let bank = guest_path("bank");
    let bank = bank.to_str().expect("a UTF-8 path");

    cli.run(&["publish", "bank", "--wasm", bank, "--server", &server.http])
        .ok();
    let shouted = format!("{}/", server.http.replacen("http://", "HTTP://", 1));
    // Publishing again is a hot swap by the owner; a second identity
    // would be refused as not the owner.
    cli.run(&["publish", "bank", "--wasm", bank, "--server", &shouted])
        .ok();
    cli.run(&["call", "bank", "seed", "3", "100", "--server", &shouted])
        .ok();

    let listed = cli.run(&["identity", "list", "--json"]).ok();
    let listed: Value = serde_json::from_str(&listed.stdout).expect("JSON");
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 1, "one identity for one server: {listed:?}");
}

/// The "next steps" `worldline init` prints are commands to paste into a
/// shell; a project directory with a space or a quote in its name is
/// quoted, so that `cd` lands in it.
#[test]
fn init_next_steps_cd_into_a_directory_with_spaces_and_quotes() {
    let home = TempDir::new("outsider-cli-init");
    let cli = Cli::new(home.path());
    for dir in ["my notes", "it's mine"] {
        let ran = cli
            .run_in(home.path(), &["init", dir, "--lang", "rust"])
            .ok();
        let cd = ran
            .stdout
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with("cd "))
            .unwrap_or_else(|| panic!("no `cd` step in:\n{}", ran.stdout));
        let pasted = Command::new("sh")
            .arg("-c")
            .arg(format!("{cd} && pwd"))
            .current_dir(home.path())
            .output()
            .expect("running sh");
        assert!(
            pasted.status.success(),
            "`{cd}` failed: {}",
            String::from_utf8_lossy(&pasted.stderr)
        );
        let landed = String::from_utf8_lossy(&pasted.stdout);
        assert_eq!(
            Path::new(landed.trim()),
            home.path().join(dir).canonicalize().expect("the project"),
            "`{cd}` went elsewhere"
        );
    }
}

/// `worldline start --listen` with an IP address this machine does not
/// have says so, instead of asking whether another server runs there.
#[test]
fn start_on_an_address_that_is_not_this_machines_says_so() {
    let home = TempDir::new("outsider-cli-listen");
    let cli = Cli::new(home.path());
    let data = home.path().join("data");
    let data = data.to_str().expect("a UTF-8 path");
    // 192.0.2.1 is reserved for documentation: no machine has it.
    for (http, quic) in [
        ("192.0.2.1:0", "127.0.0.1:0"),
        ("127.0.0.1:0", "192.0.2.1:0"),
    ] {
        let ran = cli
            .run(&[
                "start",
                "--data-dir",
                data,
                "--listen",
                http,
                "--quic-listen",
                quic,
            ])
            .failed();
        assert!(
            ran.stderr.contains("cannot listen on 192.0.2.1"),
            "{}",
            ran.stderr
        );
        assert!(
            ran.stderr.contains("not one of this machine's"),
            "{}",
            ran.stderr
        );
        assert!(!ran.stderr.contains("another server"), "{}", ran.stderr);
        assert!(
            !ran.stderr.contains("stop whatever uses the port"),
            "{}",
            ran.stderr
        );
    }
}

/// A server that accepts connections but never answers (a stopped
/// process's port still accepts them): commands report that it does not
/// answer, instead of waiting forever.
#[test]
fn a_server_that_accepts_but_never_answers_is_reported_not_waited_on() {
    let home = TempDir::new("outsider-cli-mute");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
    let server = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || {
        // Hold every connection open, read nothing, answer nothing.
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let commands: [&[&str]; 2] = [
        &["list"],
        &["subscribe", "chat", "SELECT * FROM message", "-n", "0"],
    ];
    let cli = Cli::new(home.path());
    let mut children: Vec<_> = commands
        .into_iter()
        .map(|args| {
            cli.command(home.path(), args)
                .args(["--server", &server])
                .spawn()
                .expect("running worldline")
        })
        .collect();
    // Far longer than the command may wait: past it, it waits forever.
    let give_up = Instant::now() + Duration::from_secs(300);
    while children
        .iter_mut()
        .any(|child| child.try_wait().expect("waiting").is_none())
    {
        if Instant::now() > give_up {
            for child in &mut children {
                let _ = child.kill();
            }
            panic!("a command still waits for an answer after 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let runs = children
        .into_iter()
        .map(|child| Ran::from(child.wait_with_output().expect("its output")));
    for ran in runs {
        let ran = ran.failed();
        assert!(
            ran.stderr
                .contains("accepted the connection but did not answer"),
            "{}",
            ran.stderr
        );
    }
}

/// `--config` naming a symbolic link (a config kept with one's dotfiles)
/// writes the file it points to and keeps the link; one pointing at
/// something that is not a regular file, such as `/dev/null`, is refused
/// before any identity is created, never replaced by a file holding a
/// token.
#[test]
fn a_config_behind_a_symbolic_link_is_written_through_it_and_a_device_is_refused() {
    use std::os::unix::fs::{FileTypeExt, symlink};

    let data = TempDir::new("outsider-cli-link-data");
    let home = TempDir::new("outsider-cli-link-home");
    let server = ServerProcess::start(data.path());

    let kept = home.path().join("dotfiles-worldline.toml");
    std::fs::write(&kept, "").expect("writing the kept file");
    symlink(&kept, home.path().join("config.toml")).expect("linking");
    let cli = Cli::new(home.path());
    cli.run(&["identity", "new", "--server", &server.http]).ok();
    let link = std::fs::symlink_metadata(&cli.config).expect("the link");
    assert!(link.file_type().is_symlink(), "the link was replaced");
    let saved = std::fs::read_to_string(&kept).expect("the kept file");
    assert!(
        saved.contains("token"),
        "nothing saved through the link: {saved:?}"
    );

    // A link to a file not made yet (relative, as dotfile managers make
    // them): the file is made where it points, and the link stays.
    let fresh = TempDir::new("outsider-cli-link-dangling");
    std::fs::create_dir(fresh.path().join("dotfiles")).expect("a directory");
    symlink("dotfiles/worldline.toml", fresh.path().join("config.toml")).expect("linking");
    let cli = Cli::new(fresh.path());
    cli.run(&["identity", "new", "--server", &server.http]).ok();
    let link = std::fs::symlink_metadata(&cli.config).expect("the link");
    assert!(
        link.file_type().is_symlink(),
        "the dangling link was replaced"
    );
    let saved = std::fs::read_to_string(fresh.path().join("dotfiles/worldline.toml"))
        .expect("the file the link points to");
    assert!(saved.contains("token"), "{saved:?}");

    let nowhere = TempDir::new("outsider-cli-link-null");
    symlink("/dev/null", nowhere.path().join("config.toml")).expect("linking");
    let cli = Cli::new(nowhere.path());
    let ran = cli
        .run(&["identity", "new", "--server", &server.http])
        .failed();
    assert!(ran.stderr.contains("not a regular file"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("no identity was created"),
        "{}",
        ran.stderr
    );
    let link = std::fs::symlink_metadata(&cli.config).expect("the link");
    assert!(link.file_type().is_symlink(), "the link was replaced");
    let null = std::fs::metadata("/dev/null").expect("/dev/null");
    assert!(null.file_type().is_char_device(), "/dev/null was replaced");
}

/// `subscribe --timeout` with more seconds than it takes says the number is
/// too long, not that it is not a number.
#[test]
fn subscribe_timeout_too_long_is_called_too_long() {
    let home = TempDir::new("outsider-cli-timeout");
    let cli = Cli::new(home.path());
    for timeout in ["1e12", "--timeout=-1"] {
        let mut args = vec!["subscribe", "chat", "SELECT * FROM message"];
        if timeout.starts_with("--") {
            args.push(timeout);
        } else {
            args.extend(["--timeout", timeout]);
        }
        let ran = cli.run(&args);
        assert_eq!(ran.code, Some(2), "a usage error: {}", ran.stderr);
        assert!(!ran.stderr.contains("not a number"), "{}", ran.stderr);
        let wanted = if timeout == "1e12" {
            "too long: at most 1000000000"
        } else {
            "is negative"
        };
        assert!(ran.stderr.contains(wanted), "{}", ran.stderr);
    }
}

/// The WebSocket URL the server prints for clients, given as `--server`,
/// is named as the wrong kind of address, with the HTTP one to use
/// instead, not reported as a server that cannot be reached.
#[test]
fn a_websocket_url_as_server_names_the_http_address_to_use() {
    let data = TempDir::new("outsider-cli-ws-data");
    let home = TempDir::new("outsider-cli-ws-home");
    let server = ServerProcess::start(data.path());
    let cli = Cli::new(home.path());
    let ran = cli.run(&["list", "--server", &server.ws_url()]).failed();
    assert!(ran.stderr.contains("is a WebSocket URL"), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains(&format!("pass --server {}", server.http)),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("start a server"), "{}", ran.stderr);
    // The address it names works.
    cli.run(&["list", "--server", &server.http]).ok();
}

/// `logs -f` whose database is deleted under it fails with a next step
/// that helps (see whether it is still there), not a pointer to `--help`.
#[test]
fn logs_follow_ended_by_a_deleted_database_points_at_list() {
    use std::io::{BufRead, BufReader};

    let data = TempDir::new("outsider-cli-logs-data");
    let home = TempDir::new("outsider-cli-logs-home");
    let server = ServerProcess::start(data.path());
    let cli = Cli::new(home.path());
    let chat = guest_path("chat");
    let chat = chat.to_str().expect("a UTF-8 path");
    let on = ["--server", server.http.as_str()];
    cli.run(&[&["publish", "chat", "--wasm", chat][..], &on].concat())
        .ok();
    cli.run(&[&["call", "chat", "send_message", "hello"][..], &on].concat())
        .ok();

    let mut follow = cli
        .command(home.path(), &[&["logs", "chat", "-f"][..], &on].concat())
        .spawn()
        .expect("running worldline logs");
    let mut lines = BufReader::new(follow.stdout.take().expect("piped")).lines();
    // The log so far arrives first: from then on the log is followed.
    let first = lines.next().expect("a line").expect("reading it");
    assert!(first.contains("message 1"), "{first}");
    cli.run(&[&["delete", "chat", "-y"][..], &on].concat()).ok();

    let ran = Ran::from(follow.wait_with_output().expect("its output")).failed();
    assert!(
        ran.stderr.contains("the server ended the log"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("`worldline list`"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("--help"), "{}", ran.stderr);
}

/// A config file that is not valid TOML is named, with the next step (fix
/// it, or use another), not a pointer to the command's `--help`.
#[test]
fn an_invalid_config_file_hints_at_fixing_it_not_at_help() {
    let home = TempDir::new("outsider-cli-bad-config");
    let cli = Cli::new(home.path());
    std::fs::write(&cli.config, "default_server = [[[\n").expect("writing the config");
    for command in [&["list"][..], &["identity", "list"]] {
        let ran = cli.run(command).failed();
        assert!(
            ran.stderr.contains("config.toml is not valid"),
            "{}",
            ran.stderr
        );
        assert!(ran.stderr.contains("hint: fix "), "{}", ran.stderr);
        assert!(!ran.stderr.contains("--help"), "{}", ran.stderr);
    }
}

/// `publish --wasm` with a path that is not there says what to pass, not
/// to read `--help`; nothing is asked of the server.
#[test]
fn publish_of_a_missing_wasm_file_says_what_to_pass() {
    let home = TempDir::new("outsider-cli-missing-wasm");
    let cli = Cli::new(home.path());
    let ran = cli
        .run(&["publish", "notes", "--wasm", "not-built-yet.wasm"])
        .failed();
    assert!(
        ran.stderr.contains("reading not-built-yet.wasm"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("--project-path DIR"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("--help"), "{}", ran.stderr);
    assert!(!cli.config.exists(), "an identity was asked for");
}

/// `--config` naming a pipe (a FIFO) is refused at once: reading it waited
/// for a writer, and the command hung with no word. A device that never
/// ends (`/dev/zero`) is refused too, not read into memory without end.
#[test]
fn a_config_that_is_a_pipe_or_endless_is_refused_not_waited_on() {
    let home = TempDir::new("outsider-cli-fifo");
    let cli = Cli::new(home.path());
    let made = Command::new("mkfifo")
        .arg(&cli.config)
        .status()
        .expect("running mkfifo");
    assert!(made.success(), "mkfifo failed");
    let endless = Cli {
        config: PathBuf::from("/dev/zero"),
    };
    for (cli, expected) in [
        (&cli, "it is a pipe or a socket, not a config file"),
        (&endless, "bytes, which no config file is"),
    ] {
        let mut child = cli
            .command(home.path(), &["list"])
            .spawn()
            .expect("running worldline");
        let started = Instant::now();
        while child.try_wait().expect("waiting").is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("`worldline list --config {}` hung", cli.config.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let ran = Ran::from(child.wait_with_output().expect("the output")).failed();
        assert!(ran.stderr.contains(expected), "{}", ran.stderr);
    }
}
