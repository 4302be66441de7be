//! State every connection of a server shares.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use tokio::sync::watch;
use worldline_host::outbound::AllowList;
use worldline_host::{
    Authority, Database, Engine, Host, Identity, PreparedModule, Remedy, UnavailableDatabase,
    quoted_name,
};

use crate::config::ServerConfig;
use crate::database_actor::{self, ConnKey, DatabaseHandle};
use crate::error::ServerError;
use crate::outbound::OutgoingBudget;

/// Why connections end when the server shuts down: their fatal `Error`
/// and the QUIC close reason.
pub(crate) const SHUTTING_DOWN: &str = "the server is shutting down";

/// Where the server's QUIC endpoint listens and which certificate it shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoints {
    /// The bound UDP address.
    pub(crate) quic_addr: std::net::SocketAddr,
    /// The certificate's SHA-256.
    pub(crate) fingerprint: [u8; 32],
}

/// The server's databases, signing key and settings.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    endpoints: Endpoints,
    pub(crate) authority: Authority,
    /// The data directory; publishing goes through it.
    pub(crate) host: Mutex<Host>,
    /// The host's wasm engine, to compile a new module for a hot swap
    /// without holding the host or stopping the database.
    pub(crate) engine: Engine,
    databases: RwLock<HashMap<String, DatabaseHandle>>,
    /// Databases that could not be recovered at startup, by name: they
    /// serve nothing, but their owner may delete or replace them.
    unavailable: RwLock<BTreeMap<String, UnavailableDatabase>>,
    /// Each database's thread, by database name.
    threads: Mutex<Vec<(String, JoinHandle<()>)>>,
    /// Held while a database is created, replaced or deleted, so that
    /// those never interleave.
    pub(crate) publishing: tokio::sync::Mutex<()>,
    next_key: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// How many connections each client address holds.
    pub(crate) address_slots: std::sync::Arc<crate::session::AddressSlots>,
    /// The connections the server holds from all addresses (see
    /// [`ServerConfig::max_connections`]).
    pub(crate) connections: ServerSlots,
    /// Places for QUIC connections refused for their address's cap that
    /// wait for their stream to be told why (see [`MAX_REFUSED_WAITING`]).
    pub(crate) refused_waiting: std::sync::Arc<tokio::sync::Semaphore>,
    /// The bytes of messages waiting for clients, server-wide.
    pub(crate) outgoing: std::sync::Arc<OutgoingBudget>,
    /// Room for uploaded components (see [`MAX_UPLOAD_BYTES`] and
    /// [`MAX_UPLOAD_BYTES_PER_ADDRESS`]).
    pub(crate) uploads: BodyPool,
    /// Room for other request bodies beyond their first
    /// [`FREE_BODY_BYTES`] (see [`MAX_BODY_BYTES`] and
    /// [`MAX_BODY_BYTES_PER_ADDRESS`]).
    pub(crate) bodies: BodyPool,
    /// The bytes of messages partly received the server may hold at once,
    /// one permit a byte (see [`crate::incoming`]).
    pub(crate) incoming: crate::incoming::IncomingBudget,
}

/// At most this many bytes of [`MAX_UPLOAD_BYTES`] are one address's at
/// once (the largest component), so that one address cannot take all of it.
pub(crate) const MAX_UPLOAD_BYTES_PER_ADDRESS: usize =
    worldline_transport::http_api::MAX_COMPONENT_BYTES;

/// Room for request bodies of one kind while they are received: the bytes
/// held at once server-wide (one permit a byte) and per client address.
pub(crate) struct BodyPool {
    /// The server-wide room, one permit a byte.
    pub(crate) room: std::sync::Arc<tokio::sync::Semaphore>,
    /// The bytes of `room` in all.
    pub(crate) capacity: usize,
    /// The bytes each address holds.
    pub(crate) shares: std::sync::Arc<AddressShares>,
}

impl BodyPool {
    /// `capacity` bytes server-wide, at most `per_address` of them one address's.
    fn new(capacity: usize, per_address: usize) -> Self {
        Self {
            room: std::sync::Arc::new(tokio::sync::Semaphore::new(capacity)),
            capacity,
            shares: std::sync::Arc::new(AddressShares::new(per_address)),
        }
    }
}

