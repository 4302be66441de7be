//! #10 item 3: a hot swap compiles its new module off the database's
//! thread. While the compilation is held back (a hook on the compiling
//! thread blocks it, so nothing here depends on timing), the database goes
//! on answering calls and subscribers go on receiving updates; once the
//! compilation completes, the swap applies and the database serves the
//! new module.

use std::sync::Arc;
use std::time::Duration;

use worldline_client::Event;
use worldline_host::CompileHook;
use worldline_tests::gate::Gate;
use worldline_tests::guest_wasm;
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::process::Http;
use worldline_transport::ReducerStatus;

// #10 item 3
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_serves_calls_while_a_hot_swap_compiles() {
    let gate = Arc::new(Gate::default());
    let hook = Arc::clone(&gate);
    let live = LiveServer::start_with(&[("chat", "chat")], move |config| {
        config.host.engine.before_compile = Some(CompileHook(Arc::new(move || hook.pass())));
    })
    .await;
    let caller = live.connect(Transport::WebSocket, "chat").await;
    let watcher = live.connect(Transport::Quic, "chat").await;
    let mut events = watcher.take_events().expect("events");
    watcher
        .subscribe(&["SELECT * FROM message"])
        .await
        .expect("subscribing");

    gate.set(true);
    let http = Http::new(
        &format!("http://{}", live.server().http_addr()),
        Some(&live.owner_token),
    );
    let swap = tokio::task::spawn_blocking(move || {
        http.post(
            "/v1/database/chat",
            "application/wasm",
            &guest_wasm("chat-v2"),
        )
    });
    gate.wait_held(Duration::from_secs(60), "the swap never started compiling")
        .await;

    // The new module is being compiled: the database still answers, with
    // the old module, and the subscriber sees the change.
    let sent = tokio::time::timeout(
        Duration::from_secs(30),
        caller.call("send_message", &("during the swap".to_owned(),)),
    )
    .await
    .expect("a call is answered while the swap compiles")
    .expect("the call reaches the database");
    assert_eq!(sent.status, ReducerStatus::Committed, "{sent:?}");
    let update = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await.expect("the subscriber stays connected") {
                Event::TransactionUpdate { tables, .. } => break tables,
                _ => continue,
            }
        }
    })
    .await
    .expect("the subscriber gets the update while the swap compiles");
    assert_eq!(update.len(), 1, "one table changed: {update:?}");
    assert!(!swap.is_finished(), "the swap waits for its compilation");

    gate.set(false);
    let (status, body) = swap.await.unwrap().expect("the swap is answered");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("+ reducer `react`"),
        "chat-v2 was swapped in: {body}"
    );
    let after = caller
        .call("send_message", &("after the swap".to_owned(),))
        .await
        .expect("the call reaches the database");
    assert_eq!(after.status, ReducerStatus::Committed, "{after:?}");
    live.shutdown().await;
}

// #12 item 8 (found by the escape suite): a component that is slow to
// compile or describe holds up no one else's publish — the server compiles
// and describes before it takes its publish lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_compilation_holds_up_no_other_publish() {
    let gate = Arc::new(Gate::default());
    let hook = Arc::clone(&gate);
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let live = LiveServer::start_with(&[], move |config| {
        // Only the first compilation after the gate closes is held.
        config.host.engine.before_compile = Some(CompileHook(Arc::new(move || {
            if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                hook.pass();
            }
        })));
    })
    .await;
    let base = format!("http://{}", live.server().http_addr());
    let (slow, quick) = (Http::new_identity(&base), Http::new_identity(&base));
    gate.set(true);
    let held = tokio::task::spawn_blocking(move || {
        slow.post("/v1/database/slow", "application/wasm", &guest_wasm("chat"))
    });
    gate.wait_held(Duration::from_secs(60), "the first publish never compiled")
        .await;
    let (status, body) = tokio::task::spawn_blocking(move || {
        quick.post(
            "/v1/database/quick",
            "application/wasm",
            &guest_wasm("bank"),
        )
    })
    .await
    .unwrap()
    .expect("the second publish is answered while the first compiles");
    assert_eq!(status, 201, "{body}");
    assert!(
        !held.is_finished(),
        "the first publish waits for its compilation"
    );
    gate.set(false);
    let (status, body) = held.await.unwrap().expect("the first publish is answered");
    assert_eq!(status, 201, "{body}");
    live.shutdown().await;
}
