//! The everyday flow through the real `worldline` binary against a real
//! server: publish, call, sql, subscribe (QUIC and WebSocket), logs,
//! describe, list, delete, identities, and the errors users run into.

mod support;

use support::{ServerProcess, User, component};

#[test]
fn publish_call_query_subscribe_and_delete() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    let published = alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    assert!(published.contains("Created database `chat`"), "{published}");
    let identities = alice.ok(&["identity", "list", "--json"]);
    let identities: serde_json::Value = serde_json::from_str(&identities).unwrap();
    assert_eq!(
        identities.as_array().unwrap().len(),
        1,
        "publishing created one identity"
    );
    let owner = identities[0]["identity"].as_str().unwrap().to_owned();
    assert!(published.contains(&owner), "{published}");

    alice.ok(&["call", "chat", "send_message", "first message"]);
    let quic = alice.spawn(&[
        "subscribe",
        "chat",
        "SELECT * FROM message",
        "--protocol",
        "quic",
        "-n",
        "2",
    ]);
    let ws = alice.spawn(&[
        "subscribe",
        "chat",
        "SELECT * FROM message",
        "--protocol",
        "ws",
        "-n",
        "2",
        "--json",
    ]);
    let initial = quic.until("[initial] message:");
    assert!(
        initial
            .last()
            .unwrap()
            .contains("\"text\":\"first message\""),
        "{initial:?}"
    );
    let initial: serde_json::Value = serde_json::from_str(&ws.next_line()).unwrap();
    assert_eq!(initial["event"], "initial");
    assert_eq!(initial["tables"][0]["rows"][0]["text"], "first message");

    alice.ok(&["call", "chat", "send_message", "\"second\""]);
    alice.ok(&["call", "chat", "send_message", "third"]);
    let (finished, lines) = quic.finish();
    assert!(
        finished,
        "subscribe -n 2 exits successfully after two updates"
    );
    let sent: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("[send_message] + message:"))
        .collect();
    assert_eq!(sent.len(), 2, "{lines:?}");
    assert!(
        sent[0].contains("\"text\":\"second\"") && sent[1].contains("\"text\":\"third\""),
        "{sent:?}"
    );
    let (finished, lines) = ws.finish();
    assert!(finished);
    let updates: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(updates.len(), 2, "{lines:?}");
    assert_eq!(updates[0]["reducer"], "send_message");
    // The caller is written as the rows' identity columns are, "0x" and hex.
    assert_eq!(updates[0]["caller"], format!("0x{owner}"));
    assert_eq!(
        updates[0]["caller"],
        updates[0]["tables"][0]["inserts"][0]["sender"]
    );
    assert_eq!(updates[1]["tables"][0]["inserts"][0]["text"], "third");

    let table = alice.ok(&["sql", "chat", "SELECT * FROM message WHERE id > 1"]);
    assert!(
        table.lines().next().unwrap().starts_with("id | sender"),
        "{table}"
    );
    assert!(
        table.contains("second") && table.contains("third") && !table.contains("first"),
        "{table}"
    );
    assert!(table.contains("(2 rows)"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&alice.ok(&["sql", "chat", "SELECT * FROM message", "--json"]))
            .unwrap();
    assert_eq!(json["tables"][0]["rows"].as_array().unwrap().len(), 3);

    let logs = alice.ok(&["logs", "chat"]);
    assert_eq!(
        logs.lines()
            .filter(|l| l.contains("INFO") && l.contains("message"))
            .count(),
        3,
        "{logs}"
    );
    let tail = alice.ok(&["logs", "chat", "-n", "1", "--json"]);
    let line: serde_json::Value = serde_json::from_str(tail.trim()).unwrap();
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .starts_with("message 3 from"),
        "{tail}"
    );

    let described = alice.ok(&["describe", "chat"]);
    assert!(described.contains("table message (public)"), "{described}");
    assert!(described.contains("primary key"), "{described}");
    assert!(
        described.contains("send_message(text: string)"),
        "{described}"
    );
    let schema: serde_json::Value =
        serde_json::from_str(&alice.ok(&["describe", "chat", "--json"])).unwrap();
    let message = schema["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "message")
        .unwrap();
    assert_eq!(message["columns"][3]["name"], "text");
    assert_eq!(message["columns"][3]["type"], "string");
    assert_eq!(message["public"], true);
    let bindings = worldline_tests::TempDir::new("worldline-cli-bindings");
    let from_server = bindings.path().join("from_server");
    let from_file = bindings.path().join("from_file");
    let generated = alice.ok(&[
        "generate",
        "--lang",
        "rust",
        "--out-dir",
        from_server.to_str().unwrap(),
        "chat",
    ]);
    assert!(generated.contains("database `chat`"), "{generated}");
    alice.ok(&[
        "generate",
        "--lang",
        "rust",
        "--out-dir",
        from_file.to_str().unwrap(),
        "--wasm",
        &component("chat"),
    ]);
    let read = |dir: &std::path::Path| std::fs::read_to_string(dir.join("mod.rs")).unwrap();
    assert_eq!(
        read(&from_server),
        read(&from_file),
        "the published schema is the component's"
    );
    let listed = alice.ok(&["list"]);
    assert!(
        listed.contains("chat") && listed.contains(&owner),
        "{listed}"
    );

    alice.ok(&["delete", "chat", "--yes"]);
    assert!(!alice.ok(&["list"]).contains("chat"));
    let error = alice.fails(&["sql", "chat", "SELECT * FROM message"]);
    assert!(error.contains("no database named `chat`"), "{error}");
    let republished = alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    assert!(
        republished.contains("Created"),
        "the name is free again: {republished}"
    );
    let table = alice.ok(&["sql", "chat", "SELECT * FROM message"]);
    assert!(
        table.contains("(0 rows)"),
        "the deleted data is gone: {table}"
    );
}

