//! `worldline init --lang cpp` as a real process: the project it creates
//! builds with `make` (the C++ SDK's rules; `.ci/run` installs the
//! toolchain) into a component that a real host loads and runs.

// The helpers shared with init.rs and generate.rs; this test uses a few.
#[allow(dead_code)]
mod scaffold;

use std::fs;
use std::process::Command;

use scaffold::{target_dir, text, workspace, worldline};
use serde::Deserialize;
use worldline_host::{CallContext, Database};
use worldline_tests::{OWNER, TempDir, args, rows, test_engine};

/// A row of the template's `note` table.
#[derive(Debug, Deserialize)]
struct Note {
    id: u64,
    author: [u8; 32],
    posted: i64,
    text: String,
}

#[test]
fn init_cpp_creates_a_module_that_builds_and_runs() {
    let tmp = TempDir::new("worldline-cli-init-cpp");
    let dir = tmp.path().join("notes-cpp");
    let output = worldline([
        "init".as_ref(),
        "--lang".as_ref(),
        "cpp".as_ref(),
        dir.as_os_str(),
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    for step in ["make", "worldline publish notes-cpp --project-path"] {
        assert!(stdout.contains(step), "missing {step:?} in\n{stdout}");
    }
    for file in ["Makefile", "module.cpp", ".gitignore", "README.md"] {
        assert!(dir.join(file).is_file(), "{file} was not created");
    }
    let makefile = fs::read_to_string(dir.join("Makefile")).unwrap();
    let sdk = workspace().join("guest-cpp").canonicalize().unwrap();
    assert!(
        makefile.contains(&format!("WORLDLINE_CPP_SDK_DIR ?= {}", sdk.display())),
        "{makefile}"
    );

    // The adapter the SDK's rules write is shared with the other C++ builds.
    let build = Command::new("make")
        .arg("-C")
        .arg(&dir)
        .arg(format!(
            "ADAPTER_DIR={}",
            target_dir().join("cpp-adapter").display()
        ))
        .output()
        .expect("running make");
    let (build_out, build_err) = text(&build);
    assert!(build.status.success(), "{build_out}{build_err}");
    assert!(!build_err.contains("warning"), "{build_err}");

    let wasm = fs::read(dir.join("build/notes-cpp.wasm")).expect("the build wrote the component");
    let mut db = Database::create(&test_engine(), &wasm, OWNER).expect("the host loads it");
    let welcome: Vec<Note> = rows(&db, "note");
    assert_eq!(welcome.len(), 1, "init posts a welcome note: {welcome:?}");
    assert_eq!(welcome[0].author, OWNER.to_bytes());

    db.call_reducer("add_note", &args(&("  Hello  ",)), CallContext::new(OWNER))
        .expect("add_note commits");
    let notes: Vec<Note> = rows(&db, "note");
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(notes[1].text, "Hello");
    assert!(notes[1].id > notes[0].id && notes[1].posted > 0);

    let refused = db.call_reducer("add_note", &args(&("   ",)), CallContext::new(OWNER));
    let message = format!("{:?}", refused.expect_err("empty notes are refused"));
    assert!(message.contains("notes must not be empty"), "{message}");

    db.call_reducer(
        "delete_note",
        &args(&(notes[1].id,)),
        CallContext::new(OWNER),
    )
    .expect("the author deletes their note");
    assert_eq!(rows::<Note>(&db, "note").len(), 1);
}