/// The server's count of its connections from all addresses, held to
/// [`ServerConfig::max_connections`]: each connection holds a slot until
/// it ends. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ServerSlots {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl ServerSlots {
    fn new(max: usize) -> Self {
        let max = max.min(tokio::sync::Semaphore::MAX_PERMITS);
        Self {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(max)),
            max,
        }
    }

    /// A slot for a new connection, given back when dropped; `None` while
    /// the server holds its most.
    pub(crate) fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        std::sync::Arc::clone(&self.slots).try_acquire_owned().ok()
    }

    /// Why a connection over the cap is refused.
    pub(crate) fn refusal(&self) -> String {
        format!(
            "the server holds {} connections, the most it takes at once; retry later",
            self.max
        )
    }
}

/// The address a client is counted under by the per-address caps: an
/// IPv4 address itself (an IPv4-mapped IPv6 one as that IPv4 address), an
/// IPv6 address as its /64 network, which one host usually holds whole
/// (counted one by one, a client with a /64 could open 2^64 times the cap).
pub(crate) fn client_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

/// The bytes of request bodies each client address has under way, held
/// to a cap per address (see [`client_group`]).
pub(crate) struct AddressShares {
    held: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
}

impl AddressShares {
    /// Shares of at most `max_per_address` bytes per address.
    pub(crate) fn new(max_per_address: usize) -> Self {
        Self {
            held: Mutex::default(),
            max_per_address,
        }
    }

    /// The most one address may hold at once.
    pub(crate) fn max_per_address(&self) -> usize {
        self.max_per_address
    }

    /// Takes `bytes` for `ip` if it then holds at most the cap, given back
    /// when the share is dropped; otherwise the bytes `ip` already holds.
    pub(crate) fn take(
        self: &std::sync::Arc<Self>,
        ip: IpAddr,
        bytes: usize,
    ) -> Result<AddressShare, usize> {
        let ip = client_group(ip);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = held.entry(ip).or_default();
        if *entry + bytes > self.max_per_address {
            return Err(*entry);
        }
        *entry += bytes;
        Ok(AddressShare {
            shares: std::sync::Arc::clone(self),
            ip,
            bytes,
        })
    }
}

/// One body's bytes in [`AddressShares`], given back when dropped.
pub(crate) struct AddressShare {
    shares: std::sync::Arc<AddressShares>,
    ip: IpAddr,
    bytes: usize,
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        let mut held = self
            .shares
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(bytes) = held.get_mut(&self.ip) {
            *bytes = bytes.saturating_sub(self.bytes);
            if *bytes == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// At most this many bytes of uploaded components (four of the largest)
/// are held at once, server-wide: a publish takes its declared length (the
/// largest component without one) before its upload is read, and waits
/// while the others hold the rest. Without it, every connection could hold
/// a component's worth of memory while it sends.
pub(crate) const MAX_UPLOAD_BYTES: usize = 4 * worldline_transport::http_api::MAX_COMPONENT_BYTES;

/// The first bytes of any request body other than an upload, which it may
/// hold without taking room under [`MAX_BODY_BYTES`]: a call's arguments
/// or a query of this size, the usual case, never waits for room.
pub(crate) const FREE_BODY_BYTES: usize = 64 << 10;

/// At most this many bytes of request bodies other than uploads (beyond
/// their first [`FREE_BODY_BYTES`]) are held at once, server-wide: without
/// it, connections that each send most of a 1 MiB body and stall made the
/// server hold a mebibyte apiece, from as many addresses as a client has.
pub(crate) const MAX_BODY_BYTES: usize = 64 << 20;

/// At most this many bytes of [`MAX_BODY_BYTES`] are one address's at once.
pub(crate) const MAX_BODY_BYTES_PER_ADDRESS: usize = 8 << 20;

/// At most this many QUIC connections refused for their address's cap wait
/// at once for the stream their refusal is written on; past that, one is
/// closed at once with the refusal as its close reason. They hold no place
/// under the cap, so without this bound one address could keep any number
/// of connections open until the handshake deadline.
pub(crate) const MAX_REFUSED_WAITING: usize = 64;

impl Shared {
    /// Takes every database out of `host` and starts its thread.
    pub(crate) fn new(
        config: ServerConfig,
        mut host: Host,
        endpoints: Endpoints,
    ) -> Result<Self, ServerError> {
        let names: Vec<String> = host.database_names().map(str::to_owned).collect();
        let databases: Vec<(String, Database)> = names
            .into_iter()
            .filter_map(|name| host.take_database(&name).map(|db| (name, db)))
            .collect();
        let unavailable = host
            .unavailable_databases()
            .map(|db| (db.name.clone(), db.clone()))
            .collect();
        let outgoing =
            OutgoingBudget::new(usize::try_from(config.max_outgoing_bytes).unwrap_or(usize::MAX));
        let incoming = usize::try_from(config.max_incoming_bytes).unwrap_or(usize::MAX);
        let largest_message = crate::http_listener::largest_message(config.max_frame as usize);
        let connections = ServerSlots::new(config.max_connections);
        let shared = Self {
            config,
            endpoints,
            authority: host.authority().clone(),
            engine: host.engine().clone(),
            host: Mutex::new(host),
            databases: RwLock::new(HashMap::new()),
            unavailable: RwLock::new(unavailable),
            threads: Mutex::new(Vec::new()),
            publishing: tokio::sync::Mutex::new(()),
            next_key: AtomicU64::new(1),
            shutdown: watch::Sender::new(false),
            address_slots: Default::default(),
            connections,
            refused_waiting: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_REFUSED_WAITING)),
            outgoing,
            uploads: BodyPool::new(MAX_UPLOAD_BYTES, MAX_UPLOAD_BYTES_PER_ADDRESS),
            bodies: BodyPool::new(MAX_BODY_BYTES, MAX_BODY_BYTES_PER_ADDRESS),
            incoming: crate::incoming::IncomingBudget::new(incoming, largest_message),
        };
        for (name, database) in databases {
            shared.run(&name, database)?;
        }
        Ok(shared)
    }

