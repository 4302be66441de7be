//! A WebSocket upgrade the server answers with an error instead of `101`:
//! the client reports the server's message, not just the status.

use std::io::{Read, Write};

use worldline_client::{Client, ClientError, ConnectOptions};

/// A server that answers one request with the per-address limit's `503`.
fn refusing_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        // The whole head, so that closing leaves no unread request bytes
        // (which would reset the connection under the answer).
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
            head.push(byte[0]);
        }
        let body = r#"{"error":"too many connections from 127.0.0.1: at most 128 at once per address to this port; close one and retry"}"#;
        // In one write, as the server answers: the client reads the body
        // only if it came with the head (`write!` would write it in pieces).
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes());
    });
    format!("ws://{addr}/v1/ws")
}

#[tokio::test]
async fn a_refused_upgrade_reports_the_servers_message() {
    let url = refusing_server();
    let error = Client::connect(ConnectOptions::websocket(url, "chat"))
        .await
        .err()
        .expect("the connection is refused");
    assert_eq!(
        error,
        ClientError::Rejected(
            "too many connections from 127.0.0.1: at most 128 at once per address to this port; \
             close one and retry"
                .into()
        )
    );
}
