//! The C++ module template: a Makefile on the Worldline C++ SDK
//! (`guest-cpp/`), built with clang-19 into a component.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{Project, ProjectFile, SdkKind, locate_sdk};

/// The SDK new projects use unless `--sdk-path` says otherwise: `guest-cpp`
/// in the Worldline checkout this binary was built from (the SDK is not
/// packaged yet, so a project includes its Makefile rules by path).
fn default_sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-cpp")
}

/// The files of a C++ module project named `name`, using the SDK at
/// `sdk_path` (or [`default_sdk_dir`]).
pub(super) fn project(name: &str, sdk_path: Option<&Path>) -> anyhow::Result<Project> {
    let sdk = sdk_dir(sdk_path)?;
    let sdk_str = sdk
        .to_str()
        .with_context(|| format!("the SDK path {} is not valid UTF-8", sdk.display()))?;
    if sdk_str.contains([' ', '$', '#', '\\']) {
        bail!(
            "the SDK path {sdk_str} holds a character make cannot take in a path \
             (space, $, # or \\); move the Worldline checkout or pass --sdk-path"
        );
    }
    let fill = |template: &str| {
        template
            .replace("__NAME__", name)
            .replace("__SDK__", sdk_str)
    };
    Ok(Project {
        files: vec![
            ProjectFile {
                path: "Makefile",
                contents: fill(MAKEFILE),
            },
            ProjectFile {
                path: "module.cpp",
                contents: fill(MODULE_CPP),
            },
            ProjectFile {
                path: ".gitignore",
                contents: "/build\n".into(),
            },
            ProjectFile {
                path: "README.md",
                contents: fill(README_MD),
            },
        ],
        next_steps: vec!["make".into()],
        example_call: "add_note 'Hello, Worldline'".into(),
        example_query: "SELECT * FROM note".into(),
    })
}

/// The C++ SDK: its Makefile rules and its header.
const CPP_SDK: SdkKind = SdkKind {
    language: "C++",
    checkout_dir: "guest-cpp",
    given_hint: "check --sdk-path",
    markers: "no worldline.mk and include/worldline/worldline.hpp",
    recognise: |dir| {
        dir.join("worldline.mk").is_file() && dir.join("include/worldline/worldline.hpp").is_file()
    },
};

/// The SDK directory, checked and made absolute.
fn sdk_dir(sdk_path: Option<&Path>) -> anyhow::Result<PathBuf> {
    locate_sdk(&CPP_SDK, default_sdk_dir(), sdk_path)
}

const MAKEFILE: &str = r#"# __NAME__: a Worldline module in C++. `make` builds build/__NAME__.wasm.
#
# The rules are the Worldline C++ SDK's (worldline.mk, in the Worldline
# checkout `worldline init` came from): they need clang-19 with wasi-libc
# and libc++ for wasm32-wasi, wit-bindgen, wasm-tools and cargo (see the
# SDK's README). `worldline publish --project-path` recognises a C++
# project by this include of worldline.mk.
WORLDLINE_CPP_SDK_DIR ?= __SDK__

MODULE  := __NAME__
SOURCES := module.cpp

include $(WORLDLINE_CPP_SDK_DIR)/worldline.mk
"#;

const MODULE_CPP: &str = r#"// __NAME__: a Worldline module.
//
// A module is tables, which hold the database's state, and reducers, the
// functions clients call to change it. Each reducer call is a transaction:
// it commits when the reducer returns `{}`, and leaves no trace when it
// returns an error message or traps (worldline::panic).
#include <worldline/worldline.hpp>

using worldline::Identity;
using worldline::Timestamp;

/// A note someone posted.
struct Note {
    uint64_t id;
    Identity author;
    Timestamp posted;
    std::string text;
};
// The columns, in order: this line makes Note a row type (its encoding and
// its description to the server).
WORLDLINE_ROW(Note, id, author, posted, text);

// The table `note` (`SELECT * FROM note`), readable by every client
// (worldline::Private keeps it to the database's owner).
// primary_key: no two rows share an id, and note.by(&Note::id) finds,
// updates and erases rows by it. auto_inc: inserting 0 takes the next id.
// btree: an index, note.by(&Note::author).filter(who).
inline worldline::Table<Note> note{
    "note",
    worldline::Public,
    worldline::primary_key(&Note::id),
    worldline::auto_inc(&Note::id),
    worldline::btree(&Note::author),
};

static std::string trim(const std::string& s) {
    size_t first = s.find_first_not_of(" \t\n\r");
    if (first == std::string::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t\n\r") - first + 1);
}

// Posts a note from the caller. A reducer's parameters are (type, name)
// pairs; its body sees `ctx` (who called, when) and returns `{}` for
// success or a message, which rolls back every write it made.
WORLDLINE_REDUCER(add_note, (std::string, text)) {
    std::string trimmed = trim(text);
    if (trimmed.empty()) return "notes must not be empty";
    Note stored = note.insert(Note{0, ctx.sender, ctx.timestamp, trimmed});
    worldline::log::info("note " + std::to_string(stored.id) + " from " + ctx.sender.to_hex());
    return {};
}

// Deletes one of the caller's notes.
WORLDLINE_REDUCER(delete_note, (uint64_t, id)) {
    auto by_id = note.by(&Note::id);
    auto found = by_id.find(id);
    if (!found) return "there is no note " + std::to_string(id);
    if (found->author != ctx.sender) return "note " + std::to_string(id) + " is someone else's";
    by_id.erase(id);
    return {};
}

// Posts a welcome note when the database is created: a lifecycle reducer
// the server runs once, as the database's owner. The others are
// WORLDLINE_CLIENT_CONNECTED (an error refuses the connection) and
// WORLDLINE_CLIENT_DISCONNECTED.
WORLDLINE_INIT(init) {
    note.insert(Note{0, ctx.sender, ctx.timestamp, "Welcome! The init reducer posted this note."});
    return {};
}
"#;

const README_MD: &str = r#"# __NAME__

A [Worldline](https://github.com/worldline-db/worldline) module in C++: its
tables and reducers are in `module.cpp`.

## Build

```sh
make
```

The component to publish is `build/__NAME__.wasm`. The build needs clang-19
with wasi-libc and libc++ for wasm32-wasi, `wit-bindgen`, `wasm-tools` and
`cargo`; the Worldline C++ SDK's README says how to install them.

## Publish and use

With a server running (`worldline start`):

```sh
worldline publish __NAME__ --project-path .
worldline call __NAME__ add_note 'Hello, Worldline'
worldline sql __NAME__ "SELECT * FROM note"
```
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sdk_is_this_checkouts() {
        let sdk = sdk_dir(None).expect("the checkout's SDK");
        assert!(sdk.ends_with("guest-cpp"), "{}", sdk.display());
    }

    #[test]
    fn a_directory_without_the_sdk_is_refused() {
        let err = sdk_dir(Some(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap_err();
        assert!(
            err.to_string().contains("is not the Worldline C++ SDK"),
            "{err}"
        );
    }
}
