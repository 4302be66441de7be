//! Loopback servers and helpers shared by the outbound HTTP tests.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use worldline_outbound::{
    AllowList, HttpError, HttpErrorKind, HttpLimits, HttpPolicy, HttpRequest, HttpResponse,
    OutboundHttp, PrivateOverride,
};

/// Limits short enough for the suite to run in seconds.
pub fn short_limits() -> HttpLimits {
    HttpLimits {
        connect_timeout: Duration::from_millis(1000),
        first_byte_timeout: Duration::from_millis(1000),
        total_timeout: Duration::from_millis(2000),
        ..HttpLimits::default()
    }
}

/// A client allowing `allow`, letting the guard pass `overrides`.
pub fn client(allow: &str, overrides: &[SocketAddr], limits: HttpLimits) -> OutboundHttp {
    let policy = HttpPolicy {
        allow: AllowList::parse(allow).expect("a valid allow-list"),
        overrides: PrivateOverride::new(overrides.iter().copied()),
        limits,
    };
    OutboundHttp::new(policy).expect("a valid policy")
}

/// A client allowing exactly this loopback server, through the override.
pub fn client_for(server: SocketAddr, limits: HttpLimits) -> OutboundHttp {
    client(&server.to_string(), &[server], limits)
}

/// A GET of `url` without headers or body.
pub fn get(url: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout: None,
    }
}

/// Sends and expects an error of `kind`, returning it.
pub async fn expect_error(
    client: &OutboundHttp,
    request: HttpRequest,
    kind: HttpErrorKind,
) -> HttpError {
    let outcome: Result<HttpResponse, HttpError> = client.send(request, None).await;
    match outcome {
        Err(err) => {
            assert_eq!(err.kind, kind, "{err}");
            err
        }
        Ok(response) => panic!("expected {kind}, got status {}", response.status),
    }
}

/// Accepts connections on a fresh loopback port, running `handle` on each.
pub async fn serve_raw<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    address
}

/// Reads a request head (up to the blank line), at most 64 KiB.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads a request head, then writes `response` and closes.
pub async fn answer(mut stream: TcpStream, response: Vec<u8>) {
    read_head(&mut stream).await;
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}
