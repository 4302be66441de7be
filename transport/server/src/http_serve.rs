//! Serving the HTTP port: each connection the [`CappedListener`] accepts
//! runs the API's router over HTTP/1.1 (with upgrades, for WebSocket), its
//! [`Peer`] given to the handlers as `ConnectInfo`. A connection must send
//! each request's head within [`HEADER_READ_TIMEOUT`], counted from when
//! the server is ready to read it (the connection's start, or the end of
//! the answer before): one that sends nothing, half a head, or stays idle
//! between requests is closed then, instead of holding its socket for ever.

use std::convert::Infallible;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tower_service::Service;

use crate::http_listener::{CappedListener, Peer};

/// How long a connection may take to send a request's head.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on the connections of `listener` until `stop` changes,
/// then lets the connections finish what they are doing (the answers
/// under way; an idle connection closes at once) and returns once all have
/// ended.
pub(crate) async fn serve(
    mut listener: CappedListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // Tells the connections to finish; each holds a receiver of it, so all
    // receivers are gone once every connection has ended.
    let (finish, _) = watch::channel(false);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let peer = Peer {
            addr,
            meter: io.meter(),
            send_queue: io.send_queue(),
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer.clone()));
            let mut router = router.clone();
            async move { Ok::<_, Infallible>(router.call(request).await.unwrap_or_else(|e| match e {})) }
        });
        let connection = http
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut finishing = finish.subscribe();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    _ = finishing.changed() => connection.as_mut().graceful_shutdown(),
                }
            }
        });
    }
    drop(listener);
    let _ = finish.send(true);
    finish.closed().await;
}
