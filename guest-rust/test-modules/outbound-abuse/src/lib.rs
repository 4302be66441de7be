//! A procedure that sends one outbound HTTP request and reports what came
//! of it, so that tests (`tests/tests/outbound_abuse.rs`) can point it at
//! hostile servers and check what a module author would see.

use std::time::Duration;

use worldline::http::Request;
use worldline::{ProcedureContext, procedure};

/// GETs `url`, with a timeout of `timeout_ms` milliseconds (0: the host's
/// limits only). Returns `"{status} {body}"`, or the error as
/// `"{kind:?}: {message}"`.
#[procedure]
pub fn fetch(ctx: &mut ProcedureContext, url: String, timeout_ms: u32) -> Result<String, String> {
    let mut request = Request::get(url);
    if timeout_ms > 0 {
        request = request.timeout(Duration::from_millis(timeout_ms.into()));
    }
    match ctx.http().send(request) {
        Ok(response) => Ok(format!(
            "{} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )),
        Err(error) => Err(format!("{:?}: {}", error.kind, error.message)),
    }
}
