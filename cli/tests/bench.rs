//! #10 items 1 and 2, #11 item 3, #13 item 6: `worldline bench` runs end to end against a server it
//! starts itself, with tiny settings so that each subcommand takes a few
//! seconds. These check that the benchmarks work and that the bank's balance
//! invariant holds; they time nothing.

use std::process::Command;

use serde_json::Value;
use worldline_tests::parity::target_dir;
use worldline_tests::{TempDir, guest_path};

/// Runs `worldline bench ARGS --json` on the prebuilt bank component, with
/// `--durability none` unless ARGS name one, and returns the JSON it printed.
fn bench(args: &[&str]) -> Value {
    let config = TempDir::new("worldline-bench-config");
    let durability = if args.contains(&"--durability") {
        &[][..]
    } else {
        &["--durability", "none"][..]
    };
    let output = Command::new(env!("CARGO_BIN_EXE_worldline"))
        .arg("bench")
        .args(args)
        .args(durability)
        .arg("--wasm")
        .arg(guest_path("bank"))
        .arg("--json")
        .env_remove("WORLDLINE_SERVER")
        .env("WORLDLINE_CONFIG", config.path().join("config.toml"))
        .output()
        .expect("running worldline bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "worldline bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

// #10 items 1, 2
#[test]
fn bench_transfer_keeps_the_balance_sum_over_both_protocols_and_runs_the_sqlite_baseline() {
    let report = bench(&[
        "transfer",
        "--accounts",
        "1000",
        "--connections",
        "2",
        "--in-flight",
        "4",
        "--alpha",
        "1.5",
        "--warmup",
        "0",
        "--duration",
        "1",
        "--protocol",
        "ws,quic",
        "--baseline",
        "sqlite",
    ]);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{report}");
    for run in runs {
        assert_eq!(run["balance_unchanged"], true, "{run}");
        assert_eq!(run["balance_sum_before"], 1000 * 1_000_000_000i64, "{run}");
        assert_eq!(run["errors"], 0, "{run}");
        assert!(run["tps"].as_f64().unwrap() > 0.0, "{run}");
        assert!(run["latency"]["p99_us"].as_f64().unwrap() > 0.0, "{run}");
        assert!(run["server"]["rss_mib"].as_f64().unwrap() > 0.0, "{run}");
        assert_eq!(run["durability"], "none");
        assert!(run["disk_sync"].is_null(), "{run}");
    }
    let baselines = report["baselines"].as_array().expect("baselines");
    assert_eq!(baselines.len(), 2, "{report}");
    for baseline in baselines {
        assert_eq!(baseline["balance_unchanged"], true, "{baseline}");
        assert!(baseline["summary"]["per_second"].as_f64().unwrap() > 0.0);
        assert_eq!(baseline["ratios"].as_array().unwrap().len(), 2);
    }
}

// Under `every` the report says how long the disk takes to make a write
// durable, which bounds every transfer's latency from below.
#[test]
fn bench_transfer_under_every_times_the_disks_sync() {
    let report = bench(&[
        "transfer",
        "--accounts",
        "100",
        "--connections",
        "1",
        "--in-flight",
        "2",
        "--warmup",
        "0",
        "--duration",
        "1",
        "--protocol",
        "ws",
        "--durability",
        "every",
    ]);
    let run = &report["runs"][0];
    assert_eq!(run["durability"], "every", "{run}");
    assert_eq!(run["balance_unchanged"], true, "{run}");
    let sync = &run["disk_sync"];
    let (p50, p99) = (sync["p50_us"].as_f64(), sync["p99_us"].as_f64());
    assert!(
        matches!((p50, p99), (Some(p50), Some(p99)) if p50 > 0.0 && p50 <= p99),
        "{run}"
    );
}

// #13 item 6: `--lang` builds the bank example in Rust, C++ and Python from
// this checkout and measures each on a server of its own, side by side.
// Needs the C++ toolchain and the Python venv the parity tests use.
#[test]
fn bench_transfer_runs_the_bank_of_every_language_side_by_side() {
    let config = TempDir::new("worldline-bench-config");
    let venv = std::env::var_os("WORLDLINE_PYTHON_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| target_dir().join("python-venv"));
    let output = Command::new(env!("CARGO_BIN_EXE_worldline"))
        .args([
            "bench",
            "transfer",
            "--lang",
            "rust,cpp,python",
            "--accounts",
            "1000",
            "--connections",
            "2",
            "--in-flight",
            "4",
            "--warmup",
            "0",
            "--duration",
            "1",
            "--protocol",
            "ws",
            "--durability",
            "none",
            "--json",
        ])
        .env_remove("WORLDLINE_SERVER")
        .env("WORLDLINE_PYTHON_VENV", venv)
        .env("WORLDLINE_CONFIG", config.path().join("config.toml"))
        .output()
        .expect("running worldline bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "worldline bench transfer --lang failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let runs = report["runs"].as_array().expect("runs");
    let languages: Vec<&str> = runs
        .iter()
        .map(|r| r["language"].as_str().unwrap())
        .collect();
    assert_eq!(languages, ["rust", "cpp", "python"], "{report}");
    for run in runs {
        assert_eq!(run["protocol"], "ws", "{run}");
        assert_eq!(run["balance_unchanged"], true, "{run}");
        assert_eq!(run["balance_sum_before"], 1000 * 1_000_000_000i64, "{run}");
        assert_eq!(run["errors"], 0, "{run}");
        assert!(run["committed"].as_u64().unwrap() > 0, "{run}");
        let ratio = run["tps_ratio_to_rust"].as_f64().expect("a ratio to Rust");
        let expected = run["tps"].as_f64().unwrap() / runs[0]["tps"].as_f64().unwrap();
        assert!((ratio - expected).abs() < 1e-9, "{run}");
    }
}

// `--lang` builds the examples itself: it refuses a component or project.
#[test]
fn bench_transfer_refuses_lang_with_a_component() {
    let output = Command::new(env!("CARGO_BIN_EXE_worldline"))
        .args(["bench", "transfer", "--lang", "cpp", "--wasm"])
        .arg(guest_path("bank"))
        .output()
        .expect("running worldline bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert!(output.stdout.is_empty());
}

// #10 item 2: the PostgreSQL baseline needs a server; without a usable
// `--postgres-url` it says so before running anything.
#[test]
fn bench_transfer_refuses_the_postgres_baseline_without_a_usable_url() {
    let config = TempDir::new("worldline-bench-config");
    for (url, expected) in [
        (None, "--baseline postgres needs --postgres-url"),
        (
            Some("host=/x port=not-a-port"),
            "is not a PostgreSQL connection string",
        ),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_worldline"));
        command
            .args([
                "bench",
                "transfer",
                "--baseline",
                "sqlite,postgres",
                "--wasm",
            ])
            .arg(guest_path("bank"))
            .env_remove("WORLDLINE_BENCH_POSTGRES_URL")
            .env("WORLDLINE_CONFIG", config.path().join("config.toml"));
        if let Some(url) = url {
            command.args(["--postgres-url", url]);
        }
        let output = command.output().expect("running worldline bench");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            output.stdout.is_empty(),
            "nothing was measured: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

// #10 item 1
#[test]
fn bench_rtt_measures_both_transports() {
    let runs = bench(&["rtt", "--calls", "50", "--warmup-calls", "5"]);
    let runs = runs.as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert!(run["latency"]["p50_us"].as_f64().unwrap() > 0.0, "{run}");
    }
}

// #10 item 1
#[test]
fn bench_fanout_reaches_every_subscriber() {
    // More subscribers than a server lets one address hold by default (64):
    // the server the bench starts must allow them.
    let runs = bench(&["fanout", "--subscribers", "70", "--rounds", "3"]);
    let runs = runs.as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert!(run["median_ms"].as_f64().unwrap() > 0.0, "{run}");
    }
}

// #10 item 1
#[test]
fn bench_replay_recovers_every_logged_transaction() {
    let report = bench(&["replay", "--transactions", "2000", "--accounts", "100"]);
    assert_eq!(report["logged"], 2001, "{report}");
    assert_eq!(report["replayed"], 2001, "{report}");
    assert_eq!(report["balance_unchanged"], true, "{report}");
}

// #10 item 1
#[test]
fn bench_publish_times_cold_and_cached() {
    let report = bench(&["publish", "--repeat", "1"]);
    assert!(report["cold_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["cached_median_ms"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

// #11 items 1, 3: with tiny settings, `bench subscriptions` checks that the
// subscribers got the transfers' updates (their caches equal the table,
// after unsubscribing and subscribing again between rounds) and that the
// balance sum holds.
#[test]
fn bench_subscriptions_keeps_every_subscriber_cache_equal_to_the_table() {
    let report = bench(&[
        "subscriptions",
        "--distinct",
        "300",
        "--holders",
        "3",
        "--rounds",
        "2",
        "--accounts",
        "500",
        "--connections",
        "2",
        "--in-flight",
        "4",
        "--warmup",
        "0",
        "--duration",
        "1",
        "--protocol",
        "ws,quic",
    ]);
    let runs = report.as_array().expect("runs");
    assert_eq!(runs.len(), 2, "one run per protocol: {report}");
    for run in runs {
        assert_eq!(run["distinct"], 300, "{run}");
        assert_eq!(run["rounds"], 2, "{run}");
        assert_eq!(run["caches_match"], true, "{run}");
        assert_eq!(run["balance_unchanged"], true, "{run}");
        assert!(run["updates_received"].as_u64().unwrap() > 0, "{run}");
        assert!(
            run["subscribing"]["seconds"].as_f64().unwrap() > 0.0,
            "{run}"
        );
        for load in ["without_subscriptions", "with_subscriptions"] {
            assert_eq!(run[load]["errors"], 0, "{run}");
            assert!(run[load]["tps"].as_f64().unwrap() > 0.0, "{run}");
            assert!(
                run[load]["latency"]["p99_us"].as_f64().unwrap() > 0.0,
                "{run}"
            );
        }
    }
}

// #11 items 2, 3: `bench memory` loads a narrow and a wide table, restarts
// the server and counts every row before and after; it sizes nothing.
#[test]
fn bench_memory_counts_every_row_before_and_after_a_restart() {
    let features = guest_path("features");
    let report = bench(&[
        "memory",
        "--rows",
        "3000",
        "--wide-rows",
        "300",
        "--wide-wasm",
        features.to_str().expect("a UTF-8 path"),
    ]);
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