    /// Where the QUIC endpoint listens and which certificate it shows.
    pub(crate) fn endpoints(&self) -> Endpoints {
        self.endpoints
    }

    /// Creates database `name` from a prepared component, owned by
    /// `owner`, and starts serving it. Blocks while `init` runs.
    pub(crate) fn create_database(
        &self,
        name: &str,
        module: PreparedModule,
        owner: Identity,
        http_allow: &AllowList,
    ) -> Result<(), ServerError> {
        let database = {
            let mut host = self.host.lock().expect("no thread panics holding the host");
            host.publish_prepared(name, module, owner, http_allow)?;
            host.take_database(name)
                .ok_or_else(|| ServerError::DatabaseStopped(name.to_owned()))?
        };
        self.run(name, database)
    }

    /// Deletes the files of database `name`, whose thread has ended (or
    /// which is unavailable and never had one).
    pub(crate) fn delete_database_files(&self, name: &str) -> Result<(), ServerError> {
        let mut host = self.host.lock().expect("no thread panics holding the host");
        host.delete_database(name)?;
        self.unavailable
            .write()
            .expect("no thread panics holding the unavailable list")
            .remove(name);
        Ok(())
    }

    /// Serves database `name` again from its files, after deleting them
    /// failed (#9 item 2): nothing was deleted, so it reopens as it was. One
    /// that cannot be reopened is listed as unavailable (owned by `owner`,
    /// who may delete it again) and returned.
    pub(crate) fn restore_database(
        &self,
        name: &str,
        owner: Identity,
    ) -> Result<(), UnavailableDatabase> {
        let reopened = {
            let mut host = self.host.lock().expect("no thread panics holding the host");
            host.reopen_database(name)
                .map(|()| host.take_database(name))
        };
        let result = match reopened {
            Ok(Some(database)) => self
                .run(name, database)
                .map_err(|e| (e.to_string(), Remedy::Replace)),
            Ok(None) => Err((
                ServerError::DatabaseStopped(name.to_owned()).to_string(),
                Remedy::Replace,
            )),
            Err(unavailable) => Err((unavailable.reason, unavailable.remedy)),
        };
        result.map_err(|(reason, remedy)| {
            let unavailable = UnavailableDatabase {
                name: name.to_owned(),
                owner: Some(owner),
                reason,
                remedy,
            };
            self.unavailable
                .write()
                .expect("no thread panics holding the unavailable list")
                .insert(name.to_owned(), unavailable.clone());
            unavailable
        })
    }

    /// Starts serving `database` as `name`.
    pub(crate) fn run(&self, name: &str, database: Database) -> Result<(), ServerError> {
        let (handle, thread) = database_actor::spawn(
            name,
            database,
            self.shutdown.subscribe(),
            self.outgoing.clone(),
            usize::try_from(self.config.max_queued_bytes).unwrap_or(usize::MAX),
        )?;
        self.databases
            .write()
            .expect("no thread panics holding the registry")
            .insert(name.to_owned(), handle);
        self.threads
            .lock()
            .expect("no thread panics holding the thread list")
            .push((name.to_owned(), thread));
        Ok(())
    }

