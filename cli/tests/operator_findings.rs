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
