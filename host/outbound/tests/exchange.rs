//! Whole exchanges against loopback servers: a round trip, redirects, the
//! size and time limits, failures of each kind, and the in-flight cap.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing::any;
use common::{answer, client, client_for, expect_error, get, read_head, serve_raw, short_limits};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use worldline_outbound::{AllowList, HttpErrorKind, HttpLimits, HttpRequest};

/// Serves `router` on a fresh loopback port.
async fn serve_axum(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    address
}

/// Echoes what it received as JSON, with status 201 and two reply headers.
async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let summary = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "host": text("host"),
        "x-test": text("x-test"),
        "content-type": text("content-type"),
        "authorization": text("authorization"),
        "body": String::from_utf8_lossy(&body),
    });
    (
        StatusCode::CREATED,
        AppendHeaders([("x-reply", "yes"), ("x-multi", "1"), ("x-multi", "2")]),
        summary.to_string(),
    )
        .into_response()
}

/// Redirects with the status and location given in the query.
async fn redirect_to(Query(query): Query<HashMap<String, String>>) -> Response {
    let status = query
        .get("status")
        .and_then(|s| s.parse().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::FOUND);
    let mut headers = HeaderMap::new();
    if let Some(value) = query.get("location").and_then(|l| l.parse().ok()) {
        headers.insert(header::LOCATION, value);
    }
    (status, headers, Body::empty()).into_response()
}

/// `/chain?n=N` redirects N more times before landing on `/echo`.
async fn chain(Query(query): Query<HashMap<String, u32>>) -> Response {
    let n = query.get("n").copied().unwrap_or(0);
    let location = match n {
        0 => "/echo".to_owned(),
        n => format!("/chain?n={}", n - 1),
    };
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

fn app() -> Router {
    Router::new()
        .route("/echo", any(echo))
        .route("/to", any(redirect_to))
        .route("/chain", any(chain))
        .route(
            "/loop",
            any(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }),
        )
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("the echo server answers JSON")
}

#[tokio::test]
async fn a_request_and_its_response_make_the_round_trip() {
    let server = serve_axum(app()).await;
    let outbound = client_for(server, short_limits());
    let request = HttpRequest {
        method: "POST".into(),
        url: format!("http://{server}/echo?q=1#fragment"),
        headers: vec![
            ("X-Test".into(), "hello".into()),
            ("content-type".into(), "text/plain".into()),
        ],
        body: b"payload".to_vec(),
        timeout: None,
    };
    let response = outbound.send(request, None).await.expect("round trip");
    assert_eq!(response.status, 201);
    let has = |name: &str, value: &str| {
        response
            .headers
            .iter()
            .any(|(n, v)| n == name && v == value)
    };
    assert!(has("x-reply", "yes") && has("x-multi", "1") && has("x-multi", "2"));
    let seen = json(&response.body);
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/echo?q=1");
    assert_eq!(seen["host"], server.to_string());
    assert_eq!(seen["x-test"], "hello");
    assert_eq!(seen["body"], "payload");
}

#[tokio::test]
async fn redirects_are_followed_on_allowed_hops() {
    let server = serve_axum(app()).await;
    let outbound = client_for(server, short_limits());

    let response = outbound
        .send(get(&format!("http://{server}/chain?n=2")), None)
        .await
        .expect("followed");
    assert_eq!(response.status, 201);
    assert_eq!(json(&response.body)["uri"], "/echo");

    // 303 turns a POST into a GET without the body.
    let mut post = get(&format!("http://{server}/to?status=303&location=/echo"));
    post.method = "POST".into();
    post.body = b"form".to_vec();
    post.headers = vec![("content-type".into(), "text/plain".into())];
    let seen = json(&outbound.send(post.clone(), None).await.expect("303").body);
    assert_eq!(
        (&seen["method"], &seen["body"], &seen["content-type"]),
        (&"GET".into(), &"".into(), &"".into())
    );

    // 307 keeps the method and the body.
    post.url = format!("http://{server}/to?status=307&location=/echo");
    let seen = json(&outbound.send(post, None).await.expect("307").body);
    assert_eq!(
        (&seen["method"], &seen["body"]),
        (&"POST".into(), &"form".into())
    );

    // A redirect status without a Location is the final response.
    let response = outbound
        .send(get(&format!("http://{server}/to?status=302")), None)
        .await
        .expect("final");
    assert_eq!(response.status, 302);
}

