//! The C++ SDK against the Rust one: the C++ examples (`guest-cpp/examples`)
//! are built here with their Makefiles (clang-19, `wit-bindgen c`,
//! `wasm-tools`, the toolchain `.ci/run` installs) and must describe the
//! same module as their Rust twins and behave the same way, call for call:
//! the same results, the same errors and traps, the same rollbacks and the
//! same rows. `ticker` (a schedule) and `prices` (a procedure with HTTP and
//! an explicit transaction) are checked the same way, through a real
//! server for the procedure. The C++ postcard codec is also checked
//! natively against the shared vectors (`tests/vectors/postcard.json`).

use std::process::Command;

use worldline_host::{
    CallContext, CallError, Database, describe_component, describe_component_definition,
};
use worldline_tests::parity::{
    assert_not_utf8_procedure, cpp_component, first_difference, target_dir, workspace,
};
use worldline_tests::twins::{self, Twins};
use worldline_tests::{ALICE, OWNER, args, guest_wasm, patient_engine};

/// Builds `guest-cpp/examples/NAME` with its Makefile and returns the component.
fn cpp_wasm(name: &str) -> Vec<u8> {
    cpp_component("examples", name)
}

/// The Rust and the C++ build of example `name`, each with a database.
fn twins(name: &str) -> Twins {
    Twins::of(
        &patient_engine(),
        name,
        &guest_wasm(name),
        &cpp_wasm(name),
        "C++",
    )
}

#[test]
fn the_cpp_codec_passes_the_shared_postcard_vectors() {
    let exe = target_dir().join("cpp").join("postcard_test");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let sdk = workspace().join("guest-cpp");
    let status = Command::new("clang++-19")
        .args(["-std=c++20", "-O1", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(sdk.join("include"))
        .arg(sdk.join("tests/postcard_test.cpp"))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("running clang++-19 (.ci/run installs it)");
    assert!(status.success(), "compiling the C++ codec test failed");
    let output = Command::new(&exe)
        .arg(workspace().join("tests/vectors/postcard.json"))
        .output()
        .expect("running the C++ codec test");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains(" 0 failures"), "{report}");
}

/// Compiles `source` natively against the C++ SDK's headers, checking only
/// its syntax and types; the compiler's messages if it fails.
fn cpp_compile_errors(name: &str, source: &str) -> Option<String> {
    let dir = target_dir().join("cpp");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, source).unwrap();
    let output = Command::new("clang++-19")
        .args([
            "-std=c++20",
            "-fsyntax-only",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
        ])
        .arg(workspace().join("guest-cpp/include"))
        .arg(&file)
        .output()
        .expect("running clang++-19 (.ci/run installs it)");
    (!output.status.success()).then(|| String::from_utf8_lossy(&output.stderr).into_owned())
}

// A `WORLDLINE_ROW` that left a field out compiled, and the module's rows
// silently lacked that column: the field's values were never stored.
#[test]
fn a_row_naming_fewer_fields_than_its_struct_does_not_compile() {
    let header = "#include <worldline/postcard.hpp>\n#include <optional>\n#include <string>\n\
                  #include <vector>\nstruct Inner { int a; int b; };\n";
    let whole = format!(
        "{header}struct Account {{ unsigned id; std::optional<std::string> name; \
         std::vector<Inner> items; Inner inner; }};\nWORLDLINE_ROW(Account, id, name, items, inner);\n"
    );
    assert_eq!(cpp_compile_errors("row_whole.cpp", &whole), None);
    let short = format!(
        "{header}struct Account {{ unsigned id; long balance; bool frozen; }};\n\
         WORLDLINE_ROW(Account, id, balance);\n"
    );
    let errors =
        cpp_compile_errors("row_short.cpp", &short).expect("a row missing a field is refused");
    assert!(
        errors.contains("decomposes into 3 elements, but only 2 names were provided"),
        "{errors}"
    );
}

#[test]
fn the_cpp_examples_describe_the_same_modules_as_the_rust_ones() {
    let engine = patient_engine();
    for name in ["bank", "chat", "ticker", "prices"] {
        let (rust_wasm, cpp_wasm) = (guest_wasm(name), cpp_wasm(name));
        // The definition exactly as each `describe` export returned it ...
        let rust = describe_component_definition(&engine, &rust_wasm).expect("the Rust definition");
        let cpp = describe_component_definition(&engine, &cpp_wasm).expect("the C++ definition");
        assert!(
            cpp == rust,
            "`{name}`: the C++ module describes a different definition than the Rust one\n{}",
            first_difference(&cpp, &rust)
        );
        // ... and the schema the host resolves from it.
        let rust = describe_component(&engine, &rust_wasm).expect("the Rust schema");
        let cpp = describe_component(&engine, &cpp_wasm).expect("the C++ schema");
        assert_eq!(
            serde_json::to_string_pretty(&cpp).unwrap(),
            serde_json::to_string_pretty(&rust).unwrap(),
            "`{name}`: the C++ module (left) describes a different schema than the Rust one (right)"
        );
        assert_eq!(cpp, rust);
    }
}

