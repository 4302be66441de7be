//! Outbound HTTP through the `http` import, from wherever it is called.

use crate::bindings::worldline::module::http::{self, Request};

/// Sends `GET url` (with a `timeout_ms` limit unless 0) and reports
/// `status body` or `err(kind: message)`.
pub fn fetch(url: &str, timeout_ms: u32) -> String {
    let request = Request {
        method: "GET".to_owned(),
        url: url.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: (timeout_ms > 0).then_some(timeout_ms),
    };
    match http::send(&request) {
        Ok(response) => format!(
            "{} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        ),
        Err(error) => format!("err({:?}: {})", error.kind, error.message),
    }
}
