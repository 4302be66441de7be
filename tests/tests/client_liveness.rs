//! The Rust client SDK facing a server that stops answering (#9 item 15:
//! nothing a peer does leaves the client's requests waiting forever): a
//! connection attempt to a silent listener gives up at the connect timeout;
//! once the real `worldline start` process is stopped (SIGSTOP), pending
//! calls fail after the idle timeout over QUIC and WebSocket, and `close`
//! returns even with megabytes queued that the server will never read. And
//! a request larger than the server accepts is refused by the client, not
//! sent to end the connection for every other pending request.

use std::time::{Duration, Instant};

use serde_json::json;
use worldline_client::{Client, ClientError, ConnectOptions, Trust};
use worldline_tests::live::{LiveServer, Transport};
use worldline_tests::process::{Http, ServerProcess};
use worldline_tests::{TempDir, guest_wasm};

/// The client's idle timeout in these tests.
const IDLE: Duration = Duration::from_millis(800);
/// How long anything bounded by [`IDLE`] may take here, with room for a busy machine.
const BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_server_that_never_answers_gives_up_at_the_timeout() {
    // A TCP listener that accepts and never answers the WebSocket upgrade,
    // and a UDP socket that never answers the QUIC handshake.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = tcp.accept().await {
            sockets.push(socket);
        }
    });
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let attempts = [
        ConnectOptions::websocket(format!("ws://{tcp_addr}/v1/ws"), "bank"),
        ConnectOptions::quic(
            udp.local_addr().unwrap(),
            Trust::Fingerprint([0; 32]),
            "bank",
        ),
    ];
    for options in attempts {
        let endpoint = format!("{:?}", options.endpoint);
        let started = Instant::now();
        let options = options.with_connect_timeout(Duration::from_millis(300));
        let outcome = tokio::time::timeout(BOUND, Client::connect(options))
            .await
            .unwrap_or_else(|_| panic!("connecting to {endpoint} never gave up"));
        assert!(
            matches!(&outcome, Err(ClientError::Connect(m)) if m.contains("within")),
            "{endpoint}: {:?}",
            outcome.err()
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{endpoint}");
    }
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_pending_calls_and_close_returns() {
    let dir = TempDir::new("worldline-client-liveness");
    let server = tokio::task::block_in_place(|| {
        let server = ServerProcess::start(dir.path());
        let http = Http::new_identity(&server.http);
        http.publish("bank", &guest_wasm("bank"));
        http.call_ok("bank", "seed", &json!([2, 1000]));
        server
    });
    let options = [
        ConnectOptions::websocket(server.ws_url(), "bank"),
        ConnectOptions::quic(server.quic, Trust::Fingerprint(server.fingerprint), "bank"),
    ];
    let mut clients = Vec::new();
    for options in options {
        let client = Client::connect(options.with_idle_timeout(IDLE))
            .await
            .expect("connecting");
        // Idle for longer than the timeout: keep-alives keep a live server's connection open.
        tokio::time::sleep(IDLE * 2).await;
        client.call("transfer", &(0u32, 1u32, 1i64)).await.unwrap();
        clients.push(client);
    }
    let flooder = ConnectOptions::websocket(server.ws_url(), "bank").with_idle_timeout(IDLE);
    let flooder = Client::connect(flooder).await.expect("connecting");

    // SAFETY: a signal to the child process this test started.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGSTOP) }, 0);
    // Megabytes the stopped server never reads, queued before the reader
    // notices the silence: the writer blocks on a full socket, and closing
    // still returns. On a loaded machine the reader may notice the silence
    // first (after `IDLE`); then the rest is refused as closed, as it must be.
    let junk = vec![7u8; 64 << 10];
    for _ in 0..400 {
        match flooder.call_unreliable("transfer", &(&junk,)).await {
            Ok(()) => {}
            Err(ClientError::Closed(_)) => break,
            Err(e) => panic!("queueing: {e:?}"),
        }
    }
    for client in &clients {
        let started = Instant::now();
        let outcome = tokio::time::timeout(BOUND, client.call("transfer", &(0u32, 1u32, 1i64)))
            .await
            .expect("a call to a stopped server fails instead of waiting forever");
        assert!(
            matches!(outcome, Err(ClientError::Closed(_))),
            "{outcome:?}"
        );
        assert!(!client.is_connected());
        eprintln!("a pending call failed after {:?}", started.elapsed());
    }
    let started = Instant::now();
    tokio::time::timeout(BOUND, flooder.close())
        .await
        .expect("close returns though the server reads nothing");
    eprintln!("close returned after {:?}", started.elapsed());
    assert!(!flooder.is_connected());
    tokio::task::block_in_place(|| server.kill());
}

// #9 item 15: a request over the server's frame limit used to be sent, and
// the server then ended the connection, failing every pending request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_refused_by_the_client_and_the_connection_carries_on() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    for transport in Transport::BOTH {
        let client = live.connect(transport, "bank").await;
        client.call("seed", &(2u32, 100i64)).await.unwrap();
        let huge = vec![0u8; 5 << 20];
        let refused = client.call("transfer", &(&huge,)).await;
        assert!(
            matches!(refused, Err(ClientError::TooLarge { len, max }) if len > max as usize),
            "{refused:?}"
        );
        let query = format!("SELECT * FROM account WHERE id = {}", "1".repeat(5 << 20));
        assert!(matches!(
            client.query(&query).await,
            Err(ClientError::TooLarge { .. })
        ));
        assert!(matches!(
            client.call_unreliable("transfer", &(&huge,)).await,
            Err(ClientError::TooLarge { .. })
        ));
        let outcome = client.call("transfer", &(0u32, 1u32, 1i64)).await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert!(client.is_connected());
        client.close().await;
    }
    live.shutdown().await;
}

// A server whose frames are larger than a client accepts is refused when
// connecting, with what to change, rather than at its first large message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_larger_frames_than_the_client_accepts_is_refused_at_connect() {
    let max_frame = 8 << 20;
    let live = LiveServer::start_with(&[("bank", "bank")], |config| {
        config.max_frame = max_frame;
    })
    .await;
    let refused = Client::connect(ConnectOptions::websocket(live.ws_url(), "bank")).await;
    assert!(
        matches!(&refused, Err(ClientError::Connect(m)) if m.contains("ConnectOptions::max_frame")),
        "{:?}",
        refused.err()
    );
    let mut options = ConnectOptions::websocket(live.ws_url(), "bank");
    options.max_frame = max_frame;
    let client = Client::connect(options)
        .await
        .expect("a client that accepts the frames");
    client.close().await;
    live.shutdown().await;
}
