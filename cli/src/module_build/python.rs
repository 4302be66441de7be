//! Building a Python module project: `worldline.toml` names the app module
//! (and optionally the SDK), and the SDK's `build.py` runs componentize-py
//! from a venv.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::hint::hinted;
use crate::init::python::sdk_dir;

/// The componentize-py the SDK is built and tested with.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// Whether `dir` is a Python module project: it holds `worldline.toml`.
pub(super) fn is_python_project(dir: &Path) -> bool {
    dir.join("worldline.toml").is_file()
}

/// The SDK named by `worldline.toml`'s `sdk` (relative to the project), or
/// the checkout's.
fn project_sdk(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("worldline.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    if !config.get("module").is_some_and(toml::Value::is_str) {
        return Err(hinted(
            format!("{} names no app module", path.display()),
            "add a line `module = \"app\"` (for app.py)",
        ));
    }
    match config.get("sdk") {
        None => sdk_dir(None),
        Some(toml::Value::String(sdk)) => sdk_dir(Some(&dir.join(sdk))),
        Some(_) => Err(hinted(
            format!("{}: `sdk` must be a string", path.display()),
            "set it to the guest-python directory of a Worldline checkout",
        )),
    }
}

/// The venv holding componentize-py: `$WORLDLINE_PYTHON_VENV`, or `.venv`
/// in the project, created (with componentize-py) if it is missing.
fn venv(dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(venv) = std::env::var_os("WORLDLINE_PYTHON_VENV") {
        let venv = PathBuf::from(venv);
        if !venv.join("bin/componentize-py").is_file() {
            return Err(hinted(
                format!(
                    "WORLDLINE_PYTHON_VENV={} holds no componentize-py",
                    venv.display()
                ),
                format!("run `{}/bin/pip install {COMPONENTIZE_PY}`", venv.display()),
            ));
        }
        return Ok(venv);
    }
    let venv = dir.join(".venv");
    if venv.join("bin/componentize-py").is_file() {
        return Ok(venv);
    }
    eprintln!(
        "Creating {} with {COMPONENTIZE_PY} (once)...",
        venv.display()
    );
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "creating the venv (python3 -m venv)",
        "install Python 3.11 or later with its venv module (Debian: apt-get install python3-venv)",
    )?;
    run(
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", COMPONENTIZE_PY]),
        "installing componentize-py",
        "check the network, or set WORLDLINE_PYTHON_VENV to a venv that has componentize-py",
    )?;
    Ok(venv)
}

fn run(command: &mut Command, what: &str, hint: &str) -> anyhow::Result<()> {
    let status = command
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| what.to_owned())?;
    if !status.success() {
        return Err(hinted(format!("{what} failed ({status})"), hint));
    }
    Ok(())
}

/// Builds the Python project in `dir` into `dir/build/module.wasm`.
pub(super) fn build_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let sdk = project_sdk(dir)?;
    let venv = venv(dir)?;
    let out = dir.join("build").join("module.wasm");
    eprintln!(
        "Building {} (componentize-py, from {})...",
        dir.display(),
        venv.display()
    );
    run(
        Command::new(venv.join("bin/python"))
            .arg(sdk.join("build.py"))
            .arg(dir)
            .arg(&out),
        &format!("building {}", dir.display()),
        "fix the errors above; guest-python/README.md describes the SDK",
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worldline_toml_makes_a_python_project_and_must_name_the_module() {
        let dir = std::env::temp_dir().join(format!(
            "worldline-module-build-python-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_python_project(&dir));
        std::fs::write(dir.join("worldline.toml"), "sdk = \"nowhere\"\n").unwrap();
        assert!(is_python_project(&dir));
        let err = project_sdk(&dir).unwrap_err();
        assert!(err.to_string().contains("names no app module"), "{err}");
        std::fs::write(dir.join("worldline.toml"), "module = \"app\"\n").unwrap();
        let sdk = project_sdk(&dir).expect("the checkout's SDK");
        assert!(sdk.ends_with("guest-python"), "{}", sdk.display());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
