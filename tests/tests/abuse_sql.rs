//! Issue #9 item 1 against a real server on loopback: an anonymous
//! `POST /v1/database/NAME/sql` whose `WHERE` was a long `OR` chain (about
//! 1,000 terms on a debug build) overflowed the database thread's stack and
//! aborted the whole process; subscriptions share the compiler. Queries over
//! the size or nesting limits are now refused (HTTP 400 with the JSON error
//! body, `SubscriptionError` / `QueryResult` errors on the wire) quoting only
//! an excerpt of the query, and the server, the connection and the other
//! databases go on.

use std::time::Duration;

use serde_json::Value;
use worldline_tests::live::LiveServer;
use worldline_tests::raw::{RawQuic, RawWebSocket, call, hello};
use worldline_tests::{args, peak_resident_bytes, resident_bytes};
use worldline_transport::{ClientMessage, ReducerStatus, ServerMessage};

/// Held by the tests that measure the process's memory, so that one does
/// not count what another makes the server hold.
static MEASURING_MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `SELECT * FROM account WHERE id = 0 OR id = 1 OR ...` with `terms` comparisons.
fn or_chain(terms: usize) -> String {
    let terms: Vec<String> = (0..terms).map(|i| format!("id = {i}")).collect();
    format!("SELECT * FROM account WHERE {}", terms.join(" OR "))
}

/// `SELECT * FROM account WHERE ((...(id = 3)...))`, `depth` parentheses deep.
fn parenthesised(depth: usize) -> String {
    format!(
        "SELECT * FROM account WHERE {}id = 3{}",
        "(".repeat(depth),
        ")".repeat(depth)
    )
}

/// The queries refused, each with a phrase its error must contain.
fn refused() -> [(String, &'static str); 3] {
    [
        (or_chain(10_000), "at most 16384 bytes"),
        (parenthesised(1_000), "at most 64 levels"),
        // Short enough in bytes, too many tokens.
        (
            format!(
                "SELECT * FROM account WHERE {}",
                vec!["id=1"; 1_500].join(" OR ")
            ),
            "more than 4096 tokens",
        ),
    ]
}

/// Anonymous `POST /v1/database/NAME/sql`: the status and the answer's JSON.
async fn post_sql(live: &LiveServer, database: &str, query: &str) -> (u16, Value) {
    let url = format!(
        "http://{}/v1/database/{database}/sql",
        live.server().http_addr()
    );
    let query = query.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut response = agent
            .post(&url)
            .content_type("text/plain")
            .send(query.as_bytes())
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let text = response.body_mut().read_to_string().expect("a body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {text}"));
        (response.status().as_u16(), json)
    })
    .await
    .expect("the request task")
}

async fn welcomed_ws(live: &LiveServer, database: &str) -> RawWebSocket {
    welcomed_ws_as(live, database, None).await
}

/// A WebSocket connection to `database` welcomed with `token` (none:
/// anonymous).
async fn welcomed_ws_as(live: &LiveServer, database: &str, token: Option<String>) -> RawWebSocket {
    let mut ws = RawWebSocket::connect(&live.ws_url()).await;
    ws.send(&hello(database, token)).await;
    let welcome = ws.recv().await;
    assert!(
        matches!(welcome, Some(ServerMessage::Welcome { .. })),
        "{welcome:?}"
    );
    ws
}

/// Seeds the bank with 20 accounts through a reducer call.
async fn seed(ws: &mut RawWebSocket) {
    ws.send(&call(1, "seed", args(&(20u32, 100i64)))).await;
    let result = ws.recv().await;
    assert!(
        matches!(result, Some(ServerMessage::ReducerResult { .. })),
        "{result:?}"
    );
}

/// Asserts that the process's memory, `now`, is less than `bound` bytes
/// above `before`; `what` says what made it grow.
fn assert_grew_less_than(before: u64, now: u64, bound: u64, what: &str) {
    let grown = now.saturating_sub(before);
    assert!(
        grown < bound,
        "{what} made the process grow by {} MB",
        grown >> 20
    );
}

/// Subscribes `ws` to `query` as query set `query_set_id`.
async fn subscribe(ws: &mut RawWebSocket, query_set_id: u32, query: &str) {
    ws.send(&ClientMessage::Subscribe {
        query_set_id,
        queries: vec![query.into()],
    })
    .await;
}

/// Calls the hostile module's `tag_rows(first, count, kind)` and checks
/// that it committed.
async fn tag_rows(ws: &mut RawWebSocket, (first, count, kind): (u32, u32, u32)) {
    call_committed(ws, 1, "tag_rows", args(&(first, count, kind))).await;
}

