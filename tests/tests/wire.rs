//! Clients built on the Rust client SDK, against a real server on loopback,
//! over QUIC and over WebSocket: what one client commits, another sees, in
//! commit order, in its cache and through its callbacks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use worldline_client::{Client, ConnectOptions, Event, QuicSocket, Trust};
use worldline_tests::live::LiveServer;
use worldline_tests::{Account, Message, User};
use worldline_transport::ReducerStatus;

/// The two ways to reach a server.
#[derive(Clone, Copy, Debug)]
enum Transport {
    Quic,
    WebSocket,
}

const BOTH: [Transport; 2] = [Transport::Quic, Transport::WebSocket];

async fn connect(live: &LiveServer, transport: Transport, database: &str) -> Client {
    connect_as(live, transport, database, None).await
}

async fn connect_as(
    live: &LiveServer,
    transport: Transport,
    database: &str,
    token: Option<String>,
) -> Client {
    let options = match transport {
        Transport::Quic => ConnectOptions::quic(
            live.quic_addr(),
            Trust::Fingerprint(live.server().fingerprint()),
            database,
        ),
        Transport::WebSocket => ConnectOptions::websocket(live.ws_url(), database),
    };
    let options = match token {
        Some(token) => options.with_token(token),
        None => options,
    };
    Client::connect(options)
        .await
        .unwrap_or_else(|e| panic!("connecting over {transport:?}: {e}"))
}

