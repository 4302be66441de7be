//! `worldline start` as a real process on a real data directory.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};

use worldline_host::{CallContext, Host, HostConfig};
use worldline_tests::{OWNER, TempDir, args, guest_wasm};

use support::WORLDLINE;

/// Starts `worldline start --data-dir DIR` and returns it with the lines it
/// printed up to and including the one that says it is ready.
fn start(dir: &std::path::Path) -> (Child, Vec<String>) {
    let mut child = support::start_command(dir)
        .spawn()
        .expect("running worldline");
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.expect("reading stdout");
        let ready = line.starts_with("worldline: ready");
        lines.push(line);
        if ready {
            return (child, lines);
        }
    }
    let output = child.wait_with_output().expect("waiting");
    panic!(
        "worldline start exited before it was ready: {lines:?}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn start_recovers_published_databases_and_holds_the_directory() {
    let dir = TempDir::new("worldline-cli-start");
    {
        let mut host = Host::open(dir.path(), HostConfig::default()).unwrap();
        host.publish("bank", &guest_wasm("bank"), OWNER)
            .unwrap()
            .call_reducer("seed", &args(&(5u32, 10i64)), CallContext::new(OWNER))
            .unwrap();
    }
    let (mut server, lines) = start(dir.path());
    let text = lines.join("\n");
    assert!(text.contains("recovered database bank"), "{text}");
    assert!(text.contains("1 transaction replayed"), "{text}");
    assert!(text.contains("1 database ready"), "{text}");
    assert!(
        text.contains("HTTP and WebSocket on http://127.0.0.1:"),
        "{text}"
    );
    let fingerprint = text
        .split("certificate SHA-256 fingerprint ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default();
    assert_eq!(fingerprint.len(), 64, "{text}");

    let second = Command::new(WORLDLINE)
        .args(["start", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("running a second worldline");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another Worldline server"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");

    server.kill().unwrap();
    server.wait().unwrap();
    // Once the server is gone the directory opens again, data intact.
    let host = Host::open(dir.path(), HostConfig::default()).unwrap();
    assert_eq!(
        host.database("bank")
            .unwrap()
            .rows("account")
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn a_bad_durability_policy_is_a_usage_error() {
    let output = Command::new(WORLDLINE)
        .args(["start", "--durability", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a durability policy"));
}

// SIGTERM (what `kill`, systemd and container runtimes send) stopped the
// server at once with 143; it now shuts down cleanly like Ctrl-C.
#[test]
fn sigterm_shuts_down_cleanly_like_ctrl_c() {
    let dir = TempDir::new("worldline-cli-sigterm");
    let mut child = support::start_command(dir.path())
        .spawn()
        .expect("running worldline");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map(|line| line.expect("reading stdout"))
        .find(|line| line.starts_with("worldline: ready"));
    assert!(ready.is_some_and(|line| line.contains("SIGTERM")));
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: a plain system call on the server's own process id.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert_eq!(rest, ["worldline: shutting down (SIGTERM)"]);
    // The data directory's lock was released: it opens again.
    Host::open(dir.path(), HostConfig::default()).unwrap();
}

// Zeros and absurd durability intervals were accepted silently (a zero
// instance pool still published, zero connections refused every session).
#[test]
fn nonsense_limits_are_usage_errors() {
    let cases: [(&[&str], &str); 10] = [
        (
            &["--allow-origin", "app.example.com"],
            "is not a web origin",
        ),
        (
            &["--allow-origin", "https://app.example.com/path"],
            "no path",
        ),
        (&["--max-instances", "0"], "1.."),
        (&["--max-connections-per-ip", "0"], "1.."),
        (&["--max-connections", "0"], "1.."),
        (&["--max-outgoing-bytes", "67108863"], "67108864.."),
        (&["--snapshot-every", "0"], "1.."),
        (&["--durability", "0ms"], "use `1ms` to `10000ms`"),
        (
            &["--durability", "99999999999999ms"],
            "use `1ms` to `10000ms`",
        ),
        (
            &["--durability", "10001ms"],
            "too long a durability interval",
        ),
    ];
    for (options, says) in cases {
        let output = Command::new(WORLDLINE)
            .arg("start")
            .args(options)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{options:?}: {stderr}");
        assert!(stderr.contains(says), "{options:?}: {stderr}");
    }
}

// README "worldline start": `--allow-origin` lets pages of that origin read
// the HTTP API's answers (the server's CORS behaviour itself is checked in
// the workspace tests).
#[test]
fn allow_origin_reaches_the_server() {
    use std::io::{Read, Write};
    let server = support::ServerProcess::start_in_with(
        TempDir::new("worldline-cors"),
        &["--allow-origin", "https://app.example.com"],
    );
    let address = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(
            b"OPTIONS /v1/database HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\n\
              Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: https://app.example.com"),
        "{answer}"
    );
    assert!(server.interrupt());
}

// README "worldline start": with `--publisher`, only the identities named
// create databases; anyone else is told who may, and an owner still
// updates what it owns. The operator's flow: start once, make an identity,
// restart with it named.
#[test]
fn only_the_named_publishers_create_databases() {
    let server = support::ServerProcess::start();
    let mut operator = support::User::new(&server.url);
    operator.ok(&["identity", "new"]);
    let identities = operator.ok(&["identity", "list", "--json"]);
    let identities: serde_json::Value = serde_json::from_str(&identities).unwrap();
    let publisher = identities[0]["identity"].as_str().unwrap().to_owned();
    let server = support::ServerProcess::start_in_with(server.stop(), &["--publisher", &publisher]);
    operator.moved_to(&server.url);
    operator.ok(&["publish", "chat", "--wasm", &support::component("chat")]);

    let stranger = support::User::new(&server.url);
    let refused = stranger.fails(&["publish", "bank", "--wasm", &support::component("bank")]);
    assert!(
        refused.contains(
            "no database is named `bank`, and only this server's publishers may \
                          create one: identity"
        ) && refused.contains("--publisher"),
        "{refused}"
    );
    let refused = stranger.fails(&["publish", "chat", "--wasm", &support::component("chat")]);
    assert!(
        refused.contains("only the owner of database `chat`"),
        "{refused}"
    );
    let updated = operator.ok(&["publish", "chat", "--wasm", &support::component("chat")]);
    assert!(!updated.contains("Created"), "{updated}");
    assert!(stranger.ok(&["list"]).contains("chat"));
    assert!(!stranger.ok(&["list"]).contains("bank"));

    let output = Command::new(WORLDLINE)
        .args(["start", "--publisher", "abc"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is not an identity: 64 hex digits"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
