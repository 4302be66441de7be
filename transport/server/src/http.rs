//! The HTTP API: the WebSocket endpoint and identity issuing.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Serialize;
use worldline_transport::WEBSOCKET_PATH;

use crate::shared::Shared;
use crate::websocket;

/// Every route the server answers.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(WEBSOCKET_PATH, get(websocket::upgrade))
        .route("/v1/identity", post(new_identity))
        .with_state(shared)
}

/// A new identity and the token that proves it.
#[derive(Serialize)]
struct NewIdentity {
    /// 64 hex digits.
    identity: String,
    /// Presented on later connections and requests.
    token: String,
}

/// `POST /v1/identity`: issues a new identity.
async fn new_identity(State(shared): State<Arc<Shared>>) -> Json<NewIdentity> {
    let (identity, token) = shared.authority.new_identity();
    Json(NewIdentity {
        identity: identity.to_string(),
        token,
    })
}
