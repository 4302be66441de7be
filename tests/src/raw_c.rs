//! Modules written in plain C against the raw WIT (no SDK), built during a
//! test with the C toolchain of `tests/setup.sh`: `wit-bindgen c`, clang-19
//! with wasi-libc, `wasm-tools component new` and the wasmtime preview-1
//! reactor adapter.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use crate::parity::{target_dir, workspace};

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| {
        panic!("running {what}: {e} (tests/setup.sh installs the C toolchain)")
    });
    assert!(
        output.status.success(),
        "{what} failed ({})\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The wasmtime preview-1 reactor adapter, written where the C++ build
/// (`guest-cpp/worldline.mk`) writes it, by the same tool.
fn adapter() -> PathBuf {
    let dir = target_dir().join("cpp-adapter");
    let path = dir.join("wasi_snapshot_preview1.reactor.wasm");
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run(
            Command::new(cargo)
                .args(["run", "--quiet", "--release", "--locked", "--manifest-path"])
                .arg(workspace().join("guest-cpp/tools/adapter/Cargo.toml"))
                .arg("--target-dir")
                .arg(dir.join("build"))
                .arg("--")
                .arg(&path),
            "writing the preview-1 adapter",
        );
    }
    path
}

/// The `call-procedure` export of a module without procedures: it refuses
/// every call.
const NO_PROCEDURES: &str = r#"
bool exports_worldline_module_guest_call_procedure(uint32_t id, exports_worldline_module_guest_procedure_context_t *ctx,
                                                   module_list_u8_t *arguments, module_list_u8_t *ret, module_string_t *err) {
  (void)id; (void)ctx; (void)ret;
  module_list_u8_free(arguments);
  module_string_dup(err, "no procedures");
  return false;
}
"#;

/// Builds the C `source` (which includes `module.h`, the bindings
/// `wit-bindgen c` generates for the `module` world, and exports no
/// procedures: [`NO_PROCEDURES`] is appended) with the preprocessor
/// `defines` into the component `target/raw-c/NAME.wasm` and returns its
/// bytes. Each `name` gets a directory of its own.
pub fn c_component(name: &str, source: &str, defines: &[&str]) -> Vec<u8> {
    let dir = target_dir().join("raw-c").join(name);
    std::fs::create_dir_all(&dir).expect("creating the build directory");
    let wit_bindgen = workspace().join("target/tools/bin/wit-bindgen");
    let wit_bindgen: &Path = if wit_bindgen.exists() {
        &wit_bindgen
    } else {
        Path::new("wit-bindgen")
    };
    run(
        Command::new(wit_bindgen)
            .arg("c")
            .arg(workspace().join("wit"))
            .args(["--world", "module", "--out-dir"])
            .arg(&dir),
        "wit-bindgen c",
    );
    std::fs::write(dir.join("raw.c"), format!("{source}{NO_PROCEDURES}"))
        .expect("writing the C source");
    let core = dir.join("core.wasm");
    run(
        Command::new("clang-19")
            .args(["--target=wasm32-wasi", "-O2", "-mexec-model=reactor"])
            .args(defines)
            .arg("-I")
            .arg(&dir)
            .arg(dir.join("raw.c"))
            .arg(dir.join("module.c"))
            .arg(dir.join("module_component_type.o"))
            .arg("-o")
            .arg(&core),
        "clang-19",
    );
    let component = dir.join(format!("{name}.wasm"));
    run(
        Command::new("wasm-tools")
            .args(["component", "new"])
            .arg(&core)
            .arg("--adapt")
            .arg(format!("wasi_snapshot_preview1={}", adapter().display()))
            .arg("-o")
            .arg(&component),
        "wasm-tools component new",
    );
    std::fs::read(&component).expect("reading the component")
}

/// Serializes the tests of one test binary that build C modules: they
/// build their components in shared directories, and some measure the
/// process's memory, which the others' module instances would add to.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}
