//! An outsider's pass over identities, tokens, ownership and private
//! tables, against a real server: what a client other than a database's
//! owner, or one presenting a token it should not have, can see and do.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use worldline_client::{Client, ConnectOptions, Event, Trust};
use worldline_tests::live::LiveServer;
use worldline_tests::process::{Http, ServerProcess};
use worldline_tests::raw::{RawQuic, RawWebSocket, fatal, hello, raw_http};
use worldline_tests::{TempDir, file_mode as mode, guest_wasm};
use worldline_transport::ReducerStatus;

/// How long a test waits for something that must happen (a hang detector).
const PATIENCE: Duration = Duration::from_secs(20);

/// Connects to `database` over QUIC, as the identity of `token` (a new
/// identity without one).
async fn connect(live: &LiveServer, database: &str, token: Option<&str>) -> Client {
    let trust = Trust::Fingerprint(live.server().fingerprint());
    let mut options = ConnectOptions::quic(live.quic_addr(), trust, database);
    if let Some(token) = token {
        options = options.with_token(token);
    }
    Client::connect(options).await.expect("connecting")
}

/// The next event, or a panic naming `what` after [`PATIENCE`].
async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>, what: &str) -> Event {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no event: {what}"))
        .unwrap_or_else(|| panic!("the events ended: {what}"))
}

/// Publishes `guest` over database `name` as the owner (a hot swap); the
/// answer must be `200`.
async fn swap(live: &LiveServer, name: &str, guest: &str) -> String {
    let http = Http::new(
        &format!("http://{}", live.http_addr()),
        Some(&live.owner_token),
    );
    let path = format!("/v1/database/{name}");
    let wasm = guest_wasm(guest);
    let (status, body) =
        tokio::task::spawn_blocking(move || http.post(&path, "application/wasm", &wasm))
            .await
            .expect("the publishing task")
            .expect("the swap is answered");
    assert_eq!(status, 200, "{body}");
    body
}

