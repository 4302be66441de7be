//! `worldline generate`: typed client bindings for a module.

mod layout;
mod names;
mod rust;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, ValueEnum};
use worldline_host::datastore::ModuleSchema;
use worldline_host::{Engine, EngineConfig};

use crate::context::{Context as CliContext, GlobalArgs};

pub(crate) use rust::rust_bindings;

/// Options of `worldline generate`.
#[derive(Args)]
#[command(group(ArgGroup::new("module").required(true).args(["wasm", "database"])))]
pub struct GenerateArgs {
    /// The language of the client bindings.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The directory to write the bindings into, created if missing. For
    /// Rust it becomes a module: `--out-dir src/bindings` and `mod bindings;`.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Read the module from this compiled component (the `.wasm` file that
    /// `cargo build --release --target wasm32-wasip2` writes).
    #[arg(long, value_name = "FILE")]
    wasm: Option<PathBuf>,
    /// The published database whose module to read.
    #[arg(value_name = "NAME")]
    database: Option<String>,
}

/// The languages bindings can be generated in.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Lang {
    /// Rust, for the `worldline-client` crate.
    Rust,
}

/// Runs `worldline generate`.
pub fn run(args: GenerateArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (schema, source) = match (&args.wasm, &args.database) {
        (Some(wasm), _) => {
            let bytes = crate::component_file::read(wasm)?;
            let schema = describe(&bytes)
                .with_context(|| format!("reading the module in {}", wasm.display()))?;
            (schema, wasm.display().to_string())
        }
        (None, Some(name)) => {
            let context = CliContext::load(global)?;
            let schema = context.api().schema(name)?;
            (schema, format!("database `{name}` on {}", context.server))
        }
        (None, None) => bail!("pass --wasm FILE (or the NAME of a published database)"),
    };
    let files = match args.lang {
        Lang::Rust => rust_bindings(&schema),
    };
    let written = write_files(&args.out_dir, &files)?;
    let reducers = schema
        .reducers
        .iter()
        .filter(|r| r.lifecycle.is_none())
        .count();
    println!(
        "generated {:?} bindings for {} and {} from {source}:",
        args.lang,
        crate::output::count_of(schema.tables.len() as u64, "table"),
        crate::output::count_of(reducers as u64, "reducer")
    );
    for path in written {
        println!("  {}", path.display());
    }
    match args.lang {
        Lang::Rust => {
            let (declaration, module) = rust_module_declaration(&args.out_dir);
            println!(
                "use them with `{declaration}` and `use {module}::{{Reducers, Tables}};` in a \
                 crate that depends on worldline-client and serde (with its `derive` feature)"
            );
        }
    }
    Ok(())
}

/// How a crate declares the Rust module in `dir`, and the module's name:
/// `mod dir;` where the directory's name is a Rust identifier.
fn rust_module_declaration(dir: &Path) -> (String, String) {
    match dir.file_name().and_then(|n| n.to_str()) {
        Some(name) if names::snake_case(name, "") == name && names::escape(name) == name => {
            (format!("mod {name};"), name.to_owned())
        }
        _ => (
            format!("#[path = \"{}/mod.rs\"] mod bindings;", dir.display()),
            "bindings".to_owned(),
        ),
    }
}

/// The schema of the module compiled into the component `wasm`.
fn describe(wasm: &[u8]) -> anyhow::Result<ModuleSchema> {
    let engine = Engine::new(EngineConfig::default())?;
    Ok(worldline_host::describe_component(&engine, wasm)?)
}

/// Writes `files` into `dir`, returning their paths. Refuses, before writing
/// anything, to overwrite a file that `worldline generate` did not write.
fn write_files(dir: &Path, files: &[(String, String)]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let paths: Vec<PathBuf> = files.iter().map(|(name, _)| dir.join(name)).collect();
    for path in &paths {
        match std::fs::read_to_string(path) {
            Ok(existing) if !existing.starts_with(rust::GENERATED_MARKER) => bail!(
                "{} exists and was not written by `worldline generate`; \
                 move it or choose another --out-dir",
                path.display()
            ),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", path.display()));
            }
        }
    }
    for (path, (_, contents)) in paths.iter().zip(files) {
        std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(paths)
}
