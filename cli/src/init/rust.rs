//! The Rust module template: a `cdylib` crate on the `worldline` SDK.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Project, ProjectFile, SdkKind, locate_sdk};

/// The SDK new projects depend on unless `--sdk-path` says otherwise:
/// `guest-rust/sdk` in the Worldline checkout this binary was built from.
///
/// The SDK is not on crates.io yet, so a module depends on it by path, and
/// the only copy `worldline` knows of for sure is the one it was built with.
fn default_sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-rust/sdk")
}

/// The files of a Rust module project named `name`, depending on the SDK at
/// `sdk_path` (or [`default_sdk_dir`]).
pub(super) fn project(name: &str, sdk_path: Option<&Path>) -> anyhow::Result<Project> {
    let sdk = sdk_dir(sdk_path)?;
    let sdk_str = sdk
        .to_str()
        .with_context(|| format!("the SDK path {} is not valid UTF-8", sdk.display()))?;
    let lib = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("__NAME__", name)
            .replace("__LIB__", &lib)
            .replace("__SDK__", &toml_string(sdk_str))
    };
    let mut files = vec![
        ProjectFile {
            path: "Cargo.toml",
            contents: fill(CARGO_TOML),
        },
        ProjectFile {
            path: "src/lib.rs",
            contents: fill(LIB_RS),
        },
        ProjectFile {
            path: ".gitignore",
            contents: "/target\n".into(),
        },
        ProjectFile {
            path: "README.md",
            contents: fill(README_MD),
        },
    ];
    // The SDK's workspace lock file holds the dependency versions the SDK is
    // tested with; starting from it, the module builds with the same ones.
    if let Some(lock) = sdk
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|l| l.is_file())
    {
        let contents = std::fs::read_to_string(&lock)
            .with_context(|| format!("reading {}", lock.display()))?;
        files.push(ProjectFile {
            path: "Cargo.lock",
            contents,
        });
    }
    Ok(Project {
        files,
        next_steps: vec![
            "rustup target add wasm32-wasip2   # once".into(),
            "cargo build --release --target wasm32-wasip2".into(),
        ],
        example_call: "add_note 'Hello, Worldline'".into(),
        example_query: "SELECT * FROM note".into(),
    })
}

/// The Rust SDK: a crate whose manifest names the package `worldline`.
const RUST_SDK: SdkKind = SdkKind {
    language: "Rust",
    checkout_dir: "guest-rust/sdk",
    given_hint: "check --sdk-path",
    markers: "no Cargo.toml declaring the package `worldline`",
    recognise: |dir| {
        std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|m| names_the_sdk(&m))
    },
};

/// The SDK directory, checked and made absolute.
fn sdk_dir(sdk_path: Option<&Path>) -> anyhow::Result<PathBuf> {
    locate_sdk(&RUST_SDK, default_sdk_dir(), sdk_path)
}

/// Whether a manifest's `[package]` is named `worldline`.
fn names_the_sdk(manifest: &str) -> bool {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && line.replace(' ', "") == r#"name="worldline""# {
            return true;
        }
    }
    false
}

/// `value` as a TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::from('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const CARGO_TOML: &str = r#"[package]
name = "__NAME__"
version = "0.1.0"
edition = "2024"
publish = false

# A module is a library compiled to a WASI component:
# cargo build --release --target wasm32-wasip2
[lib]
crate-type = ["cdylib"]

[dependencies]
# The Worldline Rust SDK. It is not on crates.io yet, so the project depends
# on it by path, in the Worldline checkout `worldline init` came from.
worldline = { path = __SDK__ }

# The project is a workspace of its own, so it builds the same inside another one.
[workspace]
"#;

const LIB_RS: &str = r#"//! __NAME__: a Worldline module.
//!
//! A module is tables, which hold the database's state, and reducers, the
//! functions clients call to change it. Each reducer call is a transaction:
//! it commits when the reducer returns `Ok`, and leaves no trace when it
//! returns an error or panics.

use worldline::{Identity, ReducerContext, Table, Timestamp, reducer, table};

