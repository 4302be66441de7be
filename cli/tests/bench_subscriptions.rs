//! #11 item 3: `worldline bench subscriptions` runs end to end against a
//! server it starts itself, with tiny settings so that it takes a few
//! seconds. It checks that the subscribers got the transfers' updates
//! (their caches equal the table) and that the balance sum holds; it times
//! nothing.

use std::process::Command;

use serde_json::Value;
use worldline_tests::{TempDir, guest_path};

// #11 items 1, 3
#[test]
fn bench_subscriptions_keeps_every_subscriber_cache_equal_to_the_table() {
    let config = TempDir::new("worldline-bench-config");
    let output = Command::new(env!("CARGO_BIN_EXE_worldline"))
        .args([
            "bench",
            "subscriptions",
            "--distinct",
            "300",
            "--holders",
            "3",
        ])
        .args([
            "--accounts",
            "500",
            "--connections",
            "2",
            "--in-flight",
            "4",
        ])
        .args(["--warmup", "0", "--duration", "1", "--protocol", "ws,quic"])
        .arg("--wasm")
        .arg(guest_path("bank"))
        .args(["--durability", "none", "--json"])
        .env_remove("WORLDLINE_SERVER")
        .env("WORLDLINE_CONFIG", config.path().join("config.toml"))
        .output()
        .expect("running worldline bench subscriptions");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "worldline bench subscriptions failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let runs: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let runs = runs.as_array().expect("runs");
    assert_eq!(runs.len(), 2, "one run per protocol: {stdout}");
    for run in runs {
        assert_eq!(run["distinct"], 300, "{run}");
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