#[tokio::test]
async fn redirects_past_the_limit_fail() {
    let server = serve_axum(app()).await;
    let limits = HttpLimits {
        max_redirects: 3,
        ..short_limits()
    };
    let outbound = client_for(server, limits);
    let at_limit = outbound
        .send(get(&format!("http://{server}/chain?n=2")), None)
        .await
        .expect("three redirects are followed");
    assert_eq!(at_limit.status, 201);
    let err = expect_error(
        &outbound,
        get(&format!("http://{server}/chain?n=3")),
        HttpErrorKind::TooManyRedirects,
    )
    .await;
    assert!(
        err.message.contains("127.0.0.1") && err.message.contains('3'),
        "{err}"
    );
    let looping = format!("http://{server}/loop");
    expect_error(&outbound, get(&looping), HttpErrorKind::TooManyRedirects).await;
}

#[tokio::test]
async fn a_redirect_off_the_policy_is_denied() {
    let server = serve_axum(app()).await;
    let guarded = serve_axum(app()).await;
    let allow = format!("{server},{guarded},*.example.org");
    let outbound = client(&allow, &[server], short_limits());
    let to = |location: &str| get(&format!("http://{server}/to?location={location}"));

    let err = expect_error(
        &outbound,
        to("http://elsewhere.example/"),
        HttpErrorKind::Denied,
    )
    .await;
    assert!(
        err.message.contains("redirected") && err.message.contains("elsewhere.example"),
        "{err}"
    );

    // Listed, but the guard refuses the address (no override for it).
    let err = expect_error(
        &outbound,
        to(&format!("http://{guarded}/echo")),
        HttpErrorKind::Denied,
    )
    .await;
    assert!(err.message.contains("loopback"), "{err}");

    let err = expect_error(&outbound, to("file:///etc/passwd"), HttpErrorKind::Denied).await;
    assert!(err.message.contains("file"), "{err}");
}

/// A server whose response body never ends (chunked, 64 KiB a chunk),
/// counting the bytes it managed to write.
async fn endless_body() -> (SocketAddr, Arc<AtomicUsize>) {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let address = serve_raw(move |mut stream| {
        let counter = counter.clone();
        async move {
            read_head(&mut stream).await;
            let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return;
            }
            let mut chunk = b"10000\r\n".to_vec();
            chunk.extend(std::iter::repeat_n(b'x', 0x10000));
            chunk.extend(b"\r\n");
            while stream.write_all(&chunk).await.is_ok() {
                counter.fetch_add(0x10000, Ordering::SeqCst);
            }
        }
    })
    .await;
    (address, written)
}

#[tokio::test]
async fn a_response_body_past_the_limit_is_refused_as_it_arrives() {
    let limits = HttpLimits {
        max_response_body_bytes: 100_000,
        ..short_limits()
    };
    let (server, written) = endless_body().await;
    let outbound = client_for(server, limits.clone());
    let started = Instant::now();
    let err = expect_error(
        &outbound,
        get(&format!("http://{server}/")),
        HttpErrorKind::ResponseTooLarge,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stopped at the limit"
    );
    assert!(
        err.message.contains("127.0.0.1") && err.message.contains("100000 bytes"),
        "{err}"
    );
    // The connection was dropped: the server's writes stop soon after.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_at = written.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(written.load(Ordering::SeqCst), stopped_at);

    // A declared length over the limit is refused without reading.
    let declared = serve_raw(|stream| {
        answer(
            stream,
            b"HTTP/1.1 200 OK\r\ncontent-length: 100001\r\n\r\n".to_vec(),
        )
    })
    .await;
    let outbound = client_for(declared, limits.clone());
    let url = format!("http://{declared}/");
    expect_error(&outbound, get(&url), HttpErrorKind::ResponseTooLarge).await;

    // A HEAD response declares a length it does not send.
    let mut head = get(&url);
    head.method = "HEAD".into();
    let response = outbound
        .send(head, None)
        .await
        .expect("a body-less HEAD response");
    assert_eq!((response.status, response.body.len()), (200, 0));

    // Exactly the limit is fine.
    let exact = serve_raw(|stream| {
        let mut response = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n".to_vec();
        response.extend(vec![b'y'; 100_000]);
        answer(stream, response)
    })
    .await;
    let outbound = client_for(exact, limits);
    let response = outbound
        .send(get(&format!("http://{exact}/")), None)
        .await
        .expect("at the limit");
    assert_eq!(response.body.len(), 100_000);
}

