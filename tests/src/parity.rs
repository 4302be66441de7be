//! What the parity tests of the C++ and Python SDKs share: where the
//! workspace and its target directory are, a call's outcome with what
//! legitimately differs between languages taken out, and a plain-text web
//! server on loopback for the `prices` procedure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use worldline_host::{CallError, ReducerOutcome};

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

/// The build's target directory (`$CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// A call's outcome with what legitimately differs taken out: the Rust
/// SDK's panic messages end with the panic's source location.
pub fn comparable_outcome(result: Result<ReducerOutcome, CallError>) -> Result<String, CallError> {
    match result {
        Ok(o) => Ok(format!("{:?}", o.delta)),
        Err(CallError::Panicked(message)) => {
            Err(CallError::Panicked(match message.rfind(" (at ") {
                Some(at) if message.ends_with(')') => message[..at].to_owned(),
                _ => message,
            }))
        }
        Err(e) => Err(e),
    }
}

/// A web server on loopback answering every request with `body` as
/// `text/plain`, until the test's runtime ends.
pub async fn text_server(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    address
}

/// Where two texts (such as two modules' definitions from
/// `describe_component_definition`) first differ: the line number and both
/// lines, with a few lines of context from the left one, for an assertion
/// message that points at the difference instead of printing both whole.
pub fn first_difference(left: &str, right: &str) -> String {
    let (left_lines, right_lines): (Vec<&str>, Vec<&str>) =
        (left.lines().collect(), right.lines().collect());
    let at = left_lines
        .iter()
        .zip(&right_lines)
        .position(|(l, r)| l != r)
        .unwrap_or(left_lines.len().min(right_lines.len()));
    let context = left_lines[at.saturating_sub(6)..at].join("\n");
    format!(
        "{context}\nline {}: left:  {}\nline {}: right: {}",
        at + 1,
        left_lines.get(at).unwrap_or(&"(end)"),
        at + 1,
        right_lines.get(at).unwrap_or(&"(end)"),
    )
}

/// One C++ build at a time in this process: the projects share the
/// adapter the first build writes.
static CPP_BUILD: Mutex<()> = Mutex::new(());

/// Builds the C++ project `guest-cpp/DIR/NAME` with its Makefile (clang-19,
/// `wit-bindgen c`, `wasm-tools`: the toolchain `.ci/run` installs) into
/// `target/cpp/NAME` and returns the component; panics with make's output
/// if the build fails.
pub fn cpp_component(dir: &str, name: &str) -> Vec<u8> {
    let _one_at_a_time = CPP_BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let build_dir = target_dir().join("cpp").join(name);
    let output = Command::new("make")
        .arg("-C")
        .arg(workspace().join("guest-cpp").join(dir).join(name))
        .arg(format!("BUILD_DIR={}", build_dir.display()))
        .output()
        .expect("running make (is it installed? .ci/run installs the C++ toolchain)");
    assert!(
        output.status.success(),
        "building the C++ project `{dir}/{name}` failed ({}); .ci/run installs clang-19, wit-bindgen and wasm-tools\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let path = build_dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Checks a guest's `not_utf8_procedure(which)` (the C++ and Python test
/// modules have one): with 0, its error, holding text that is not UTF-8,
/// reaches the caller repaired as `error {repaired}`; with 1, its request's
/// URL holds such text and the request is refused as `url_refusal`, not
/// trapped.
pub fn assert_not_utf8_procedure(
    db: &crate::db_thread::DbThread,
    repaired: &str,
    url_refusal: &str,
) {
    let call = |which: u8| {
        db.call_as(crate::ALICE, "not_utf8_procedure", crate::args(&(which,)))
            .map(drop)
    };
    assert_eq!(call(0), Err(CallError::Failed(format!("error {repaired}"))));
    assert_eq!(call(1), Err(CallError::Failed(url_refusal.to_owned())));
}
