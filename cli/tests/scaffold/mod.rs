//! What the `init` and `generate` tests share: running `worldline`, running
//! cargo on a project of their own, and where the workspace keeps its builds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use worldline_tests::GUEST_DIR;

/// The `worldline` binary under test.
pub const WORLDLINE: &str = env!("CARGO_BIN_EXE_worldline");

/// The Worldline checkout.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ lives in the workspace root")
        .to_path_buf()
}

/// The workspace's target directory; `tests/build.rs` builds the guest
/// modules in its `guests` directory.
pub fn target_dir() -> PathBuf {
    Path::new(GUEST_DIR)
        .ancestors()
        .nth(3)
        .expect("the guests are in <target>/guests/wasm32-wasip2/release")
        .to_path_buf()
}

/// Runs `worldline` with `args`.
pub fn worldline<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(WORLDLINE)
        .args(args)
        .output()
        .expect("running worldline")
}

/// Its standard output and standard error, for assertions and messages.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs cargo with `args` on the project in `dir`, building into
/// `target_dir`, without the flags and wrappers of the cargo running the
/// tests (as `tests/build.rs` does for the guests). Returns its output and
/// how long it took.
pub fn cargo(dir: &Path, target_dir: &Path, args: &[&str]) -> (Output, Duration) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    let started = Instant::now();
    let output = command.output().expect("running cargo");
    (output, started.elapsed())
}

/// Fails unless rustfmt leaves the Rust file at `path` as it is.
pub fn assert_rustfmt_clean(path: &Path) {
    let output = Command::new("rustfmt")
        .args(["--check", "--edition", "2024"])
        .arg(path)
        .output()
        .expect("running rustfmt (rustup component add rustfmt)");
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "{} is not rustfmt-clean:\n{stdout}{stderr}",
        path.display()
    );
}
