//! What an outside operator found trying the CLI from the README alone:
//! each test pins the behaviour that was fixed.

mod support;

use support::{ServerProcess, User, component};
use worldline_tests::TempDir;

// Success was printed before the save, and the issued identity was lost.
#[test]
fn an_identity_that_cannot_be_saved_is_not_announced() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    // Reads as an empty config (it does not exist); cannot be created.
    let config = "/proc/nonexistent/config.toml";
    for args in [
        vec!["publish", "chat", "--wasm", &component("chat")],
        vec!["identity", "new"],
    ] {
        let mut args = args.clone();
        args.extend(["--config", config]);
        let stderr = alice.fails(&args);
        assert!(!stderr.contains("Created identity"), "{stderr}");
        assert!(
            stderr.contains("cannot write the configuration file")
                && stderr.contains(config)
                && stderr.contains("no identity was created"),
            "{stderr}"
        );
    }
    // Nothing was published as an identity nobody holds.
    assert!(!alice.ok(&["list"]).contains("chat"));
}

// After the server's signing key changed, the hint to a refused token
// named `identity new`, which does not replace the default identity.
#[test]
fn a_refused_token_hints_at_a_new_default_identity() {
    let first = ServerProcess::start();
    let mut alice = User::new(&first.url);
    alice.ok(&["identity", "new"]);
    drop(first);
    // Another data directory: another signing key.
    let second = ServerProcess::start();
    alice.moved_to(&second.url);
    User::new(&second.url).ok(&["publish", "bank", "--wasm", &component("bank")]);
    let stderr = alice.fails(&["call", "bank", "noop"]);
    assert!(stderr.contains("token"), "{stderr}");
    assert!(
        stderr.contains("hint: create a new identity and make it the default with `worldline identity new --default`"),
        "{stderr}"
    );
    alice.ok(&["identity", "new", "--default"]);
    alice.ok(&["call", "bank", "noop"]);
}

// With `WORLDLINE_SERVER` exported, `bench` ran against that server and
// replaced its database `bench`: only `--server` on the bench command line
// may send a benchmark to an existing server.
#[test]
fn bench_ignores_worldline_server_from_the_environment() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    let run = alice.run(&[
        "bench",
        "rtt",
        "--calls",
        "20",
        "--warmup-calls",
        "2",
        "--protocol",
        "ws",
        "--durability",
        "none",
        "--wasm",
        &component("bank"),
    ]);
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("n/a (--server)"), "{}", run.stdout);
    assert!(run.stdout.contains("none"), "{}", run.stdout);
    let listed = alice.ok(&["list", "--json"]);
    assert!(!listed.contains("\"bench\""), "{listed}");
}

// A text file, an empty file or a core module given as `--wasm` got the
// component parser's Debug output (`expected=[\n 0x0,\n 0x61, ...]`),
// after the upload; they are refused before it, saying what the file is.
#[test]
fn a_file_that_is_not_a_component_is_refused_before_upload() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    let dir = TempDir::new("worldline-cli-not-wasm");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let text = write("text.wasm", b"this is text, not wasm\n");
    let empty = write("empty.wasm", b"");
    let core = write("core.wasm", b"\0asm\x01\0\0\0");
    let cases = [
        (
            &text,
            "is not a WebAssembly component: it does not start with the wasm magic bytes",
        ),
        (&empty, "is empty"),
        (&core, "is a core WebAssembly module, not a component"),
    ];
    for (file, says) in cases {
        let stderr = alice.fails(&["publish", "db", "--wasm", file]);
        assert!(stderr.contains(&format!("{file} {says}")), "{stderr}");
        assert!(
            !stderr.contains("Uploading") && !stderr.contains("expected="),
            "{stderr}"
        );
        assert_eq!(
            stderr.lines().count(),
            2,
            "one error line, one hint: {stderr}"
        );
        let out = dir.path().join("bindings").display().to_string();
        let stderr = alice.fails(&[
            "generate",
            "--lang",
            "rust",
            "--out-dir",
            &out,
            "--wasm",
            file,
        ]);
        assert!(stderr.contains(&format!("{file} {says}")), "{stderr}");
    }
    let stderr = alice.fails(&["publish", "db", "--wasm", &core]);
    assert!(
        stderr.contains("wasm32-wasip2") && stderr.contains("wasm-tools component new"),
        "{stderr}"
    );
    // Nothing was uploaded, so no identity was needed either.
    assert!(!stderr.contains("Created identity"), "{stderr}");
}

