//! What an outside operator found trying the CLI from the README alone:
//! each test pins the behaviour that was fixed.

mod support;

use support::{ServerProcess, User, component};

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
