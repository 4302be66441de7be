//! Building a module project into a component, per guest language.
//! Rust builds with cargo; C++ and C# plug in here as their SDKs land.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use serde::Deserialize;

use crate::hint::hinted;

/// The language of the project in `dir`, from the files it holds.
fn detect(dir: &Path) -> anyhow::Result<Language> {
    if dir.join("Cargo.toml").is_file() {
        return Ok(Language::Rust);
    }
    Err(hinted(
        format!("{} holds no module project (no Cargo.toml)", dir.display()),
        "create one with `worldline init DIR --lang rust`, or publish a built component with --wasm FILE",
    ))
}

/// The guest languages `publish` can build.
enum Language {
    Rust,
}

/// Builds the project in `dir` and returns the component's path.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    match detect(dir)? {
        Language::Rust => build_rust(dir),
    }
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
