//! A host: every database kept in one data directory, recovered on open.
//!
//! Layout, under the directory given to [`Host::open`]:
//!
//! ```text
//! worldline.lock                 held while a host has the directory open
//! server.key                     the secret of the key that signs identity tokens
//! databases/<name>/module.wasm   the published component
//! databases/<name>/owner         the owner's identity, hex
//! databases/<name>/log/          commit log segments
//! databases/<name>/snapshots/    snapshots
//! ```
//!
//! The host holds a capability to the directory (cap-std) and reaches
//! nothing outside it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

use crate::auth::Authority;
use crate::database::Database;
use crate::engine::{Engine, EngineConfig};
use crate::error::HostError;
use crate::identity::Identity;
use crate::storage::{RecoveryReport, StorageConfig, StorageError, sync_dir};

/// How a host runs and persists its databases.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Limits for module instances.
    pub engine: EngineConfig,
    /// Durability policy, segment size and snapshot schedule.
    pub storage: StorageConfig,
}

/// Every database in one data directory.
pub struct Host {
    engine: Engine,
    config: HostConfig,
    databases_dir: Dir,
    databases: BTreeMap<String, Database>,
    recovered: Vec<(String, RecoveryReport)>,
    authority: Authority,
    /// Held for the host's lifetime; the lock is released when it closes.
    _lock: std::fs::File,
}

