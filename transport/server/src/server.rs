//! A running server: the data directory's databases behind a QUIC endpoint
//! and an HTTP endpoint (API and WebSocket).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use worldline_host::outbound::AllowList;
use worldline_host::{Host, Identity, PreparedModule, RecoveryReport, UnavailableDatabase};
use worldline_transport::MIN_MAX_FRAME;

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::http_listener::{self, Cut};
use crate::shared::{Endpoints, Shared};
use crate::tls::Certificate;
use crate::{api, http_serve, quic};

/// How long shutting down waits for connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The one QUIC version the server speaks (RFC 9000).
const QUIC_VERSION_1: u32 = 1;

/// A server accepting connections until [`shutdown`](Self::shutdown).
pub struct Server {
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    http_addr: SocketAddr,
    quic_addr: SocketAddr,
    fingerprint: [u8; 32],
    recovery: Vec<(String, RecoveryReport)>,
    http_task: JoinHandle<()>,
    /// Cuts the HTTP connections still open once the shutdown's grace is over.
    http_cut: Arc<Cut>,
    quic_task: JoinHandle<()>,
}

impl Server {
    /// Opens the data directory (recovering every database in it; one that
    /// cannot be recovered is marked unavailable and does not stop the
    /// others), then listens for HTTP/WebSocket and QUIC connections.
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        if config.max_outgoing_bytes < u64::from(config.max_queued_bytes) {
            return Err(ServerError::OutgoingBudget {
                total: config.max_outgoing_bytes,
                per_connection: config.max_queued_bytes,
            });
        }
        if config.max_frame < MIN_MAX_FRAME {
            return Err(ServerError::FrameLimitTooSmall {
                max_frame: config.max_frame,
                min: MIN_MAX_FRAME,
            });
        }
        if config.max_incoming_bytes < u64::from(config.max_frame) {
            return Err(ServerError::IncomingBudget {
                total: config.max_incoming_bytes,
                max_frame: config.max_frame,
            });
        }
        if config.max_connections == 0 {
            return Err(ServerError::NoConnections);
        }
        let cors = api::cors_layer(&config.allowed_origins)?;
        let opened = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || Host::open_available(&config.data_dir, config.host))
        };
        let host = opened.await.map_err(|e| ServerError::Io {
            path: config.data_dir.display().to_string(),
            source: std::io::Error::other(e),
        })??;
        let recovery = host.recovery_reports().to_vec();
        let certificate = Certificate::load_or_create(&config.data_dir)?;
        let bind_error = |source| ServerError::Bind {
            protocol: "quic",
            address: config.quic_listen,
            source,
        };
        let socket = std::net::UdpSocket::bind(config.quic_listen).map_err(bind_error)?;
        // QUIC version 1 only (PROTOCOL.md): quinn's default would also
        // take drafts 29 to 34; a client offering only those is sent a
        // Version Negotiation packet listing version 1.
        let mut endpoint_config = quinn::EndpointConfig::default();
        endpoint_config.supported_versions(vec![QUIC_VERSION_1]);
        let endpoint = quinn::Endpoint::new(
            endpoint_config,
            Some(certificate.quic_server_config(config.idle_timeout)?),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_error)?;
        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .map_err(|source| ServerError::Bind {
                protocol: "http",
                address: config.http_listen,
                source,
            })?;
        let local = |result: std::io::Result<SocketAddr>, protocol, address| {
            result.map_err(|source| ServerError::Bind {
                protocol,
                address,
                source,
            })
        };
        let http_addr = local(listener.local_addr(), "http", config.http_listen)?;
        let quic_addr = local(endpoint.local_addr(), "quic", config.quic_listen)?;
        let endpoints = Endpoints {
            quic_addr,
            fingerprint: certificate.fingerprint(),
        };
        let per_address = http_listener::connections_per_address(config.max_connections_per_ip);
        let shared = Arc::new(Shared::new(config, host, endpoints)?);
        let listener = http_listener::CappedListener::new(
            listener,
            per_address,
            shared.connections.clone(),
            shared.incoming.clone(),
            shared.config.max_frame as usize,
            shared.config.idle_timeout,
        );
        let http_cut = listener.cut();
        let http_task = tokio::spawn(http_serve::serve(
            listener,
            api::router(shared.clone(), cors),
            shared.shutdown_signal(),
        ));
        let quic_task = tokio::spawn(quic::serve(
            endpoint.clone(),
            shared.clone(),
            SHUTDOWN_GRACE,
        ));
        Ok(Self {
            shared,
            endpoint,
            http_addr,
            quic_addr,
            fingerprint: certificate.fingerprint(),
            recovery,
            http_task,
            http_cut,
            quic_task,
        })
    }

    /// Where the HTTP API and WebSocket endpoint listen.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the QUIC endpoint listens.
    pub fn quic_addr(&self) -> SocketAddr {
        self.quic_addr
    }

    /// The SHA-256 of the QUIC certificate, for clients to pin.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// What recovery did for each database when the server started.
    pub fn recovery_reports(&self) -> &[(String, RecoveryReport)] {
        &self.recovery
    }

    /// The databases that could not be recovered when the server started
    /// (and have not been deleted since), with the reason for each.
    pub fn unavailable_databases(&self) -> Vec<UnavailableDatabase> {
        self.shared.unavailable_databases()
    }

    /// Creates database `name` from a component, owned by `owner`, and
    /// starts serving it; its procedures may send no HTTP requests. Blocks
    /// while the component compiles and `init` runs.
    pub fn publish(&self, name: &str, wasm: &[u8], owner: Identity) -> Result<(), ServerError> {
        self.publish_with_http(name, wasm, owner, &AllowList::none())
    }

    /// Like [`publish`](Self::publish), letting the database's procedures
    /// send HTTP requests to the hosts `http_allow` names.
    pub fn publish_with_http(
        &self,
        name: &str,
        wasm: &[u8],
        owner: Identity,
        http_allow: &AllowList,
    ) -> Result<(), ServerError> {
        let module = PreparedModule::prepare(&self.shared.engine, wasm.to_vec())?;
        self.shared.create_database(name, module, owner, http_allow)
    }

    /// Issues a new identity and its token.
    pub fn new_identity(&self) -> (Identity, String) {
        self.shared.authority.new_identity()
    }

    /// Stops accepting connections, closes every connection, stops every
    /// database and releases the data directory. HTTP requests under way
    /// may finish for 5 s; connections still open then (a client stalled
    /// halfway through a request, or not reading its answer) are cut. Each WebSocket and QUIC
    /// connection is first sent what was already queued for it, then a
    /// fatal `Error` saying the server is shutting down; QUIC connections
    /// still writing after 5 s are closed with that reason. Each database
    /// runs `client_disconnected` for its closed connections for up to 5 s
    /// (and the call running then); the rest close without it. Running
    /// procedures are stopped ([`Engine::stop_procedures`](worldline_host::Engine::stop_procedures)),
    /// so a procedure waiting on a slow HTTP server does not hold the
    /// shutdown up.
    pub async fn shutdown(self) {
        self.shared.begin_shutdown();
        self.shared.engine.stop_procedures();
        // The HTTP layer finishes the requests under way; a connection
        // still open after the grace (a client that stalled halfway through
        // a request, or does not read its answer) is cut. The QUIC task
        // closes the endpoint once its connections are done.
        let mut http_task = self.http_task;
        let http = async {
            if tokio::time::timeout(Cut::GRACE, &mut http_task)
                .await
                .is_err()
            {
                self.http_cut.cut();
                let _ = http_task.await;
            }
        };
        let _ = tokio::join!(http, self.quic_task);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.endpoint.wait_idle()).await;
        let threads = self.shared.stop_databases();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Arc::strong_count(&self.shared) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(self.shared);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}