/// A note someone posted.
///
/// `#[table(name = note, public)]` makes this struct a table: `name = note`
/// is its name in SQL (`SELECT * FROM note`) and its accessor in reducers
/// (`ctx.db.note()`); `public` lets every client read it, where a table
/// without it is private to the database's owner.
#[table(name = note, public)]
pub struct Note {
    /// `#[primary_key]`: no two rows share an id, and the index
    /// `ctx.db.note().id()` finds, updates and deletes rows by it.
    /// `#[auto_inc]`: inserting 0 takes the next value of a sequence.
    #[primary_key]
    #[auto_inc]
    pub id: u64,
    /// `#[index(btree)]`: an index, `ctx.db.note().author().filter(&who)`.
    #[index(btree)]
    pub author: Identity,
    /// When it was posted.
    pub posted: Timestamp,
    /// What it says.
    pub text: String,
}

/// Posts a note from the caller.
///
/// `#[reducer]` lets clients call the function by name. Its first parameter
/// is the call's context (who called, when, and the database); the others
/// are the call's arguments. Returning `Err` rolls back every write the
/// reducer made and tells the caller why.
#[reducer]
pub fn add_note(ctx: &ReducerContext, text: String) -> Result<(), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("notes must not be empty".into());
    }
    let note = ctx.db.note().insert(Note {
        id: 0, // auto_inc: the insert takes the next id
        author: ctx.sender,
        posted: ctx.timestamp,
        text: text.to_owned(),
    });
    worldline::log::info(format!("note {} from {}", note.id, ctx.sender));
    Ok(())
}

/// Deletes one of the caller's notes.
#[reducer]
pub fn delete_note(ctx: &ReducerContext, id: u64) -> Result<(), String> {
    match ctx.db.note().id().find(&id) {
        Some(note) if note.author == ctx.sender => {
            ctx.db.note().id().delete(&id);
            Ok(())
        }
        Some(_) => Err(format!("note {id} is someone else's")),
        None => Err(format!("there is no note {id}")),
    }
}

/// Posts a welcome note when the database is created.
///
/// `#[reducer(init)]` is a lifecycle hook: the server runs it, once, as the
/// database's owner, and clients cannot call it. The others are
/// `#[reducer(client_connected)]`, which may refuse a connection by
/// returning `Err`, and `#[reducer(client_disconnected)]`.
#[reducer(init)]
pub fn init(ctx: &ReducerContext) {
    ctx.db.note().insert(Note {
        id: 0,
        author: ctx.sender,
        posted: ctx.timestamp,
        text: "Welcome! The init reducer posted this note.".into(),
    });
}
"#;

const README_MD: &str = r#"# __NAME__

A [Worldline](https://github.com/worldline-db/worldline) module: its tables
and reducers are in `src/lib.rs`.

## Build

```sh
rustup target add wasm32-wasip2   # once
cargo build --release --target wasm32-wasip2
```

The component to publish is `target/wasm32-wasip2/release/__LIB__.wasm`.

## Publish and use

With a server running (`worldline start`):

```sh
worldline publish __NAME__ --project-path .
worldline call __NAME__ add_note 'Hello, Worldline'
worldline sql __NAME__ "SELECT * FROM note"
```

Typed Rust client bindings for `worldline-client`:

```sh
worldline generate --lang rust --out-dir ../client/src/bindings \
    --wasm target/wasm32-wasip2/release/__LIB__.wasm
```
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sdk_package_counts_as_the_sdk() {
        assert!(names_the_sdk("[package]\nname = \"worldline\"\n"));
        assert!(!names_the_sdk(
            "[package]\nname = \"worldline-cli\"\n\n[[bin]]\nname = \"worldline\"\n"
        ));
        assert!(!names_the_sdk("[dependencies]\nname = \"worldline\"\n"));
    }

    #[test]
    fn paths_become_toml_strings() {
        assert_eq!(toml_string("/a/b"), r#""/a/b""#);
        assert_eq!(toml_string(r#"C:\x "y""#), r#""C:\\x \"y\"""#);
        assert_eq!(toml_string("a\tb"), r#""a\u0009b""#);
    }

    #[test]
    fn the_default_sdk_is_this_checkouts() {
        let sdk = sdk_dir(None).expect("the checkout's SDK");
        assert!(sdk.ends_with("guest-rust/sdk"), "{}", sdk.display());
    }
}