async fn committed(client: &Client, reducer: &str, args: &impl serde::Serialize) {
    let outcome = client
        .call(reducer, args)
        .await
        .expect("the call is answered");
    assert_eq!(outcome.status, ReducerStatus::Committed, "{reducer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_exactly_the_committed_changes_in_commit_order() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    for subscriber_transport in BOTH {
        for caller_transport in BOTH {
            let subscriber = connect(&live, subscriber_transport, "chat").await;
            let mut events = subscriber.take_events().expect("the event stream");
            subscriber
                .subscribe(&["SELECT * FROM message"])
                .await
                .expect("subscribing");
            let before = subscriber.rows::<Message>("message").unwrap().len();
            let caller = connect(&live, caller_transport, "chat").await;
            let texts: Vec<String> = (0..20)
                .map(|i| format!("{caller_transport:?}->{subscriber_transport:?} {i}"))
                .collect();
            for (i, text) in texts.iter().enumerate() {
                committed(&caller, "send_message", &(text,)).await;
                if i == 9 {
                    // Failed calls commit nothing and send nothing.
                    let outcome = caller.call("send_message", &("  ",)).await.unwrap();
                    assert!(
                        matches!(outcome.status, ReducerStatus::Failed(ref m) if m.contains("must not be empty"))
                    );
                    let outcome = caller.call("no_such_reducer", &()).await.unwrap();
                    assert!(matches!(outcome.status, ReducerStatus::Failed(_)));
                }
            }
            let mut seen = Vec::new();
            while seen.len() < texts.len() {
                let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
                    .await
                    .expect("updates arrive")
                    .expect("the stream is open");
                let Event::TransactionUpdate { tables, event } = event else {
                    continue;
                };
                assert_eq!(event.reducer, "send_message");
                assert_eq!(event.caller, caller.identity());
                for table in tables {
                    assert_eq!(table.table, "message");
                    assert!(table.deletes.is_empty() && table.updates.is_empty());
                    for row in table.inserts {
                        let message: Message = postcard::from_bytes(&row).unwrap();
                        seen.push(message);
                    }
                }
            }
            let seen_texts: Vec<&String> = seen.iter().map(|m| &m.text).collect();
            assert_eq!(
                seen_texts,
                texts.iter().collect::<Vec<_>>(),
                "in commit order"
            );
            assert!(seen.windows(2).all(|w| w[0].id < w[1].id));
            let cached = subscriber.rows::<Message>("message").unwrap();
            assert_eq!(cached.len(), before + texts.len());
            caller.close().await;
            subscriber.close().await;
        }
    }
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_in_place_arrive_as_updates_and_callbacks_fire() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    for transport in BOTH {
        let watcher = connect(&live, transport, "chat").await;
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        {
            let log_insert = log.clone();
            watcher.on_insert("user", move |user: &User| {
                log_insert
                    .lock()
                    .unwrap()
                    .push(format!("insert {:?}", user.name));
            });
            let log_update = log.clone();
            watcher.on_update("user", move |old: &User, new: &User| {
                log_update.lock().unwrap().push(format!(
                    "update {:?}->{:?} {}",
                    old.name, new.name, new.online
                ));
            });
            let log_delete = log.clone();
            watcher.on_delete("user", move |user: &User| {
                log_delete
                    .lock()
                    .unwrap()
                    .push(format!("delete {:?}", user.name));
            });
        }
        let other = connect(&live, transport, "chat").await;
        let hex: String = other
            .identity()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let query = format!("SELECT * FROM user WHERE identity = 0x{hex} AND name <> NULL");
        let set = watcher.subscribe(&[&query]).await.unwrap();
        committed(&other, "set_name", &("ada",)).await;
        committed(&other, "set_name", &("grace",)).await;
        let other_identity = other.identity();
        other.close().await;
        // The disconnect reducer marks the user offline: one more update.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let users = watcher.rows::<User>("user").unwrap();
            let offline = users
                .iter()
                .any(|u| u.identity == other_identity && !u.online);
            if offline {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{users:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            *log.lock().unwrap(),
            [
                "insert Some(\"ada\")",
                "update Some(\"ada\")->Some(\"grace\") true",
                "update Some(\"grace\")->Some(\"grace\") false",
            ]
        );
        watcher.unsubscribe(set).await.unwrap();
        assert!(watcher.rows::<User>("user").unwrap().is_empty());
        watcher.close().await;
    }
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_brings_back_the_same_identity_on_either_transport() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let first = connect(&live, Transport::WebSocket, "bank").await;
    let token = first.token().to_owned();
    let again = connect_as(&live, Transport::Quic, "bank", Some(token.clone())).await;
    assert_eq!(again.identity(), first.identity());
    assert_ne!(again.connection_id(), first.connection_id());
    let fresh = connect(&live, Transport::Quic, "bank").await;
    assert_ne!(fresh.identity(), first.identity());

    let mut bad = token.into_bytes();
    let middle = bad.len() / 2;
    bad[middle] = if bad[middle] == b'x' { b'y' } else { b'x' };
    let refused = Client::connect(
        ConnectOptions::websocket(live.ws_url(), "bank")
            .with_token(String::from_utf8(bad).unwrap()),
    )
    .await;
    let message = refused
        .err()
        .expect("an altered token is refused")
        .to_string();
    assert!(message.contains("token refused"), "{message}");

    let wrong_pin = Client::connect(ConnectOptions::quic(
        live.quic_addr(),
        Trust::Fingerprint([7; 32]),
        "bank",
    ))
    .await;
    assert!(
        wrong_pin.is_err(),
        "a certificate that does not match the pin is refused"
    );
    let by_ca = Client::connect(ConnectOptions::quic(
        live.quic_addr(),
        Trust::Certificates(vec![live.certificate()]),
        "bank",
    ))
    .await;
    assert!(by_ca.is_ok(), "{:?}", by_ca.err());
    live.shutdown().await;
}

/// Waits until `watcher`'s cache shows `identity` offline.
async fn wait_until_offline(watcher: &Client, identity: [u8; 32]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let users = watcher.rows::<User>("user").unwrap();
        if users.iter().any(|u| u.identity == identity && !u.online) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{users:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The chat module's online users' messages, as a join.
const ONLINE_MESSAGES: &str = "SELECT message.* FROM message JOIN user ON message.sender = user.identity WHERE user.online = true";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_subscription_matches_a_fresh_query_after_every_step() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let mut rng = StdRng::seed_from_u64(0x5EED);
    let watcher = connect(&live, Transport::Quic, "chat").await;
    watcher.subscribe(&[ONLINE_MESSAGES]).await.unwrap();
    watcher.subscribe(&["SELECT * FROM user"]).await.unwrap();
    let mut writers: Vec<(Option<Client>, String)> = Vec::new();
    for i in 0..4 {
        let transport = BOTH[i % 2];
        let client = connect(&live, transport, "chat").await;
        let token = client.token().to_owned();
        writers.push((Some(client), token));
    }
    let mut sizes = Vec::new();
    for step in 0..60 {
        let index = rng.random_range(0..writers.len());
        let transport = BOTH[rng.random_range(0..2)];
        let (slot, token) = &mut writers[index];
        match (slot.as_ref(), rng.random_range(0..10)) {
            (None, _) => {
                *slot = Some(connect_as(&live, transport, "chat", Some(token.clone())).await);
            }
            (Some(client), 0..=1) => {
                let identity = client.identity();
                client.close().await;
                *slot = None;
                // The server notices the close asynchronously; wait until the
                // disconnect reducer's update arrived, so that the query below
                // and the cache read after it see the same state.
                wait_until_offline(&watcher, identity).await;
            }
            (Some(client), 2) => {
                committed(client, "set_name", &(format!("w{index}s{step}"),)).await
            }
            (Some(client), _) => {
                committed(client, "send_message", &(format!("step {step}"),)).await
            }
        }
        // A query is answered after every transaction before it, and after the
        // updates they sent this connection: the cache must match it now
        // (nothing else is in flight).
        let fresh = watcher.query(ONLINE_MESSAGES).await.unwrap();
        let mut expected: Vec<Vec<u8>> = fresh[0].rows.iter().map(|r| r.to_vec()).collect();
        let mut cached = watcher.rows_raw("message");
        expected.sort();
        cached.sort();
        assert_eq!(cached, expected, "after step {step}");
        sizes.push(expected.len());
    }
    // The workload exercised both directions: rows joined in and left.
    assert!(sizes.windows(2).any(|w| w[1] > w[0]), "{sizes:?}");
    assert!(sizes.windows(2).any(|w| w[1] < w[0]), "{sizes:?}");
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_calls_and_typed_rows_over_both_transports() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let seeder = connect(&live, Transport::WebSocket, "bank").await;
    committed(&seeder, "seed", &(2u32, 100i64)).await;
    for transport in BOTH {
        let client = connect(&live, transport, "bank").await;
        let set = client
            .subscribe(&["SELECT * FROM account WHERE id = 1"])
            .await
            .unwrap();
        let before = client.rows::<Account>("account").unwrap()[0].balance;
        client
            .call_unreliable("transfer", &(0u32, 1u32, 10i64))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while client.rows::<Account>("account").unwrap()[0].balance != before + 10 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the unreliable call arrived"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        client.unsubscribe(set).await.unwrap();
        assert!(client.rows::<Account>("account").unwrap().is_empty());
        client.close().await;
    }
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_keeps_its_certificate_keys_and_data() {
    use worldline_server::{Server, ServerConfig};
    let dir = worldline_tests::TempDir::new("worldline-restart");
    let config = || {
        let mut config = ServerConfig::new(dir.path());
        config.http_listen = "127.0.0.1:0".parse().unwrap();
        config.quic_listen = "127.0.0.1:0".parse().unwrap();
        config
    };
    let server = Server::start(config()).await.unwrap();
    let (owner, _) = server.new_identity();
    let wasm = worldline_tests::guest_wasm("chat");
    tokio::task::block_in_place(|| server.publish("chat", &wasm, owner)).unwrap();
    let fingerprint = server.fingerprint();
    let url = format!("ws://{}/v1/ws", server.http_addr());
    let client = Client::connect(ConnectOptions::websocket(&url, "chat"))
        .await
        .unwrap();
    committed(&client, "send_message", &("before the restart",)).await;
    let token = client.token().to_owned();
    let identity = client.identity();
    client.close().await;
    server.shutdown().await;

    let server = Server::start(config())
        .await
        .expect("the directory was released");
    assert_eq!(server.fingerprint(), fingerprint, "the certificate is kept");
    let options = ConnectOptions::quic(server.quic_addr(), Trust::Fingerprint(fingerprint), "chat")
        .with_token(token);
    let client = Client::connect(options).await.unwrap();
    assert_eq!(client.identity(), identity, "the signing key is kept");
    client.subscribe(&["SELECT * FROM message"]).await.unwrap();
    let texts: Vec<String> = client
        .rows::<Message>("message")
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["before the restart"]);
    client.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_identity_issues_a_token_that_connects_as_that_identity() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let mut stream = tokio::net::TcpStream::connect(live.server().http_addr())
        .await
        .unwrap();
    stream
        .write_all(b"POST /v1/identity HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let token = json["token"].as_str().unwrap().to_owned();
    let identity = json["identity"].as_str().unwrap().to_owned();
    let client = connect_as(&live, Transport::WebSocket, "bank", Some(token)).await;
    let hex: String = client
        .identity()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, identity);
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sharing_one_quic_socket_are_separate_connections() {
    let live = LiveServer::start(&[("chat", "chat")]).await;
    let socket = QuicSocket::bind(live.quic_addr()).expect("binding a shared socket");
    let options = ConnectOptions::quic(
        live.quic_addr(),
        Trust::Fingerprint(live.server().fingerprint()),
        "chat",
    )
    .with_quic_socket(socket.clone());
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(Client::connect(options.clone()).await.expect("connecting"));
    }
    let identities: std::collections::HashSet<[u8; 32]> =
        clients.iter().map(Client::identity).collect();
    assert_eq!(identities.len(), 5, "each connection is its own identity");
    // One client closing leaves the socket to the others.
    clients.pop().expect("a client").close().await;
    let watcher = &clients[0];
    watcher
        .subscribe(&["SELECT * FROM message"])
        .await
        .expect("subscribing");
    for (i, client) in clients.iter().enumerate() {
        committed(
            client,
            "send_message",
            &(format!("over the shared socket {i}"),),
        )
        .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while watcher.rows::<Message>("message").unwrap().len() < clients.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watcher sees every client's message"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let senders: std::collections::HashSet<[u8; 32]> = watcher
        .rows::<Message>("message")
        .unwrap()
        .into_iter()
        .map(|m| m.sender)
        .collect();
    assert_eq!(
        senders.len(),
        clients.len(),
        "each message from its own sender"
    );

    // A socket bound for IPv4 refuses an IPv6 server with a clear error.
    let v6_server = ConnectOptions::quic(
        "[::1]:1".parse().unwrap(),
        Trust::Fingerprint(live.server().fingerprint()),
        "chat",
    )
    .with_quic_socket(socket.clone());
    let refused = Client::connect(v6_server)
        .await
        .err()
        .expect("an IPv4 socket cannot reach an IPv6 server")
        .to_string();
    assert!(refused.contains("bound for IPv4"), "{refused}");
    for client in &clients {
        client.close().await;
    }
    live.shutdown().await;
}