// `bench transfer` with a module that is not the bank printed
// `Failed("no reducer named `seed`")`.
#[test]
fn bench_with_another_module_says_it_needs_the_bank() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    let stderr = alice.fails(&[
        "bench",
        "transfer",
        "--protocol",
        "ws",
        "--durability",
        "none",
        "--accounts",
        "10",
        "--warmup",
        "0",
        "--duration",
        "1",
        "--wasm",
        &component("features"),
    ]);
    assert!(
        stderr.contains("seeding 10 accounts failed: no reducer named `seed`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Failed(") && stderr.contains("bank"),
        "{stderr}"
    );
}

/// A one-thread HTTP server that answers every request with `status`, a
/// `text/html` content type and `body`; returns its URL.
fn foreign_http_server(status: &'static str, body: &'static str) -> String {
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    format!("http://{}", support::fixed_answer_server(answer))
}

// A publish whose answer was lost to a crash (an outsider killed the
// server mid-swap) said only that the server could not be reached, and
// hinted at starting one; the swap had been applied.
#[test]
fn a_request_whose_answer_is_lost_says_it_may_have_been_done() {
    let url = format!("http://{}", support::fixed_answer_server(String::new()));
    let stderr = User::new(&url).fails(&["call", "bank", "transfer", "0", "1", "5"]);
    assert!(
        stderr.contains(&format!(
            "the connection to the Worldline server at {url} dropped before it answered"
        )) && stderr.contains("what was asked may or may not have been done"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: check before retrying"), "{stderr}");
}

// Another HTTP server's error page was dumped whole into the error (or
// nothing, for an empty body).
#[test]
fn a_server_that_is_not_worldline_is_named_as_such() {
    let page = "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n\x1b[31m<title>Error response</title>\
                </head><body><h1>Error response</h1><p>Error code: 404</p><p>Message: File \
                not found.</p></body></html>\n";
    let url = foreign_http_server("404 File not found", page);
    let stderr = User::new(&url).fails(&["list"]);
    assert!(
        stderr.contains(&format!(
            "error: the server at {url} does not look like a Worldline server: it answered 404 \
             (text/html), starting `<!DOCTYPE HTML> <html lang=\"en\"> <head> \\e[31m<title>"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("File not found.</p>"),
        "cut to 100 characters: {stderr}"
    );
    assert!(!stderr.contains('\x1b'), "{stderr}");
    assert!(
        stderr.contains("hint: check --server (or WORLDLINE_SERVER, or `default_server`"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");

    let url = foreign_http_server("404 Not Found", "");
    let stderr = User::new(&url).fails(&["list"]);
    assert!(
        stderr.contains(
            "does not look like a Worldline server: it answered 404 (text/html), with an empty body"
        ),
        "{stderr}"
    );
}

// Over QUIC a server's shutdown read `connection lost`, and both
// transports hinted that the database might be gone.
#[test]
fn a_subscriber_hears_that_the_server_is_shutting_down() {
    for protocol in ["quic", "ws"] {
        let server = ServerProcess::start();
        let alice = User::new(&server.url);
        alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
        let (subscriber, _stdout) = json_subscriber(&alice, &["--protocol", protocol]);
        assert!(server.interrupt(), "the server shuts down cleanly");
        let output = subscriber.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{protocol}: {stderr}");
        assert!(
            stderr.contains("the server closed the connection: the server is shutting down"),
            "{protocol}: {stderr}"
        );
        assert!(
            stderr.contains("hint: the server stopped")
                && !stderr.contains("database still exists"),
            "{protocol}: {stderr}"
        );
    }
}

/// Starts `subscribe chat "SELECT * FROM message" --json` with `options`,
/// its output and errors piped, and reads its first line: the initial rows.
fn json_subscriber(
    user: &User,
    options: &[&str],
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
) {
    let mut args = vec!["subscribe", "chat", "SELECT * FROM message", "--json"];
    args.extend(options);
    let mut subscriber = user
        .command(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(subscriber.stdout.take().unwrap());
    let mut initial = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut initial).unwrap();
    assert!(initial.contains("\"initial\""), "{initial}");
    (subscriber, stdout)
}

// `worldline subscribe ... | head -1` (or `sql --json | head`) panicked with
// "failed printing to stdout: Broken pipe" once the reader had gone.
#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    let (subscriber, stdout) = json_subscriber(&alice, &[]);
    // Like `head -1` exiting: the next line has nowhere to go.
    drop(stdout);
    alice.ok(&["call", "chat", "send_message", "hello"]);
    let output = subscriber.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// "the subscription was refused: subscription refused: ..." said it twice,
// and a private table's refusal pointed to PROTOCOL.md.
#[test]
fn a_refused_subscription_says_so_once_with_a_hint_that_fits() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "features", "--wasm", &component("features")]);
    let bob = User::new(&server.url);
    let stderr = bob.fails(&[
        "subscribe",
        "features",
        "SELECT * FROM observation",
        "--timeout",
        "5",
    ]);
    assert!(
        stderr.contains("error: the subscription was refused: SELECT * FROM observation: table `observation` is private"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("refused").count(), 1, "{stderr}");
    assert!(
        stderr.contains("hint: only the database's owner may read a private table"),
        "{stderr}"
    );
    let stderr = bob.fails(&["subscribe", "features", "SELECT nonsense", "--timeout", "5"]);
    assert_eq!(stderr.matches("refused").count(), 1, "{stderr}");
    assert!(stderr.contains("PROTOCOL.md"), "{stderr}");
}

// `--timeout 0` and `-n 0` printed nothing, not even the initial rows;
// `--fingerprint` was ignored over WebSocket, and a malformed one was not
// a usage error.
#[test]
fn subscribe_prints_the_initial_rows_however_short_it_runs() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    alice.ok(&["call", "chat", "send_message", "hello"]);
    for limit in [["--timeout", "0"], ["-n", "0"]] {
        let mut args = vec!["subscribe", "chat", "SELECT * FROM message"];
        args.extend(limit);
        let stdout = alice.ok(&args);
        assert!(stdout.contains("[initial] message:"), "{limit:?}: {stdout}");
        assert!(stdout.contains("hello"), "{limit:?}: {stdout}");
    }
    let fingerprint = "ab".repeat(32);
    let cases: [&[&str]; 4] = [
        &["--fingerprint", &fingerprint],
        &["--protocol", "ws", "--fingerprint", &fingerprint],
        &["--protocol", "quic", "--fingerprint", "xyz"],
        &["--timeout", "-1"],
    ];
    for options in cases {
        let mut args = vec!["subscribe", "chat", "SELECT * FROM message"];
        args.extend(options);
        let output = alice.command(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{options:?}: {stderr}");
        assert!(stderr.contains("error: "), "{options:?}: {stderr}");
    }
}

// Small things an operator tripped over: an empty identity prefix, a
// confirmation without a terminal (and none asked for when there is
// nothing to delete), a project path that does not exist,
// `--listen localhost:PORT`.
#[test]
fn small_messages_say_what_is_wrong() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["identity", "new"]);
    alice.ok(&["identity", "new"]);
    let stderr = alice.fails(&["identity", "set-default", ""]);
    assert!(stderr.contains("prefix is empty"), "{stderr}");

    alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    let stderr = alice.fails(&["delete", "chat"]);
    assert!(stderr.contains("no terminal"), "{stderr}");
    assert!(
        stderr.contains("pass --yes to go ahead without asking"),
        "{stderr}"
    );
    assert!(!stderr.contains("Continue?"), "{stderr}");
    assert!(alice.ok(&["list"]).contains("chat"));
    // --delete-data asks only when there is data to delete: a new
    // database is created without a terminal, an existing one is not
    // touched.
    let chat = component("chat");
    let stdout = alice.ok(&["publish", "fresh", "--wasm", &chat, "--delete-data"]);
    assert!(stdout.contains("Created database `fresh`"), "{stdout}");
    let stderr = alice.fails(&["publish", "fresh", "--wasm", &chat, "--delete-data"]);
    assert!(stderr.contains("no terminal"), "{stderr}");

    let stderr = alice.fails(&["publish", "x", "--project-path", "/nonexistent/project"]);
    assert!(
        stderr.contains("the project directory /nonexistent/project does not exist"),
        "{stderr}"
    );

    let lines = start_lines("localhost:0");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("HTTP and WebSocket on http://127.0.0.1:")),
        "{lines:?}"
    );
}

