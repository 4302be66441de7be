//! The Python module template: an app module on the Worldline Python SDK
//! (`guest-python/`), built with componentize-py into a component.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Project, ProjectFile, SdkKind, locate_sdk};

/// The SDK new projects use unless `--sdk-path` says otherwise:
/// `guest-python` in the Worldline checkout this binary was built from (the
/// SDK is not on PyPI yet, so `worldline.toml` names it by path).
pub(crate) fn default_sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-python")
}

/// The files of a Python module project named `name`, using the SDK at
/// `sdk_path` (or [`default_sdk_dir`]).
pub(super) fn project(name: &str, sdk_path: Option<&Path>) -> anyhow::Result<Project> {
    let sdk = sdk_dir(sdk_path)?;
    let sdk_str = sdk
        .to_str()
        .with_context(|| format!("the SDK path {} is not valid UTF-8", sdk.display()))?;
    let sdk_toml = toml::Value::String(sdk_str.to_owned()).to_string();
    let fill = |template: &str| {
        template
            .replace("__NAME__", name)
            .replace("__SDK__", &sdk_toml)
    };
    Ok(Project {
        files: vec![
            ProjectFile {
                path: "worldline.toml",
                contents: fill(WORLDLINE_TOML),
            },
            ProjectFile {
                path: "app.py",
                contents: fill(APP_PY),
            },
            ProjectFile {
                path: ".gitignore",
                contents: "/build\n/.venv\n__pycache__/\n".into(),
            },
            ProjectFile {
                path: "README.md",
                contents: fill(README_MD),
            },
        ],
        next_steps: Vec::new(),
        example_call: "add_note 'Hello, Worldline'".into(),
        example_query: "SELECT * FROM note".into(),
    })
}

/// The Python SDK: its build script and its package.
const PYTHON_SDK: SdkKind = SdkKind {
    language: "Python",
    checkout_dir: "guest-python",
    given_hint: "check the SDK path",
    markers: "no build.py and worldline/__init__.py",
    recognise: |dir| dir.join("build.py").is_file() && dir.join("worldline/__init__.py").is_file(),
};

/// The SDK directory, checked and made absolute.
pub(crate) fn sdk_dir(sdk_path: Option<&Path>) -> anyhow::Result<PathBuf> {
    locate_sdk(&PYTHON_SDK, default_sdk_dir(), sdk_path)
}

const WORLDLINE_TOML: &str = r#"# __NAME__: a Worldline module in Python.
# `worldline publish --project-path .` recognises a Python project by this
# file and builds `module` (app.py) with componentize-py, using the SDK at
# `sdk`, into build/module.wasm.
module = "app"
sdk = __SDK__
"#;

const APP_PY: &str = r#"""" __NAME__: a Worldline module.

A module is tables, which hold the database's state, and reducers, the
functions clients call to change it. Each reducer call is a transaction: it
commits when the reducer returns, and leaves no trace when it raises (the
exception's message goes back to the caller).
"""

from dataclasses import dataclass
from typing import Annotated

from worldline import Identity, Timestamp, auto_inc, index, log, primary_key, reducer, table, u64


# The table `note` (`SELECT * FROM note`), readable by every client
# (public=False keeps it to the database's owner). primary_key: no two rows
# share an id, and ctx.db.note.id finds, updates and deletes rows by it.
# auto_inc: inserting 0 takes the next id. index: ctx.db.note.author.filter(who).
@table(name="note", public=True)
@dataclass
class Note:
    """A note someone posted."""

    id: Annotated[u64, primary_key, auto_inc]
    author: Annotated[Identity, index]
    posted: Timestamp
    text: str


@reducer
def add_note(ctx, text: str):
    """Posts a note from the caller."""
    text = text.strip()
    if not text:
        raise ValueError("notes must not be empty")
    stored = ctx.db.note.insert(Note(0, ctx.sender, ctx.timestamp, text))
    log.info(f"note {stored.id} from {ctx.sender}")


@reducer
def delete_note(ctx, id: u64):
    """Deletes one of the caller's notes."""
    found = ctx.db.note.id.find(id)
    if found is None:
        raise LookupError(f"there is no note {id}")
    if found.author != ctx.sender:
        raise PermissionError(f"note {id} is someone else's")
    ctx.db.note.id.delete(id)


# Posts a welcome note when the database is created: a lifecycle reducer the
# server runs once, as the database's owner. The others are
# @reducer(client_connected=True) (raising refuses the connection) and
# @reducer(client_disconnected=True).
@reducer(init=True)
def init(ctx):
    """Posts the welcome note."""
    ctx.db.note.insert(Note(0, ctx.sender, ctx.timestamp, "Welcome! The init reducer posted this note."))
"#;

const README_MD: &str = r#"# __NAME__

A [Worldline](https://github.com/worldline-db/worldline) module in Python:
its tables and reducers are in `app.py`.

## Publish and use

With a server running (`worldline start`):

```sh
worldline publish __NAME__ --project-path .
worldline call __NAME__ add_note 'Hello, Worldline'
worldline sql __NAME__ "SELECT * FROM note"
```

`publish` builds `app.py` with componentize-py 0.25 from the venv that
`WORLDLINE_PYTHON_VENV` names, or else from `.venv` here, which it creates
(`python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1`)
if it is missing. The component is `build/module.wasm` (about 18 MB: it
holds CPython).
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sdk_is_this_checkouts() {
        let sdk = sdk_dir(None).expect("the checkout's SDK");
        assert!(sdk.ends_with("guest-python"), "{}", sdk.display());
    }

    #[test]
    fn a_directory_without_the_sdk_is_refused() {
        let err = sdk_dir(Some(Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap_err();
        assert!(
            err.to_string().contains("is not the Worldline Python SDK"),
            "{err}"
        );
    }
}
