//! The HTTP API (specified in `transport/HTTP_API.md`): identities,
//! publishing and deleting databases, schemas, reducer calls with JSON
//! arguments, SQL, and module logs. The WebSocket endpoint shares the port.

mod auth;
mod databases;
mod error;
mod logs;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use tokio::sync::oneshot;
use worldline_transport::http_api::{NewIdentity, ServerInfo};
use worldline_transport::{PROTOCOL_VERSION, WEBSOCKET_PATH};

pub(crate) use error::ApiError;

use crate::database_actor::{Admin, DatabaseHandle, Description};
use crate::shared::Shared;
use crate::websocket;

/// The largest component `POST /v1/database/NAME` accepts.
const MAX_COMPONENT_BYTES: usize = 64 << 20;
/// The largest body of any other request.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Every route the server answers.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let publish = post(databases::publish).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES));
    Router::new()
        .route(WEBSOCKET_PATH, get(websocket::upgrade))
        .route("/v1/server", get(server_info))
        .route("/v1/identity", post(new_identity))
        .route("/v1/database", get(databases::list))
        .route(
            "/v1/database/{name}",
            publish.get(databases::info).delete(databases::delete),
        )
        .route("/v1/database/{name}/schema", get(databases::schema))
        .route("/v1/database/{name}/call/{reducer}", post(databases::call))
        .route("/v1/database/{name}/sql", post(databases::sql))
        .route("/v1/database/{name}/logs", get(logs::logs))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(shared)
}

/// `GET /v1/server`: the version and the QUIC endpoint.
async fn server_info(State(shared): State<Arc<Shared>>) -> Json<ServerInfo> {
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: PROTOCOL_VERSION,
        quic_addr: shared.endpoints().quic_addr.to_string(),
        quic_fingerprint: crate::tls::fingerprint_hex(&shared.endpoints().fingerprint),
    })
}

/// `POST /v1/identity`: issues a new identity.
async fn new_identity(State(shared): State<Arc<Shared>>) -> Json<NewIdentity> {
    let (identity, token) = shared.authority.new_identity();
    Json(NewIdentity {
        identity: identity.to_string(),
        token,
    })
}

/// The running database called `name`.
fn database(shared: &Shared, name: &str) -> Result<DatabaseHandle, ApiError> {
    shared
        .database(name)
        .ok_or_else(|| ApiError::no_database(name))
}

/// Sends an admin request built around a reply channel and waits for the answer.
async fn ask<T>(
    handle: &DatabaseHandle,
    name: &str,
    request: impl FnOnce(oneshot::Sender<T>) -> Admin,
) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    let stopped = || ApiError::unavailable(format!("database `{name}` stopped"));
    handle.admin(request(reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())
}

/// The schema and owner of database `name`.
async fn describe(shared: &Shared, name: &str) -> Result<Description, ApiError> {
    let handle = database(shared, name)?;
    ask(&handle, name, |reply| Admin::Describe { reply }).await
}