// PROTOCOL.md "Hot swaps": a swap that makes a public table private ends
// a non-owner's live subscriptions to it: the client is told why, the rows
// they held leave its cache (sent back as for an unsubscribe, each once
// however many of its sets held them), and no later change reaches it.
// The owner's subscription goes on. Swapping the table public again lets
// the non-owner subscribe afresh, with a cache that holds each row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_made_private_ends_a_non_owners_subscription_and_takes_its_rows_back() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let owner = connect(&live, "bank", Some(&live.owner_token)).await;
    let seeded = owner.call("seed", &(2u32, 100i64)).await.expect("seeding");
    assert_eq!(seeded.status, ReducerStatus::Committed, "{seeded:?}");
    let outsider = connect(&live, "bank", None).await;
    let mut outsider_events = outsider.take_events().expect("events");
    // Two sets holding the same query: the connection holds it once.
    let mut sets = Vec::new();
    for _ in 0..2 {
        let set = outsider
            .subscribe(&["SELECT * FROM account"])
            .await
            .expect("account is public");
        sets.push(set);
    }
    assert_eq!(outsider.rows_raw("account").len(), 2);
    let mut owner_events = owner.take_events().expect("events");
    owner
        .subscribe(&["SELECT * FROM account"])
        .await
        .expect("the owner subscribes");

    let changes = swap(&live, "bank", "bank-private").await;
    assert!(changes.contains("private"), "{changes}");

    let (mut ended, mut taken_back, mut told) = (Vec::new(), 0, Vec::new());
    while told.len() < sets.len() {
        match next_event(&mut outsider_events, "the swap ends the subscriptions").await {
            Event::Error { message } => told.push(message),
            Event::SubscribeApplied { .. } => {}
            Event::UnsubscribeApplied { query_set, tables } => {
                ended.push(query_set);
                taken_back += tables.iter().map(|t| t.rows.len()).sum::<usize>();
            }
            other => panic!("unexpected before the errors: {other:?}"),
        }
    }
    ended.sort_by_key(|set| set.0);
    assert_eq!(ended, sets, "each set ends");
    assert_eq!(taken_back, 2, "the rows the connection held, each once");
    for told in told {
        assert!(
            told.contains("the module was updated and this query set ended")
                && told.contains("table `account` is private"),
            "{told}"
        );
    }
    assert_eq!(
        outsider.rows_raw("account"),
        Vec::<Vec<u8>>::new(),
        "the rows of a table the outsider may no longer read left its cache"
    );

    // A new account reaches the owner, not the outsider.
    let opened = owner
        .call("open_account", &(7u32, 5i64))
        .await
        .expect("opening");
    assert_eq!(opened.status, ReducerStatus::Committed, "{opened:?}");
    loop {
        if let Event::TransactionUpdate { tables, .. } =
            next_event(&mut owner_events, "the owner sees the new account").await
        {
            assert_eq!(tables[0].inserts.len(), 1, "{tables:?}");
            break;
        }
    }
    // Answered after every update of the committed call would have been.
    let refused = outsider.query("SELECT * FROM account").await.unwrap_err();
    assert!(refused.to_string().contains("is private"), "{refused}");
    while let Ok(event) = outsider_events.try_recv() {
        assert!(
            !matches!(event, Event::TransactionUpdate { .. }),
            "the outsider got a change to a private table: {event:?}"
        );
    }

    swap(&live, "bank", "bank").await;
    outsider
        .subscribe(&["SELECT * FROM account"])
        .await
        .expect("account is public again");
    assert_eq!(outsider.rows_raw("account").len(), 3);
    let moved = owner
        .call("transfer", &(7u32, 0u32, 5i64))
        .await
        .expect("transferring");
    assert_eq!(moved.status, ReducerStatus::Committed, "{moved:?}");
    loop {
        if let Event::TransactionUpdate { .. } =
            next_event(&mut outsider_events, "the outsider sees the transfer").await
        {
            break;
        }
    }
    let mut balances: Vec<(u32, i64)> = outsider.rows("account").expect("decoding");
    balances.sort();
    assert_eq!(
        balances,
        [(0, 105), (1, 100), (7, 0)],
        "each row once, as it is now"
    );
    live.shutdown().await;
}

