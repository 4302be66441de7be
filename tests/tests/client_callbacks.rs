//! The Rust client SDK's callbacks against a real server on loopback, over
//! QUIC and over WebSocket (#9 item 15): a callback that panics is contained
//! (later updates and pending calls keep working), a callback may register
//! and remove callbacks, and a removed callback is not called again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use worldline_client::{Client, ReducerEvent, ReducerStatus};
use worldline_tests::Message;
use worldline_tests::live::{LiveServer, Transport};

/// How long anything the server sends may take to arrive.
const PATIENCE: Duration = Duration::from_secs(10);

/// Each transport gets its own chat database, so each starts empty.
const DATABASES: [(&str, &str); 2] = [("chat-quic", "chat"), ("chat-websocket", "chat")];

/// The database [`DATABASES`] gives `transport`.
fn database(transport: Transport) -> &'static str {
    match transport {
        Transport::Quic => DATABASES[0].0,
        Transport::WebSocket => DATABASES[1].0,
    }
}

/// Sends a chat message and waits (boundedly) for it to commit.
async fn send(client: &Client, text: &str) {
    let outcome = tokio::time::timeout(PATIENCE, client.call("send_message", &(text,)))
        .await
        .unwrap_or_else(|_| panic!("the call sending {text:?} was never answered"))
        .expect("the call is answered");
    assert_eq!(outcome.status, ReducerStatus::Committed, "sending {text:?}");
}

/// Subscribes `client` to every message.
async fn subscribe_to_messages(client: &Client) {
    tokio::time::timeout(PATIENCE, client.subscribe(&["SELECT * FROM message"]))
        .await
        .expect("the subscription is answered")
        .expect("subscribing");
}

/// The next value from a callback's channel, within [`PATIENCE`].
async fn next<T>(seen: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(PATIENCE, seen.recv())
        .await
        .unwrap_or_else(|_| panic!("{what} never came"))
        .unwrap_or_else(|| panic!("the callback was dropped before {what}"))
}

/// Waits for a callback's channel to close with nothing more in it: the
/// callback was dropped without being called again.
async fn closed<T: std::fmt::Debug>(seen: &mut mpsc::UnboundedReceiver<T>) {
    let end = tokio::time::timeout(PATIENCE, seen.recv()).await;
    assert!(
        matches!(end, Ok(None)),
        "expected the callback to be dropped, got {end:?}"
    );
}

/// A callback that sends each inserted message's text on a channel.
fn recorder() -> (
    impl FnMut(&Message) + Send + 'static,
    mpsc::UnboundedReceiver<String>,
) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let callback = move |m: &Message| {
        let _ = sender.send(m.text.clone());
    };
    (callback, receiver)
}

// #9 item 15: a panicking callback used to kill the client's reader task and
// poison its lock, so every later update was lost and pending calls hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_callback_stops_neither_updates_nor_pending_calls() {
    let live = LiveServer::start(&DATABASES).await;
    for transport in Transport::BOTH {
        let watcher = live.connect(transport, database(transport)).await;
        let panics = Arc::new(AtomicUsize::new(0));
        let counted = panics.clone();
        watcher.on_insert("message", move |m: &Message| {
            counted.fetch_add(1, Ordering::SeqCst);
            panic!("a user callback panics on {:?}", m.text);
        });
        let panics_on_events = panics.clone();
        watcher.on_reducer_event(move |_: &ReducerEvent| {
            panics_on_events.fetch_add(1, Ordering::SeqCst);
            panic!("a reducer event callback panics");
        });
        let (record, mut seen) = recorder();
        watcher.on_insert("message", record);
        subscribe_to_messages(&watcher).await;
        let other = live.connect(transport, database(transport)).await;
        for i in 0..3 {
            let text = format!("{transport:?} from another client {i}");
            send(&other, &text).await;
            assert_eq!(next(&mut seen, "the other client's message").await, text);
            // The watcher's own calls are answered though its callbacks panic.
            let text = format!("{transport:?} from the watcher {i}");
            send(&watcher, &text).await;
            assert_eq!(next(&mut seen, "the watcher's own message").await, text);
        }
        // Both panicking callbacks ran for each of the six inserts.
        assert_eq!(panics.load(Ordering::SeqCst), 12);
        assert!(watcher.is_connected());
        let cached = watcher.rows::<Message>("message").unwrap();
        assert!(cached.iter().any(|m| m.text.ends_with("watcher 2")));
        // Registering after the panics works: nothing stayed locked or poisoned.
        let (late, mut late_seen) = recorder();
        watcher.on_insert("message", late);
        send(&other, "after the panics").await;
        assert_eq!(
            next(&mut late_seen, "the late callback").await,
            "after the panics"
        );
        other.close().await;
        watcher.close().await;
    }
    live.shutdown().await;
}

