//! What the policy refuses before any byte reaches a server: hosts off the
//! allow-list, internal addresses (by literal or by resolution), malformed
//! requests and oversized bodies; and that the development override lets
//! exactly its address through.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{answer, client, client_for, expect_error, get, serve_raw, short_limits};
use worldline_outbound::{HttpErrorKind, HttpLimits, HttpRequest};

/// A server answering `200 ok` that counts the connections it accepted.
async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let address = serve_raw(move |stream| {
        seen.fetch_add(1, Ordering::SeqCst);
        answer(
            stream,
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
        )
    })
    .await;
    (address, count)
}

#[tokio::test]
async fn the_override_lets_its_loopback_address_through() {
    let (server, count) = counting_server().await;
    let outbound = client_for(server, short_limits());
    let response = outbound
        .send(get(&format!("http://{server}/")), None)
        .await
        .expect("allowed by the override");
    assert_eq!((response.status, &response.body[..]), (200, &b"ok"[..]));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn loopback_without_the_override_is_denied_before_connecting() {
    let (server, count) = counting_server().await;
    let outbound = client(&server.to_string(), &[], short_limits());
    let err = expect_error(
        &outbound,
        get(&format!("http://{server}/")),
        HttpErrorKind::Denied,
    )
    .await;
    assert!(
        err.message.contains("127.0.0.1") && err.message.contains("loopback"),
        "{err}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_override_is_for_one_port_only() {
    let (server, count) = counting_server().await;
    let other: SocketAddr = format!("127.0.0.1:{}", server.port().wrapping_add(1).max(1))
        .parse()
        .expect("address");
    let outbound = client(&server.to_string(), &[other], short_limits());
    let url = format!("http://{server}/");
    expect_error(&outbound, get(&url), HttpErrorKind::Denied).await;
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_host_off_the_list_is_denied() {
    let (server, count) = counting_server().await;
    let outbound = client("api.example.com", &[server], short_limits());
    let err = expect_error(
        &outbound,
        get(&format!("http://{server}/")),
        HttpErrorKind::Denied,
    )
    .await;
    assert!(err.message.contains("allow-list"), "{err}");
    assert!(err.message.contains(&server.to_string()), "{err}");
    let err = expect_error(
        &outbound,
        get("http://other.example.com/"),
        HttpErrorKind::Denied,
    )
    .await;
    assert!(err.message.contains("other.example.com"), "{err}");
    let err = expect_error(
        &outbound,
        get("http://api.example.com:8080/"),
        HttpErrorKind::Denied,
    )
    .await;
    assert!(err.message.contains("8080"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_denied() {
    let (server, count) = counting_server().await;
    let port = server.port();
    let outbound = client(&format!("localhost:{port}"), &[], short_limits());
    let err = expect_error(
        &outbound,
        get(&format!("http://localhost:{port}/")),
        HttpErrorKind::Denied,
    )
    .await;
    assert!(
        err.message.contains("localhost") && err.message.contains("loopback"),
        "{err}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 0);

    // With the override for its IPv4 address, the name may be used.
    let outbound = client(&format!("localhost:{port}"), &[server], short_limits());
    let response = outbound
        .send(get(&format!("http://localhost:{port}/")), None)
        .await
        .expect("the override applies to the resolved address");
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn internal_ip_literals_are_denied_even_when_listed() {
    let (server, count) = counting_server().await;
    let port = server.port();
    let literals = [
        ("169.254.169.254", "cloud metadata"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::1]", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("10.0.0.1", "private"),
        ("[fd00:ec2::254]", "cloud metadata"),
        ("[64:ff9b::7f00:1]", "loopback"),
    ];
    for (host, reason) in literals {
        let outbound = client(&format!("{host}:{port}"), &[server], short_limits());
        let err = expect_error(
            &outbound,
            get(&format!("http://{host}:{port}/")),
            HttpErrorKind::Denied,
        )
        .await;
        assert!(err.message.contains(reason), "{host}: {err}");
    }
    // A decimal spelling of 127.0.0.1 is the same address.
    let outbound = client("127.0.0.1", &[], short_limits());
    expect_error(&outbound, get("http://2130706433/"), HttpErrorKind::Denied).await;
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_requests_are_invalid_and_never_sent() {
    let (server, count) = counting_server().await;
    let outbound = client_for(server, short_limits());
    let url = format!("http://{server}/");
    let with = |change: &dyn Fn(&mut HttpRequest)| {
        let mut request = get(&url);
        change(&mut request);
        request
    };
    let cases = [
        with(&|r| r.url = "not a url".into()),
        with(&|r| r.url = format!("ftp://{server}/")),
        with(&|r| r.url = format!("http://user:pw@{server}/")),
        with(&|r| r.method = "TRACE".into()),
        with(&|r| r.method = "get".into()),
        with(&|r| r.headers = vec![("Host".into(), "evil.example".into())]),
        with(&|r| r.headers = vec![("content-length".into(), "5".into())]),
        with(&|r| r.headers = vec![("transfer-encoding".into(), "chunked".into())]),
        with(&|r| r.headers = vec![("connection".into(), "upgrade".into())]),
        with(&|r| r.headers = vec![("x-a".into(), "a\r\nx-b: smuggled".into())]),
        with(&|r| r.headers = vec![("x a".into(), "1".into())]),
    ];
    for request in cases {
        let shown = format!("{request:?}");
        let outcome = outbound.send(request, None).await;
        let err = outcome.expect_err(&shown);
        assert_eq!(err.kind, HttpErrorKind::InvalidRequest, "{shown}: {err}");
    }
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_refused() {
    let (server, count) = counting_server().await;
    let limits = HttpLimits {
        max_request_body_bytes: 1000,
        ..short_limits()
    };
    let outbound = client_for(server, limits);
    let mut request = get(&format!("http://{server}/"));
    request.method = "POST".into();
    request.body = vec![7; 1001];
    let err = expect_error(&outbound, request.clone(), HttpErrorKind::RequestTooLarge).await;
    assert!(
        err.message.contains("127.0.0.1") && err.message.contains("1000 bytes"),
        "{err}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 0);
    request.body.truncate(1000);
    let response = outbound.send(request, None).await.expect("at the limit");
    assert_eq!(response.status, 200);
}
