//! The compiled-component cache: native code wasmtime compiled for a
//! component, kept on disk so that publishing, swapping in or recovering a
//! module whose component was compiled before skips the compiler (an 18 MB
//! component takes seconds to compile and milliseconds to load).
//!
//! An entry is keyed by the SHA-256 of the engine's compatibility hash
//! (wasmtime's version, target, compiler flags, tunables and features: see
//! [`wasmtime::Engine::precompile_compatibility_hash`]) followed by the
//! component's bytes, so a different engine configuration or wasmtime never
//! finds another's entries. The file `<key hex>.cwasm` holds:
//!
//! ```text
//! magic    8 bytes   "WLCWASM1"
//! key     32 bytes   the entry's key (as in its name)
//! length   8 bytes   little-endian length of the artifact
//! digest  32 bytes   SHA-256 of the artifact
//! artifact           wasmtime's serialized component
//! ```
//!
//! Entries are written to a temporary file (mode 0600, in the cache
//! directory, mode 0700; named `.<entry>.<process id>.<n>.tmp`) and renamed
//! into place, so a reader sees a whole entry or none, and concurrent
//! writers of one entry each succeed (the last rename wins; both wrote the
//! same artifact). Opening the cache deletes the temporary files of
//! processes no longer running (a compile killed part-way). They are not fsynced:
//! an entry lost or torn by a power cut is only a compile to do again.
//!
//! # Safety
//!
//! Loading an artifact ([`Component::deserialize`]) is `unsafe`: wasmtime
//! maps its code as executable and trusts it to be what it compiled. The
//! cache directory lives in the data directory and is trusted as that is:
//! only the server's user can write either (this cache's directories are
//! 0700, its files 0600), and whoever can write the data directory already
//! controls every database and the key that signs identity tokens. What is
//! not trusted is the storage medium: every entry is checked against its
//! length and SHA-256 digest before it is loaded, and one that fails (a
//! flipped bit, a truncated or torn write, a file of another format) is
//! deleted and the component compiled afresh, never loaded. wasmtime itself
//! refuses an artifact from another version or configuration.

use std::hash::{Hash, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::secret_file::{SECRET_MODE, make_private_dir};

/// How often the compiled-component cache was used since the engine was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Components loaded from the cache without compiling.
    pub hits: u64,
    /// Components compiled because the cache had no entry for them.
    pub misses: u64,
    /// Damaged entries found, deleted and replaced by a fresh compile.
    pub damaged: u64,
    /// Compiled components that could not be stored (the cache is best effort).
    pub store_failures: u64,
    /// Entries deleted to keep the cache within its byte budget.
    pub evicted: u64,
}

const MAGIC: &[u8; 8] = b"WLCWASM1";
const HEADER: usize = MAGIC.len() + 32 + 8 + 32;
const ENTRY_SUFFIX: &str = ".cwasm";
const TEMP_SUFFIX: &str = ".tmp";
/// A temporary file older than this was left by a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Tells temporary files of one process apart.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An on-disk cache of compiled components for one engine configuration.
pub(crate) struct ComponentCache {
    dir: Dir,
    budget: u64,
    /// SHA-256 of the engine's precompile compatibility hash.
    compatibility: [u8; 32],
    hits: AtomicU64,
    misses: AtomicU64,
    damaged: AtomicU64,
    store_failures: AtomicU64,
    evicted: AtomicU64,
}

/// Feeds what a [`Hash`] implementation writes into SHA-256, for a digest
/// that does not depend on a hasher's seed.
struct DigestHasher(Sha256);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(
            digest[..8]
                .try_into()
                .expect("a SHA-256 digest has 32 bytes"),
        )
    }
}