/// `GET /v1/database/bank/logs` on a new connection to `live`, with each
/// of `authorizations` as an `Authorization` header: the status line and
/// the body.
async fn logs_with(live: &LiveServer, authorizations: &[String]) -> (String, String) {
    let mut request = "GET /v1/database/bank/logs HTTP/1.1\r\nHost: x\r\n".to_owned();
    for value in authorizations {
        request.push_str(&format!("Authorization: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let addr = live.http_addr();
    let answer = tokio::task::spawn_blocking(move || raw_http(addr, request.as_bytes()))
        .await
        .expect("the request's task");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

// HTTP_API.md "Identities and tokens": a request with two Authorization
// headers is refused, whichever of them comes first, rather than acting as
// the first (a proxy that adds its own header behind the client's must not
// make the server pick one); the scheme `Bearer` is read in any case, as
// HTTP has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_authorization_headers_are_refused_and_the_scheme_is_case_insensitive() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let owner = format!("Bearer {}", live.owner_token);
    let (_, other) = live.server().new_identity();
    let other = format!("Bearer {other}");
    for pair in [
        [owner.clone(), other.clone()],
        [other.clone(), owner.clone()],
    ] {
        let (status, body) = logs_with(&live, &pair).await;
        assert!(status.contains(" 401 "), "{status} {body}");
        assert!(
            body.contains("the request has several Authorization headers; send one"),
            "{body}"
        );
    }
    for scheme in ["bearer", "BEARER"] {
        let value = format!("{scheme} {}", live.owner_token);
        let (status, body) = logs_with(&live, &[value]).await;
        assert!(status.contains(" 200 "), "{scheme}: {status} {body}");
    }
    let (status, body) = logs_with(&live, &[format!("Basic {}", live.owner_token)]).await;
    assert!(status.contains(" 401 "), "{status} {body}");
    assert!(
        body.contains("the Authorization header must be `Bearer TOKEN`"),
        "{body}"
    );
    live.shutdown().await;
}

// README.md "The data directory": a data directory the server creates
// (with its missing parents, as for the default under ~/.local/share) is
// its user's only, and so is `databases/`: every row of every table,
// private tables included, is in the databases' commit logs and snapshots.
// `databases/` is made private also when it already existed open to others
// (made by an older server, or by hand), so no other user on the machine
// can read a private table from the disk.
#[test]
fn the_data_directory_and_its_databases_are_private_to_the_servers_user() {
    let root = TempDir::new("worldline-private-databases");
    let dir = root.path().join("share/worldline");
    let databases = dir.join("databases");
    let server = ServerProcess::start(&dir);
    let owner = Http::new_identity(&server.http);
    owner.publish("bank", &guest_wasm("bank"));
    owner.call_ok("bank", "seed", &serde_json::json!([2, 100]));
    assert_eq!(mode(&root.path().join("share")), 0o700, "a missing parent");
    assert_eq!(mode(&dir), 0o700, "a new data directory");
    assert_eq!(mode(&databases), 0o700, "its databases");
    server.kill();

    std::fs::set_permissions(&databases, std::fs::Permissions::from_mode(0o755))
        .expect("opening the directory to everyone");
    let server = ServerProcess::start(&dir);
    assert_eq!(mode(&databases), 0o700, "made private again at start");
    let rows = Http::new(&server.http, owner.token()).post_ok(
        "/v1/database/bank/sql",
        "text/plain",
        b"SELECT * FROM account",
    );
    assert_eq!(rows["tables"][0]["rows"].as_array().map(Vec::len), Some(2));
    server.kill();
}

/// The fatal error a `Hello` for `bank` presenting `token` gets over
/// WebSocket and over QUIC, which must be the same.
async fn hello_refusal(live: &LiveServer, token: &str) -> String {
    let hello = hello("bank", Some(token.to_owned()));
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello).await;
    let over_websocket = fatal(ws.recv().await);
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello).await;
    let over_quic = fatal(quic.recv().await);
    assert_eq!(
        over_websocket, over_quic,
        "the same refusal on both transports"
    );
    over_websocket
}

// PROTOCOL.md "Handshake and identity": a real token copied with a line
// break after it (read from a file) or with the `Bearer ` of HTTP before it
// is refused as what it is, on both transports, not as a token whose
// signature is wrong (which sends the user after the wrong cause).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_copied_with_whitespace_is_refused_for_what_it_is() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let token = &live.owner_token;
    for copied in [format!("{token}\n"), format!("Bearer {token}")] {
        assert_eq!(
            hello_refusal(&live, &copied).await,
            "token refused: malformed token: it contains whitespace; send the token alone, \
             without `Bearer ` or a line break; connect without a token to get a new identity",
            "{copied:?}"
        );
    }
    live.shutdown().await;
}

// HTTP_API.md "Errors": a very long token reaches the route and is refused
// like any other it did not sign (`401`); one that takes the request's
// headers past what the HTTP layer reads (about 400 KiB) is answered `431`
// with no body, as the document says of requests it will not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_very_long_token_is_refused_and_one_past_the_header_limit_gets_431() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let long = format!("Bearer {}", "a".repeat(100_000));
    let (status, body) = logs_with(&live, &[long]).await;
    assert!(status.contains(" 401 "), "{status}");
    assert!(
        body.contains("the token was refused: malformed token"),
        "{body}"
    );
    let too_long = format!("Bearer {}", "a".repeat(600_000));
    let (status, body) = logs_with(&live, &[too_long]).await;
    assert!(status.contains(" 431 "), "{status}");
    assert_eq!(body, "");
    live.shutdown().await;
}