#[test]
fn logs_follow_prints_new_lines_as_they_are_written() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    let follow = alice.spawn(&["logs", "chat", "-f"]);
    alice.ok(&["call", "chat", "send_message", "hello"]);
    let line = follow.next_line();
    assert!(
        line.contains("INFO") && line.contains("message 1 from"),
        "{line}"
    );
    alice.ok(&["call", "chat", "send_message", "again"]);
    assert!(follow.next_line().contains("message 2 from"));
    // A followed log has no end of its own: the server stopping is an error.
    assert!(server.interrupt(), "the server shuts down cleanly");
    let (succeeded, _) = follow.finish();
    assert!(
        !succeeded,
        "`logs -f` exits with an error when the server goes"
    );
}

// `--tail 0` with `-f` prints only lines written from now on (the server
// once followed from the start of the log when the tail left nothing).
#[test]
fn logs_follow_with_tail_zero_prints_only_new_lines() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    alice.ok(&["call", "chat", "send_message", "before"]);
    let follow = alice.spawn(&["logs", "chat", "-f", "--tail", "0"]);
    // Messages written before the follow began are not printed either, so
    // write until one is.
    let line = (0..100)
        .find_map(|_| {
            alice.ok(&["call", "chat", "send_message", "after"]);
            follow.line_within(std::time::Duration::from_millis(300))
        })
        .expect("a new line is printed");
    assert!(
        line.contains("message ") && !line.contains("message 1 from"),
        "{line}"
    );
    assert!(server.interrupt(), "the server shuts down cleanly");
    follow.finish();
}