// `worldline.toml` named a build output the build does not write, and
// `start --help` offered --server and --config without saying they do
// nothing there.
#[test]
fn help_and_scaffold_say_what_is_true() {
    let dir = TempDir::new("worldline-cli-python-init");
    let project = dir.path().join("notes");
    let output = std::process::Command::new(support::WORLDLINE)
        .args(["init", project.to_str().unwrap(), "--lang", "python"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let toml = std::fs::read_to_string(project.join("worldline.toml")).unwrap();
    assert!(
        toml.contains("build/module.wasm") && !toml.contains("build/notes.wasm"),
        "{toml}"
    );

    for command in ["start", "init"] {
        let output = std::process::Command::new(support::WORLDLINE)
            .args([command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert_eq!(help.matches("not `start` or `init`").count(), 2, "{help}");
    }
}

/// The server's JSON error for publishing `body` as a new identity with
/// `?allow_http=LIST` (sent over plain HTTP, as no CLI check stands between).
fn server_refusal_of_allow_http(url: &str, list: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let identity: serde_json::Value = agent
        .post(format!("{url}/v1/identity"))
        .send_empty()
        .expect("the server answers")
        .body_mut()
        .read_json()
        .expect("a new identity");
    let token = identity["token"].as_str().expect("a token");
    let mut response = agent
        .post(format!("{url}/v1/database/refused"))
        .query("allow_http", list)
        .header("Authorization", format!("Bearer {token}"))
        .send(body)
        .expect("the server answers");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_json().expect("a JSON error"),
    )
}

// A bad `--allow-http` was refused by the server only once the whole
// component was uploaded; it is refused before the upload (before a build
// too), in the server's words.
#[test]
fn a_bad_allow_http_is_refused_before_upload_as_the_server_would() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    let chat = component("chat");
    for list in [
        "api.example.com,*.com",
        "http://example.com",
        "a.com,,b.com",
    ] {
        let stderr = alice.fails(&["publish", "chat", "--wasm", &chat, "--allow-http", list]);
        assert!(
            !stderr.contains("Uploading") && !stderr.contains("Created identity"),
            "{stderr}"
        );
        let (status, refusal) = server_refusal_of_allow_http(&server.url, list, b"\0asm");
        assert_eq!(status, 400, "{refusal}");
        let error = refusal["error"].as_str().expect("an error");
        let hint = refusal["hint"].as_str().expect("a hint");
        assert_eq!(
            stderr.trim_end(),
            format!("error: {error}\nhint: {hint}"),
            "the CLI says what the server says"
        );
    }
    // A project is not even built for a bad list.
    let stderr = alice.fails(&[
        "publish",
        "chat",
        "--project-path",
        "/nonexistent/project",
        "--allow-http",
        "*",
    ]);
    assert!(
        stderr.contains("`*` alone would allow every host") && !stderr.contains("nonexistent"),
        "{stderr}"
    );
    assert!(alice.fails(&["describe", "chat"]).contains("chat"));
}

// Entries the address guard refuses whatever the list says (loopback,
// private, the metadata address) were accepted silently: they are still
// stored, with a warning that the server will not connect to them.
#[test]
fn allow_http_entries_the_guard_refuses_are_warned_about() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    let list = "api.example.com,localhost:8080,127.0.0.1,169.254.169.254,10.0.0.1:443,[::1]";
    let run = alice.run(&[
        "publish",
        "chat",
        "--wasm",
        &component("chat"),
        "--allow-http",
        list,
    ]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stdout.contains("Created database `chat`"),
        "{}",
        run.stdout
    );
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("warning: "))
        .collect();
    let expected = [
        ("localhost:8080", "loopback"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "cloud metadata"),
        ("10.0.0.1:443", "private (RFC 1918)"),
        ("[::1]", "loopback"),
    ];
    assert_eq!(warnings.len(), expected.len(), "{}", run.stderr);
    for (warning, (entry, kind)) in warnings.iter().zip(expected) {
        assert!(
            warning.contains(&format!("entry `{entry}`"))
                && warning.contains(&format!(
                    "the server refuses connections to {kind} addresses"
                ))
                && warning.contains("--http-allow-private-address"),
            "{warning}"
        );
    }
    assert!(!run.stderr.contains("api.example.com"), "{}", run.stderr);
    assert!(!run.stderr.contains("error"), "{}", run.stderr);
    let described = alice.ok(&["describe", "chat"]);
    assert!(
        described.contains(&format!("HTTP allowed for procedures: {list}")),
        "{described}"
    );
}

