//! A host: every database kept in one data directory, recovered on open.
//!
//! Layout, under the directory given to [`Host::open`]:
//!
//! ```text
//! worldline.lock                 held while a host has the directory open
//! server.key                     the secret of the key that signs identity tokens
//! databases/<name>/module.wasm   the published component
//! databases/<name>/owner         the owner's identity, hex
//! databases/<name>/schema.json   what the module described when published or swapped in
//! databases/<name>/database-id   the database's random id, named by each of its log segments
//!                                and snapshots (see the README's "Durability"); made when
//!                                the database is created, kept by a module swap
//! databases/<name>/log/          commit log segments
//! databases/<name>/snapshots/    snapshots
//! databases/<name>/set-aside/    what a repair cut off a damaged log (see [`crate::repair_database`])
//! databases/.deleted-<name>/     a database being deleted (removed on open if left behind)
//! databases/.creating-<name>/    a database being published, until its `init` committed
//!                                (removed on open if left behind)
//! cache/components/              compiled components, so a module compiles once (see
//!                                [`Engine::with_component_cache`])
//! ```
//!
//! The host holds a capability to the directory (cap-std) and reaches
//! nothing outside it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Weak;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, Permissions, PermissionsExt};
use worldline_outbound::AllowList;

use crate::auth::Authority;
use crate::database::{Database, HTTP_ALLOW_FILE, PreparedModule};
use crate::engine::{Engine, EngineConfig};
use crate::error::{HostError, quoted_name};
use crate::identity::Identity;
use crate::secret_file::{
    PRIVATE_DIR_MODE, check_secret, create_private_dir_all, make_private_dir, write_secret,
};
use crate::storage::{RecoveryReport, StorageConfig, StorageError, sync_dir, write_file_durably};

/// How a host runs and persists its databases.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Limits for module instances.
    pub engine: EngineConfig,
    /// Durability policy, segment size and snapshot schedule.
    pub storage: StorageConfig,
}

/// A database in the data directory that could not be recovered; it serves
/// nothing until it is deleted (or its files are repaired and the host opened again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableDatabase {
    /// The database's name.
    pub name: String,
    /// Its owner, if the `owner` file could be read.
    pub owner: Option<Identity>,
    /// Why it could not be recovered, naming the damaged file where one is to blame.
    pub reason: String,
    /// What can bring it back.
    pub remedy: Remedy,
}

/// What can bring an unavailable database back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Its files could not be read (permissions, a disk error), and were
    /// not changed: fixing the cause and restarting the server brings it
    /// back with its data.
    FixAccess,
    /// Its commit log is damaged or incomplete: `worldline repair` tells
    /// how much of it a cut keeps.
    RepairLog,
    /// Its `database-id` is missing while its files name a database:
    /// `worldline repair --apply` writes it back from them.
    RestoreId,
    /// The server had no room for it (its instance pool was full): a
    /// restart with a larger pool, or with fewer databases, brings it back
    /// with its data.
    RaiseLimit,
    /// Anything else: restoring the file named, or deleting or replacing
    /// the database.
    Replace,
}

impl Remedy {
    /// What can bring back a database that failed to open with `error`.
    fn for_error(error: &HostError) -> Self {
        match error {
            HostError::Storage(StorageError::Io { source, .. })
                if source.kind() != std::io::ErrorKind::NotFound =>
            {
                Self::FixAccess
            }
            HostError::Storage(StorageError::IdMissing { .. }) => Self::RestoreId,
            HostError::InstancePoolFull { .. } => Self::RaiseLimit,
            error if is_log_damage(error) => Self::RepairLog,
            _ => Self::Replace,
        }
    }
}

