//! #11 item 3: `worldline bench memory` loads a narrow and a wide table into
//! a server it starts, restarts it, and reports bytes per row; with a few
//! rows it takes seconds. This checks that every row survives the restart
//! and that the figures are there; it times and sizes nothing.

use std::process::Command;

use serde_json::Value;
use worldline_tests::{TempDir, guest_path};

// #11 items 2, 3
#[test]
fn bench_memory_counts_every_row_before_and_after_a_restart() {
    let config = TempDir::new("worldline-bench-memory-config");
    let output = Command::new(env!("CARGO_BIN_EXE_worldline"))
        .args(["bench", "memory", "--rows", "3000", "--wide-rows", "300"])
        .arg("--wasm")
        .arg(guest_path("bank"))
        .arg("--wide-wasm")
        .arg(guest_path("features"))
        .args(["--durability", "none", "--json"])
        .env_remove("WORLDLINE_SERVER")
        .env("WORLDLINE_CONFIG", config.path().join("config.toml"))
        .output()
        .expect("running worldline bench memory");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "worldline bench memory failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert_eq!(report["durability"], "none");
    let tables = report["tables"].as_array().expect("tables");
    let expected = [("account", 3000), ("item", 300)];
    assert_eq!(tables.len(), expected.len(), "{report}");
    for (table, (name, rows)) in tables.iter().zip(expected) {
        assert_eq!(table["table"], name, "{table}");
        assert_eq!(table["rows"], rows, "{table}");
        assert_eq!(table["rows_before_restart"], rows, "{table}");
        assert_eq!(table["rows_after_restart"], rows, "{table}");
        for field in ["empty_rss_mib", "loaded_rss_mib", "recovered_rss_mib"] {
            assert!(table[field].as_f64().unwrap() > 0.0, "{field}: {table}");
        }
        assert!(table["recovered_bytes_per_row"].is_number(), "{table}");
    }
}
