//! `worldline init --lang python` and `publish --project-path` on a Python
//! project, as real processes against a real server: the project builds
//! with componentize-py (from the venv `tests/setup.sh` makes in
//! `target/python-venv`) and runs; publishing the built component again
//! and restarting the server load it from the compiled-component cache.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{ServerProcess, User};

fn venv() -> PathBuf {
    std::env::var_os("WORLDLINE_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
                .join("python-venv")
        })
}

/// Runs `worldline ARGS` as `user` with the test venv; returns stdout.
fn ok(user: &User, args: &[&str]) -> String {
    let output = user
        .command(args)
        .env("WORLDLINE_PYTHON_VENV", venv())
        .output()
        .expect("running worldline");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(
        output.status.success(),
        "worldline {args:?} failed\n{stdout}{stderr}"
    );
    stdout
}

#[test]
fn init_python_creates_a_project_that_publishes_runs_and_reloads_from_the_cache() {
    let mut server = ServerProcess::start();
    let mut alice = User::new(&server.url);
    let tmp = worldline_tests::TempDir::new("worldline-cli-init-python");
    let dir = tmp.path().join("notes-py");
    let dir_str = dir.to_str().unwrap();
    let created = ok(&alice, &["init", "--lang", "python", dir_str]);
    assert!(
        created.contains("worldline publish notes-py --project-path"),
        "{created}"
    );
    for file in ["worldline.toml", "app.py", ".gitignore", "README.md"] {
        assert!(dir.join(file).is_file(), "{file} was not created");
    }

    let started = Instant::now();
    let published = ok(&alice, &["publish", "notes", "--project-path", dir_str]);
    let cold = started.elapsed();
    assert!(
        published.contains("Created database `notes`"),
        "{published}"
    );
    ok(&alice, &["call", "notes", "add_note", "  Hello  "]);
    let notes = ok(&alice, &["sql", "notes", "SELECT * FROM note"]);
    assert!(
        notes.contains("Welcome!") && notes.contains("Hello"),
        "{notes}"
    );
    let refused = alice.fails(&["call", "notes", "add_note", "   "]);
    assert!(refused.contains("notes must not be empty"), "{refused}");

    // The same component again: loaded from the cache, not compiled.
    let wasm = dir.join("build/module.wasm");
    let started = Instant::now();
    ok(
        &alice,
        &["publish", "notes-2", "--wasm", wasm.to_str().unwrap()],
    );
    let cached = started.elapsed();

    let data = server.stop();
    let started = Instant::now();
    server = ServerProcess::start_in(data);
    let restart = started.elapsed();
    alice.moved_to(&server.url);
    let notes = ok(&alice, &["sql", "notes", "SELECT * FROM note"]);
    assert!(notes.contains("Hello"), "{notes}");
    eprintln!(
        "Python module: build and cold publish {cold:?}, cached publish {cached:?}, \
         restart with two databases {restart:?}"
    );
    assert!(
        cached < Duration::from_secs(3) && restart < Duration::from_secs(3),
        "the cache should make these fast: cached publish {cached:?}, restart {restart:?} \
         (build and cold publish {cold:?})"
    );
}
