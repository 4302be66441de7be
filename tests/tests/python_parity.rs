//! The Python SDK against the Rust one: the Python examples
//! (`guest-python/examples`) are built here with componentize-py (from the
//! venv `tests/setup.sh` makes in `target/python-venv`, or the one
//! `WORLDLINE_PYTHON_VENV` names) and must describe the same module as
//! their Rust twins and behave the same way, call for call: the same
//! results, the same errors and traps, the same rollbacks and the same
//! rows. `ticker` (a schedule) and `prices` (a procedure with HTTP and an
//! explicit transaction) are checked the same way, through a real server
//! for the procedure, and so is `guest-python/tests/sums` (sum types and a
//! nested option) against `guest-rust/test-modules/sums`. The Python postcard codec is also checked natively against the
//! shared vectors (`tests/vectors/postcard.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use worldline_host::Engine;
use worldline_host::{
    CallContext, CallError, Database, TxSubmitter, describe_component,
    describe_component_definition,
};
use worldline_tests::parity::{assert_not_utf8_procedure, first_difference, target_dir, workspace};
use worldline_tests::twins::{self, Twins};
use worldline_tests::{ALICE, OWNER, args, guest_wasm, patient_engine};

/// The Python of the venv holding componentize-py.
fn venv_python() -> PathBuf {
    std::env::var_os("WORLDLINE_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("python-venv"))
        .join("bin")
        .join("python")
}

/// The components built so far in this run, by project directory: each is
/// built once (one at a time: a build takes a core for seconds). Across
/// runs, `build.py` keeps a component whose sources did not change, so the
/// compiled-component cache serves it (componentize-py's output differs
/// from build to build).
static BUILT: Mutex<BTreeMap<PathBuf, Vec<u8>>> = Mutex::new(BTreeMap::new());

/// Builds `guest-python/examples/NAME` and returns the component.
fn python_wasm(name: &str) -> Vec<u8> {
    python_build(&workspace().join("guest-python/examples").join(name))
}

/// Builds the Python project in `dir` (once per run) and returns the component.
fn python_build(dir: &Path) -> Vec<u8> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(wasm) = built.get(dir) {
        return wasm.clone();
    }
    let name = dir
        .file_name()
        .expect("a project directory")
        .to_string_lossy();
    let out = target_dir().join("python").join(format!("{name}.wasm"));
    let output = Command::new(venv_python())
        .arg(workspace().join("guest-python/build.py"))
        .arg(dir)
        .arg(&out)
        .output()
        .expect("running the venv's python (tests/setup.sh makes target/python-venv)");
    assert!(
        output.status.success(),
        "building the Python project `{name}` failed ({}); tests/setup.sh installs componentize-py\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = std::fs::read(&out).unwrap_or_else(|e| panic!("reading {}: {e}", out.display()));
    built.insert(dir.to_path_buf(), wasm.clone());
    wasm
}

/// The test engine with a compiled-component cache under the target
/// directory, so the 18 MB Python components compile once, not in every
/// test and every run (the cache keys entries by content, so a rebuilt
/// example is compiled afresh).
fn engine() -> Engine {
    patient_engine()
        .with_component_cache(&target_dir().join("python").join("component-cache"))
        .expect("opening the component cache")
}

/// The Rust and the Python build of example `name`, each with a database.
fn twins(name: &str) -> Twins {
    twins_of(name, &guest_wasm(name), &python_wasm(name))
}

/// The module `name` from its Rust and its Python component.
fn twins_of(name: &str, rust: &[u8], python: &[u8]) -> Twins {
    Twins::of(&engine(), name, rust, python, "Python")
}

#[test]
fn the_python_codec_passes_the_shared_postcard_vectors() {
    let output = Command::new(venv_python())
        .current_dir(workspace().join("guest-python"))
        .args(["-m", "unittest", "discover", "-s", "tests", "-v"])
        .env(
            "WORLDLINE_POSTCARD_VECTORS",
            workspace().join("tests/vectors/postcard.json"),
        )
        .output()
        .expect("running python -m unittest");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("\nOK"), "{report}");
}

