//! How errors reach people and programs (#9 item 12): every HTTP error has
//! the JSON body HTTP_API.md promises (framework refusals included), a
//! private table is 403 for others, `worldline call` options are
//! recognised after the reducer's arguments, an OS error prints once, and
//! refusals carry a hint that says what to change.

mod support;

use support::{ServerProcess, User, component};
use worldline_tests::TempDir;
use worldline_transport::http_api::{ErrorBody, ServerInfo};

/// An HTTP request to the server: its status and body.
fn request(method: &str, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = match method {
        "GET" => agent.get(url).call(),
        "DELETE" => agent.delete(url).call(),
        _ => agent.post(url).send(body),
    }
    .expect("the server answers");
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_vec()
        .expect("reading the body");
    (status, body)
}

/// The JSON error body of a failed request.
fn error_body(status: u16, body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "status {status} without a JSON error body ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    })
}

// #9 item 12 (framework errors are JSON) and item 14 (max_frame_bytes)
#[test]
fn every_http_error_has_a_json_body() {
    let server = ServerProcess::start();
    let url = &server.url;
    let alice = User::new(url);
    alice.ok(&["publish", "bank", "--wasm", &component("bank")]);
    let cases: [(&str, String, Vec<u8>, u16, &str); 6] = [
        (
            "GET",
            format!("{url}/v1/nope"),
            vec![],
            404,
            "no such API route",
        ),
        (
            "DELETE",
            format!("{url}/v1/server"),
            vec![],
            405,
            "does not take DELETE",
        ),
        (
            "POST",
            format!("{url}/v1/database/bank/sql"),
            vec![0xff, 0xfe, b'x'],
            400,
            "UTF-8",
        ),
        (
            "GET",
            format!("{url}/v1/database/bank/logs?tail=many"),
            vec![],
            400,
            "tail",
        ),
        (
            "POST",
            format!("{url}/v1/database/bank/call/noop"),
            vec![b' '; (1 << 20) + 1],
            413,
            "larger than the 1048576 bytes",
        ),
        (
            "GET",
            format!("{url}/v1/database/nobody"),
            vec![],
            404,
            "no database named `nobody`",
        ),
    ];
    for (method, target, body, status, text) in cases {
        let (got, answer) = request(method, &target, &body);
        assert_eq!(got, status, "{method} {target}");
        let error = error_body(got, &answer);
        assert!(error.error.contains(text), "{method} {target}: {error:?}");
    }
    let (status, body) = request("GET", &format!("{url}/v1/server"), &[]);
    assert_eq!(status, 200);
    let info: ServerInfo = serde_json::from_slice(&body).unwrap();
    assert_eq!(info.max_frame_bytes, worldline_transport::DEFAULT_MAX_FRAME);
}

// #9 item 12
#[test]
fn a_private_table_is_forbidden_to_others() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "features", "--wasm", &component("features")]);
    alice.ok(&["sql", "features", "SELECT * FROM observation"]);
    let (status, body) = request(
        "POST",
        &format!("{}/v1/database/features/sql", server.url),
        b"SELECT * FROM observation",
    );
    assert_eq!(status, 403);
    let error = error_body(status, &body);
    assert!(error.error.contains("private"), "{error:?}");
}

// #9 item 12
#[test]
fn call_options_count_after_the_arguments() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "bank", "--wasm", &component("bank")]);
    alice.ok(&["call", "bank", "seed", "2", "10"]);
    // The environment points at no server; --server after the arguments wins.
    let run = |args: &[&str]| {
        let output = alice
            .command(args)
            .env("WORLDLINE_SERVER", "http://127.0.0.1:9")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = run(&[
        "call",
        "bank",
        "transfer",
        "0",
        "1",
        "3",
        "--server",
        &server.url,
        "--json",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.trim_start().starts_with('{'),
        "--json was honoured: {stdout}"
    );
    // A negative number is still an argument.
    let (ok, _, stderr) = run(&[
        "call",
        "bank",
        "transfer",
        "0",
        "1",
        "-5",
        "--server",
        &server.url,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("the amount must be positive, got -5"),
        "{stderr}"
    );
    // After `--`, everything is an argument: `--json` becomes a fourth argument.
    let (ok, _, stderr) = run(&[
        "call",
        "bank",
        "transfer",
        "--server",
        &server.url,
        "--",
        "0",
        "1",
        "3",
        "--json",
    ]);
    assert!(!ok);
    assert!(stderr.contains("invalid arguments"), "{stderr}");
    let rows = alice.ok(&["sql", "bank", "SELECT * FROM account WHERE id = 1"]);
    assert!(rows.contains("13"), "only the first transfer ran: {rows}");
}

// #9 item 12
#[test]
fn refusals_say_what_is_wrong_and_what_to_change() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    let dir = TempDir::new("worldline-truncated");
    let truncated = dir.path().join("chat.wasm");
    let bytes = std::fs::read(component("chat")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let stderr = alice.fails(&["publish", "chat", "--wasm", truncated.to_str().unwrap()]);
    assert!(
        stderr.contains("truncated") || stderr.contains("not a valid WebAssembly"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("--help"),
        "a useful hint, not --help: {stderr}"
    );

    alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    let stderr = alice.fails(&["publish", "chat", "--wasm", &component("chat_breaking")]);
    assert!(stderr.contains("--delete-data"), "{stderr}");
    assert!(!stderr.contains("--help"), "{stderr}");

    // A refusal the server has no hint for gets none, not the usage.
    let stderr = alice.fails(&["call", "chat", "set_name", " "]);
    assert!(stderr.contains("names must not be empty"), "{stderr}");
    assert!(!stderr.contains("hint:"), "{stderr}");

    // #9 item 4: a `describe` that panics is reported with the panic's
    // message (it used to say only "wasm `unreachable` instruction executed").
    let stderr = alice.fails(&["publish", "oddity", "--wasm", &component("describe_panics")]);
    assert!(
        stderr.contains("panicked: this type refuses to describe itself"),
        "{stderr}"
    );

    // An operating-system error is printed once, not once per layer.
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    let run = support::start_fails(&file);
    assert_eq!(run.stderr.matches("os error").count(), 1, "{}", run.stderr);
    assert!(!run.stderr.contains("--help"), "{}", run.stderr);
}

// #9 item 2: a deletion the disk refuses answered a bare 500 and left the
// database stopped but not deleted (gone from the list, its name taken).
// Now the error names the database and the directory, nothing is deleted,
// and the database serves again until a later delete succeeds.
#[test]
fn a_deletion_the_disk_refuses_names_the_database_and_leaves_it_serving() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "bank", "--wasm", &component("bank")]);
    alice.ok(&["call", "bank", "seed", "2", "10"]);
    // A file where the deletion moves the database's directory: the
    // deletion cannot clear it (as root too, unlike a permission).
    let blocker = server.data_dir().join("databases/.deleted-bank");
    std::fs::write(&blocker, b"in the way").unwrap();

    let stderr = alice.fails(&["delete", "bank", "--yes"]);
    assert!(
        stderr.contains("could not delete database `bank`")
            && stderr.contains("databases/.deleted-bank"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: nothing was deleted"), "{stderr}");
    alice.ok(&["call", "bank", "transfer", "0", "1", "3"]);
    let rows = alice.ok(&["sql", "bank", "SELECT * FROM account WHERE id = 1"]);
    assert!(rows.contains("13"), "{rows}");
    assert!(alice.ok(&["list"]).contains("bank"));

    std::fs::remove_file(&blocker).unwrap();
    alice.ok(&["delete", "bank", "--yes"]);
    assert!(!alice.ok(&["list"]).contains("bank"));
}
