//! A procedure that sends one outbound HTTP request and reports what came
//! of it, so that tests (`tests/tests/outbound_abuse.rs`) can point it at
//! hostile servers and check what a module author would see; and one that
//! sleeps, for a server stopping under it.

use std::time::Duration;

use worldline::http::{HttpError, Request};
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
    let response = ctx.http().send(request).map_err(report)?;
    Ok(format!(
        "{} {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    ))
}

/// GETs `url` with `count` headers `x-0` … of `value_bytes` bytes each,
/// returning `"{status} {body length}"` or the error as [`fetch`] does.
#[procedure]
pub fn fetch_with_headers(
    ctx: &mut ProcedureContext,
    url: String,
    count: u32,
    value_bytes: u32,
) -> Result<String, String> {
    let value = "v".repeat(value_bytes as usize);
    let mut request = Request::get(url);
    for index in 0..count {
        request = request.header(format!("x-{index}"), value.clone());
    }
    let response = ctx.http().send(request).map_err(report)?;
    Ok(format!("{} {}", response.status, response.body.len()))
}

/// Logs `napping`, then sleeps `millis` milliseconds (a WASI clock wait)
/// and returns `"rested"`.
#[procedure]
pub fn nap(_ctx: &mut ProcedureContext, millis: u64) -> String {
    worldline::log::info("napping");
    std::thread::sleep(Duration::from_millis(millis));
    "rested".into()
}

/// An error as the caller sees it: `"{kind:?}: {message}"`.
fn report(error: HttpError) -> String {
    format!("{:?}: {}", error.kind, error.message)
}