impl Host {
    /// Opens (creating if needed) the data directory at `path`, locks it
    /// against other hosts, and recovers every database in it.
    pub fn open(path: &Path, config: HostConfig) -> Result<Self, HostError> {
        let display = path.display().to_string();
        let io = |source| HostError::DataDir {
            path: display.clone(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        let root = Dir::open_ambient_dir(path, ambient_authority()).map_err(io)?;
        let lock = root
            .open_with(
                "worldline.lock",
                OpenOptions::new().create(true).truncate(false).write(true),
            )
            .map_err(io)?
            .into_std();
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(HostError::DataDirLocked(display));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        root.create_dir_all("databases").map_err(io)?;
        let databases_dir = root.open_dir("databases").map_err(io)?;
        let authority = load_or_create_authority(&root)?;
        let engine = Engine::new(config.engine.clone())?;
        let mut host = Self {
            engine,
            config,
            databases_dir,
            databases: BTreeMap::new(),
            recovered: Vec::new(),
            authority,
            _lock: lock,
        };
        host.recover_all()?;
        Ok(host)
    }

    fn recover_all(&mut self) -> Result<(), HostError> {
        let mut names = Vec::new();
        for entry in self
            .databases_dir
            .entries()
            .map_err(storage_io("listing databases"))?
        {
            let entry = entry.map_err(storage_io("listing databases"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if valid_name(&name)
                && entry
                    .file_type()
                    .map_err(storage_io("listing databases"))?
                    .is_dir()
            {
                names.push(name);
            }
        }
        names.sort();
        for name in names {
            let dir = self
                .databases_dir
                .open_dir(&name)
                .map_err(storage_io(format!("opening database {name}")))?;
            let wasm = read_file(&dir, "module.wasm")?;
            let owner = read_owner(&dir)?;
            let (database, report) = Database::open_stored(
                &self.engine,
                &wasm,
                owner,
                &dir,
                self.config.storage.clone(),
            )?;
            tracing::info!(
                "recovered database {name}: snapshot {:?}, {} transactions replayed in {:?}",
                report.snapshot,
                report.replayed,
                report.duration
            );
            self.databases.insert(name.clone(), database);
            self.recovered.push((name, report));
        }
        Ok(())
    }

    /// Creates database `name` from a component, owned by `owner`, and runs
    /// its `init` reducer. Nothing is left behind if any step fails.
    pub fn publish(
        &mut self,
        name: &str,
        wasm: &[u8],
        owner: Identity,
    ) -> Result<&mut Database, HostError> {
        if !valid_name(name) {
            return Err(HostError::InvalidName(name.to_owned()));
        }
        if self.databases.contains_key(name) || self.databases_dir.exists(name) {
            return Err(HostError::DatabaseExists(name.to_owned()));
        }
        let created = self.create_database_dir(name, wasm, owner).and_then(|dir| {
            Database::create_stored(&self.engine, wasm, owner, &dir, self.config.storage.clone())
        });
        match created {
            Ok(database) => Ok(self.databases.entry(name.to_owned()).or_insert(database)),
            Err(e) => {
                let _ = self.databases_dir.remove_dir_all(name);
                Err(e)
            }
        }
    }

    fn create_database_dir(
        &self,
        name: &str,
        wasm: &[u8],
        owner: Identity,
    ) -> Result<Dir, HostError> {
        let io = storage_io(format!("creating database {name}"));
        self.databases_dir.create_dir(name).map_err(&io)?;
        let dir = self.databases_dir.open_dir(name).map_err(&io)?;
        write_durably(&dir, "module.wasm", wasm)?;
        write_durably(&dir, "owner", owner.to_string().as_bytes())?;
        sync_dir(&self.databases_dir)?;
        Ok(dir)
    }

    /// The database with this name.
    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases.get(name)
    }

    /// The database with this name, to call reducers on.
    pub fn database_mut(&mut self, name: &str) -> Option<&mut Database> {
        self.databases.get_mut(name)
    }

    /// Hands database `name` over to the caller (a server runs each
    /// database on its own thread). The host no longer lists it, but its
    /// directory stays, so the name cannot be published again.
    pub fn take_database(&mut self, name: &str) -> Option<Database> {
        self.databases.remove(name)
    }

    /// The names of every database the host holds, sorted.
    pub fn database_names(&self) -> impl Iterator<Item = &str> {
        self.databases.keys().map(String::as_str)
    }

    /// The key that issues and verifies this server's identity tokens.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// What recovery did for each database when the host opened.
    pub fn recovery_reports(&self) -> &[(String, RecoveryReport)] {
        &self.recovered
    }
}

/// The name this server signs its tokens with.
const ISSUER: &str = "worldline";

/// The server's signing key: read from `server.key`, or created there on first start.
fn load_or_create_authority(root: &Dir) -> Result<Authority, HostError> {
    if root.exists("server.key") {
        let secret: [u8; 32] = read_file(root, "server.key")?.try_into().map_err(|_| {
            HostError::Storage(StorageError::Corrupt {
                file: "server.key".into(),
                offset: 0,
                reason: "not a 32-byte key".into(),
            })
        })?;
        return Ok(Authority::from_secret(ISSUER, secret));
    }
    let authority = Authority::generate(ISSUER);
    write_durably(root, "server.key", &authority.secret())?;
    Ok(authority)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn storage_io(context: impl Into<String>) -> impl Fn(std::io::Error) -> HostError {
    let context = context.into();
    move |e| HostError::Storage(StorageError::io(context.clone(), e))
}

fn read_file(dir: &Dir, name: &str) -> Result<Vec<u8>, HostError> {
    let mut bytes = Vec::new();
    dir.open(name)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(storage_io(format!("reading {name}")))?;
    Ok(bytes)
}

fn read_owner(dir: &Dir) -> Result<Identity, HostError> {
    let text = String::from_utf8(read_file(dir, "owner")?).unwrap_or_default();
    Identity::from_hex(text.trim()).ok_or_else(|| {
        HostError::Storage(StorageError::Corrupt {
            file: "owner".into(),
            offset: 0,
            reason: "not a 64-digit hex identity".into(),
        })
    })
}

/// Writes a whole file atomically: a temporary file, fsync, rename.
fn write_durably(dir: &Dir, name: &str, bytes: &[u8]) -> Result<(), HostError> {
    let temporary = format!(".{name}.tmp");
    let io = storage_io(format!("writing {name}"));
    let mut file = dir
        .open_with(
            &temporary,
            OpenOptions::new().create(true).truncate(true).write(true),
        )
        .map_err(&io)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(&io)?;
    dir.rename(&temporary, dir, name).map_err(&io)?;
    Ok(sync_dir(dir)?)
}