// A component over the server's upload limit was uploaded until the
// server stopped reading, and the CLI could report `Broken pipe` instead
// of the server's 413: it is refused before the upload.
#[test]
fn a_component_over_the_upload_limit_is_refused_before_upload() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    let dir = TempDir::new("worldline-cli-too-large");
    let path = dir.path().join("huge.wasm");
    let limit = worldline_transport::http_api::MAX_COMPONENT_BYTES;
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.resize(limit + 1, 0);
    std::fs::write(&path, &bytes).unwrap();
    let file = path.display().to_string();
    let stderr = alice.fails(&["publish", "huge", "--wasm", &file]);
    assert!(
        stderr.contains(&format!(
            "{file} is {} bytes (64.0 MiB), larger than the 64 MiB the server accepts for a \
             component; nothing was uploaded",
            limit + 1
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(
        !stderr.contains("Uploading") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    // One byte less is uploaded (and refused by the server as no component).
    bytes.truncate(limit);
    std::fs::write(&path, &bytes).unwrap();
    let stderr = alice.fails(&["publish", "huge", "--wasm", &file]);
    assert!(stderr.contains("Uploading"), "{stderr}");
    assert!(!stderr.contains("larger than"), "{stderr}");
}

// A server started on every address (`--listen 0.0.0.0:PORT`) printed
// `clients connect to ws://0.0.0.0:PORT/v1/ws`, an address no client can
// connect to. It now says it listens on every address and names the
// loopback address for clients on the same machine.
#[test]
fn start_on_every_address_names_an_address_clients_can_use() {
    let lines = start_lines("0.0.0.0:0");
    let http = lines
        .iter()
        .find(|l| l.contains("HTTP and WebSocket on http://0.0.0.0:"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(http.contains("every address of this machine"), "{http}");
    assert!(http.contains("from this machine ws://127.0.0.1:"), "{http}");
    assert!(!http.contains("ws://0.0.0.0"), "{http}");
    let quic = lines
        .iter()
        .find(|l| l.contains("QUIC on 0.0.0.0:"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(quic.contains("every address of this machine"), "{quic}");
}

/// What `worldline start` prints before its ready line when it listens
/// (HTTP and QUIC) on `listen`; the server is then stopped.
fn start_lines(listen: &str) -> Vec<String> {
    let dir = TempDir::new("worldline-cli-start-lines");
    let mut child = std::process::Command::new(support::WORLDLINE)
        .args(["start", "--listen", listen, "--quic-listen", listen])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let lines = std::io::BufRead::lines(stdout)
        .map_while(Result::ok)
        .take_while(|l| !l.starts_with("worldline: ready"))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    lines
}

// `--http-allow-private-address` names one internal service: an
// unspecified address (through which a procedure reached a service
// listening only on loopback), port 0, a broadcast address or a public
// address is refused at start, naming the reason.
#[test]
fn a_private_address_override_must_name_one_internal_service() {
    let dir = TempDir::new("worldline-cli-private-override");
    for (address, reason) in [
        ("0.0.0.0:8080", "every address of this machine"),
        ("[::]:8080", "every address of this machine"),
        ("127.0.0.1:0", "port 0"),
        ("255.255.255.255:8080", "broadcast"),
        ("8.8.8.8:80", "not an internal address"),
        ("localhost:8080", "is not an IP:PORT"),
    ] {
        let output = std::process::Command::new(support::WORLDLINE)
            .args(["start", "--http-allow-private-address", address])
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{address}: {stderr}");
        assert!(stderr.contains(reason), "{address}: {stderr}");
    }
}
