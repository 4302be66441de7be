//! HTTP answers against a real server on loopback: an answer counts in the
//! server's budget for outgoing messages until it is written, and one its
//! client never reads is let go after the idle timeout. (In a test binary
//! of its own: the budget tests beside it measure the process's memory.)

use std::time::{Duration, Instant};

use worldline_tests::live::LiveServer;

const SHORT: &str = "the server is short of memory for outgoing messages: ";

// An outsider's clients asked for 60 MB SQL answers over HTTP and never
// read them: each was held whole, outside the budget, for as long as the
// connection stayed open. Now an HTTP answer counts in the budget until it
// is written (a second one that does not fit is refused with 503), and a
// client that reads nothing of it for 30 s is disconnected, which gives
// the room back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_answer_counts_in_the_budget_and_is_dropped_for_a_client_that_never_reads() {
    const LIMIT: u32 = 16 << 20;
    let live = LiveServer::start_with(&[("h", "hostile")], |config| {
        config.max_queued_bytes = LIMIT;
        config.max_outgoing_bytes = u64::from(LIMIT);
    })
    .await;
    let http = live.owner_http();
    // Six rows of 1 MB: about 12 MB as JSON, far more than the sockets hold.
    for id in 0..6 {
        tokio::task::block_in_place(|| {
            http.call_ok("h", "write_rows", &serde_json::json!([id, 1, 1_000_000]))
        });
    }
    let addr = live.http_addr();
    let mut stalled = std::net::TcpStream::connect(addr).expect("connecting");
    send_sql(&mut stalled, "SELECT * FROM blob", false);

    // Half of it (6 MB more) does not fit beside it.
    let half =
        || tokio::task::block_in_place(|| sql_status(addr, "SELECT * FROM blob WHERE id < 3"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, head) = half();
        if status == 503 {
            assert!(head.contains(SHORT), "{head}");
            break;
        }
        assert!(Instant::now() < deadline, "never refused: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused_at = Instant::now();
    let deadline = refused_at + Duration::from_secs(90);
    loop {
        let (status, head) = half();
        if status == 200 {
            break;
        }
        assert!(head.contains(SHORT), "{head}");
        assert!(
            Instant::now() < deadline,
            "the stalled answer is never let go"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        refused_at.elapsed() >= Duration::from_secs(20),
        "let go after {:?}, before the 30 s stall",
        refused_at.elapsed()
    );
    // The stalled client finds its connection closed before the answer's end.
    let mut received = Vec::new();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    let _ = std::io::Read::read_to_end(&mut stalled, &mut received);
    assert!(received.len() < 12_000_000, "{} bytes", received.len());
    live.shutdown().await;
}

/// Sends `query` to database `h` over `stream`, asking the server to close
/// the connection after its answer if `close`.
fn send_sql(stream: &mut std::net::TcpStream, query: &str, close: bool) {
    use std::io::Write;
    let connection = if close { "connection: close\r\n" } else { "" };
    write!(
        stream,
        "POST /v1/database/h/sql HTTP/1.1\r\nhost: x\r\n{connection}content-length: {}\r\n\r\n\
         {query}",
        query.len()
    )
    .expect("sending the query");
}

/// The status and the first 1,000 bytes of the answer to `query` on
/// database `h`, read whole over a connection of its own.
fn sql_status(addr: std::net::SocketAddr, query: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a timeout");
    send_sql(&mut stream, query, true);
    let mut head = [0u8; 1_000];
    let mut read = 0;
    while read < head.len() {
        match std::io::Read::read(&mut stream, &mut head[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    let head = String::from_utf8_lossy(&head[..read]).into_owned();
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    (status, head)
}
