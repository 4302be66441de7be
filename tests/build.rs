//! Builds the guest modules the tests, benchmarks and demo run, once per
//! build, as real `wasm32-wasip2` components, and tells the crate where they are.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Guest packages to build, each a workspace member producing `<name>.wasm`
/// (with `-` in the package name as `_`: `chat-v2` produces `chat_v2.wasm`).
const GUESTS: &[&str] = &[
    "bank",
    "chat",
    "ticker",
    "prices",
    "features",
    "chat-v2",
    "chat-breaking",
    "hostile",
    "hostile-start",
    "hostile-describe",
    "hostile-schedule",
    "hostile-schedule-unscheduled",
    "hostile-init",
    "hostile-restart",
    "hostile-describe-clock",
    "describe-panics",
    "escape",
    "escape-describe-loop",
    "escape-describe-sleep",
    "legacy-v1",
    "sums",
    "outbound-abuse",
    "bank-private",
    "floats",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf();
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guests");
    for watched in ["guest-rust", "wit", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for guest in GUESTS {
        build.args(["-p", guest]);
    }
    // The outer build's flags and wrappers (clippy, coverage) are not meant for the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        build.env_remove(var);
    }
    // A build script's stdout is read by cargo as directives: keep the child's output on stderr.
    build.stdout(std::io::stderr());
    let status = build
        .status()
        .expect("running cargo to build the guest modules");
    if !status.success() {
        panic!(
            "building the guest modules failed ({status}); is the target installed? \
             run `rustup target add wasm32-wasip2`"
        );
    }
    let out = target_dir.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=WORLDLINE_GUEST_DIR={}", out.display());
}
