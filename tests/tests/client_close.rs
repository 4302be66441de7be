//! `Client::close` without losing answers owed: it waits (at most the
//! idle timeout) for the answers to requests already made instead of
//! failing them, over QUIC and WebSocket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use worldline_client::{Client, ClientError, ConnectOptions, ReducerStatus, Trust};
use worldline_tests::gate::Gate;
use worldline_tests::live::{LiveServer, Transport};

/// How long anything bounded here may take, with room for a busy machine.
const BOUND: Duration = Duration::from_secs(20);

/// Options to connect to `bank` on `live` over `transport`.
fn options(live: &LiveServer, transport: Transport) -> ConnectOptions {
    match transport {
        Transport::Quic => ConnectOptions::quic(
            live.quic_addr(),
            Trust::Fingerprint(live.server().fingerprint()),
            "bank",
        ),
        Transport::WebSocket => ConnectOptions::websocket(live.ws_url(), "bank"),
    }
}

/// A server whose fsyncs `gate` holds, a client connected to it with
/// `options`, and a transfer the client called whose answer is owed (its
/// transaction waits for the held fsync).
struct OwedAnswer {
    gate: Arc<Gate>,
    live: LiveServer,
    client: Client,
    call: tokio::task::JoinHandle<Result<worldline_client::CallOutcome, ClientError>>,
}

impl OwedAnswer {
    async fn start(
        transport: Transport,
        options: impl FnOnce(ConnectOptions) -> ConnectOptions,
    ) -> Self {
        let gate = Arc::new(Gate::default());
        let live = LiveServer::start_with_held_fsyncs(&[("bank", "bank")], &gate, |_| {}).await;
        let client = Client::connect(options(self::options(&live, transport)))
            .await
            .expect("connecting");
        client.call("seed", &(2u32, 100i64)).await.expect("seeding");
        // The transfer's answer is owed until its transaction is durable.
        gate.set(true);
        let caller = client.clone();
        let call = tokio::spawn(async move { caller.call("transfer", &(0u32, 1u32, 5i64)).await });
        gate.wait_held(BOUND, "the transfer waits for its fsync")
            .await;
        Self {
            gate,
            live,
            client,
            call,
        }
    }
}

// `close` tore the connection down under a call already sent: the caller
// got `Closed` though the call ran. It now waits for the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_the_answers_to_calls_already_made() {
    for transport in Transport::BOTH {
        let OwedAnswer {
            gate,
            live,
            client,
            call,
        } = OwedAnswer::start(transport, |options| options).await;
        let closer = client.clone();
        let closing = tokio::spawn(async move { closer.close().await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!call.is_finished(), "{transport:?}: the call was cut off");
        assert!(!closing.is_finished(), "{transport:?}");
        // A closing client takes no new requests.
        let refused = client.call("transfer", &(0u32, 1u32, 1i64)).await;
        assert!(
            matches!(&refused, Err(ClientError::Closed(m)) if m == "the client is closing the connection"),
            "{transport:?}: {refused:?}"
        );
        gate.set(false);
        let outcome = tokio::time::timeout(BOUND, call)
            .await
            .expect("the call ends")
            .expect("the call's task");
        assert_eq!(
            outcome.map(|o| o.status),
            Ok(ReducerStatus::Committed),
            "{transport:?}: the caller gets the answer"
        );
        tokio::time::timeout(BOUND, closing)
            .await
            .expect("close returns once the answer is in")
            .expect("the close task");
        assert!(!client.is_connected());
        // The transfer is there, as its caller was told.
        let reader = live.connect(transport, "bank").await;
        let rows = reader
            .query("SELECT * FROM account WHERE id = 1")
            .await
            .expect("a query");
        let balance: (u32, i64) = postcard::from_bytes(&rows[0].rows[0]).expect("an account");
        assert_eq!(balance, (1, 105), "{transport:?}");
        reader.close().await;
        live.shutdown().await;
    }
}

// The wait is bounded by the idle timeout: an answer that does not come
// fails with `Closed` and `close` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_at_most_the_idle_timeout_for_owed_answers() {
    const IDLE: Duration = Duration::from_millis(800);
    for transport in Transport::BOTH {
        let OwedAnswer {
            gate,
            live,
            client,
            call,
        } = OwedAnswer::start(transport, |options| options.with_idle_timeout(IDLE)).await;
        let started = Instant::now();
        tokio::time::timeout(BOUND, client.close())
            .await
            .expect("close returns");
        let waited = started.elapsed();
        assert!(
            waited >= IDLE - Duration::from_millis(50),
            "{transport:?}: close returned after {waited:?}, before the idle timeout"
        );
        let outcome = call.await.expect("the call's task");
        assert!(
            matches!(&outcome, Err(ClientError::Closed(m)) if m == "the client closed the connection"),
            "{transport:?}: {outcome:?}"
        );
        gate.set(false);
        live.shutdown().await;
    }
}
