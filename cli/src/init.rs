//! `worldline init`: create a module project that builds as it stands.

mod cpp;
pub(crate) mod python;
mod rust;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// Options of `worldline init`.
#[derive(Args)]
pub struct InitArgs {
    /// The directory to create the project in; it must not exist or be empty.
    /// Its name becomes the crate's and the suggested database's name.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The language of the module.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The Worldline SDK to build on, `guest-rust/sdk` for Rust,
    /// `guest-cpp` for C++ or `guest-python` for Python [default: the one
    /// in the Worldline checkout this binary was built from].
    #[arg(long, value_name = "DIR")]
    sdk_path: Option<PathBuf>,
}

/// The languages a module project can be created in.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Lang {
    /// Rust, with the `worldline` crate, built for `wasm32-wasip2`.
    Rust,
    /// C++20, with the Worldline C++ SDK, built with clang-19 and make.
    Cpp,
    /// Python, with the Worldline Python SDK, built with componentize-py.
    Python,
}

impl Lang {
    /// The language's name as people write it.
    fn display_name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Cpp => "C++",
            Lang::Python => "Python",
        }
    }
}

/// One language's module SDK, as `worldline init` and `publish` find it.
pub(crate) struct SdkKind {
    /// The language, as the messages name it (`Rust`, `C++`, `Python`).
    language: &'static str,
    /// The SDK's directory in a Worldline checkout (`guest-cpp`).
    checkout_dir: &'static str,
    /// What to check when a given path is not the SDK.
    given_hint: &'static str,
    /// What a directory lacks when it is not the SDK, for the message.
    markers: &'static str,
    /// Whether a directory holds the SDK.
    recognise: fn(&Path) -> bool,
}

/// The SDK of `kind` at `sdk_path` (else at `default`, the SDK of the
/// checkout this binary was built from), checked and made absolute.
fn locate_sdk(
    kind: &SdkKind,
    default: PathBuf,
    sdk_path: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let gone;
    let (dir, hint) = match sdk_path {
        Some(dir) => (dir.to_path_buf(), kind.given_hint),
        None => {
            gone = format!(
                "the Worldline checkout this binary was built from is gone; pass --sdk-path \
                 with the {} directory of a Worldline checkout",
                kind.checkout_dir
            );
            (default, gone.as_str())
        }
    };
    let language = kind.language;
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "the Worldline {language} SDK is not at {}; {hint}",
            dir.display()
        )
    })?;
    if !(kind.recognise)(&dir) {
        bail!(
            "{} is not the Worldline {language} SDK ({}); {hint}",
            dir.display(),
            kind.markers
        );
    }
    Ok(dir)
}

/// A file of a new project: its path relative to the project and its contents.
struct ProjectFile {
    path: &'static str,
    contents: String,
}

/// Runs `worldline init`.
pub fn run(args: InitArgs) -> anyhow::Result<()> {
    check_target(&args.dir)?;
    let name = project_name(&args.dir)?;
    let project = match args.lang {
        Lang::Rust => rust::project(&name, args.sdk_path.as_deref())?,
        Lang::Cpp => cpp::project(&name, args.sdk_path.as_deref())?,
        Lang::Python => python::project(&name, args.sdk_path.as_deref())?,
    };
    write_project(&args.dir, &project.files)?;
    println!(
        "created the {} module project `{name}` in {}:",
        args.lang.display_name(),
        args.dir.display()
    );
    for file in &project.files {
        println!("  {}", file.path);
    }
    println!("\nnext steps:");
    println!("  cd {}", shell_word(&args.dir.to_string_lossy()));
    for step in &project.next_steps {
        println!("  {step}");
    }
    println!("  worldline publish {name} --project-path .");
    println!("  worldline call {name} {}", project.example_call);
    println!("  worldline sql {name} \"{}\"", project.example_query);
    Ok(())
}

/// `word` as a POSIX shell reads it back as one word: unchanged if it
/// holds only characters no shell treats specially, else in single quotes
/// (a `'` in it written `'\''`), so that printed commands can be pasted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./+=:,@%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// What a language's template makes.
struct Project {
    files: Vec<ProjectFile>,
    /// The commands that build the module, run in the project.
    next_steps: Vec<String>,
    /// Arguments of `worldline call NAME ...` that call a template reducer.
    example_call: String,
    /// A query over a template table.
    example_query: String,
}

/// Fails unless `dir` is missing or an empty directory.
fn check_target(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty; `worldline init` only creates projects in a new or empty \
                     directory",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if dir.exists() && !dir.is_dir() => {
            Err(e).with_context(|| format!("{} exists and is not a directory", dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// The project's name, from the directory's: lowercase ASCII letters,
/// digits, `-` and `_`, usable as a crate name and a database name.
fn project_name(dir: &Path) -> anyhow::Result<String> {
    // An existing (empty) directory may be `.` or end in `..`: name it by
    // where it really is.
    let resolved = if dir.exists() {
        dir.canonicalize()
    } else {
        std::path::absolute(dir)
    };
    let resolved = resolved.with_context(|| format!("resolving the path {}", dir.display()))?;
    let base = resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name = String::new();
    for c in base.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let mut name = name.trim_end_matches('-').to_owned();
    if name.is_empty() {
        name = "module".into();
    } else if name.starts_with(|c: char| c.is_ascii_digit() || c == '_') {
        name.insert_str(0, "module-");
    }
    if RESERVED_NAMES.contains(&name.as_str()) {
        name.push_str("-module");
    }
    name.truncate(64);
    Ok(name)
}

/// Names a module crate cannot take: its own dependency's, the standard
/// library's, and Rust keywords (which cargo refuses as crate names).
const RESERVED_NAMES: &[&str] = &[
    "worldline",
    "worldline_macros",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "test",
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "yield",
];

/// Creates `dir` and writes the files; on failure removes what it wrote, so
/// that a failed `init` leaves nothing behind.
fn write_project(dir: &Path, files: &[ProjectFile]) -> anyhow::Result<()> {
    let existed = dir.exists();
    let result = files.iter().try_for_each(|file| {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents).with_context(|| format!("writing {}", path.display()))
    });
    if result.is_err() {
        if existed {
            for file in files {
                let path = dir.join(file.path);
                let _ = std::fs::remove_file(&path);
                // Subdirectories the files needed, once empty.
                for parent in path.ancestors().skip(1).take_while(|p| *p != dir) {
                    let _ = std::fs::remove_dir(parent);
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(dir: &str) -> String {
        project_name(Path::new(dir)).expect("a name")
    }

    #[test]
    fn project_names_are_crate_and_database_names() {
        assert_eq!(name("/tmp/does-not-exist/chat"), "chat");
        assert_eq!(name("/tmp/does-not-exist/My Game 2"), "my-game-2");
        assert_eq!(name("/tmp/does-not-exist/Über_App!"), "ber_app");
        assert_eq!(name("/tmp/does-not-exist/2048"), "module-2048");
        assert_eq!(name("/tmp/does-not-exist/__"), "module-__");
        assert_eq!(name("/tmp/does-not-exist/!!!"), "module");
        assert_eq!(name("/tmp/does-not-exist/worldline"), "worldline-module");
        assert_eq!(name("/tmp/does-not-exist/type"), "type-module");
        assert_eq!(
            name(&format!("/tmp/does-not-exist/{}", "a".repeat(80))).len(),
            64
        );
    }
}
