//! State every connection of a server shares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::thread::JoinHandle;

use tokio::sync::watch;
use worldline_host::{Authority, Database, Host};

use crate::config::ServerConfig;
use crate::database_actor::{self, ConnKey, DatabaseHandle};
use crate::error::ServerError;

/// The server's databases, signing key and settings.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) authority: Authority,
    /// The data directory; publishing goes through it.
    pub(crate) host: Mutex<Host>,
    databases: RwLock<HashMap<String, DatabaseHandle>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_key: AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    /// Takes every database out of `host` and starts its thread.
    pub(crate) fn new(config: ServerConfig, mut host: Host) -> Result<Self, ServerError> {
        let names: Vec<String> = host.database_names().map(str::to_owned).collect();
        let databases: Vec<(String, Database)> = names
            .into_iter()
            .filter_map(|name| host.take_database(&name).map(|db| (name, db)))
            .collect();
        let shared = Self {
            config,
            authority: host.authority().clone(),
            host: Mutex::new(host),
            databases: RwLock::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            next_key: AtomicU64::new(1),
            shutdown: watch::Sender::new(false),
        };
        for (name, database) in databases {
            shared.run(&name, database)?;
        }
        Ok(shared)
    }

    /// Starts serving `database` as `name`.
    pub(crate) fn run(&self, name: &str, database: Database) -> Result<(), ServerError> {
        let (handle, thread) = database_actor::spawn(name, database)?;
        self.databases
            .write()
            .expect("no thread panics holding the registry")
            .insert(name.to_owned(), handle);
        self.threads
            .lock()
            .expect("no thread panics holding the thread list")
            .push(thread);
        Ok(())
    }

    /// The running database called `name`.
    pub(crate) fn database(&self, name: &str) -> Option<DatabaseHandle> {
        self.databases
            .read()
            .expect("no thread panics holding the registry")
            .get(name)
            .cloned()
    }

    /// Changes when the server starts shutting down.
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
    }
}
