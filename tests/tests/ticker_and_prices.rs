//! The 0.2.0 examples as a user runs them (#12 item 6): `ticker`'s
//! scheduled reducer ticks by itself once a second, and `prices`' procedure
//! fetches a price over HTTP from a host the owner allowed and stores it.

use std::time::{Duration, Instant};

use serde::Deserialize;
use worldline_tests::guest_wasm;
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::twins;

#[derive(Deserialize, Debug)]
struct Counter {
    id: u32,
    ticks: u64,
    last_tick: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticker_ticks_by_itself() {
    let live = LiveServer::start(&[("ticker", "ticker")]).await;
    let client = live.connect(Transport::Quic, "ticker").await;
    client
        .subscribe(&["SELECT * FROM counter"])
        .await
        .expect("subscribing");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counters: Vec<Counter> = client.rows("counter").expect("rows");
        if let Some(counter) = counters.first().filter(|c| c.ticks >= 2) {
            assert_eq!(counter.id, 0);
            assert!(counter.last_tick > 0, "{counter:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ticker did not tick twice in 20 s: {counters:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    live.shutdown().await;
}

// The same scenario the C++ and Python `prices` run against their twin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_fetches_from_an_allowed_host_and_stores_the_price() {
    twins::prices_procedure_fetches_and_stores(|| guest_wasm("prices"), "Rust").await;
}