    /// Takes database `name` out of service: new connections and requests
    /// find no such database. Returns its handle and thread, to stop it.
    pub(crate) fn retire(&self, name: &str) -> Option<(DatabaseHandle, Option<JoinHandle<()>>)> {
        let handle = self
            .databases
            .write()
            .expect("no thread panics holding the registry")
            .remove(name)?;
        let mut threads = self
            .threads
            .lock()
            .expect("no thread panics holding the thread list");
        let thread = threads
            .iter()
            .position(|(n, _)| n == name)
            .map(|position| threads.swap_remove(position).1);
        Some((handle, thread))
    }

    /// The names of every running database, sorted.
    pub(crate) fn database_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .databases
            .read()
            .expect("no thread panics holding the registry")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The running database called `name`.
    pub(crate) fn database(&self, name: &str) -> Option<DatabaseHandle> {
        self.databases
            .read()
            .expect("no thread panics holding the registry")
            .get(name)
            .cloned()
    }

    /// The running database called `name`, or why there is none to use.
    pub(crate) fn lookup(&self, name: &str) -> Result<DatabaseHandle, Missing> {
        if let Some(handle) = self.database(name) {
            return Ok(handle);
        }
        match self.unavailable(name) {
            Some(unavailable) => Err(Missing::Unavailable(unavailable)),
            None => Err(Missing::NoSuchDatabase(quoted_name(name))),
        }
    }

    /// The database called `name` if it could not be recovered at startup.
    pub(crate) fn unavailable(&self, name: &str) -> Option<UnavailableDatabase> {
        self.unavailable
            .read()
            .expect("no thread panics holding the unavailable list")
            .get(name)
            .cloned()
    }

    /// Every database that could not be recovered at startup, by name.
    pub(crate) fn unavailable_databases(&self) -> Vec<UnavailableDatabase> {
        self.unavailable
            .read()
            .expect("no thread panics holding the unavailable list")
            .values()
            .cloned()
            .collect()
    }

    /// Changes when the server starts shutting down (to `true`, for good).
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells every connection that the server is shutting down.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A key no other connection of this server has.
    pub(crate) fn next_connection_key(&self) -> ConnKey {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Forgets every database so that their threads end once their last
    /// connection does, returning the threads to join.
    pub(crate) fn stop_databases(&self) -> Vec<JoinHandle<()>> {
        self.databases
            .write()
            .expect("no thread panics holding the registry")
            .clear();
        std::mem::take(
            &mut *self
                .threads
                .lock()
                .expect("no thread panics holding the thread list"),
        )
        .into_iter()
        .map(|(_, thread)| thread)
        .collect()
    }
}

/// Why a database name finds nothing to serve.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Missing {
    /// No database has this name (quoted as the host quotes names a
    /// client gave: [`quoted_name`] cuts a long one).
    #[error("no database named `{0}` on this server")]
    NoSuchDatabase(String),
    /// The database exists but could not be recovered at startup.
    #[error("database `{}` is unavailable: {}", .0.name, .0.reason)]
    Unavailable(UnavailableDatabase),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(text: &str) -> IpAddr {
        client_group(text.parse().expect("an address"))
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64_network() {
        assert_eq!(
            group("2001:db8:1:2:aaaa::1"),
            group("2001:db8:1:2:ffff:1:2:3")
        );
        assert_ne!(group("2001:db8:1:2::1"), group("2001:db8:1:3::1"));
        assert_eq!(group("2001:db8:1:2::1"), group("2001:db8:1:2::"));
        assert_eq!(group("::ffff:192.0.2.7"), group("192.0.2.7"));
        assert_ne!(group("192.0.2.7"), group("192.0.2.8"));
    }

    #[test]
    fn the_body_share_of_a_64_network_is_one() {
        let shares = std::sync::Arc::new(AddressShares::new(100));
        let first = shares.take(IpAddr::V6("2001:db8::1".parse().expect("v6")), 60);
        assert!(first.is_ok());
        let second = shares.take(IpAddr::V6("2001:db8::2".parse().expect("v6")), 60);
        assert_eq!(second.err(), Some(60), "the same /64 holds 60 already");
        drop(first);
        assert!(
            shares
                .take(IpAddr::V6("2001:db8::2".parse().expect("v6")), 60)
                .is_ok()
        );
    }
}
