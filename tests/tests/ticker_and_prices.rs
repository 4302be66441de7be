//! The 0.2.0 examples as a user runs them (#12 item 6): `ticker`'s
//! scheduled reducer ticks by itself once a second, and `prices`' procedure
//! fetches a price over HTTP from a host the owner allowed and stores it.

use std::time::{Duration, Instant};

use serde::Deserialize;
use worldline_client::ClientError;
use worldline_host::outbound::{AllowList, PrivateOverride};
use worldline_tests::guest_wasm;
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::parity::text_server;

#[derive(Deserialize, Debug)]
struct Counter {
    id: u32,
    ticks: u64,
    last_tick: i64,
}

#[derive(Deserialize, Debug)]
struct Price {
    symbol: String,
    cents: u64,
    fetched_at: i64,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_fetches_from_an_allowed_host_and_stores_the_price() {
    let origin = text_server("97123.45\n").await;
    let live = LiveServer::start_with(&[], |config| {
        config.host.engine.http_private_override = PrivateOverride::new([origin]);
    })
    .await;
    let (owner, _) = live.server().new_identity();
    let allow = AllowList::parse(&origin.to_string()).expect("an allow-list");
    tokio::task::block_in_place(|| {
        live.server()
            .publish_with_http("prices", &guest_wasm("prices"), owner, &allow)
    })
    .expect("publishing prices");

    let client = live.connect(Transport::WebSocket, "prices").await;
    client
        .subscribe(&["SELECT * FROM price"])
        .await
        .expect("subscribing");
    let url = format!("http://{origin}/btc");
    let cents: u64 = client
        .call_procedure("refresh", &("BTC", url.as_str()))
        .await
        .expect("refresh");
    assert_eq!(cents, 9_712_345);
    let prices: Vec<Price> = client.rows("price").expect("rows");
    assert_eq!(prices.len(), 1, "{prices:?}");
    assert_eq!(
        (prices[0].symbol.as_str(), prices[0].cents),
        ("BTC", 9_712_345)
    );
    assert!(prices[0].fetched_at > 0);

    // A host the owner did not allow is refused, and nothing is stored.
    match client
        .call_procedure::<_, u64>("refresh", &("ETH", "http://example.com/eth"))
        .await
    {
        Err(ClientError::ProcedureFailed(message)) => {
            assert!(
                message.contains("not on this database's HTTP allow-list"),
                "{message}"
            )
        }
        other => panic!("example.com is not on the list: {other:?}"),
    }
    assert_eq!(client.rows::<Price>("price").expect("rows").len(), 1);
    live.shutdown().await;
}