#[test]
fn bank_transfers_and_failures_match() {
    twins::bank_transfers_and_failures_match(&mut twins("bank"));
}

#[test]
fn chat_lifecycle_names_and_messages_match() {
    twins::chat_lifecycle_names_and_messages_match(&mut twins("chat"));
}

#[test]
fn the_cpp_ticker_ticks_on_its_schedule_like_the_rust_one() {
    twins::ticker_ticks_on_its_schedule_like_the_rust_one(&mut twins("ticker"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpp_prices_procedure_fetches_and_stores_like_the_rust_one() {
    twins::prices_procedure_fetches_and_stores(|| cpp_wasm("prices"), "C++").await;
}

#[test]
fn the_cpp_table_handles_read_back_what_they_wrote() {
    let wasm = cpp_component("tests", "handles");
    let mut db =
        Database::create(&patient_engine(), &wasm, OWNER).expect("the handles module loads");
    // More rows than one batch of a cursor (256).
    let n = 600u32;
    db.call_reducer("fill", &args(&(n,)), CallContext::new(ALICE))
        .expect("fill");
    db.call_reducer("check", &args(&(n,)), CallContext::new(ALICE))
        .expect("every read path agrees with what fill wrote");
    // `check` erased item 3 and changed item 2, then committed.
    assert_eq!(db.rows("item").unwrap().len(), n as usize - 1);

    // abort() and libc++'s fatal errors trap with their message, and roll back.
    assert_eq!(
        db.call_reducer("call_abort", &args(&()), CallContext::new(ALICE))
            .map(drop),
        Err(CallError::Panicked("abort() was called".into()))
    );
    // With exceptions off, libc++ turns `at` past the end into abort().
    assert_eq!(
        db.call_reducer("out_of_range", &args(&(1u32,)), CallContext::new(ALICE))
            .map(drop),
        Err(CallError::Panicked("abort() was called".into()))
    );
    assert_eq!(db.rows("item").unwrap().len(), n as usize - 1);
}

/// Text a C++ module built from bytes that are not UTF-8 reaches the host
/// as Rust's `String::from_utf8_lossy` reads it (a WIT string must be
/// UTF-8): a log line, a reducer's error, a panic's reason and a
/// procedure's error say what the module said instead of becoming a trap
/// ("invalid utf-8 sequence"); a request URL that is not UTF-8 is an
/// invalid request.
#[test]
fn cpp_text_that_is_not_utf8_reaches_the_host_repaired_not_as_a_trap() {
    let wasm = cpp_component("tests", "handles");
    let mut db =
        Database::create(&patient_engine(), &wasm, OWNER).expect("the handles module loads");
    let repaired = "caf\u{FFFD} \u{FFFD}!";
    assert_eq!(
        db.call_reducer("not_utf8", &args(&(0u8,)), CallContext::new(ALICE))
            .map(drop),
        Err(CallError::Failed(format!("error {repaired}")))
    );
    let logged = db.log().records().last().map(|r| r.message.clone());
    assert_eq!(logged, Some(format!("log {repaired}")));
    assert_eq!(
        db.call_reducer("not_utf8", &args(&(1u8,)), CallContext::new(ALICE))
            .map(drop),
        Err(CallError::Panicked(format!("panic {repaired}")))
    );
    let db = worldline_tests::db_thread::DbThread::spawn(db);
    assert_not_utf8_procedure(
        &db,
        repaired,
        "InvalidRequest: the request's URL is not valid UTF-8",
    );
}

#[test]
fn the_cpp_codec_passes_the_shared_postcard_vectors_inside_a_component() {
    let wasm = cpp_component("tests", "handles");
    let mut db =
        Database::create(&patient_engine(), &wasm, OWNER).expect("the handles module loads");
    let file = workspace().join("tests/vectors/postcard.json");
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("the vector file"))
            .expect("the vector file is JSON");
    assert!(vectors.len() > 100, "{} vectors", vectors.len());
    let field = |v: &serde_json::Value, key: &str| v[key].as_str().expect(key).to_owned();
    for vector in &vectors {
        let hex = field(vector, "bytes");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let arguments = args(&(
            field(vector, "type"),
            field(vector, "value"),
            serde_bytes::ByteBuf::from(bytes),
        ));
        db.call_reducer("postcard_vector", &arguments, CallContext::new(ALICE))
            .unwrap_or_else(|e| panic!("{vector}: {e}"));
    }
    // The check can fail: a wrong value is reported.
    assert_eq!(
        db.call_reducer(
            "postcard_vector",
            &args(&("u32", "7", serde_bytes::ByteBuf::from(vec![8u8]))),
            CallContext::new(ALICE)
        )
        .map(drop),
        Err(CallError::Failed("u32 7: decoded as 8".into()))
    );
}