impl UnavailableDatabase {
    /// What brings it back, for its owner or the server's operator.
    pub fn remedy_hint(&self) -> String {
        let name = &self.name;
        let replace = format!(
            "its owner can delete it (`worldline delete {name}`) or replace it and its data \
             (`worldline publish {name} --delete-data`)"
        );
        match self.remedy {
            Remedy::FixAccess => "the server could not read its files at startup and changed \
                                  nothing: fix what the reason names (a file's permissions or \
                                  owner, a disk error) and restart the server, which recovers \
                                  it with its data"
                .to_owned(),
            Remedy::RepairLog => format!(
                "with no server running on the data directory, `worldline repair {name}` tells \
                 how much of its commit log a cut at the damage keeps (`--apply` makes the cut); \
                 or {replace}"
            ),
            Remedy::RestoreId => format!(
                "if its files are its own, `worldline repair {name} --apply` (with no server \
                 running on the data directory) writes its database-id back from them; then \
                 restart the server"
            ),
            Remedy::RaiseLimit => "its data is intact: restart the server with a larger \
                                   --max-instances (each database holds one instance), which \
                                   recovers it with its data"
                .to_owned(),
            Remedy::Replace => format!(
                "the server could not recover it at startup; {replace}, or an operator can \
                 repair its files and restart the server"
            ),
        }
    }
}

/// Every database in one data directory.
pub struct Host {
    engine: Engine,
    config: HostConfig,
    databases_dir: Dir,
    databases: BTreeMap<String, Database>,
    /// Databases handed out by [`Host::take_database`]: each stops
    /// upgrading once the database is dropped and its log closed.
    taken: BTreeMap<String, Weak<()>>,
    recovered: Vec<(String, RecoveryReport)>,
    /// Databases [`open_available`](Host::open_available) could not recover.
    unavailable: BTreeMap<String, UnavailableDatabase>,
    authority: Authority,
    /// `worldline.lock` and the data directory, held for the host's
    /// lifetime; the locks are released when they close.
    _locks: [std::fs::File; 2],
}

/// The span in which everything done for database `name` is logged, so
/// that each line names it (error level, so that it shows at every level
/// the log shows): its thread's, and its commit log's.
pub fn database_span(name: &str) -> tracing::Span {
    tracing::error_span!("database", name = %name)
}

impl Host {
    /// Opens (creating if needed) the data directory at `path`, locks it
    /// against other hosts, and recovers every database in it.
    pub fn open(path: &Path, config: HostConfig) -> Result<Self, HostError> {
        let mut host = Self::open_unrecovered(path, config)?;
        if let Some((name, source, _)) = host.recover_all()?.into_iter().next() {
            // #9 item 3: name the database in every error.
            return Err(HostError::Recovery {
                name,
                source: Box::new(source),
            });
        }
        Ok(host)
    }

    /// Opens the data directory like [`open`](Self::open), except that a
    /// database that cannot be recovered (a damaged or truncated
    /// `module.wasm`, a corrupt commit log, a module this host refuses or
    /// whose `describe` traps) does not stop the others: it is listed by
    /// [`unavailable_databases`](Self::unavailable_databases) with the
    /// reason, and can still be deleted. Errors of the directory itself
    /// (locked, unreadable, an exposed signing key) still fail.
    pub fn open_available(path: &Path, config: HostConfig) -> Result<Self, HostError> {
        let mut host = Self::open_unrecovered(path, config)?;
        for (name, error, owner) in host.recover_all()? {
            let reason = unavailable_reason(&name, &error);
            tracing::error!("database {name} is unavailable: {reason}");
            host.unavailable.insert(
                name.clone(),
                UnavailableDatabase {
                    name,
                    owner,
                    reason,
                    remedy: Remedy::for_error(&error),
                },
            );
        }
        Ok(host)
    }

    /// Locks and lays out the data directory and loads the signing key.
    fn open_unrecovered(path: &Path, config: HostConfig) -> Result<Self, HostError> {
        let display = path.display().to_string();
        let io = |source| HostError::DataDir {
            path: display.clone(),
            source,
        };
        create_private_dir_all(path).map_err(io)?;
        let root = Dir::open_ambient_dir(path, ambient_authority()).map_err(io)?;
        let locks = lock_data_dir(&root, path)?;
        root.create_dir_all("databases").map_err(io)?;
        make_databases_private(&root, path);
        let databases_dir = root.open_dir("databases").map_err(io)?;
        let authority = load_or_create_authority(&root, path)?;
        let engine = open_engine(&config.engine, path)?;
        Ok(Self {
            engine,
            config,
            databases_dir,
            databases: BTreeMap::new(),
            taken: BTreeMap::new(),
            recovered: Vec::new(),
            unavailable: BTreeMap::new(),
            authority,
            _locks: locks,
        })
    }

