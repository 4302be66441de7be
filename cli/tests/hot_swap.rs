//! Republishing through the real `worldline` binary: compatible schema
//! changes are hot-swapped in while a subscriber stays connected;
//! incompatible ones are refused with a diff unless `--delete-data`.

mod support;

use std::time::Duration;

use support::{ServerProcess, User, component};

#[test]
fn republishing_hot_swaps_without_dropping_a_subscriber() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    alice.ok(&["call", "chat", "send_message", "before the swap"]);
    let subscribers: Vec<_> = ["quic", "ws"]
        .into_iter()
        .map(|protocol| {
            let args = [
                "subscribe",
                "chat",
                "SELECT * FROM message",
                "--protocol",
                protocol,
            ];
            let subscriber = alice.spawn(&[&args[..], &["-n", "3"]].concat());
            subscriber.until("before the swap");
            subscriber
        })
        .collect();

    let swapped = alice.ok(&["publish", "chat", "--wasm", &component("chat_v2")]);
    assert!(swapped.contains("Updated database `chat`"), "{swapped}");
    assert!(swapped.contains("+ table `reaction`"), "{swapped}");
    assert!(swapped.contains("+ reducer `react`"), "{swapped}");
    assert!(swapped.contains("+ index"), "{swapped}");
    alice.ok(&["call", "chat", "send_message", "after the swap"]);
    alice.ok(&["call", "chat", "forget_before", "0"]);
    alice.ok(&["call", "chat", "send_message", "still here"]);
    let swapped_again = alice.ok(&["publish", "chat", "--wasm", &component("chat_v2")]);
    assert!(
        swapped_again.contains("the schema is unchanged"),
        "{swapped_again}"
    );
    alice.ok(&["call", "chat", "send_message", "after the second swap"]);
    for subscriber in subscribers {
        let (finished, lines) = subscriber.finish();
        assert!(
            finished,
            "the subscriber saw three updates and exited cleanly: {lines:?}"
        );
        let texts: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("[send_message] + message:"))
            .collect();
        assert_eq!(texts.len(), 3, "{lines:?}");
        assert!(texts[0].contains("\"after the swap\""), "{texts:?}");
        assert!(texts[1].contains("still here"), "{texts:?}");
        assert!(texts[2].contains("after the second swap"), "{texts:?}");
    }
    let messages = alice.ok(&["sql", "chat", "SELECT * FROM message"]);
    assert!(
        messages.contains("before the swap"),
        "the data survived the swaps: {messages}"
    );
    assert!(
        !messages.contains("welcome"),
        "a hot swap does not run init: {messages}"
    );

    alice.ok(&["call", "chat", "react", "1", "\"👍\""]);
    let reactions = alice.ok(&["sql", "chat", "SELECT * FROM reaction", "--json"]);
    assert!(
        reactions.contains("👍"),
        "the new table and reducer work: {reactions}"
    );
}

#[test]
fn incompatible_schemas_are_refused_with_a_diff_unless_data_is_deleted() {
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    alice.ok(&["publish", "chat", "--wasm", &component("chat")]);
    alice.ok(&["call", "chat", "send_message", "keep me"]);

    let error = alice.fails(&["publish", "chat", "--wasm", &component("chat_breaking")]);
    assert!(error.contains("not compatible"), "{error}");
    assert!(
        error.contains("`user`") && error.contains("removed"),
        "the diff names the removed table: {error}"
    );
    assert!(
        error.contains("`text`") && error.contains("u64"),
        "the diff names the retyped column: {error}"
    );
    assert!(error.contains("--delete-data"), "{error}");
    let messages = alice.ok(&["sql", "chat", "SELECT * FROM message"]);
    assert!(
        messages.contains("keep me"),
        "the refused publish changed nothing: {messages}"
    );
    alice.ok(&["call", "chat", "send_message", "the old module still runs"]);

    let replaced = alice.ok(&[
        "publish",
        "chat",
        "--wasm",
        &component("chat_breaking"),
        "--delete-data",
        "--yes",
    ]);
    assert!(
        replaced.contains("Deleted the data of `chat`"),
        "{replaced}"
    );
    let described = alice.ok(&["describe", "chat"]);
    assert!(!described.contains("table user"), "{described}");
    let messages = alice.ok(&["sql", "chat", "SELECT * FROM message"]);
    assert!(messages.contains("(0 rows)"), "{messages}");
}

// PROTOCOL.md "Hot swaps": a swap that makes a table private ends another
// user's `worldline subscribe` on it; the command says why and exits with
// an error, rather than waiting for updates that can no longer come.
#[test]
fn a_table_made_private_ends_another_users_subscribe_command() {
    let server = ServerProcess::start();
    let owner = User::new(&server.url);
    owner.ok(&["publish", "bank", "--wasm", &component("bank")]);
    owner.ok(&["call", "bank", "seed", "1", "100"]);
    let other = User::new(&server.url);
    other.ok(&["identity", "new"]);
    let subscriber = other.spawn_reading_stderr(&["subscribe", "bank", "SELECT * FROM account"]);
    subscriber.until("100");

    let swapped = owner.ok(&["publish", "bank", "--wasm", &component("bank_private")]);
    assert!(swapped.contains("private"), "{swapped}");
    let (success, stderr) = subscriber.exit_within(Duration::from_secs(20));
    assert!(!success, "{stderr}");
    assert!(
        stderr.contains(
            "error: the subscription ended: the module was updated and this query set ended: \
             SELECT * FROM account: table `account` is private"
        ) && stderr.contains("hint: only the database's owner may read a private table"),
        "{stderr}"
    );
}
