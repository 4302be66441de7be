//! A real server on loopback for the wire tests and benchmarks: a fresh data
//! directory, ephemeral ports, and the guest modules published into it.

use std::net::SocketAddr;
use std::sync::Arc;

use worldline_client::{Client, ConnectOptions, Trust};
use worldline_host::{DurabilityPolicy, SyncHook};
use worldline_server::{Server, ServerConfig};

use crate::gate::Gate;
use crate::process::Http;
use crate::{TempDir, guest_wasm, test_engine_config};

/// A server on `127.0.0.1` with free ports, removed with its directory when dropped.
pub struct LiveServer {
    server: Option<Server>,
    /// The owner's token: connect with it to act as the databases' owner.
    pub owner_token: String,
    dir: TempDir,
}

impl LiveServer {
    /// Starts a server and publishes each `(database, guest)` pair, owned by
    /// the identity of [`owner_token`](Self::owner_token).
    pub async fn start(databases: &[(&str, &str)]) -> Self {
        Self::start_with(databases, |_| {}).await
    }

    /// Like [`start`](Self::start), adjusting the configuration first.
    pub async fn start_with(
        databases: &[(&str, &str)],
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = TempDir::new("worldline-live");
        let mut config = ServerConfig::new(dir.path());
        config.http_listen = "127.0.0.1:0".parse().expect("an address");
        config.quic_listen = "127.0.0.1:0".parse().expect("an address");
        config.host.engine = test_engine_config();
        adjust(&mut config);
        let server = Server::start(config).await.expect("starting the server");
        let (owner, owner_token) = server.new_identity();
        for (name, guest) in databases {
            let wasm = guest_wasm(guest);
            tokio::task::block_in_place(|| server.publish(name, &wasm, owner))
                .unwrap_or_else(|e| panic!("publishing {name}: {e}"));
        }
        Self {
            server: Some(server),
            owner_token,
            dir,
        }
    }

    /// Like [`start_with`](Self::start_with), with durability `every`, no
    /// automatic snapshots, and every fsync of the commit log waiting at
    /// `gate` while it is closed.
    pub async fn start_with_held_fsyncs(
        databases: &[(&str, &str)],
        gate: &Arc<Gate>,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let hook = Arc::clone(gate);
        Self::start_with(databases, move |config| {
            config.host.storage.durability = DurabilityPolicy::Every;
            config.host.storage.snapshot_every = None;
            config.host.storage.before_sync = Some(SyncHook(Arc::new(move || hook.pass())));
            adjust(config);
        })
        .await
    }

    /// The running server.
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running until dropped")
    }

    /// The server's QUIC certificate (DER), as a CA to trust.
    pub fn certificate(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("quic-cert.der")).expect("reading the certificate")
    }

    /// Where QUIC clients connect.
    pub fn quic_addr(&self) -> SocketAddr {
        self.server().quic_addr()
    }

    /// Where the HTTP API and the WebSocket endpoint listen.
    pub fn http_addr(&self) -> SocketAddr {
        self.server().http_addr()
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.server().http_addr())
    }

    /// Stops the server, closing every connection.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// The two ways a client reaches a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// QUIC, pinning the server's certificate fingerprint.
    Quic,
    /// WebSocket on the HTTP port.
    WebSocket,
}

impl Transport {
    /// Both transports, for tests that must hold on each.
    pub const BOTH: [Transport; 2] = [Transport::Quic, Transport::WebSocket];
}

impl LiveServer {
    /// Connects a new identity to `database` over `transport`.
    pub async fn connect(&self, transport: Transport, database: &str) -> Client {
        Client::connect(self.connect_options(transport, database))
            .await
            .unwrap_or_else(|e| panic!("connecting to {database} over {transport:?}: {e}"))
    }

    /// Connects the databases' owner to `database` over `transport`.
    pub async fn connect_owner(&self, transport: Transport, database: &str) -> Client {
        let options = self.connect_options(transport, database);
        Client::connect(options.with_token(self.owner_token.clone()))
            .await
            .unwrap_or_else(|e| {
                panic!("the owner connecting to {database} over {transport:?}: {e}")
            })
    }

    /// How to reach `database` over `transport`, trusting this server.
    pub fn connect_options(&self, transport: Transport, database: &str) -> ConnectOptions {
        match transport {
            Transport::Quic => ConnectOptions::quic(
                self.quic_addr(),
                Trust::Fingerprint(self.server().fingerprint()),
                database,
            ),
            Transport::WebSocket => ConnectOptions::websocket(self.ws_url(), database),
        }
    }

    /// An HTTP client of this server acting as the databases' owner.
    pub fn owner_http(&self) -> Http {
        Http::new(
            &format!("http://{}", self.http_addr()),
            Some(&self.owner_token),
        )
    }
}
