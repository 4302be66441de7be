//! Writes the WASI preview-1 *reactor* adapter of the wasmtime release the
//! Worldline host uses to the path given as the only argument, so that C and
//! C++ module builds can run `wasm-tools component new --adapt` with it
//! without a binary blob in the repository.

use std::process::ExitCode;

use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: worldline-cpp-adapter OUT.wasm");
        return ExitCode::from(2);
    };
    match std::fs::write(&path, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("writing {}: {e}", std::path::Path::new(&path).display());
            ExitCode::FAILURE
        }
    }
}