// #9 item 15: registering a callback from inside a callback used to deadlock
// the reader task (the callbacks' lock was held while they ran).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_can_register_callbacks() {
    let live = LiveServer::start(&DATABASES).await;
    for transport in Transport::BOTH {
        let watcher = live.connect(transport, database(transport)).await;
        let (registered, mut inner_seen) = mpsc::unbounded_channel::<String>();
        let (events, mut events_seen) = mpsc::unbounded_channel::<String>();
        let client = watcher.clone();
        let mut first = true;
        watcher.on_insert("message", move |m: &Message| {
            if !std::mem::take(&mut first) {
                return;
            }
            let registered = registered.clone();
            client.on_insert("message", move |m: &Message| {
                let _ = registered.send(m.text.clone());
            });
            let events = events.clone();
            client.on_reducer_event(move |e: &ReducerEvent| {
                let _ = events.send(e.reducer.clone());
            });
            // Reading the cache from a callback works too.
            assert!(client.rows::<Message>("message").unwrap().contains(m));
        });
        subscribe_to_messages(&watcher).await;
        send(&watcher, "registers").await;
        // A callback registered during a message is called from the next one.
        send(&watcher, "seen by the new callbacks").await;
        assert_eq!(
            next(&mut inner_seen, "the inner callback").await,
            "seen by the new callbacks"
        );
        assert_eq!(next(&mut events_seen, "the event").await, "send_message");
        watcher.close().await;
    }
    live.shutdown().await;
}

/// Registers and removes a callback when dropped.
struct DropProbe(Client);

impl Drop for DropProbe {
    fn drop(&mut self) {
        let id = self.0.on_insert("message", |_: &Message| {});
        assert!(self.0.remove_callback(id));
    }
}

// #9 item 15: callbacks could not be removed. Now each registration returns
// an id that `remove_callback` takes, from outside or inside a callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_callback_is_not_called_again() {
    let live = LiveServer::start(&DATABASES).await;
    for transport in Transport::BOTH {
        let watcher = live.connect(transport, database(transport)).await;
        let (record, mut removed_seen) = recorder();
        let removed = watcher.on_insert("message", record);
        // A callback that removes itself on its first call.
        let (once_sender, mut once_seen) = mpsc::unbounded_channel::<String>();
        let client = watcher.clone();
        let own_id = Arc::new(std::sync::OnceLock::new());
        let id_inside = own_id.clone();
        let once = watcher.on_insert("message", move |m: &Message| {
            let _ = once_sender.send(m.text.clone());
            let id = id_inside.get().expect("registered before any message");
            assert!(client.remove_callback(*id), "the first call removes it");
        });
        own_id.set(once).unwrap();
        // One that stays, to know when later messages have been handled.
        let (record, mut kept_seen) = recorder();
        let kept = watcher.on_insert("message", record);
        let (event_sender, mut events_seen) = mpsc::unbounded_channel::<String>();
        // Dropping this callback runs code that uses the client's callbacks.
        let probe = DropProbe(watcher.clone());
        let event = watcher.on_reducer_event(move |e: &ReducerEvent| {
            let _ = &probe;
            let _ = event_sender.send(e.reducer.clone());
        });
        subscribe_to_messages(&watcher).await;
        send(&watcher, "first").await;
        assert_eq!(next(&mut removed_seen, "the first message").await, "first");
        assert_eq!(next(&mut once_seen, "the first message").await, "first");
        assert_eq!(next(&mut kept_seen, "the first message").await, "first");
        assert_eq!(
            next(&mut events_seen, "the first event").await,
            "send_message"
        );
        assert!(watcher.remove_callback(removed));
        assert!(!watcher.remove_callback(removed), "removed once only");
        assert!(!watcher.remove_callback(once), "it removed itself");
        assert!(watcher.remove_callback(event));
        send(&watcher, "second").await;
        send(&watcher, "third").await;
        assert_eq!(next(&mut kept_seen, "the second message").await, "second");
        assert_eq!(next(&mut kept_seen, "the third message").await, "third");
        // The removed callbacks are dropped, so their channels close empty.
        closed(&mut removed_seen).await;
        closed(&mut once_seen).await;
        closed(&mut events_seen).await;
        assert!(watcher.remove_callback(kept));
        watcher.close().await;
    }
    live.shutdown().await;
}
