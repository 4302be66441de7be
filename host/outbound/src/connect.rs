//! Opening a hop's connection: resolve the name (or take the IP literal),
//! keep only the addresses the guard allows, connect to one of those, and
//! shake hands over TLS for `https`.
//!
//! The client never hands a name to anything that could resolve it again:
//! it connects to a checked `SocketAddr`, so a DNS answer cannot change
//! between the check and the connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;

use crate::budget::{Budget, Phase};
use crate::guard::PrivateOverride;
use crate::limits::HttpLimits;
use crate::lookup;
use crate::target::{Scheme, Target, TargetHost};
use crate::tls;
use crate::types::{HttpError, HttpErrorKind};

/// An open connection, plain or TLS.
pub(crate) enum Stream {
    /// `http`.
    Plain(TcpStream),
    /// `https`.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Opens a connection for `target` to an address the guard allows,
/// resolving its name under the database's `lookups` permits.
pub(crate) async fn open(
    target: &Target,
    overrides: &PrivateOverride,
    limits: &HttpLimits,
    budget: &Budget,
    lookups: &Arc<Semaphore>,
) -> Result<Stream, HttpError> {
    let host = target.host_text();
    let addresses = resolve(target, limits, budget, lookups).await?;
    let allowed = checked(target, &addresses, overrides)?;
    let tcp = budget
        .run(host, Phase::connect(limits), connect_any(&allowed))
        .await?
        .map_err(|(address, err)| {
            HttpError::new(
                HttpErrorKind::Connect,
                format!("could not connect to {host} at {address}: {err}"),
            )
        })?;
    match target.scheme {
        Scheme::Http => Ok(Stream::Plain(tcp)),
        Scheme::Https => {
            let tls = budget
                .run(host, Phase::handshake(limits), handshake(target, tcp))
                .await??;
            Ok(Stream::Tls(Box::new(tls)))
        }
    }
}

/// The addresses of the target: its IP literal, or what its name resolves to.
async fn resolve(
    target: &Target,
    limits: &HttpLimits,
    budget: &Budget,
    lookups: &Arc<Semaphore>,
) -> Result<Vec<SocketAddr>, HttpError> {
    let name = match &target.host {
        TargetHost::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, target.port)]),
        TargetHost::Name(name) => name.as_str(),
    };
    let dns = |detail: String| {
        HttpError::new(
            HttpErrorKind::Dns,
            format!("the name {name} did not resolve: {detail}"),
        )
    };
    let found = budget
        .run(
            name,
            Phase::resolve(limits),
            lookup::system(name, target.port, lookups),
        )
        .await?
        .map_err(|err| dns(err.to_string()))?;
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for address in found {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.is_empty() {
        return Err(dns("no addresses".to_owned()));
    }
    Ok(addresses)
}

/// The addresses the guard allows, or `denied` naming the host and the
/// first refused address when none is left.
fn checked(
    target: &Target,
    addresses: &[SocketAddr],
    overrides: &PrivateOverride,
) -> Result<Vec<SocketAddr>, HttpError> {
    let allowed: Vec<SocketAddr> = addresses
        .iter()
        .copied()
        .filter(|address| overrides.refusal(*address).is_none())
        .collect();
    if !allowed.is_empty() {
        return Ok(allowed);
    }
    let refused = addresses
        .iter()
        .find_map(|address| overrides.refusal(*address).map(|reason| (address, reason)));
    let message = match (refused, &target.host) {
        (Some((address, reason)), TargetHost::Ip(_)) => {
            format!("{address}: {reason} addresses may not be reached by outbound requests")
        }
        (Some((address, reason)), TargetHost::Name(name)) => format!(
            "{name} resolves to {}: {reason} addresses may not be reached by outbound requests",
            address.ip()
        ),
        (None, _) => format!(
            "{} has no address outbound requests may reach",
            target.host_text()
        ),
    };
    Err(HttpError::new(HttpErrorKind::Denied, message))
}

/// Connects to the first address that answers, or gives the last failure.
async fn connect_any(addresses: &[SocketAddr]) -> Result<TcpStream, (SocketAddr, io::Error)> {
    let mut failure = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Small requests are written whole; Nagle would only delay them.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => failure = Some((*address, err)),
        }
    }
    Err(failure.unwrap_or_else(|| {
        let none = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
        (SocketAddr::from(([0, 0, 0, 0], 0)), none)
    }))
}

/// The TLS handshake, with the URL's host as the server name (SNI) and
/// the name the certificate must carry.
async fn handshake(target: &Target, tcp: TcpStream) -> Result<TlsStream<TcpStream>, HttpError> {
    let host = target.host_text();
    let tls = |detail: String| {
        HttpError::new(
            HttpErrorKind::Tls,
            format!("the TLS handshake with {host} failed: {detail}"),
        )
    };
    let connector = tls::connector().await.map_err(&tls)?;
    let server_name = match &target.host {
        TargetHost::Ip(ip) => ServerName::IpAddress((*ip).into()),
        TargetHost::Name(name) => {
            let name = name.strip_suffix('.').unwrap_or(name).to_owned();
            ServerName::try_from(name).map_err(|err| tls(err.to_string()))?
        }
    };
    connector
        .connect(server_name, tcp)
        .await
        .map_err(|err| tls(err.to_string()))
}