/// Calls `reducer` with the encoded `arguments` and checks that it committed.
async fn call_committed(ws: &mut RawWebSocket, request_id: u32, reducer: &str, arguments: Vec<u8>) {
    ws.send(&call(request_id, reducer, arguments)).await;
    let result = ws.recv().await;
    assert!(
        matches!(
            result,
            Some(ServerMessage::ReducerResult {
                status: ReducerStatus::Committed,
                ..
            })
        ),
        "{result:?}"
    );
}

/// The number of rows in a `SubscribeApplied`.
fn applied_rows(message: Option<ServerMessage>) -> usize {
    match message {
        Some(ServerMessage::SubscribeApplied { tables, .. }) => {
            tables.iter().map(|t| t.rows.len()).sum()
        }
        other => panic!("expected SubscribeApplied, got {other:?}"),
    }
}

// #9 item 1: over HTTP, with no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_deep_sql_over_http_is_a_400_and_the_server_goes_on() {
    let live = LiveServer::start(&[("bank", "bank"), ("chat", "chat")]).await;
    seed(&mut welcomed_ws(&live, "bank").await).await;
    for (query, expected) in refused() {
        let (status, body) = post_sql(&live, "bank", &query).await;
        assert_eq!(status, 400, "{body}");
        let error = body["error"].as_str().expect("an error message");
        assert!(error.contains(expected), "{error} lacks {expected}");
        assert!(
            body.to_string().len() < 1_000,
            "the query is echoed: {body}"
        );
    }
    // A thousand terms, which used to abort a debug build, are served.
    let (status, body) = post_sql(&live, "bank", &or_chain(1_000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tables"][0]["rows"].as_array().map(Vec::len), Some(20));
    // Both databases still answer.
    let (status, body) = post_sql(&live, "bank", "SELECT * FROM account WHERE id = 3").await;
    assert_eq!(
        (status, body["tables"][0]["rows"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (status, body) = post_sql(&live, "chat", "SELECT * FROM message").await;
    assert_eq!(status, 200, "{body}");
    live.shutdown().await;
}

// #9 item 1: subscriptions and one-off queries share the compiler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_deep_subscriptions_are_refused_and_the_connection_goes_on() {
    let live = LiveServer::start(&[("bank", "bank"), ("chat", "chat")]).await;
    let mut ws = welcomed_ws(&live, "bank").await;
    seed(&mut ws).await;
    for ((query, expected), id) in refused().into_iter().zip(1..) {
        ws.send(&ClientMessage::Subscribe {
            query_set_id: id,
            queries: vec!["SELECT * FROM account".into(), query],
        })
        .await;
        match ws.recv().await {
            Some(ServerMessage::SubscriptionError {
                query_set_id,
                message,
            }) => {
                assert_eq!(query_set_id, id);
                assert!(message.contains(expected), "{message} lacks {expected}");
                assert!(message.len() < 1_000, "the query is echoed: {message}");
            }
            other => panic!("expected a SubscriptionError, got {other:?}"),
        }
    }
    subscribe(&mut ws, 9, &or_chain(1_000)).await;
    assert_eq!(applied_rows(ws.recv().await), 20);

    // A one-off query over QUIC, then a good one on the same stream.
    let mut quic = RawQuic::connect(live.quic_addr(), live.certificate()).await;
    quic.send(&hello("bank", None)).await;
    let welcome = quic.recv().await;
    assert!(
        matches!(welcome, Some(ServerMessage::Welcome { .. })),
        "{welcome:?}"
    );
    for (request_id, query) in [(1, or_chain(10_000)), (2, parenthesised(1_000))] {
        quic.send(&ClientMessage::Query { request_id, query }).await;
        match quic.recv().await {
            Some(ServerMessage::QueryResult {
                request_id: answered,
                result: Err(message),
            }) => {
                assert_eq!(answered, request_id);
                assert!(message.contains("the query is"), "{message}");
            }
            other => panic!("expected the query to be refused, got {other:?}"),
        }
    }
    quic.send(&ClientMessage::Query {
        request_id: 3,
        query: "SELECT * FROM account WHERE id < 5".into(),
    })
    .await;
    match quic.recv().await {
        Some(ServerMessage::QueryResult {
            request_id: 3,
            result: Ok(tables),
        }) => assert_eq!(tables.iter().map(|t| t.rows.len()).sum::<usize>(), 5),
        other => panic!("expected rows, got {other:?}"),
    }
    // The other database was never affected.
    let mut chat = welcomed_ws(&live, "chat").await;
    subscribe(&mut chat, 1, "SELECT * FROM message").await;
    assert_eq!(applied_rows(chat.recv().await), 0);
    live.shutdown().await;
}

// PROTOCOL.md "Limits": a subscription or query whose rows would exceed
// `max_message_bytes` is refused. A join yields a row once per partner, so
// a table joined with itself on a column its rows share is the square of
// the table: 1,500 chat messages from one sender joined on `sender` are
// 2.25 million rows. The server gathered them all before measuring them
// (a 1 MiB limit, 110 MB of rows: the process grew by 140 MB for the
// subscription and by 800 MB for the same query over HTTP, which had no
// limit at all), so the cost was the square of the data, not the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_larger_than_a_message_is_refused_before_it_is_built() {
    let _measuring = MEASURING_MEMORY.lock().await;
    let limit: u32 = 1 << 20;
    let live = LiveServer::start_with(&[("chat", "chat")], |config| {
        config.max_queued_bytes = limit;
    })
    .await;
    let mut sender = welcomed_ws(&live, "chat").await;
    let messages = 1_500u32;
    for id in 0..messages {
        sender.send(&call(id, "send_message", args(&("x",)))).await;
    }
    for _ in 0..messages {
        let result = sender.recv().await;
        assert!(
            matches!(result, Some(ServerMessage::ReducerResult { .. })),
            "{result:?}"
        );
    }
    let square = "SELECT a.* FROM message a JOIN message b ON a.sender = b.sender";
    let before = resident_bytes();
    let mut ws = welcomed_ws(&live, "chat").await;
    subscribe(&mut ws, 1, square).await;
    match ws.recv().await {
        Some(ServerMessage::SubscriptionError { message, .. }) => {
            assert!(message.contains("more than the 1048576 bytes"), "{message}")
        }
        other => panic!("expected the subscription to be refused, got {other:?}"),
    }
    assert_grew_less_than(
        before,
        resident_bytes(),
        64 << 20,
        "refusing the subscription",
    );
    ws.send(&ClientMessage::Query {
        request_id: 1,
        query: square.into(),
    })
    .await;
    match ws.recv().await {
        Some(ServerMessage::QueryResult {
            result: Err(message),
            ..
        }) => assert!(message.contains("more than the 1048576 bytes"), "{message}"),
        other => panic!("expected the query to be refused, got {other:?}"),
    }
    let (status, body) = post_sql(&live, "chat", square).await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().expect("an error text");
    assert!(error.contains("more than the 1048576 bytes"), "{error}");
    assert_grew_less_than(
        before,
        resident_bytes(),
        64 << 20,
        "refusing the query and the SQL",
    );
    // A join that fits is answered, and the connection goes on.
    let (status, body) = post_sql(
        &live,
        "chat",
        "SELECT a.* FROM message a JOIN message b ON a.sender = b.sender WHERE a.id = 1",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["tables"][0]["rows"].as_array().map(Vec::len),
        Some(messages as usize)
    );
    subscribe(&mut ws, 2, "SELECT * FROM message WHERE id = 1").await;
    assert_eq!(applied_rows(ws.recv().await), 1);
    live.shutdown().await;
}

// HTTP_API.md "SQL": the answer is held to `max_message_bytes`. The rows
// became a tree of JSON values before being written, about thirty times
// their bytes for a `bytes` column (each byte a JSON number): an anonymous
// `SELECT * FROM blob` of 60 MiB of public rows made the process peak at
// 4.5 GB to answer 126 MB of JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_http_is_held_to_the_limit_as_json() {
    let _measuring = MEASURING_MEMORY.lock().await;
    let live = LiveServer::start(&[("hostile", "hostile")]).await;
    let mut ws = welcomed_ws(&live, "hostile").await;
    // 60 rows of 1 MiB: within the 64 MiB limit in their binary encoding,
    // about twice that as JSON.
    for id in 0..60u32 {
        ws.send(&call(id, "write_rows", args(&(id, 1u32, 1u32 << 20))))
            .await;
        let result = ws.recv().await;
        assert!(
            matches!(result, Some(ServerMessage::ReducerResult { .. })),
            "{result:?}"
        );
    }
    let before = peak_resident_bytes();
    let (status, body) = post_sql(&live, "hostile", "SELECT * FROM blob").await;
    let peak = peak_resident_bytes();
    assert_eq!(status, 400, "{}", &body.to_string()[..200]);
    let error = body["error"].as_str().expect("an error text");
    assert!(error.contains("more than the 67108864 bytes"), "{error}");
    assert_grew_less_than(before, peak, 1 << 30, "the refused SQL");
    // A result that fits is answered as before.
    let (status, body) = post_sql(&live, "hostile", "SELECT * FROM blob WHERE id < 3").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tables"][0]["table"], "blob");
    assert_eq!(
        body["tables"][0]["columns"],
        serde_json::json!(["id", "data"])
    );
    let rows = body["tables"][0]["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2][0], 2);
    assert_eq!(rows[2][1].as_array().map(Vec::len), Some(1 << 20));
    live.shutdown().await;
}

// PROTOCOL.md "Limits": a transaction's update larger than a message drops
// the subscriber. One transaction inserting 20,000 rows of one kind changes
// a join of the table with itself on `kind` by 400 million rows: the
// server built them all (as copies, then decoded) before measuring the
// message, on the database's thread, until the process ran out of memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_update_larger_than_a_message_drops_its_subscriber_before_it_is_built() {
    let _measuring = MEASURING_MEMORY.lock().await;
    let limit: u32 = 1 << 20;
    let live = LiveServer::start_with(&[("hostile", "hostile")], |config| {
        config.max_queued_bytes = limit;
    })
    .await;
    let mut square = welcomed_ws(&live, "hostile").await;
    subscribe(
        &mut square,
        1,
        "SELECT a.* FROM tag a JOIN tag b ON a.kind = b.kind",
    )
    .await;
    assert_eq!(applied_rows(square.recv().await), 0);
    let mut narrow = welcomed_ws(&live, "hostile").await;
    subscribe(&mut narrow, 1, "SELECT * FROM tag WHERE id = 5").await;
    assert_eq!(applied_rows(narrow.recv().await), 0);
    let before = peak_resident_bytes();
    let mut caller = welcomed_ws(&live, "hostile").await;
    tag_rows(&mut caller, (0, 20_000, 1)).await;
    match square.recv().await {
        Some(ServerMessage::Error { message, .. }) => assert!(
            message.contains("by more than the 1048576 bytes this server sends in one message"),
            "{message}"
        ),
        other => panic!("expected the subscriber to be dropped, got {other:?}"),
    }
    assert!(square.recv().await.is_none(), "the connection is closed");
    // The other subscriber gets its row, and the server goes on.
    match narrow.recv().await {
        Some(ServerMessage::TransactionUpdate { tables, .. }) => {
            assert_eq!(tables.iter().map(|t| t.inserts.len()).sum::<usize>(), 1)
        }
        other => panic!("expected the row of tag 5, got {other:?}"),
    }
    assert_grew_less_than(before, peak_resident_bytes(), 128 << 20, "the update");
    caller
        .send(&call(2, "tag_rows", args(&(20_000u32, 1u32, 2u32))))
        .await;
    assert!(
        matches!(
            caller.recv().await,
            Some(ServerMessage::ReducerResult { .. })
        ),
        "the database still serves"
    );
    live.shutdown().await;
}

// PROTOCOL.md "Limits": rows count at least 32 bytes each against
// `max_message_bytes`. 4,000 tags of one kind joined with themselves on
// `kind` are 16 million rows of 3 bytes: within the default 64 MiB counted
// by their bytes alone, so the server built them all, each a list entry
// and a copy of some 50 bytes, and the process peaked more than a
// gigabyte higher for one subscription of one client. The subscriber is
// the owner, whose reads have no work bound (a stranger's is refused for
// the work sooner: see `outsider_abuse`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_of_tiny_rows_is_held_to_the_limit_in_memory_too() {
    let _measuring = MEASURING_MEMORY.lock().await;
    let live = LiveServer::start(&[("hostile", "hostile")]).await;
    let mut caller = welcomed_ws(&live, "hostile").await;
    tag_rows(&mut caller, (0, 4_000, 0)).await;
    let before = peak_resident_bytes();
    let mut square = welcomed_ws_as(&live, "hostile", Some(live.owner_token.clone())).await;
    subscribe(
        &mut square,
        1,
        "SELECT a.* FROM tag a JOIN tag b ON a.kind = b.kind",
    )
    .await;
    match square.recv().await {
        Some(ServerMessage::SubscriptionError { message, .. }) => {
            assert!(
                message.contains("more than the 67108864 bytes"),
                "{message}"
            )
        }
        other => panic!(
            "expected the subscription to be refused, got {:?}",
            other.map(|m| format!("{m:?}").chars().take(200).collect::<String>())
        ),
    }
    assert_grew_less_than(before, peak_resident_bytes(), 320 << 20, "one subscription");
    // A join of the same rows that fits is answered.
    subscribe(
        &mut square,
        2,
        "SELECT a.* FROM tag a JOIN tag b ON a.kind = b.kind WHERE a.id < 10",
    )
    .await;
    assert_eq!(applied_rows(square.recv().await), 40_000);
    live.shutdown().await;
}

