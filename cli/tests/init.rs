//! `worldline init` as a real process: the project it creates builds with
//! cargo into a component that a real host loads and runs.

mod scaffold;

use std::fs;

use scaffold::{assert_rustfmt_clean, cargo, target_dir, text, workspace, worldline};
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
fn init_creates_a_module_that_builds_and_runs() {
    let tmp = TempDir::new("worldline-cli-init");
    let dir = tmp.path().join("notes-app");
    let output = worldline([
        "init".as_ref(),
        "--lang".as_ref(),
        "rust".as_ref(),
        dir.as_os_str(),
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("created the Rust module project `notes-app`"),
        "{stdout}"
    );
    for step in [
        "cargo build --release --target wasm32-wasip2",
        "cd ",
        "worldline publish notes-app --project-path .",
        "worldline call notes-app add_note",
        "worldline sql notes-app \"SELECT * FROM note\"",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in\n{stdout}");
    }
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        ".gitignore",
        "README.md",
        "Cargo.lock",
    ] {
        assert!(dir.join(file).is_file(), "{file} was not created");
        assert!(stdout.contains(file), "{file} is not listed in\n{stdout}");
    }
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let sdk = workspace().join("guest-rust/sdk").canonicalize().unwrap();
    assert!(
        manifest.contains(&format!("worldline = {{ path = \"{}\" }}", sdk.display())),
        "{manifest}"
    );
    assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
    assert!(manifest.contains("crate-type = [\"cdylib\"]"), "{manifest}");
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("worldline publish notes-app --project-path ."),
        "{readme}"
    );
    assert!(
        readme.contains("target/wasm32-wasip2/release/notes_app.wasm"),
        "{readme}"
    );
    assert_rustfmt_clean(&dir.join("src/lib.rs"));

    // Where tests/build.rs builds the guests: the SDK's dependencies are built there.
    let target_dir = target_dir().join("guests");
    let (build, took) = cargo(
        &dir,
        &target_dir,
        &["build", "--release", "--target", "wasm32-wasip2"],
    );
    let (build_out, build_err) = text(&build);
    assert!(build.status.success(), "{build_out}{build_err}");
    assert!(!build_err.contains("warning"), "{build_err}");
    eprintln!("the new project built in {:.1} s", took.as_secs_f64());

    let wasm = fs::read(target_dir.join("wasm32-wasip2/release/notes_app.wasm"))
        .expect("the build wrote the component");
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
    assert_eq!(rows::<Note>(&db, "note").len(), 2);

    db.call_reducer(
        "delete_note",
        &args(&(notes[1].id,)),
        CallContext::new(OWNER),
    )
    .expect("the author deletes their note");
    assert_eq!(rows::<Note>(&db, "note").len(), 1);
}

#[test]
fn init_refuses_a_directory_that_is_not_empty_and_changes_nothing() {
    let tmp = TempDir::new("worldline-cli-init-busy");
    let dir = tmp.path().join("busy");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let output = worldline([
        "init".as_ref(),
        "--lang".as_ref(),
        "rust".as_ref(),
        dir.as_os_str(),
    ]);
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(stderr.contains("new or empty directory"), "{stderr}");
    let entries: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["notes.txt"]);
    assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
}

#[test]
fn init_names_the_project_after_an_empty_directory_and_takes_an_sdk_path() {
    let tmp = TempDir::new("worldline-cli-init-named");
    let dir = tmp.path().join("My Game 2");
    fs::create_dir(&dir).unwrap();
    let sdk = workspace().join("guest-rust/sdk");
    let output = worldline([
        "init".as_ref(),
        dir.as_os_str(),
        "--lang".as_ref(),
        "rust".as_ref(),
        "--sdk-path".as_ref(),
        sdk.as_os_str(),
    ]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"my-game-2\""), "{manifest}");
    let sdk = sdk.canonicalize().unwrap();
    assert!(
        manifest.contains(&format!("path = \"{}\"", sdk.display())),
        "{manifest}"
    );
}

#[test]
fn init_with_a_wrong_sdk_path_fails_and_creates_nothing() {
    let tmp = TempDir::new("worldline-cli-init-sdk");
    let dir = tmp.path().join("project");
    for (sdk, problem) in [
        (
            tmp.path().join("nowhere"),
            "the Worldline Rust SDK is not at",
        ),
        (workspace().join("cli"), "is not the Worldline Rust SDK"),
    ] {
        let output = worldline([
            "init".as_ref(),
            dir.as_os_str(),
            "--lang".as_ref(),
            "rust".as_ref(),
            "--sdk-path".as_ref(),
            sdk.as_os_str(),
        ]);
        let (stdout, stderr) = text(&output);
        assert!(!output.status.success(), "{stdout}{stderr}");
        assert!(stderr.contains(problem), "{stderr}");
        assert!(stderr.contains("check --sdk-path"), "{stderr}");
        assert!(!dir.exists());
    }
}