#[test]
fn the_python_examples_describe_the_same_modules_as_the_rust_ones_byte_for_byte() {
    let engine = engine();
    for name in ["bank", "chat", "ticker", "prices"] {
        let rust =
            describe_component_definition(&engine, &guest_wasm(name)).expect("the Rust definition");
        let python = describe_component_definition(&engine, &python_wasm(name))
            .expect("the Python definition");
        assert!(
            python == rust,
            "`{name}`: the Python module's definition (left) differs from the Rust one's (right):\n{}",
            first_difference(&python, &rust)
        );
    }
}

#[test]
fn bank_transfers_and_failures_match() {
    let mut bank = twins("bank");
    twins::bank_transfers_and_failures_match(&mut bank);
    let traceback = bank
        .other
        .log()
        .records()
        .any(|r| r.message.contains("Traceback") && r.message.contains("failed on purpose"));
    assert!(
        traceback,
        "the Python traceback of the failure went to the module log"
    );
}

#[test]
fn chat_lifecycle_names_and_messages_match() {
    twins::chat_lifecycle_names_and_messages_match(&mut twins("chat"));
}

#[test]
fn the_python_ticker_ticks_on_its_schedule_like_the_rust_one() {
    twins::ticker_ticks_on_its_schedule_like_the_rust_one(&mut twins("ticker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_prices_procedure_fetches_and_stores_like_the_rust_one() {
    twins::prices_procedure_fetches_and_stores(|| python_wasm("prices"), "Python").await;
}

#[test]
fn the_python_table_handles_read_back_what_they_wrote() {
    let wasm = python_build(&workspace().join("guest-python/tests/handles"));
    let mut db = Database::create(&engine(), &wasm, OWNER).expect("the handles module loads");
    let result = db.call_reducer("check", &args(&(2500u64,)), CallContext::new(ALICE));
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(db.rows("item").unwrap().len(), 2500);
}

/// The row and argument types of the `sums` test modules, as the host side
/// decodes and encodes them.
mod sums {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
    pub enum Color {
        Red,
        Green,
        Blue,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum Shape {
        Circle(f32),
        Rect { w: f32, h: f32 },
        Segment(i32, i32),
        Empty,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Label {
        pub text: String,
        pub color: Color,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Drawing {
        pub id: u32,
        pub shape: Shape,
        pub color: Color,
        pub labels: Vec<Label>,
        pub layer: Option<Option<u8>>,
    }
}

#[test]
fn python_sum_types_and_nested_options_describe_and_behave_like_rust_enums() {
    use sums::{Color, Drawing, Label, Shape};

    let rust_wasm = guest_wasm("sums");
    let python_wasm = python_build(&workspace().join("guest-python/tests/sums"));
    let engine = engine();
    let rust = describe_component_definition(&engine, &rust_wasm).expect("the Rust definition");
    let python =
        describe_component_definition(&engine, &python_wasm).expect("the Python definition");
    assert!(
        python == rust,
        "`sums`: the Python module describes a different definition than the Rust one\n{}",
        first_difference(&python, &rust)
    );
    assert!(rust.contains("Sum(") && rust.contains("Option(") && rust.contains("\"Segment\""));

    let mut sums = twins_of("sums", &rust_wasm, &python_wasm);
    let ctx = CallContext::new(ALICE);
    let label = |text: &str, color| Label {
        text: text.into(),
        color,
    };
    let drawings = [
        Drawing {
            id: 1,
            shape: Shape::Circle(1.5),
            color: Color::Red,
            labels: vec![label("sun", Color::Blue), label("disc", Color::Green)],
            layer: None,
        },
        Drawing {
            id: 2,
            shape: Shape::Rect { w: 2.0, h: 0.25 },
            color: Color::Green,
            labels: vec![],
            layer: Some(None),
        },
        Drawing {
            id: 3,
            shape: Shape::Segment(-7, 300),
            color: Color::Blue,
            labels: vec![label("road", Color::Red)],
            layer: Some(Some(254)),
        },
        Drawing {
            id: 4,
            shape: Shape::Empty,
            color: Color::Red,
            labels: vec![],
            layer: Some(Some(0)),
        },
    ];
    for d in &drawings {
        let arguments = args(&(d.id, &d.shape, d.color, &d.labels, d.layer));
        sums.call("draw", &arguments, ctx).expect("draw");
    }
    let stored = |db: &Database| {
        let mut rows: Vec<Drawing> = worldline_tests::rows(db, "drawing");
        rows.sort_by_key(|d| d.id);
        rows
    };
    assert_eq!(
        stored(&sums.other),
        drawings,
        "the Python module stored what it was given"
    );
    assert_eq!(sums.same_rows("drawing"), 4);
    assert_eq!(
        sums.call(
            "draw",
            &args(&(
                5u32,
                Shape::Rect { w: 0.0, h: 1.0 },
                Color::Red,
                Vec::<Label>::new(),
                None::<Option<u8>>
            )),
            ctx
        ),
        Err(CallError::Failed(
            "a rectangle needs a positive size".into()
        ))
    );
    // A case index past the last case is refused before the module runs.
    let mut bad = args(&(6u32,));
    bad.extend([4u8, 0, 0, 0]);
    assert!(matches!(
        sums.call("draw", &bad, ctx),
        Err(CallError::InvalidArguments { .. })
    ));
    for _ in 0..2 {
        for id in 1..=4u32 {
            sums.call("grow", &args(&(id, 2.0f32)), ctx).expect("grow");
        }
    }
    assert_eq!(
        sums.call("grow", &args(&(9u32, 2.0f32)), ctx),
        Err(CallError::Failed("no drawing 9".into()))
    );
    sums.same_rows("drawing");
    let grown: Vec<(Shape, Color, Option<Option<u8>>)> = stored(&sums.other)
        .into_iter()
        .map(|d| (d.shape, d.color, d.layer))
        .collect();
    assert_eq!(
        grown,
        vec![
            (Shape::Circle(6.0), Color::Blue, Some(Some(0))),
            (Shape::Rect { w: 8.0, h: 1.0 }, Color::Red, Some(Some(1))),
            (Shape::Segment(-7, 300), Color::Green, Some(Some(255))),
            (Shape::Circle(2.0), Color::Blue, Some(Some(2))),
        ]
    );
    // The colour is an index key: erasing blue deletes drawings 1 and 4.
    sums.call("erase", &args(&(Color::Blue,)), ctx)
        .expect("erase");
    assert_eq!(sums.same_rows("drawing"), 2);
    let left: Vec<u32> = stored(&sums.other).iter().map(|d| d.id).collect();
    assert_eq!(left, vec![2, 3]);

    // A procedure taking a list of sums and returning an optional one.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let no_transactions: TxSubmitter = std::sync::Arc::new(|_| Err("no transactions here".into()));
    for (shapes, expected) in [
        (
            vec![Shape::Empty, Shape::Segment(1, 2), Shape::Circle(1.0)],
            Some(Shape::Segment(1, 2)),
        ),
        (vec![Shape::Empty], None),
    ] {
        let mut outputs = Vec::new();
        for db in [&mut sums.rust, &mut sums.other] {
            let run = db
                .start_procedure(
                    "first_drawn",
                    args(&(&shapes,)),
                    ctx,
                    no_transactions.clone(),
                )
                .expect("first_drawn starts");
            outputs.push(run.run(runtime.handle()).expect("first_drawn").value);
        }
        assert_eq!(
            outputs[1], outputs[0],
            "first_drawn returned different bytes"
        );
        let found: Option<Shape> = postcard::from_bytes(&outputs[1]).expect("an optional shape");
        assert_eq!(found, expected);
    }
}

/// Runs `build.py` on the project in `dir` into `out`; returns its output.
fn run_build(dir: &Path, out: &Path) -> String {
    let (succeeded, report) = build(dir, out, &[]);
    assert!(succeeded, "build.py failed: {report}");
    report
}

/// Runs `build.py` on the project in `dir` into `out`, with `env` added to
/// its environment; returns whether it succeeded, and its output.
fn build(dir: &Path, out: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(venv_python())
        .arg(workspace().join("guest-python/build.py"))
        .arg(dir)
        .arg(out)
        .envs(env.iter().copied())
        .output()
        .expect("running the venv's python");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

/// A module that fails to import is reported by its Python traceback, not
/// buried under componentize-py's native backtrace when the builder's shell
/// has `RUST_BACKTRACE` set.
#[test]
fn a_python_module_that_fails_to_import_is_reported_without_a_native_backtrace() {
    let project = target_dir().join("python").join("import-error");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("worldline.toml"), "module = \"app\"\n").unwrap();
    std::fs::write(
        project.join("app.py"),
        "from worldline import reducer\nimport no_such_module_here\n",
    )
    .unwrap();
    let (succeeded, report) = build(
        &project,
        &project.join("module.wasm"),
        &[("RUST_BACKTRACE", "1")],
    );
    assert!(!succeeded, "{report}");
    assert!(
        report.contains("ModuleNotFoundError: No module named 'no_such_module_here'"),
        "{report}"
    );
    assert!(!report.contains("Py_RunMain"), "{report}");
    assert!(report.lines().count() < 30, "{report}");
}

#[test]
fn rebuilding_an_unchanged_python_project_keeps_its_component_and_a_change_rebuilds_it() {
    let work = target_dir().join("python").join("rebuild");
    let project = work.join("project");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&project).unwrap();
    let bank = workspace().join("guest-python/examples/bank");
    for file in ["worldline.toml", "app.py"] {
        std::fs::copy(bank.join(file), project.join(file)).unwrap();
    }
    let out = work.join("out").join("module.wasm");
    let first_report = run_build(&project, &out);
    assert!(!first_report.contains("up to date"), "{first_report}");
    let first = std::fs::read(&out).unwrap();
    let again = run_build(&project, &out);
    assert!(again.contains("up to date"), "{again}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        first,
        "the same sources, the same component"
    );

    // A changed source is built afresh (and componentize-py's bytes differ).
    let mut app = std::fs::read_to_string(project.join("app.py")).unwrap();
    app.push_str(
        "\n\n@reducer\ndef added(ctx):\n    \"\"\"A reducer added after the first build.\"\"\"\n",
    );
    std::fs::write(project.join("app.py"), app).unwrap();
    let changed = run_build(&project, &out);
    assert!(!changed.contains("up to date"), "{changed}");
    let rebuilt = std::fs::read(&out).unwrap();
    assert_ne!(rebuilt, first);
    let schema = describe_component(&engine(), &rebuilt).expect("the rebuilt module loads");
    assert!(
        schema.reducers.iter().any(|r| r.name == "added"),
        "{schema:?}"
    );

    // A damaged component is rebuilt too, not trusted.
    std::fs::write(&out, b"not a component").unwrap();
    let repaired = run_build(&project, &out);
    assert!(!repaired.contains("up to date"), "{repaired}");
    assert!(std::fs::read(&out).unwrap().len() > 1 << 20);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn python_failures_reach_the_caller_with_a_message() {
    let wasm = python_build(&workspace().join("guest-python/tests/failures"));
    let mut db = Database::create(&engine(), &wasm, OWNER).expect("the failures module loads");
    // A bare `assert` has no message: the caller gets the exception's type.
    let result = db.call_reducer("positive", &args(&(0u32,)), CallContext::new(ALICE));
    assert!(
        matches!(&result, Err(CallError::Failed(m)) if m == "AssertionError"),
        "{result:?}"
    );
    assert!(
        db.call_reducer("positive", &args(&(1u32,)), CallContext::new(ALICE))
            .is_ok()
    );
    // sys.exit(3): a trap naming the code the module gave (WASI's exit
    // carries none, so the host alone would report exit(1)).
    let result = db.call_reducer("exits", &args(&(3u32,)), CallContext::new(ALICE));
    assert!(
        matches!(&result, Err(CallError::Panicked(m)) if m.contains("sys.exit(3) was called")),
        "{result:?}"
    );
    // Any other `BaseException` is the call's error too, not a trap in
    // the Python runtime's words ("Python function threw an unexpected
    // exception").
    let result = db.call_reducer("interrupted", &args(&()), CallContext::new(ALICE));
    assert!(
        matches!(&result, Err(CallError::Failed(m)) if m == "stopped by hand"),
        "{result:?}"
    );
    // A table of `kw_only` dataclass rows: rows read back are built by
    // keyword (they were built positionally, which such a class refuses).
    db.call_reducer("keyword_rows", &args(&(5u32,)), CallContext::new(ALICE))
        .expect("kw_only rows read back");
    // Tracebacks: the first 10, then at most one a second (these calls all
    // come within one), so a hook failing as clients come and go cannot
    // flood the log.
    for _ in 0..30 {
        let _ = db.call_reducer("positive", &args(&(0u32,)), CallContext::new(ALICE));
    }
    let tracebacks = db
        .log()
        .records()
        .filter(|r| r.message.starts_with("Traceback"))
        .count();
    assert!(
        (10..=12).contains(&tracebacks),
        "{tracebacks} tracebacks logged"
    );
    // A reducer returning a value fails rather than committing as if it
    // succeeded: `return "message"` is a C++ reducer's error, not Python's.
    let result = db.call_reducer("returns_a_message", &args(&()), CallContext::new(ALICE));
    assert!(
        matches!(&result, Err(CallError::Failed(m)) if m == "a reducer returns None (raise an exception to fail the call), not 'that went wrong'"),
        "{result:?}"
    );
    // A big value is quoted cut short, not whole (100,000 numbers would
    // make a message of some 600 KB).
    let result = db.call_reducer("returns_a_big_list", &args(&()), CallContext::new(ALICE));
    assert!(
        matches!(&result, Err(CallError::Failed(m)) if m.starts_with("a reducer returns None (raise an exception to fail the call), not [0, 1, 2, 3")
            && m.ends_with("… (688890 characters)")
            && m.len() < 400),
        "{result:?}"
    );
    // A procedure returning the wrong type fails cleanly, as a reducer
    // inserting a wrong row does, instead of trapping inside componentize-py.
    let db = worldline_tests::db_thread::DbThread::spawn(db);
    let result = db.call_as(ALICE, "wrong_return", args(&()));
    assert!(
        matches!(&result, Err(CallError::Failed(m)) if m == "the return value: expected an int for u64, got 'not a number'"),
        "{result:?}"
    );
    // One without a return type returns the unit: any other value is refused
    // the same way, not with the codec's "object of type 'int' has no len()".
    let result = db.call_as(ALICE, "value_without_a_return_type", args(&()));
    assert!(
        matches!(&result, Err(CallError::Failed(m)) if m == "the return value: expected None (no value), got 42"),
        "{result:?}"
    );
    let result = db.call_as(ALICE, "right_return", args(&()));
    assert_eq!(result.expect("right_return").value, args(&7u64));

    // Text holding lone surrogates (bytes that are not UTF-8, decoded with
    // surrogateescape) reaches the host with each one replaced by U+FFFD, as
    // the C++ SDK repairs bytes and Rust's `String::from_utf8_lossy` reads
    // them: a log line, an error, a panic's reason and a procedure's error
    // say what the module said instead of trapping inside componentize-py
    // (`called Result::unwrap() on an Err value: PyErr { UnicodeEncodeError`).
    let repaired = "caf\u{FFFD} \u{FFFD}!";
    let not_utf8 = |which: u8| {
        db.with(move |db| {
            db.call_reducer("not_utf8", &args(&(which,)), CallContext::new(ALICE))
                .map(drop)
        })
    };
    assert_eq!(
        not_utf8(0),
        Err(CallError::Failed(format!("error {repaired}")))
    );
    let logged = db.with(|db| {
        db.log()
            .records()
            .filter(|r| r.message.starts_with("log "))
            .last()
            .map(|r| r.message.clone())
    });
    assert_eq!(logged, Some(format!("log {repaired}")));
    assert_eq!(
        not_utf8(1),
        Err(CallError::Panicked(format!("panic {repaired}")))
    );
    // A URL holding one is refused as an invalid request, not a trap.
    assert_not_utf8_procedure(
        &db,
        repaired,
        "invalid-request: the request's URL is not valid UTF-8 (it holds a lone surrogate)",
    );
}