#[tokio::test]
async fn response_headers_past_the_limit_are_refused() {
    let server = serve_raw(|stream| {
        let mut response = b"HTTP/1.1 200 OK\r\n".to_vec();
        response.extend(format!("x-big: {}\r\n", "h".repeat(9000)).as_bytes());
        response.extend(b"content-length: 0\r\n\r\n");
        answer(stream, response)
    })
    .await;
    let limits = HttpLimits {
        max_response_header_bytes: 8192,
        ..short_limits()
    };
    let outbound = client_for(server, limits);
    let err = expect_error(
        &outbound,
        get(&format!("http://{server}/")),
        HttpErrorKind::ResponseTooLarge,
    )
    .await;
    assert!(err.message.contains("8 KiB"), "{err}");
    assert!(err.message.contains("127.0.0.1"), "{err}");
}

#[tokio::test]
async fn a_trickling_body_times_out_at_the_total_limit() {
    let server = serve_raw(|mut stream| async move {
        read_head(&mut stream).await;
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n";
        let _ = stream.write_all(head).await;
        while stream.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let limits = HttpLimits {
        total_timeout: Duration::from_millis(600),
        ..short_limits()
    };
    let outbound = client_for(server, limits);
    let started = Instant::now();
    let err = expect_error(
        &outbound,
        get(&format!("http://{server}/")),
        HttpErrorKind::Timeout,
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(550) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    assert!(err.message.contains("600 ms total limit"), "{err}");
    assert!(err.message.contains("127.0.0.1"), "{err}");
}

/// A server that accepts and reads but never answers.
async fn silent_server() -> SocketAddr {
    serve_raw(|mut stream| async move {
        read_head(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    })
    .await
}

#[tokio::test]
async fn a_silent_server_times_out_at_the_first_byte_limit() {
    let server = silent_server().await;
    let limits = HttpLimits {
        first_byte_timeout: Duration::from_millis(300),
        ..short_limits()
    };
    let outbound = client_for(server, limits);
    let started = Instant::now();
    let err = expect_error(
        &outbound,
        get(&format!("http://{server}/")),
        HttpErrorKind::Timeout,
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(1200));
    assert!(err.message.contains("300 ms first-byte limit"), "{err}");
}

#[tokio::test]
async fn the_request_timeout_and_the_deadline_shorten_the_exchange() {
    let server = silent_server().await;
    let outbound = client_for(server, short_limits());
    let mut request = get(&format!("http://{server}/"));
    request.timeout = Some(Duration::from_millis(150));
    let err = expect_error(&outbound, request, HttpErrorKind::Timeout).await;
    assert!(err.message.contains("request's 150 ms timeout"), "{err}");

    let deadline = Instant::now() + Duration::from_millis(150);
    let outcome = outbound
        .send(get(&format!("http://{server}/")), Some(deadline))
        .await;
    let err = outcome.expect_err("the deadline passes");
    assert_eq!(err.kind, HttpErrorKind::Timeout);
    assert!(err.message.contains("deadline"), "{err}");
    assert!(Instant::now() < deadline + Duration::from_millis(700));
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closed = listener.local_addr().expect("address");
    drop(listener);
    let outbound = client_for(closed, short_limits());
    let err = expect_error(
        &outbound,
        get(&format!("http://{closed}/")),
        HttpErrorKind::Connect,
    )
    .await;
    assert!(err.message.contains(&closed.to_string()), "{err}");
}

#[tokio::test]
async fn an_unresolvable_name_is_a_dns_error() {
    let outbound = client("nonexistent.invalid", &[], short_limits());
    let err = expect_error(
        &outbound,
        get("http://nonexistent.invalid/"),
        HttpErrorKind::Dns,
    )
    .await;
    assert!(err.message.contains("nonexistent.invalid"), "{err}");
}

/// `https` to a server speaking plain HTTP fails in the handshake: `tls`.
#[tokio::test]
async fn https_to_a_plain_server_is_a_tls_error() {
    let server = serve_axum(app()).await;
    let outbound = client_for(server, short_limits());
    let err = expect_error(
        &outbound,
        get(&format!("https://{server}/echo")),
        HttpErrorKind::Tls,
    )
    .await;
    assert!(err.message.contains("127.0.0.1"), "{err}");
}

/// A TLS server on loopback with a self-signed certificate for
/// `localhost` and 127.0.0.1, which no system root vouches for.
async fn self_signed_tls_server() -> SocketAddr {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("a certificate");
    let cert = generated.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("a server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    serve_raw(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(mut tls) = acceptor.accept(stream).await {
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        }
    })
    .await
}

/// Certificates are verified against the system's roots: a self-signed one
/// is refused in the handshake.
#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error() {
    let server = self_signed_tls_server().await;
    let outbound = client_for(server, short_limits());
    let err = expect_error(
        &outbound,
        get(&format!("https://{server}/")),
        HttpErrorKind::Tls,
    )
    .await;
    assert!(err.message.contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_server_breaking_http_is_a_protocol_error() {
    let garbage =
        serve_raw(|stream| answer(stream, b"HTTP/1.1 abc nonsense\r\n\r\n".to_vec())).await;
    let outbound = client_for(garbage, short_limits());
    let err = expect_error(
        &outbound,
        get(&format!("http://{garbage}/")),
        HttpErrorKind::Protocol,
    )
    .await;
    assert!(err.message.contains("127.0.0.1"), "{err}");

    let truncated = serve_raw(|stream| {
        answer(
            stream,
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..".to_vec(),
        )
    })
    .await;
    let outbound = client_for(truncated, short_limits());
    let url = format!("http://{truncated}/");
    expect_error(&outbound, get(&url), HttpErrorKind::Protocol).await;

    let hang_up = serve_raw(|mut stream| async move {
        read_head(&mut stream).await;
    })
    .await;
    let outbound = client_for(hang_up, short_limits());
    let url = format!("http://{hang_up}/");
    expect_error(&outbound, get(&url), HttpErrorKind::Protocol).await;

    // A switch of protocols nobody asked for is not a final response.
    let switching = serve_raw(|stream| {
        answer(
            stream,
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    let outbound = client_for(switching, short_limits());
    let url = format!("http://{switching}/");
    let err = expect_error(&outbound, get(&url), HttpErrorKind::Protocol).await;
    assert!(err.message.contains("101 Switching Protocols"), "{err}");
}

#[tokio::test]
async fn at_most_the_in_flight_limit_is_sent_at_once() {
    let current = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (current.clone(), most.clone());
    let server = serve_raw(move |mut stream| {
        let (now, peak) = (now.clone(), peak.clone());
        async move {
            let open = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(open, Ordering::SeqCst);
            read_head(&mut stream).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    })
    .await;
    let outbound = client_for(server, short_limits());
    assert_eq!(outbound.policy().limits.max_in_flight, 8);
    let started = Instant::now();
    let sends = (0..9).map(|_| {
        // Clones share the cap.
        let outbound = outbound.clone();
        let url = format!("http://{server}/");
        tokio::spawn(async move { outbound.send(get(&url), None).await })
    });
    for send in sends.collect::<Vec<_>>() {
        let response = send.await.expect("joined").expect("sent");
        assert_eq!(response.status, 200);
    }
    assert_eq!(most.load(Ordering::SeqCst), 8);
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "the 9th waited"
    );

    // Waiting for a slot counts against the request's time.
    let limits = HttpLimits {
        max_in_flight: 1,
        ..short_limits()
    };
    let single = client_for(server, limits);
    let first = {
        let single = single.clone();
        let url = format!("http://{server}/");
        tokio::spawn(async move { single.send(get(&url), None).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut second = get(&format!("http://{server}/"));
    second.timeout = Some(Duration::from_millis(100));
    let err = expect_error(&single, second, HttpErrorKind::Timeout).await;
    assert!(err.message.contains("in-flight slot"), "{err}");
    assert!(first.await.expect("joined").is_ok());
}

#[tokio::test]
async fn a_client_with_another_allow_list_shares_the_in_flight_slots() {
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let server = serve_raw(move |mut stream| {
        let arrived = arrived.clone();
        async move {
            read_head(&mut stream).await;
            let _ = arrived.send(());
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    })
    .await;
    let limits = HttpLimits {
        max_in_flight: 1,
        ..short_limits()
    };
    let first = client_for(server, limits);
    let url = format!("http://{server}/");
    let waiting = {
        let (first, url) = (first.clone(), url.clone());
        tokio::spawn(async move { first.send(get(&url), None).await })
    };
    arrivals.recv().await.expect("the first request arrives");
    let list = format!("{server},localhost:{}", server.port());
    let second = first.clone();
    let limits_before = first.policy().limits;
    second.set_allow_list(AllowList::parse(&list).expect("a valid list"));
    assert_eq!(
        first.policy().allow.to_string(),
        list,
        "clones share the list"
    );
    assert_eq!(second.policy().limits, limits_before);
    let mut request = get(&url);
    request.timeout = Some(Duration::from_millis(200));
    let err = expect_error(&second, request, HttpErrorKind::Timeout).await;
    assert!(err.message.contains("in-flight slot"), "{err}");
    waiting.abort();
}

#[tokio::test]
async fn response_headers_come_grouped_by_name_in_the_order_received() {
    let head = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-b: 2\r\nx-a: 3\r\nx-c: caf\xe9\r\ncontent-length: 0\r\n\r\n";
    let server = serve_raw(|stream| answer(stream, head.to_vec())).await;
    let outbound = client_for(server, short_limits());
    let response = outbound
        .send(get(&format!("http://{server}/")), None)
        .await
        .expect("sent");
    let headers: Vec<(&str, &str)> = response
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        headers,
        [
            ("x-a", "1"),
            ("x-a", "3"),
            ("x-b", "2"),
            ("x-c", "caf\u{fffd}"),
            ("content-length", "0"),
        ]
    );
}

/// A loopback server that answers each request with `response`, but only
/// once `release` is set: each request's arrival is sent on `arrivals`.
async fn serve_held(
    response: String,
) -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<()>,
    tokio::sync::watch::Sender<bool>,
) {
    let (arrived, arrivals) = tokio::sync::mpsc::unbounded_channel();
    let (release, released) = tokio::sync::watch::channel(false);
    let server = serve_raw(move |mut stream| {
        let (arrived, mut released, response) =
            (arrived.clone(), released.clone(), response.clone());
        async move {
            read_head(&mut stream).await;
            let _ = arrived.send(());
            let _ = released.wait_for(|go| *go).await;
            let _ = stream.write_all(response.as_bytes()).await;
        }
    })
    .await;
    (server, arrivals, release)
}

// A list replaced while a request is in flight (the owner revoked a host)
// holds for that request's next hops: its redirect to the revoked host is
// denied, where it followed the list the request started with.
#[tokio::test]
async fn a_redirect_after_the_list_changed_is_checked_against_the_new_list() {
    let target = serve_raw(|stream| {
        answer(
            stream,
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec(),
        )
    })
    .await;
    let (redirecting, mut arrivals, release) = serve_held(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://{target}/\r\ncontent-length: 0\r\n\r\n"
    ))
    .await;
    let outbound = client(
        &format!("{redirecting},{target}"),
        &[redirecting, target],
        short_limits(),
    );
    let sent = {
        let outbound = outbound.clone();
        tokio::spawn(async move {
            outbound
                .send(get(&format!("http://{redirecting}/")), None)
                .await
        })
    };
    arrivals.recv().await.expect("the request arrives");
    outbound.set_allow_list(AllowList::parse(&redirecting.to_string()).expect("a valid list"));
    release.send_replace(true);
    let err = sent
        .await
        .expect("joined")
        .expect_err("the redirect is denied");
    assert_eq!(err.kind, HttpErrorKind::Denied, "{err}");
    assert!(err.message.contains("redirected to"), "{err}");
}

// A request waiting for an in-flight slot when the list is revoked is
// checked again once it has one: it is denied, not sent.
#[tokio::test]
async fn a_request_waiting_for_a_slot_is_checked_against_the_list_it_gets_one_under() {
    let (server, mut arrivals, release) =
        serve_held("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned()).await;
    let limits = HttpLimits {
        max_in_flight: 1,
        ..short_limits()
    };
    let outbound = client_for(server, limits);
    let url = format!("http://{server}/");
    let send = |outbound: &worldline_outbound::OutboundHttp| {
        let (outbound, url) = (outbound.clone(), url.clone());
        tokio::spawn(async move { outbound.send(get(&url), None).await })
    };
    let first = send(&outbound);
    arrivals.recv().await.expect("the first request arrives");
    let second = send(&outbound);
    tokio::time::sleep(Duration::from_millis(100)).await;
    outbound.set_allow_list(AllowList::none());
    release.send_replace(true);
    assert!(
        first.await.expect("joined").is_ok(),
        "the first was sent before"
    );
    let err = second.await.expect("joined").expect_err("denied");
    assert_eq!(err.kind, HttpErrorKind::Denied, "{err}");
}
