//! Secrets on disk (#9 item 3): the server's signing key, the QUIC private
//! key and the command line's config (which holds tokens) are written
//! owner-only (0600), and a server refuses to start on a key other users
//! can read, naming the file and how to fix it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{ServerProcess, User, start_fails};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// #9 item 3
#[test]
fn secrets_are_written_0600_and_an_exposed_key_stops_the_server() {
    let server = ServerProcess::start();
    let data = server.data_dir().to_owned();
    for secret in ["server.key", "quic-key.der"] {
        assert_eq!(mode(&data.join(secret)), 0o600, "{secret}");
    }

    let user = User::new(&server.url);
    user.ok(&["identity", "new"]);
    assert_eq!(mode(user.config()), 0o600, "the config holds tokens");
    // A config others can read is reported, and saving makes it private again.
    chmod(user.config(), 0o644);
    let run = user.run(&["identity", "new"]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("other users on this machine can read or change it")
            && run.stderr.contains("chmod 600"),
        "{}",
        run.stderr
    );
    assert_eq!(mode(user.config()), 0o600);

    let dir = server.stop();
    for secret in ["server.key", "quic-key.der"] {
        let path = dir.path().join(secret);
        chmod(&path, 0o644);
        let run = start_fails(dir.path());
        let shown = path.display().to_string();
        assert!(
            run.stderr.contains(&shown),
            "names {secret}: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains(&format!("hint: make it private with `chmod 600 {shown}`")),
            "{}",
            run.stderr
        );
        chmod(&path, 0o600);
    }
    // Private again, the keys are accepted.
    drop(ServerProcess::start_in(dir));
}

// A config that holds no token (only `default_server`) holds no secret:
// its mode is the user's business, and nothing is reported.
#[test]
fn a_config_without_tokens_is_not_called_a_secret() {
    let server = ServerProcess::start();
    let user = User::new(&server.url);
    std::fs::write(
        user.config(),
        format!("default_server = \"{}\"\n", server.url),
    )
    .unwrap();
    chmod(user.config(), 0o644);
    let run = user.run(&["list"]);
    assert!(run.success, "{}", run.stderr);
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);
}

// README.md "CLI reference": the directories the command line creates for its config
// (which holds tokens), such as `~/.config/worldline` on first use, are the
// user's only, as the XDG base directory specification asks.
#[test]
fn the_directories_made_for_the_config_are_private() {
    let server = ServerProcess::start();
    let user = User::new(&server.url);
    let home = user
        .config()
        .parent()
        .expect("the user's directory")
        .to_owned();
    let config = home.join("xdg/worldline/config.toml");
    let run: support::Run = user
        .command(&["identity", "new"])
        .env("WORLDLINE_CONFIG", &config)
        .output()
        .expect("running worldline")
        .into();
    assert!(run.success, "{}", run.stderr);
    assert_eq!(mode(&config), 0o600, "the config holds a token");
    assert_eq!(mode(&home.join("xdg/worldline")), 0o700);
    assert_eq!(mode(&home.join("xdg")), 0o700, "a missing parent");
}