impl ComponentCache {
    /// Opens (creating, mode 0700) the cache directory `path` for `engine`,
    /// keeping at most `budget` bytes of entries.
    pub(crate) fn open(
        engine: &wasmtime::Engine,
        path: &Path,
        budget: u64,
    ) -> std::io::Result<Self> {
        make_private_dir(path)?;
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        remove_dead_writers_files(&dir);
        let mut hasher = DigestHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir,
            budget,
            compatibility: hasher.0.finalize().into(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            damaged: AtomicU64::new(0),
            store_failures: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        })
    }

    /// How often the cache was used.
    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            damaged: self.damaged.load(Ordering::Relaxed),
            store_failures: self.store_failures.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    /// The component compiled from `wasm`: loaded from the cache, or
    /// compiled (and stored) if the cache has no sound entry for it.
    /// Errors are the compiler's, for a component that does not compile;
    /// the cache's own failures only cost a compile.
    pub(crate) fn component(
        &self,
        engine: &wasmtime::Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<Component> {
        let started = Instant::now();
        let key: [u8; 32] = Sha256::new()
            .chain_update(self.compatibility)
            .chain_update(wasm)
            .finalize()
            .into();
        let name = entry_name(&key);
        match self.load(engine, &name, &key) {
            Loaded::Sound(component) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "loaded a compiled component from the cache in {:?} ({name})",
                    started.elapsed()
                );
                return Ok(component);
            }
            Loaded::Absent => {
                self.misses.fetch_add(1, Ordering::Relaxed);
            }
            Loaded::Damaged(reason) => {
                self.damaged.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "compiled-component cache entry {name} is damaged ({reason}); \
                     deleting it and compiling again"
                );
                remove_quietly(&self.dir, &name);
            }
        }
        let component = Component::new(engine, wasm)?;
        let compiled = started.elapsed();
        match component.serialize() {
            Ok(artifact) if (artifact.len() + HEADER) as u64 > self.budget => tracing::info!(
                "compiled a component in {compiled:?}; not caching it: its {} bytes exceed \
                 the cache's budget of {} bytes",
                artifact.len(),
                self.budget
            ),
            Ok(artifact) => match self.store(&name, &key, &artifact) {
                Ok(()) => {
                    tracing::info!("compiled a component in {compiled:?} and cached it ({name})");
                    self.evict(&name);
                }
                Err(e) => self.store_failed(&name, &e),
            },
            Err(e) => self.store_failed(&name, &e),
        }
        Ok(component)
    }

    fn store_failed(&self, name: &str, error: &dyn std::fmt::Display) {
        self.store_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("could not cache the compiled component {name}: {error}");
    }

    /// Reads and checks the entry `name`, then loads it.
    fn load(&self, engine: &wasmtime::Engine, name: &str, key: &[u8; 32]) -> Loaded {
        let mut bytes = Vec::new();
        let read = crate::regular_file::open_read(&self.dir, name).and_then(|mut file| {
            file.read_to_end(&mut bytes)?;
            Ok(file)
        });
        let file = match read {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Loaded::Absent,
            Err(e) => return Loaded::Damaged(format!("unreadable: {e}")),
        };
        let artifact = match check_entry(&bytes, key) {
            Ok(artifact) => artifact,
            Err(reason) => return Loaded::Damaged(reason),
        };
        // SAFETY: the artifact was written by `store` from
        // `Component::serialize` (its digest matches, so it is the bytes
        // written, undamaged), in a directory only this server's user can
        // write; see the module documentation. wasmtime checks that it was
        // compiled by this version and configuration.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(component) => {
                // Recently used entries are evicted last.
                if let Err(e) = file.into_std().set_modified(SystemTime::now()) {
                    tracing::debug!("could not touch cache entry {name}: {e}");
                }
                Loaded::Sound(component)
            }
            Err(e) => Loaded::Damaged(format!("refused by the engine: {e:#}")),
        }
    }

    /// Writes entry `name` through a temporary file renamed into place.
    fn store(&self, name: &str, key: &[u8; 32], artifact: &[u8]) -> std::io::Result<()> {
        let temporary = format!(
            ".{name}.{}.{}{TEMP_SUFFIX}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let written = self
            .dir
            .open_with(
                &temporary,
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(SECRET_MODE),
            )
            .and_then(|file| {
                let mut file = std::io::BufWriter::new(file.into_std());
                file.write_all(MAGIC)?;
                file.write_all(key)?;
                file.write_all(&(artifact.len() as u64).to_le_bytes())?;
                file.write_all(&Sha256::digest(artifact))?;
                file.write_all(artifact)?;
                file.flush()
            })
            .and_then(|()| self.dir.rename(&temporary, &self.dir, name));
        if written.is_err() {
            remove_quietly(&self.dir, &temporary);
        }
        written
    }

    /// Deletes the least recently used entries until the cache fits its
    /// budget (never `keep`, the entry just written), and temporary files
    /// left by crashed writers.
    fn evict(&self, keep: &str) {
        let entries = match self.dir.entries() {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!("could not list the compiled-component cache: {e}");
                return;
            }
        };
        let now = SystemTime::now();
        let mut cached = Vec::new();
        let mut total = 0u64;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let modified = metadata
                .modified()
                .map(|t| t.into_std())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if name.ends_with(TEMP_SUFFIX) {
                if now.duration_since(modified).unwrap_or_default() > STALE_TEMP {
                    remove_quietly(&self.dir, &name);
                }
            } else if name.ends_with(ENTRY_SUFFIX) {
                total += metadata.len();
                if name != keep {
                    cached.push((modified, metadata.len(), name));
                }
            }
        }
        cached.sort();
        for (_, len, name) in cached {
            if total <= self.budget {
                break;
            }
            match self.dir.remove_file(&name) {
                Ok(()) => {
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("evicted {name} from the compiled-component cache");
                }
                // Evicted by a concurrent writer.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!("could not evict {name} from the compiled-component cache: {e}");
                    continue;
                }
            }
            total -= len;
        }
    }
}

