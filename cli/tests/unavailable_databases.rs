//! One bad database does not stop the server (#9 item 4): a real
//! `worldline start` on a data directory where one database's module.wasm
//! is truncated, one's commit log is corrupt and one's module traps in
//! `describe` serves the healthy database, and reports the others as
//! unavailable, by name and with the reason, at startup, in `list` and
//! `describe`, and as 503 with a JSON error body on use. Their owner can
//! still delete or replace them.

mod support;

use std::path::Path;

use support::{ServerProcess, User, component};
use worldline_transport::http_api::ErrorBody;

/// The only segment of a database's commit log.
fn log_segment(data: &Path, database: &str) -> std::path::PathBuf {
    let log = data.join("databases").join(database).join("log");
    let mut segments: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a log segment")
}

/// `POST` to the server's HTTP API: the status and the JSON error body.
fn post_error(url: &str, token: Option<&str>, body: &str) -> (u16, ErrorBody) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.post(url);
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send(body).expect("the server answers");
    let status = response.status().as_u16();
    let body: ErrorBody = response
        .body_mut()
        .read_json()
        .expect("errors have a JSON body");
    (status, body)
}

/// The token of the user's default identity, from their config file.
fn token(user: &User) -> String {
    let config = std::fs::read_to_string(user.config()).unwrap();
    config
        .lines()
        .find_map(|line| line.strip_prefix("token = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("a saved token")
        .to_owned()
}

// #9 item 4
#[test]
fn damaged_databases_are_unavailable_and_the_others_serve() {
    let server = ServerProcess::start();
    let mut alice = User::new(&server.url);
    for (name, module) in [
        ("bank", "bank"),
        ("ledger", "bank"),
        ("chat", "chat"),
        ("oddity", "chat"),
    ] {
        alice.ok(&["publish", name, "--wasm", &component(module)]);
    }
    alice.ok(&["call", "bank", "seed", "3", "100"]);
    alice.ok(&["call", "ledger", "seed", "3", "100"]);
    for _ in 0..4 {
        alice.ok(&["call", "ledger", "transfer", "0", "1", "1"]);
    }
    let dir = server.stop();
    let databases = dir.path().join("databases");

    // chat: module.wasm cut in half, as by a failed copy.
    let module = databases.join("chat/module.wasm");
    let bytes = std::fs::read(&module).unwrap();
    std::fs::write(&module, &bytes[..bytes.len() / 2]).unwrap();
    // ledger: a byte flipped in the first third of its log, valid records after it.
    let segment = log_segment(dir.path(), "ledger");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    std::fs::write(&segment, &bytes).unwrap();
    // oddity: its module replaced by one whose describe traps.
    std::fs::copy(
        component("describe_panics"),
        databases.join("oddity/module.wasm"),
    )
    .unwrap();

    let server = ServerProcess::start_in(dir);
    let startup = server.startup.join("\n");
    for name in ["chat", "ledger", "oddity"] {
        assert!(
            startup.contains(&format!("database {name} is UNAVAILABLE")),
            "{startup}"
        );
    }
    assert!(
        startup.contains("module.wasm is damaged or truncated"),
        "{startup}"
    );
    assert!(
        startup.contains("1 database ready, 3 unavailable"),
        "{startup}"
    );
    alice.moved_to(&server.url);

    // The healthy database serves calls and queries.
    alice.ok(&["call", "bank", "transfer", "0", "1", "7"]);
    let rows = alice.ok(&["sql", "bank", "SELECT * FROM account WHERE id = 1"]);
    assert!(rows.contains("107"), "{rows}");

    // list and describe show the others, with the reason.
    let list = alice.ok(&["list"]);
    for name in ["chat", "ledger", "oddity"] {
        let line = list
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} listed: {list}"));
        assert!(line.contains("unavailable: "), "{line}");
    }
    assert!(
        list.lines()
            .any(|l| l.starts_with("bank") && l.contains("ready")),
        "{list}"
    );
    let describe = alice.fails(&["describe", "chat"]);
    assert!(
        describe.contains("database `chat` is unavailable")
            && describe.contains("module.wasm is damaged or truncated"),
        "{describe}"
    );
    let describe = alice.fails(&["describe", "oddity"]);
    assert!(
        describe.contains("trapped while describing itself"),
        "{describe}"
    );
    let describe = alice.fails(&["describe", "ledger"]);
    assert!(
        describe.contains("database `ledger` is unavailable"),
        "{describe}"
    );

    // Using them is 503 with a JSON body naming the database.
    let token = token(&alice);
    for (name, path, body) in [
        ("chat", "call/send_message", "[\"hi\"]"),
        ("ledger", "sql", "SELECT * FROM account"),
        ("oddity", "call/take_undescribable", "[1]"),
    ] {
        let url = format!("{}/v1/database/{name}/{path}", server.url);
        let (status, error) = post_error(&url, Some(&token), body);
        assert_eq!(status, 503, "{url}: {error:?}");
        assert!(
            error
                .error
                .contains(&format!("database `{name}` is unavailable")),
            "{error:?}"
        );
        assert!(error.hint.is_some(), "{error:?}");
    }
    let stderr = alice.fails(&["call", "ledger", "transfer", "0", "1", "1"]);
    assert!(
        stderr.contains("database `ledger` is unavailable"),
        "{stderr}"
    );
    // Over the wire protocol too: Hello is answered with an Error saying so.
    for protocol in ["ws", "quic"] {
        let stderr = alice.fails(&[
            "subscribe",
            "ledger",
            "SELECT * FROM account",
            "--protocol",
            protocol,
            "--timeout",
            "10",
        ]);
        assert!(
            stderr.contains("database `ledger` is unavailable"),
            "{protocol}: {stderr}"
        );
    }

    // Publishing over an unavailable database without --delete-data is refused.
    let stderr = alice.fails(&["publish", "ledger", "--wasm", &component("bank")]);
    assert!(stderr.contains("--delete-data"), "{stderr}");
    // Its owner can delete one and replace another.
    alice.ok(&["delete", "chat", "--yes"]);
    let replaced = alice.ok(&[
        "publish",
        "oddity",
        "--wasm",
        &component("chat"),
        "--delete-data",
        "--yes",
    ]);
    assert!(replaced.contains("oddity"), "{replaced}");
    let list = alice.ok(&["list"]);
    assert!(!list.lines().any(|l| l.starts_with("chat")), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("oddity") && l.contains("ready")),
        "{list}"
    );
    // Someone else may not delete what they do not own.
    let bob = User::new(&server.url);
    let stderr = bob.fails(&["delete", "ledger", "--yes"]);
    assert!(
        stderr.contains("only the owner of database `ledger`"),
        "{stderr}"
    );
}

