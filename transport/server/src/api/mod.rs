//! The HTTP API (specified in `transport/HTTP_API.md`): identities,
//! publishing and deleting databases, schemas, reducer calls with JSON
//! arguments, SQL, and module logs. The WebSocket endpoint shares the port.

mod auth;
mod body;
mod cors;
mod databases;
mod error;
mod logs;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tower_http::cors::CorsLayer;
use worldline_transport::http_api::{MAX_COMPONENT_BYTES, NewIdentity, ServerInfo};
use worldline_transport::{PROTOCOL_VERSION, WEBSOCKET_PATH};

pub(crate) use error::ApiError;

use crate::database_actor::{Admin, DatabaseHandle, Description};
use crate::error::ServerError;
use crate::shared::Shared;
use crate::websocket;

/// The largest body of any other request.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Checks one entry of [`ServerConfig::allowed_origins`](crate::ServerConfig::allowed_origins):
/// `*` or a web origin such as `https://app.example.com`; the error says
/// what is wrong with it.
pub fn check_allowed_origin(origin: &str) -> Result<(), ServerError> {
    cors::layer(&[origin.to_owned()]).map(drop)
}

/// Checks the server's allowed origins; `None` when there are none.
pub(crate) fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, ServerError> {
    cors::layer(origins)
}

/// Every route the server answers, with CORS headers for `cors`'s origins.
pub(crate) fn router(shared: Arc<Shared>, cors: Option<CorsLayer>) -> Router {
    // The publish handler reads its body itself, up to MAX_COMPONENT_BYTES,
    // once it has checked that the caller may publish.
    let publish = post(databases::publish);
    let router = Router::new()
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
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(middleware::from_fn(json_errors));
    match cors {
        Some(cors) => router.layer(cors).with_state(shared),
        None => router.with_state(shared),
    }
}

/// Any route the API does not have: 404 with the JSON error body.
async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::unknown_route(&method, uri.path())
}

/// A route the API has, with a method it does not take: 405 with the JSON error body.
async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::wrong_method(&method, uri.path())
}

/// Gives every error response the JSON body `HTTP_API.md` promises:
/// the framework's own refusals (a body over the limit, a body that is not
/// UTF-8, a bad query string or path, a failed WebSocket upgrade) come as
/// plain text, and are rewritten here with their status kept.
async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // On a route that reads no body, a declared length over the limit is
    // refused before anything runs (the limits of the routes that read
    // one apply as they read it, with their own words).
    let max_body = max_body_bytes(&method, &path);
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|len| len.to_str().ok()?.parse::<u64>().ok());
    if !reads_body(&method, &path) && declared.is_some_and(|len| len > max_body as u64) {
        return ApiError::from_framework(
            StatusCode::PAYLOAD_TOO_LARGE,
            &method,
            &path,
            "",
            max_body,
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), MAX_REQUEST_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    ApiError::from_framework(status, &method, &path, &text, max_body).into_response()
}

/// Whether a request to `path` has its body read: a publish, a call, SQL.
fn reads_body(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    *method == Method::POST
        && matches!(
            segments.as_slice(),
            ["v1", "database", _] | ["v1", "database", _, "call", _] | ["v1", "database", _, "sql"]
        )
}

/// The largest body a request to `path` may have.
fn max_body_bytes(method: &Method, path: &str) -> usize {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if *method == Method::POST && matches!(segments.as_slice(), ["v1", "database", _]) {
        MAX_COMPONENT_BYTES
    } else {
        MAX_REQUEST_BYTES
    }
}

/// `GET /v1/server`: the version and the QUIC endpoint.
async fn server_info(State(shared): State<Arc<Shared>>) -> Json<ServerInfo> {
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: PROTOCOL_VERSION,
        quic_addr: shared.endpoints().quic_addr.to_string(),
        quic_fingerprint: crate::tls::fingerprint_hex(&shared.endpoints().fingerprint),
        max_frame_bytes: shared.config.max_frame,
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

/// The running database called `name`: 404 if there is none, 503 if it
/// could not be recovered at startup.
fn database(shared: &Shared, name: &str) -> Result<DatabaseHandle, ApiError> {
    shared.lookup(name).map_err(ApiError::from)
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
