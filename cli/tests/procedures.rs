//! Procedures from the command line (#12 items 3 and 4): `publish
//! --allow-http` grants outbound HTTP, `describe` shows the grant and the
//! procedures, `call` runs a procedure and prints its value, only the owner
//! changes the grant, it survives a restart, and the address guard holds
//! unless `start --http-allow-private-address` names the exact address.

mod support;

use std::net::SocketAddr;

use support::{ServerProcess, User, component};
use worldline_tests::TempDir;

/// A plain HTTP server on loopback answering every request with `hello`.
fn hello_server() -> SocketAddr {
    support::fixed_answer_server(
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".into(),
    )
}

#[test]
fn procedures_are_called_and_the_owner_grants_http() {
    let web = hello_server();
    let web_text = web.to_string();
    let override_flag = ["--http-allow-private-address", web_text.as_str()];
    let server = ServerProcess::start_in_with(TempDir::new("worldline-cli-proc"), &override_flag);
    assert!(
        server
            .startup
            .iter()
            .any(|line| line.contains("WARNING") && line.contains(&web_text)),
        "the override is announced: {:?}",
        server.startup
    );
    let alice = User::new(&server.url);
    let features = component("features");

    // A bad list is refused before anything is created.
    let refused = alice.fails(&[
        "publish",
        "features",
        "--wasm",
        &features,
        "--allow-http",
        "http://example.com",
    ]);
    assert!(
        refused.contains("`http://example.com`") && refused.contains("not a URL"),
        "{refused}"
    );
    assert!(alice.fails(&["describe", "features"]).contains("features"));

    alice.ok(&[
        "publish",
        "features",
        "--wasm",
        &features,
        "--allow-http",
        &web_text,
    ]);
    let described = alice.ok(&["describe", "features"]);
    assert!(
        described.contains(&format!("HTTP allowed for procedures: {web_text}")),
        "{described}"
    );
    assert!(
        described.contains("procedures") && described.contains("echo_proc(text: string) -> string"),
        "{described}"
    );
    assert!(
        described.contains("schedules reducer on_schedule"),
        "{described}"
    );

    let echoed = alice.ok(&["call", "features", "echo_proc", "hi there"]);
    assert!(
        echoed.contains("`echo_proc` returned") && echoed.contains("\"hi there\""),
        "{echoed}"
    );
    let json = alice.ok(&["call", "features", "echo_proc", "x", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(json["value"], "x");
    assert!(json["duration_micros"].is_u64());

    let url = format!("http://{web_text}/price");
    let fetched = alice.ok(&["call", "features", "proc_fetch", &url]);
    assert!(fetched.contains("200 hello"), "{fetched}");

    // A procedure's failure is the caller's error; bad arguments too.
    let failed = alice.fails(&["call", "features", "proc_trap"]);
    assert!(failed.contains("the procedure failed"), "{failed}");
    let failed = alice.fails(&["call", "features", "echo_proc"]);
    assert!(
        failed.contains("invalid arguments for procedure `echo_proc`"),
        "{failed}"
    );

    // Someone else cannot change the grant.
    let mallory = User::new(&server.url);
    let refused = mallory.fails(&[
        "publish",
        "features",
        "--wasm",
        &features,
        "--allow-http",
        "evil.example.com",
    ]);
    assert!(refused.contains("owner"), "{refused}");

    // The owner publishing again without the flag keeps the list…
    alice.ok(&["publish", "features", "--wasm", &features]);
    assert!(
        alice
            .ok(&["describe", "features"])
            .contains(&format!("HTTP allowed for procedures: {web_text}"))
    );

    // …and it survives a restart.
    let dir = server.stop();
    let server = ServerProcess::start_in_with(dir, &override_flag);
    let alice = alice_at(alice, &server.url);
    assert!(
        alice
            .ok(&["describe", "features"])
            .contains(&format!("HTTP allowed for procedures: {web_text}"))
    );
    let fetched = alice.ok(&["call", "features", "proc_fetch", &url]);
    assert!(fetched.contains("200 hello"), "{fetched}");

    // An empty list clears it: the same request is denied.
    let updated = alice.ok(&[
        "publish",
        "features",
        "--wasm",
        &features,
        "--allow-http",
        "",
    ]);
    assert!(updated.contains("HTTP allowed: none"), "{updated}");
    let denied = alice.fails(&["call", "features", "proc_fetch", &url]);
    assert!(denied.contains("Denied"), "{denied}");
}

#[test]
fn the_address_guard_holds_without_the_override() {
    let web = hello_server();
    let server = ServerProcess::start();
    let alice = User::new(&server.url);
    let allowed = format!("{web},localhost:{}", web.port());
    alice.ok(&[
        "publish",
        "features",
        "--wasm",
        &component("features"),
        "--allow-http",
        &allowed,
    ]);
    for url in [
        format!("http://{web}/"),
        format!("http://localhost:{}/", web.port()),
    ] {
        let denied = alice.fails(&["call", "features", "proc_fetch", &url]);
        assert!(
            denied.contains("Denied") && denied.contains("127.0.0.1"),
            "{url}: {denied}"
        );
    }
    // The database goes on serving.
    let echoed = alice.ok(&["call", "features", "echo_proc", "still here"]);
    assert!(echoed.contains("still here"), "{echoed}");
}

/// `user`, pointed at a restarted server's new address.
fn alice_at(mut user: User, url: &str) -> User {
    user.moved_to(url);
    user
}