/// What [`ComponentCache::load`] found.
enum Loaded {
    Sound(Component),
    Absent,
    Damaged(String),
}

/// The file name of the entry with this key.
fn entry_name(key: &[u8; 32]) -> String {
    let mut name = crate::identity::hex(key);
    name.push_str(ENTRY_SUFFIX);
    name
}

/// The artifact of an entry's bytes, if its header is sound, names `key`
/// and matches the artifact's length and digest.
fn check_entry<'a>(bytes: &'a [u8], key: &[u8; 32]) -> Result<&'a [u8], String> {
    if bytes.len() < HEADER {
        return Err(format!(
            "{} bytes, shorter than the {HEADER}-byte header",
            bytes.len()
        ));
    }
    let (header, artifact) = bytes.split_at(HEADER);
    let (magic, rest) = header.split_at(MAGIC.len());
    let (stored_key, rest) = rest.split_at(32);
    let (length, digest) = rest.split_at(8);
    if magic != MAGIC {
        return Err("not a cache entry (wrong magic)".into());
    }
    if stored_key != key {
        return Err("the entry holds another key".into());
    }
    let length = u64::from_le_bytes(length.try_into().expect("8 bytes"));
    if length != artifact.len() as u64 {
        return Err(format!(
            "the header says {length} bytes of artifact, the file holds {}",
            artifact.len()
        ));
    }
    if Sha256::digest(artifact)[..] != *digest {
        return Err("the artifact does not match its SHA-256 digest".into());
    }
    Ok(artifact)
}

/// Deletes the temporary files in `dir` of writers no longer running (a
/// compile killed while storing its entry): their names hold the writing
/// process's id. Where running processes cannot be looked up (no
/// `/proc`), they are left to [`ComponentCache::evict`], which deletes
/// them once [`STALE_TEMP`] old.
fn remove_dead_writers_files(dir: &Dir) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = dir.entries() else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let writer = name
            .strip_suffix(TEMP_SUFFIX)
            .and_then(|rest| rest.rsplit('.').nth(1))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = writer
            && !proc.join(pid.to_string()).exists()
        {
            remove_quietly(dir, &name);
        }
    }
}

/// Deletes `name` if it exists; a failure only leaves a file behind.
fn remove_quietly(dir: &Dir, name: &str) {
    match dir.remove_file(name) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("could not delete {name} from the compiled-component cache: {e}"),
    }
}
