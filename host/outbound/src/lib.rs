//! Outbound HTTP for Worldline procedures, under the database owner's
//! policy (the WIT `http` interface, without the wasm side).
//!
//! - [`AllowList`]: the hosts and ports the owner allowed (`--allow-http`);
//!   [`AllowList::guarded_entries`] names the entries the guard refuses
//!   whatever the list says.
//! - [`address_refusal`] and [`PrivateOverride`]: the address guard, which
//!   refuses loopback, private, link-local and other internal addresses
//!   after resolution, unless the server names the exact address and port.
//! - [`OutboundHttp`]: one per database; [`OutboundHttp::send`] checks the
//!   request, the allow-list and the guard on every hop, connects only to
//!   checked addresses, follows redirects, and enforces every size and time
//!   limit of [`HttpLimits`].
//!
//! HTTP/1.1 only (hyper), TLS by rustls with the ring provider and the
//! system's root certificates; no proxies, no cookies, no decompression.
#![deny(missing_docs)]

mod allow;
mod budget;
mod client;
mod connect;
mod exchange;
mod guard;
mod limits;
mod lookup;
mod redirect;
mod request;
mod target;
mod tls;
mod types;

pub use allow::{ALLOW_LIST_HINT, AllowList, AllowListError, GuardedEntry};
pub use client::OutboundHttp;
pub use guard::{PrivateOverride, address_refusal, override_refusal};
pub use limits::{HttpLimits, HttpPolicy, MAX_REQUEST_HEADERS, MAX_RESPONSE_HEADERS, PolicyError};
pub use types::{HttpError, HttpErrorKind, HttpRequest, HttpResponse};