    /// Recovers every database in the directory, returning the name, error
    /// and (if readable) owner of each one that could not be recovered.
    fn recover_all(&mut self) -> Result<Vec<(String, HostError, Option<Identity>)>, HostError> {
        let mut names = Vec::new();
        for entry in self
            .databases_dir
            .entries()
            .map_err(storage_io("listing databases"))?
        {
            let entry = entry.map_err(storage_io("listing databases"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(DELETED_PREFIX) {
                // A deletion was interrupted; finish it.
                if let Err(e) = self.databases_dir.remove_dir_all(&name) {
                    tracing::warn!("could not remove databases/{name}, left by a deletion: {e}");
                }
                continue;
            }
            if name.starts_with(CREATING_PREFIX) {
                // A publish was interrupted before the database existed: undo it.
                tracing::warn!(
                    "removing databases/{name}, left by a publish that did not complete"
                );
                if let Err(e) = self.databases_dir.remove_dir_all(&name) {
                    tracing::warn!("could not remove databases/{name}: {e}");
                }
                continue;
            }
            let file_type = entry.file_type().map_err(storage_io("listing databases"))?;
            let why_not = not_a_database(&name, file_type).or_else(|| {
                // An empty directory (made by hand) holds no database, and
                // as an unavailable one no owner could delete it.
                let empty = self
                    .databases_dir
                    .read_dir(&name)
                    .is_ok_and(|mut entries| entries.next().is_none());
                empty.then(|| {
                    "it is an empty directory (a database's holds its module.wasm, owner and \
                     log); remove it, or publish a database of that name"
                        .to_owned()
                })
            });
            match why_not {
                None => names.push(name),
                Some(why) => tracing::warn!("databases/{name} is not served: {why}"),
            }
        }
        names.sort();
        let mut failures = Vec::new();
        for name in names {
            match self.recover(&name) {
                Ok(database) => {
                    self.databases.insert(name, database);
                }
                Err((error, owner)) => failures.push((name, error, owner)),
            }
        }
        Ok(failures)
    }

    /// Recovers database `name` from its directory, recording its report;
    /// on failure, the error and (if readable) the owner.
    fn recover(&mut self, name: &str) -> Result<Database, (HostError, Option<Identity>)> {
        let mut owner = None;
        let opened = self
            .databases_dir
            .open_dir(name)
            .map_err(storage_io(format!("opening database {name}")))
            .and_then(|dir| {
                let stored_owner = read_owner(&dir);
                owner = stored_owner.as_ref().ok().copied();
                let stored_owner = stored_owner?;
                let wasm = read_file(&dir, "module.wasm")?;
                let allow = read_http_allow(&dir)?;
                // The commit log's thread keeps the span: its lines name the database.
                database_span(name)
                    .in_scope(|| {
                        Database::open_stored(
                            &self.engine,
                            &wasm,
                            stored_owner,
                            &dir,
                            self.config.storage.clone(),
                        )
                    })
                    .map(|(mut database, report)| {
                        database.restore_http_allow(allow);
                        (database, report)
                    })
            });
        let (database, report) = opened.map_err(|error| (error, owner))?;
        tracing::info!(
            "recovered database {name}: snapshot {:?}, {} transactions replayed in {:?}",
            report.snapshot,
            report.replayed,
            report.duration
        );
        self.recovered.push((name.to_owned(), report));
        Ok(database)
    }

    /// Opens database `name` again from its directory, after it was handed
    /// out by [`take_database`](Self::take_database) and dropped: for a
    /// deletion that failed (see [`delete_database`](Self::delete_database)),
    /// so the database serves again. One that cannot be recovered is listed
    /// by [`unavailable_databases`](Self::unavailable_databases) and returned.
    pub fn reopen_database(&mut self, name: &str) -> Result<(), UnavailableDatabase> {
        match self.recover(name) {
            Ok(database) => {
                self.taken.remove(name);
                self.databases.insert(name.to_owned(), database);
                Ok(())
            }
            Err((error, owner)) => {
                let unavailable = UnavailableDatabase {
                    name: name.to_owned(),
                    owner,
                    reason: unavailable_reason(name, &error),
                    remedy: Remedy::for_error(&error),
                };
                self.unavailable
                    .insert(name.to_owned(), unavailable.clone());
                Err(unavailable)
            }
        }
    }

    /// Creates database `name` from a component, owned by `owner`, and runs
    /// its `init` reducer; its procedures may send no HTTP requests (see
    /// [`publish_with_http`](Self::publish_with_http)). Nothing is left
    /// behind if any step fails.
    pub fn publish(
        &mut self,
        name: &str,
        wasm: &[u8],
        owner: Identity,
    ) -> Result<&mut Database, HostError> {
        self.publish_with_http(name, wasm, owner, &AllowList::none())
    }

    /// Like [`publish`](Self::publish), with the HTTP allow-list `allow`
    /// for the database's procedures, stored with the database.
    pub fn publish_with_http(
        &mut self,
        name: &str,
        wasm: &[u8],
        owner: Identity,
        allow: &AllowList,
    ) -> Result<&mut Database, HostError> {
        self.check_new_name(name)?;
        let module = PreparedModule::prepare(&self.engine, wasm.to_vec())?;
        self.publish_prepared(name, module, owner, allow)
    }

    /// Like [`publish_with_http`](Self::publish_with_http), from a module
    /// already prepared with this host's [`engine`](Self::engine) (a
    /// server compiles it without holding the host).
    pub fn publish_prepared(
        &mut self,
        name: &str,
        module: PreparedModule,
        owner: Identity,
        allow: &AllowList,
    ) -> Result<&mut Database, HostError> {
        self.check_new_name(name)?;
        if !self.engine.same(module.engine()) {
            return Err(HostError::WorldMismatch(
                "the module was compiled by another engine than the host's".to_owned(),
            ));
        }
        // The database is built under a staging name and takes its own name
        // only once `init` has committed durably, so a crash part-way
        // through leaves nothing that holds the name (the next open
        // removes the staging directory) and no database whose `init`
        // never ran.
        let staging = format!("{CREATING_PREFIX}{name}");
        let io = storage_io(format!("creating database {name}"));
        if self.databases_dir.exists(&staging) {
            self.databases_dir.remove_dir_all(&staging).map_err(&io)?;
        }
        let mut named = false;
        let created = self
            .create_database_dir(name, &staging, module.wasm(), owner, allow)
            .and_then(|dir| {
                // The commit log's thread keeps the span: its lines name the database.
                let mut database = database_span(name).in_scope(|| {
                    Database::create_stored(module, owner, &dir, self.config.storage.clone())
                })?;
                database.restore_http_allow(allow.clone());
                self.databases_dir
                    .rename(&staging, &self.databases_dir, name)
                    .map_err(&io)?;
                named = true;
                sync_dir(&self.databases_dir)?;
                Ok(database)
            });
        match created {
            Ok(database) => Ok(self.databases.entry(name.to_owned()).or_insert(database)),
            Err(e) => {
                // The database (and its commit log's thread) is closed by now.
                let _ = self
                    .databases_dir
                    .remove_dir_all(if named { name } else { &staging });
                Err(e)
            }
        }
    }

    /// Refuses `name` for a new database: not a valid name, or taken. An
    /// empty directory of that name (made by hand, never served) is
    /// removed instead: it holds nothing.
    fn check_new_name(&self, name: &str) -> Result<(), HostError> {
        check_database_name(name)?;
        let taken = self.databases.contains_key(name)
            || (self.databases_dir.exists(name) && self.databases_dir.remove_dir(name).is_err());
        if taken {
            return Err(HostError::DatabaseExists(name.to_owned()));
        }
        Ok(())
    }

    /// Creates directory `dir_name` holding database `name`'s component,
    /// owner and HTTP allow-list, durably.
    fn create_database_dir(
        &self,
        name: &str,
        dir_name: &str,
        wasm: &[u8],
        owner: Identity,
        allow: &AllowList,
    ) -> Result<Dir, HostError> {
        let io = storage_io(format!("creating database {name}"));
        self.databases_dir.create_dir(dir_name).map_err(&io)?;
        let dir = self.databases_dir.open_dir(dir_name).map_err(&io)?;
        write_durably(&dir, "module.wasm", wasm)?;
        write_durably(&dir, "owner", owner.to_string().as_bytes())?;
        write_durably(&dir, HTTP_ALLOW_FILE, allow.to_string().as_bytes())?;
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
    /// directory stays, so the name cannot be published again until
    /// [`delete_database`](Self::delete_database).
    pub fn take_database(&mut self, name: &str) -> Option<Database> {
        let database = self.databases.remove(name)?;
        if let Some(alive) = database.liveness() {
            self.taken.insert(name.to_owned(), alive);
        }
        Some(database)
    }

    /// Deletes database `name` and everything stored for it; the name can
    /// then be published again. A database the host holds is closed first;
    /// one handed out by [`take_database`](Self::take_database) must have
    /// been dropped (which closes its commit log), or this fails with
    /// [`HostError::DatabaseInUse`]. Fails with
    /// [`HostError::NoSuchDatabase`] if there is no such database.
    ///
    /// The directory is first renamed out of the way, so that a crash
    /// part-way through leaves no half-deleted database behind; the next
    /// [`open`](Self::open) finishes the removal. Any other error means
    /// nothing was deleted: the error names the directory that could not
    /// be renamed or removed, and the database's files are intact (a
    /// database taken out to be deleted can be opened again with
    /// [`reopen_database`](Self::reopen_database)).
    pub fn delete_database(&mut self, name: &str) -> Result<(), HostError> {
        if check_database_name(name).is_err() || !self.databases_dir.exists(name) {
            return Err(HostError::NoSuchDatabase(quoted_name(name)));
        }
        if self
            .taken
            .get(name)
            .is_some_and(|alive| alive.strong_count() > 0)
        {
            return Err(HostError::DatabaseInUse(name.to_owned()));
        }
        let doomed = format!("{DELETED_PREFIX}{name}");
        if self.databases_dir.exists(&doomed) {
            self.databases_dir
                .remove_dir_all(&doomed)
                .map_err(storage_io(format!(
                    "could not delete database `{name}`: removing databases/{doomed}, \
                     left by an earlier deletion"
                )))?;
        }
        self.databases_dir
            .rename(name, &self.databases_dir, &doomed)
            .map_err(storage_io(format!(
                "could not delete database `{name}`: renaming databases/{name} to \
                 databases/{doomed}"
            )))?;
        // The name is free from here on; closing the database joins its
        // durability thread, which writes what it has under the new name.
        drop(self.databases.remove(name));
        self.taken.remove(name);
        self.unavailable.remove(name);
        if let Err(e) = sync_dir(&self.databases_dir) {
            tracing::warn!(
                "database {name} is deleted, but the deletion may not survive a power cut ({e})"
            );
        }
        if let Err(e) = self.databases_dir.remove_dir_all(&doomed) {
            tracing::warn!(
                "database {name} is deleted, but removing its files failed ({e}); \
                 the next open removes them"
            );
        }
        Ok(())
    }

    /// The names of every database the host holds, sorted.
    pub fn database_names(&self) -> impl Iterator<Item = &str> {
        self.databases.keys().map(String::as_str)
    }

    /// The key that issues and verifies this server's identity tokens.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The engine every database of this host runs on (for its
    /// [`component_cache_stats`](Engine::component_cache_stats)).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What recovery did for each database when the host opened.
    pub fn recovery_reports(&self) -> &[(String, RecoveryReport)] {
        &self.recovered
    }

    /// The databases [`open_available`](Self::open_available) could not
    /// recover, sorted by name.
    pub fn unavailable_databases(&self) -> impl Iterator<Item = &UnavailableDatabase> {
        self.unavailable.values()
    }
}

/// Why a stored database could not be recovered, in words an operator can
/// act on: a component that does not load is a damaged file, not a bad publish;
/// damage in the commit log of database `name` points to `worldline repair`.
fn unavailable_reason(name: &str, error: &HostError) -> String {
    let reason = match error {
        HostError::InvalidComponent(detail) | HostError::TruncatedComponent(detail) => format!(
            "its stored module.wasm is damaged or truncated (not a valid WebAssembly \
             component: {detail})"
        ),
        error => error.to_string(),
    };
    let mut text = reason;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    match Remedy::for_error(error) {
        Remedy::RepairLog => text.push_str(&format!(
            " (with no server running on the data directory, `worldline repair {name}` tells \
             how much of the log a cut at the damage keeps)"
        )),
        Remedy::RestoreId => text.push_str(&format!(" (here: `worldline repair {name} --apply`)")),
        Remedy::FixAccess | Remedy::RaiseLimit | Remedy::Replace => {}
    }
    text
}

/// Whether `error` is damage in a commit log, or log segments missing,
/// which `worldline repair` may cut off (see [`crate::repair_database`]).
fn is_log_damage(error: &HostError) -> bool {
    match error {
        HostError::Storage(StorageError::Corrupt { file, .. }) => file.starts_with("log/"),
        HostError::Storage(StorageError::Missing(_)) => true,
        _ => false,
    }
}

/// How the directory of a database being deleted starts (`.` is not
/// allowed in database names, so it cannot clash with one).
const DELETED_PREFIX: &str = ".deleted-";

/// How the directory of a database being published starts, until its
/// `init` has committed (see [`Host::publish_with_http`]).
const CREATING_PREFIX: &str = ".creating-";

/// The name this server signs its tokens with.
const ISSUER: &str = "worldline";

/// The server's signing key: read from `server.key`, or created there
/// (mode 0600) on first start. A key other users can read is refused.
fn load_or_create_authority(root: &Dir, shown: &Path) -> Result<Authority, HostError> {
    if root.exists("server.key") {
        check_secret(root, shown, "server.key")?;
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
    write_secret(root, shown, "server.key", &authority.secret())?;
    if holds_databases(root) {
        tracing::warn!(
            "{} was missing, and a new key was made: every token issued before it, the \
             databases' owners' included, is refused now. Restore the old key from a backup \
             (with the server stopped), or hand each database to a new identity by writing its \
             64 hex digits into databases/NAME/owner while the server is stopped",
            shown.join("server.key").display()
        );
    }
    Ok(authority)
}

/// Whether `databases/` in the data directory `root` holds a database
/// (a directory not hidden).
fn holds_databases(root: &Dir) -> bool {
    let Ok(entries) = root.read_dir("databases") else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry.file_type().is_ok_and(|t| t.is_dir())
            && !entry.file_name().to_string_lossy().starts_with('.')
    })
}

/// Gives `databases/` in the data directory `root` (at `path`) mode 0700:
/// every table's rows are in the databases' logs and snapshots, private
/// tables' included, and no other user may reach them. A file system that
/// refuses is warned about, not fatal (the server's user may not own the
/// directory).
fn make_databases_private(root: &Dir, path: &Path) {
    let private = Permissions::from_mode(PRIVATE_DIR_MODE);
    if let Err(e) = root.set_permissions("databases", private) {
        tracing::warn!(
            "could not make {} private to this user (mode 700): {e}; other users may read \
             every database's rows, private tables' included",
            path.join("databases").display()
        );
    }
}

/// The engine for a host in `path`, with its compiled-component cache in
/// `cache/components/` (mode 0700). A cache that cannot be set up costs
/// compile time, not the server: the engine then compiles every component.
fn open_engine(config: &EngineConfig, path: &Path) -> Result<Engine, HostError> {
    let engine = Engine::new(config.clone())?;
    let cache = path.join("cache");
    if let Err(e) = make_private_dir(&cache) {
        tracing::warn!(
            "no compiled-component cache: {}: {e}; every module will be compiled",
            cache.display()
        );
        return Ok(engine);
    }
    match engine
        .clone()
        .with_component_cache(&cache.join("components"))
    {
        Ok(cached) => Ok(cached),
        Err(e) => {
            tracing::warn!("no compiled-component cache: {e}; every module will be compiled");
            Ok(engine)
        }
    }
}

/// Locks the data directory at `path` (opened as `root`) against any other
/// host or repair; the locks are held until the files returned are closed.
pub(crate) fn lock_data_dir(root: &Dir, path: &Path) -> Result<[std::fs::File; 2], HostError> {
    let io = |source| HostError::DataDir {
        path: path.display().to_string(),
        source,
    };
    let lock = crate::regular_file::open(
        root,
        "worldline.lock",
        OpenOptions::new().create(true).truncate(false).write(true),
    )
    .map_err(io)?
    .into_std();
    // The lock file can be removed while a server runs (by someone
    // clearing what looks like a stale lock) and a new one created; the
    // directory itself cannot be replaced under a running server, so it
    // is locked too (through a descriptor of its own: `root`'s is
    // opened with `O_PATH`, which cannot hold a lock).
    let dir_lock = std::fs::File::open(path).map_err(io)?;
    for lock in [&lock, &dir_lock] {
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(HostError::DataDirLocked(path.display().to_string()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    Ok([lock, dir_lock])
}

/// Checks that `name` may name a database: 1 to 64 lowercase ASCII
/// letters, digits, `-` or `_`. The error quotes a long name cut short.
pub fn check_database_name(name: &str) -> Result<(), HostError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(HostError::InvalidName(quoted_name(name)))
    }
}

/// Why the entry `name` of `databases/`, of type `file_type`, is not a
/// database the server can open (it is left as it is), or `None` if it is one.
fn not_a_database(name: &str, file_type: cap_std::fs::FileType) -> Option<String> {
    if let Err(e) = check_database_name(name) {
        return Some(format!("it is not a database's name ({e})"));
    }
    if file_type.is_symlink() {
        return Some(format!(
            "it is a symbolic link, which the server does not follow (it opens nothing \
             outside its data directory): move database {name}'s directory itself here, \
             then start the server again"
        ));
    }
    if !file_type.is_dir() {
        return Some("it is not a directory".to_owned());
    }
    None
}

fn storage_io(context: impl Into<String>) -> impl Fn(std::io::Error) -> HostError {
    let context = context.into();
    move |e| HostError::Storage(StorageError::io(context.clone(), e))
}

fn read_file(dir: &Dir, name: &str) -> Result<Vec<u8>, HostError> {
    let mut bytes = Vec::new();
    crate::regular_file::open_read(dir, name)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(storage_io(format!("reading {name}")))?;
    Ok(bytes)
}

/// The database's HTTP allow-list; none if it has no file (a database
/// created before allow-lists existed).
fn read_http_allow(dir: &Dir) -> Result<AllowList, HostError> {
    if !dir.exists(HTTP_ALLOW_FILE) {
        return Ok(AllowList::none());
    }
    let bytes = read_file(dir, HTTP_ALLOW_FILE)?;
    let corrupt = |offset: usize, reason: String| {
        HostError::Storage(StorageError::Corrupt {
            file: HTTP_ALLOW_FILE.into(),
            offset: offset as u64,
            reason,
        })
    };
    // The offset named is the first byte that is not UTF-8, not byte 0.
    let text = String::from_utf8(bytes)
        .map_err(|e| corrupt(e.utf8_error().valid_up_to(), "not UTF-8 text".into()))?;
    AllowList::parse(text.trim()).map_err(|e| corrupt(0, e.to_string()))
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

/// Writes a whole file atomically: a temporary file, fsync, rename, fsync of the directory.
fn write_durably(dir: &Dir, name: &str, bytes: &[u8]) -> Result<(), HostError> {
    Ok(write_file_durably(dir, name, bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage_io(kind: std::io::ErrorKind) -> HostError {
        HostError::Storage(StorageError::io("listing log/", std::io::Error::from(kind)))
    }

    // What brings an unavailable database back follows from why it is:
    // files it could not read are not damaged (fixing the cause and
    // restarting recovers them), a missing database-id is written back.
    #[test]
    fn the_remedy_follows_the_cause() {
        assert_eq!(
            Remedy::for_error(&storage_io(std::io::ErrorKind::PermissionDenied)),
            Remedy::FixAccess
        );
        assert_eq!(
            Remedy::for_error(&storage_io(std::io::ErrorKind::NotADirectory)),
            Remedy::FixAccess
        );
        assert_eq!(
            Remedy::for_error(&storage_io(std::io::ErrorKind::NotFound)),
            Remedy::Replace
        );
        let missing_id = HostError::Storage(StorageError::IdMissing {
            file: "log/00000000000000000000.seg".into(),
            id: "00".repeat(16),
        });
        assert_eq!(Remedy::for_error(&missing_id), Remedy::RestoreId);
        let damaged = HostError::Storage(StorageError::Corrupt {
            file: "log/00000000000000000000.seg".into(),
            offset: 40,
            reason: "the record's checksum does not match".into(),
        });
        assert_eq!(Remedy::for_error(&damaged), Remedy::RepairLog);
        assert!(
            unavailable_reason("bank", &missing_id)
                .ends_with("(here: `worldline repair bank --apply`)")
        );
    }
}