// PROTOCOL.md "Supported SQL", literals of float columns, through the
// server: an f32 literal was read as an f64 and narrowed, rounding twice
// (1.00000017881393432617187499, closest to the f32 1.0000001, became
// 1.0000002), and a literal too large for its type was read as infinity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_literals_take_their_column_type_over_http() {
    let live = LiveServer::start(&[("floats", "floats")]).await;
    let mut ws = welcomed_ws(&live, "floats").await;
    // The f32s just after 1.0, and infinity.
    let readings = [
        (1u32, f32::from_bits(0x3f80_0001), 1.0f64),
        (2, f32::from_bits(0x3f80_0002), 2.0),
        (3, f32::INFINITY, f64::INFINITY),
    ];
    for (request_id, (id, x, y)) in (0u32..).zip(readings) {
        call_committed(&mut ws, request_id, "record", args(&(id, x, y))).await;
    }
    let ids = |body: &Value| -> Vec<u64> {
        let rows = body["tables"][0]["rows"].as_array().expect("rows");
        rows.iter()
            .map(|row| row[0].as_u64().expect("an id"))
            .collect()
    };
    let (status, body) = post_sql(
        &live,
        "floats",
        "SELECT * FROM reading WHERE x = 1.00000017881393432617187499",
    )
    .await;
    assert_eq!((status, ids(&body)), (200, vec![1]), "{body}");
    for (query, error) in [
        (
            "SELECT * FROM reading WHERE x = 1e39",
            "column `x` is f32: 1e39 is out of range",
        ),
        (
            "SELECT * FROM reading WHERE y > 1e400",
            "column `y` is f64: 1e400 is out of range",
        ),
    ] {
        let (status, body) = post_sql(&live, "floats", query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"].as_str(), Some(error), "{query}");
    }
    live.shutdown().await;
}

