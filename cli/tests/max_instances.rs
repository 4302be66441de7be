//! `worldline start --max-instances` (#9 item 13): a server whose instance
//! pool is full refuses to publish another database, saying so and naming
//! the flag, instead of calling the module a world mismatch.

mod support;

use support::{ServerProcess, User, component};
use worldline_tests::TempDir;

#[test]
fn a_full_instance_pool_refuses_a_publish_and_names_the_flag() {
    let dir = TempDir::new("worldline-cli-max-instances");
    let server = ServerProcess::start_in_with(dir, &["--max-instances", "2"]);
    let alice = User::new(&server.url);
    // Each database holds one instance.
    for name in ["one", "two"] {
        alice.ok(&["publish", name, "--wasm", &component("bank")]);
    }
    let run = alice.run(&["publish", "three", "--wasm", &component("bank")]);
    assert!(!run.success, "a third database fit in a pool of 2");
    assert!(
        run.stderr.contains("instance pool is full (2 instances")
            && run.stderr.contains("--max-instances"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("does not fit"), "{}", run.stderr);
    // #9 item 12: the hint is the server's (raise the pool), not the usage.
    let hint = run
        .stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_else(|| panic!("no hint: {}", run.stderr));
    assert!(
        hint.contains("worldline start --max-instances") && !hint.contains("--help"),
        "{hint}"
    );
    // The databases that fit still serve.
    alice.ok(&["call", "one", "seed", "2", "10"]);
}