// An unavailable database's full reason made `list`'s status column
// hundreds of characters wide, and `list --json` had no status.
#[test]
fn list_cuts_long_reasons_and_gives_every_database_a_status() {
    let server = ServerProcess::start();
    let mut alice = User::new(&server.url);
    alice.ok(&["publish", "bank", "--wasm", &component("bank")]);
    alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    let dir = server.stop();
    let module = dir.path().join("databases/chat/module.wasm");
    let bytes = std::fs::read(&module).unwrap();
    std::fs::write(&module, &bytes[..bytes.len() / 2]).unwrap();
    let server = ServerProcess::start_in(dir);
    alice.moved_to(&server.url);

    let list = alice.ok(&["list"]);
    let chat = list.lines().find(|l| l.starts_with("chat")).expect(&list);
    assert!(
        chat.contains("unavailable: ") && chat.ends_with('…'),
        "{list}"
    );
    assert!(list.lines().all(|l| l.chars().count() < 200), "{list}");
    assert!(list.contains("worldline describe NAME"), "{list}");

    let json: serde_json::Value = serde_json::from_str(&alice.ok(&["list", "--json"])).unwrap();
    let status = |name: &str| {
        let database = json
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap();
        (database["status"].clone(), database["unavailable"].clone())
    };
    assert_eq!(status("bank").0, "ready");
    assert!(status("bank").1.is_null());
    assert_eq!(status("chat").0, "unavailable");
    assert!(
        status("chat").1.as_str().unwrap().len() > 60,
        "the full reason: {json}"
    );
}