// A table name, an alias and an integer literal of 300 characters: the
// error quotes each cut to its first 200 characters and `…`, as
// "Supported SQL" says of every part of a query an error quotes, over HTTP
// and on the wire. The three were quoted whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_name_or_number_in_a_query_is_quoted_cut_short() {
    let live = LiveServer::start(&[("bank", "bank")]).await;
    let long = "é".repeat(300);
    let digits = "9".repeat(300);
    let cases = [
        (format!("SELECT * FROM {long}"), "no table named `", '`'),
        (
            format!("SELECT * FROM account WHERE id = {digits}"),
            "column `id` is u32: ",
            ' ',
        ),
        (
            format!(
                "SELECT {long}.* FROM account {long} JOIN account b ON {long}.balance = b.balance"
            ),
            "unsupported: joining on `",
            '.',
        ),
    ];
    let quoted_cut = |error: &str, before: &str, after: char| {
        let start = error
            .find(before)
            .unwrap_or_else(|| panic!("{error} lacks {before}"))
            + before.len();
        let quoted: String = error[start..].chars().take_while(|&c| c != after).collect();
        assert_eq!(quoted.chars().count(), 201, "{error}");
        assert!(quoted.ends_with('…'), "{error}");
    };
    let mut ws = welcomed_ws(&live, "bank").await;
    for ((query, before, after), id) in cases.into_iter().zip(1..) {
        let (status, body) = post_sql(&live, "bank", &query).await;
        assert_eq!(status, 400, "{body}");
        quoted_cut(body["error"].as_str().expect("an error"), before, after);
        ws.send(&ClientMessage::Query {
            request_id: id,
            query: query.clone(),
        })
        .await;
        match ws.recv().await {
            Some(ServerMessage::QueryResult {
                result: Err(error), ..
            }) => quoted_cut(&error, before, after),
            other => panic!("expected an Err QueryResult, got {other:?}"),
        }
        ws.send(&ClientMessage::Subscribe {
            query_set_id: id,
            queries: vec![query],
        })
        .await;
        match ws.recv().await {
            Some(ServerMessage::SubscriptionError { message, .. }) => {
                let reason = message.split_once(": ").expect("the query, then why").1;
                quoted_cut(reason, before, after);
            }
            other => panic!("expected a SubscriptionError, got {other:?}"),
        }
    }
    live.shutdown().await;
}
