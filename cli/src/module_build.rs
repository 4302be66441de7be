//! Building a module project into a component, per guest language.
//! Rust builds with cargo, C++ with make (the C++ SDK's `worldline.mk`);
//! C# plugs in here when its SDK lands.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use serde::Deserialize;

use crate::hint::hinted;

mod python;

/// The language of the project in `dir`, from the files it holds.
fn detect(dir: &Path) -> anyhow::Result<Language> {
    if !dir.exists() {
        return Err(hinted(
            format!("the project directory {} does not exist", dir.display()),
            "pass --project-path DIR naming a module project, or --wasm FILE",
        ));
    }
    if !dir.is_dir() {
        return Err(hinted(
            format!("{} is not a directory", dir.display()),
            "pass --project-path DIR naming a module project, or --wasm FILE (a built component)",
        ));
    }
    if dir.join("Cargo.toml").is_file() {
        return Ok(Language::Rust);
    }
    if is_cpp_project(dir) {
        return Ok(Language::Cpp);
    }
    if python::is_python_project(dir) {
        return Ok(Language::Python);
    }
    Err(hinted(
        format!(
            "{} holds no module project (no Cargo.toml, no Makefile including the C++ SDK's worldline.mk, no worldline.toml)",
            dir.display()
        ),
        "create one with `worldline init DIR --lang rust` (or `--lang cpp`, `--lang python`), or publish a built component with --wasm FILE",
    ))
}

/// Whether `dir` is a C++ module project: its Makefile includes the C++
/// SDK's `worldline.mk` (as `worldline init --lang cpp` writes it).
fn is_cpp_project(dir: &Path) -> bool {
    ["GNUmakefile", "makefile", "Makefile"].iter().any(|name| {
        std::fs::read_to_string(dir.join(name)).is_ok_and(|text| {
            text.lines().any(|line| {
                line.trim_start().starts_with("include") && line.contains("worldline.mk")
            })
        })
    })
}

/// The guest languages `publish` can build.
enum Language {
    Rust,
    Cpp,
    Python,
}

/// Builds the project in `dir` and returns the component's path.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    match detect(dir)? {
        Language::Rust => build_rust(dir),
        Language::Cpp => build_cpp(dir),
        Language::Python => python::build_python(dir),
    }
}

/// Runs `make` in a C++ project (its output goes to standard error) and
/// asks the SDK's rules where the component is.
fn build_cpp(dir: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("Building {} (make)...", dir.display());
    let make = std::env::var_os("MAKE").unwrap_or_else(|| "make".into());
    let status = Command::new(&make)
        .arg("-C")
        .arg(dir)
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit())
        .status()
        .context("running make (is it installed?)")?;
    if !status.success() {
        return Err(hinted(
            format!("building {} failed ({status})", dir.display()),
            "fix the errors above; the C++ SDK's README (guest-cpp/README.md) lists the tools the build needs",
        ));
    }
    let output = Command::new(&make)
        .arg("-C")
        .arg(dir)
        .args(["-s", "--no-print-directory", "print-component"])
        .stderr(Stdio::inherit())
        .output()
        .context("running make print-component")?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !output.status.success() || !path.is_file() {
        return Err(hinted(
            format!("building {} produced no component", dir.display()),
            "the project's Makefile must include the C++ SDK's worldline.mk after setting MODULE and SOURCES",
        ));
    }
    Ok(path)
}

/// One line of `cargo build --message-format=json`.
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    filenames: Vec<PathBuf>,
    #[serde(default)]
    target: Option<CargoTarget>,
}

#[derive(Deserialize)]
struct CargoTarget {
    crate_types: Vec<String>,
}

fn build_rust(dir: &Path) -> anyhow::Result<PathBuf> {
    eprintln!(
        "Building {} (cargo build --release --target wasm32-wasip2)...",
        dir.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo (is Rust installed?)")?;
    if !output.status.success() {
        return Err(hinted(
            format!("building {} failed ({})", dir.display(), output.status),
            "fix the errors above; if the target is missing run `rustup target add wasm32-wasip2`",
        ));
    }
    let components: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<CargoMessage>(line).ok())
        .filter(|m| m.reason == "compiler-artifact")
        .filter(|m| {
            m.target
                .as_ref()
                .is_some_and(|t| t.crate_types.iter().any(|c| c == "cdylib"))
        })
        .flat_map(|m| m.filenames)
        .filter(|f| f.extension().is_some_and(|e| e == "wasm"))
        .collect();
    match components.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(hinted(
            format!("building {} produced no component", dir.display()),
            "a module crate needs `crate-type = [\"cdylib\"]` under [lib] in Cargo.toml",
        )),
        _ => Err(hinted(
            format!(
                "building {} produced {} components",
                dir.display(),
                components.len()
            ),
            "point --project-path at the module's crate, or pass --wasm FILE",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory holding `Makefile` with `makefile`.
    fn project_with(name: &str, makefile: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "worldline-module-build-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Makefile"), makefile).unwrap();
        dir
    }

    #[test]
    fn a_makefile_including_worldline_mk_is_a_cpp_project() {
        let cpp = project_with(
            "cpp",
            "MODULE := x\nSOURCES := x.cpp\ninclude $(WORLDLINE_CPP_SDK_DIR)/worldline.mk\n",
        );
        assert!(matches!(detect(&cpp), Ok(Language::Cpp)));
        let other = project_with(
            "other",
            "# worldline.mk is not included here\nall:\n\ttrue\n",
        );
        let err = detect(&other).err().expect("not a module project");
        assert!(err.to_string().contains("no Cargo.toml"), "{err}");
        for dir in [cpp, other] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