#[test]
fn errors_say_what_is_wrong_and_what_to_do() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "bank", "--wasm", &component("bank")]);
    alice.ok(&["call", "bank", "seed", "2", "100"]);

    let error = alice.fails(&["call", "bank", "transfer", "0", "1", "lots"]);
    assert!(
        error.contains("amount") && error.contains("expected i64"),
        "{error}"
    );
    let error = alice.fails(&["call", "bank", "transfer", "0", "1"]);
    assert!(error.contains("expected 3 arguments"), "{error}");
    let error = alice.fails(&["call", "bank", "no_such_reducer"]);
    assert!(
        error.contains("no reducer or procedure named `no_such_reducer`"),
        "{error}"
    );
    let error = alice.fails(&["call", "bank", "transfer", "0", "1", "1000"]);
    assert!(error.contains("the reducer failed"), "{error}");
    let balances = alice.ok(&["sql", "bank", "SELECT * FROM account", "--json"]);
    assert!(
        balances.contains("100") && !balances.contains("1100"),
        "nothing changed: {balances}"
    );

    let error = alice.fails(&["sql", "bank", "SELECT * FROM nowhere"]);
    assert!(error.contains("nowhere"), "{error}");
    let error = alice.fails(&["call", "nobank", "seed", "1", "1"]);
    assert!(error.contains("no database named `nobank`"), "{error}");
    assert!(error.contains("hint: `worldline list`"), "{error}");
    let error = alice.fails(&["publish", "Bad Name", "--wasm", &component("bank")]);
    assert!(error.contains("not a valid database name"), "{error}");
    let not_a_component = alice.config().with_file_name("junk.wasm");
    std::fs::write(&not_a_component, b"not wasm").unwrap();
    let error = alice.fails(&[
        "publish",
        "junk",
        "--wasm",
        not_a_component.to_str().unwrap(),
    ]);
    assert!(error.contains("is not a WebAssembly component"), "{error}");
    let error = alice.fails(&[
        "publish",
        "bank",
        "--delete-data",
        "--wasm",
        &component("bank"),
    ]);
    assert!(
        error.contains("pass --yes"),
        "without a terminal, deleting data needs --yes: {error}"
    );

    let empty = worldline_tests::TempDir::new("worldline-cli-empty-project");
    let error = alice.fails(&[
        "publish",
        "empty",
        "--project-path",
        empty.path().to_str().unwrap(),
    ]);
    assert!(error.contains("holds no module project"), "{error}");
    assert!(error.contains("worldline init"), "{error}");

    let forger = User::new(&server.url);
    forger.ok(&["identity", "new"]);
    let config = std::fs::read_to_string(forger.config()).unwrap();
    let token_line = config.lines().find(|l| l.starts_with("token = ")).unwrap();
    let forged = config.replace(token_line, "token = \"eyJhbGciOiJFZERTQSJ9.e30.AAAA\"");
    std::fs::write(forger.config(), forged).unwrap();
    let error = forger.fails(&["call", "bank", "seed", "1", "1"]);
    assert!(error.contains("the token was refused"), "{error}");
    assert!(error.contains("worldline identity new"), "{error}");

    let nowhere = User::new("http://127.0.0.1:9");
    let error = nowhere.fails(&["list"]);
    assert!(
        error.contains("cannot reach the Worldline server at http://127.0.0.1:9"),
        "{error}"
    );
    assert!(error.contains("worldline start"), "{error}");
}

#[test]
fn only_the_owner_may_publish_delete_read_logs_and_see_private_tables() {
    let server = ServerProcess::start();
    let owner = User::new(&server.url);
    let other = User::new(&server.url);
    owner.ok(&["publish", "features", "--wasm", &component("features")]);
    other.ok(&["identity", "new"]);

    let error = other.fails(&["publish", "features", "--wasm", &component("features")]);
    assert!(
        error.contains("only the owner of database `features`"),
        "{error}"
    );
    let error = other.fails(&["delete", "features", "--yes"]);
    assert!(error.contains("only the owner"), "{error}");
    let error = other.fails(&["logs", "features"]);
    assert!(error.contains("only the owner"), "{error}");
    let error = other.fails(&["sql", "features", "SELECT * FROM observation"]);
    assert!(error.contains("private"), "{error}");
    owner.ok(&["sql", "features", "SELECT * FROM observation"]);
    assert!(
        other.ok(&["list"]).contains("features"),
        "listing is open to all"
    );
}

#[test]
fn identities_are_saved_chosen_and_printed() {
    let server = ServerProcess::start();
    let user = User::new(&server.url);
    let first = user.ok(&["identity", "new"]).trim().to_owned();
    let second = user.ok(&["identity", "new"]).trim().to_owned();
    assert_eq!(first.len(), 64);
    assert_ne!(first, second);
    let listed = user.ok(&["identity", "list"]);
    let default_line = listed.lines().find(|l| l.starts_with('*')).unwrap();
    assert!(
        default_line.contains(&first),
        "the first identity stays the default: {listed}"
    );
    user.ok(&["identity", "set-default", &second[..12]]);
    let token = user.ok(&["identity", "token"]).trim().to_owned();
    user.ok(&["publish", "chat", "--wasm", &component("chat")]);
    let info = user.ok(&["list", "--json"]);
    assert!(
        info.contains(&second),
        "published as the new default: {info}"
    );
    assert!(token.split('.').count() == 3, "a JWT: {token}");
    let error = user.fails(&["identity", "set-default", "zz"]);
    assert!(error.contains("no identity"), "{error}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(user.config())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "tokens are kept private");
    }
}
