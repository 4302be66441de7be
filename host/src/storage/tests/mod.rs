//! Fault-injection, power-cut and fuzz tests of the commit log, snapshots
//! and recovery, over the in-memory twin of the storage interface
//! ([`MemoryDisk`]). Each opens a small database of one table, `t(n: u64)`,
//! in which transaction `i` inserts the row `i`, so the rows recovery
//! returns say exactly which transactions survived.

mod database_id;
mod faults;
mod fuzz;
mod log_growth;
mod power_cut;
mod preallocation;
mod published_schema;
mod repair;

use std::sync::Arc;

use sha2::{Digest, Sha256};
use worldline_datastore::{
    AlgebraicType, Datastore, Field, ModuleSchema, ProductType, TableSchema,
};

use super::fs::Directory;
use super::memory::MemoryDisk;
use super::{DatabaseStorage, DurabilityPolicy, RecoveryReport, StorageConfig, StorageError};

/// The module's description: the one table, `t(n: u64)`, without indexes.
fn schema() -> ModuleSchema {
    ModuleSchema {
        tables: vec![table_t()],
        ..ModuleSchema::default()
    }
}

/// Table `t(n: u64)`, without indexes.
fn table_t() -> TableSchema {
    TableSchema {
        name: "t".into(),
        columns: ProductType {
            fields: vec![Field {
                name: Some("n".into()),
                ty: AlgebraicType::U64,
            }],
        },
        primary_key: None,
        indexes: Vec::new(),
        auto_inc: Vec::new(),
        public: true,
    }
}

/// Policy `Every`, tiny segments, a snapshot every `snapshot_every` transactions.
fn config(snapshot_every: Option<u64>, max_segment_bytes: u64) -> StorageConfig {
    StorageConfig {
        durability: DurabilityPolicy::Every,
        max_segment_bytes,
        snapshot_every,
        keep_snapshots: 2,
        ..StorageConfig::default()
    }
}

/// Stores `wasm` as the database's module, as publishing does.
fn publish(disk: &MemoryDisk, wasm: &[u8]) {
    super::write_durably(&*disk.root(), "", "module.wasm", wasm).expect("writing module.wasm");
}

/// An open database on a memory disk.
struct Db {
    storage: DatabaseStorage,
    datastore: Datastore,
    /// The value the next transaction inserts.
    next_value: u64,
}

/// Opens (recovers) the database on `disk`, whose module is `module.wasm`.
fn open(disk: &MemoryDisk, config: StorageConfig) -> Result<(Db, RecoveryReport), StorageError> {
    open_described(disk, config, &schema())
}

/// [`open`], with `module.wasm` describing itself as `schema`.
fn open_described(
    disk: &MemoryDisk,
    config: StorageConfig,
    schema: &ModuleSchema,
) -> Result<(Db, RecoveryReport), StorageError> {
    let root: Arc<dyn Directory> = disk.root();
    let wasm = root
        .read("module.wasm")
        .map_err(|e| StorageError::io("reading module.wasm", e))?;
    let hash: [u8; 32] = Sha256::digest(&wasm).into();
    let (storage, datastore, report) = DatabaseStorage::open_in(root, schema, hash, config)?;
    let next_value = values(&datastore).last().map_or(0, |v| v + 1);
    let db = Db {
        storage,
        datastore,
        next_value,
    };
    Ok((db, report))
}

impl Db {
    /// Commits the next insert and waits until it is durable; returns the value inserted.
    fn commit(&mut self) -> Result<u64, StorageError> {
        let value = self.next_value;
        self.datastore.begin().expect("begin");
        self.datastore
            .insert(0, &postcard::to_allocvec(&value).expect("encode"))
            .expect("insert");
        let delta = self.datastore.commit();
        let offset = self.storage.log("insert", [7; 32], 0, &delta)?;
        self.next_value += 1;
        // As the database does: a failed snapshot is not the commit's failure.
        let _ = self.storage.snapshot_if_due(&self.datastore, 0);
        self.storage.wait(offset)?;
        Ok(value)
    }

    /// Replaces the module with one describing the same schema, keeping the data.
    fn swap(&mut self, wasm: &[u8]) -> Result<(), StorageError> {
        self.swap_described(wasm, &schema())
    }

    /// Replaces the module with `wasm`, which describes `schema`.
    fn swap_described(&mut self, wasm: &[u8], schema: &ModuleSchema) -> Result<(), StorageError> {
        self.storage
            .swap_module(&self.datastore, wasm, schema, [7; 32], 0)
            .map_err(|e| match e {
                super::SwapFailed::Unchanged(e) | super::SwapFailed::Undecided(e) => e,
            })
    }
}

/// The values in table `t`, in order.
fn values(datastore: &Datastore) -> Vec<u64> {
    let mut values: Vec<u64> = datastore
        .rows(0)
        .expect("table t")
        .map(|row| postcard::from_bytes(row).expect("a u64 row"))
        .collect();
    values.sort_unstable();
    values
}

/// A database on a fresh disk after `count` acknowledged transactions.
fn database_with(count: u64, config: StorageConfig) -> MemoryDisk {
    let disk = MemoryDisk::new();
    publish(&disk, b"module one");
    let (mut db, _) = open(&disk, config).expect("open a fresh database");
    for _ in 0..count {
        db.commit().expect("commit");
    }
    disk
}

/// A copy of `disk` (everything on it is synced, so a power cut loses nothing).
fn copy(disk: &MemoryDisk) -> MemoryDisk {
    disk.power_cut(0)
}

/// The names of the files in `dir` ending in `.extension`, in order.
fn files(disk: &MemoryDisk, dir: &str, extension: &str) -> Vec<String> {
    let mut names: Vec<String> = disk
        .root()
        .subdir(dir)
        .and_then(|d| d.list())
        .expect("listing")
        .into_iter()
        .filter(|n| n.ends_with(extension))
        .collect();
    names.sort();
    names
}

/// Replaces `dir/name` on `disk` with `bytes` (durably).
fn put(disk: &MemoryDisk, dir: &str, name: &str, bytes: &[u8]) {
    let dir = disk.root().subdir(dir).expect("subdir");
    let mut file = dir.create(name).expect("create");
    file.write_all_at(0, bytes)
        .and_then(|()| file.sync())
        .expect("write");
}

/// The content of `dir/name` on `disk`.
fn get(disk: &MemoryDisk, dir: &str, name: &str) -> Vec<u8> {
    disk.root()
        .subdir(dir)
        .and_then(|d| d.read(name))
        .expect("read")
}

/// A copy of a database's disk with one bit of one of its files flipped.
struct Flipped {
    /// The copy.
    disk: MemoryDisk,
    /// The file's directory (`log` or `snapshots`) and name.
    dir: &'static str,
    name: String,
    /// The byte flipped.
    byte: usize,
    /// Which bit of which file, for messages.
    what: String,
}

/// Calls `check` with a copy of `disk` for every bit of every log segment
/// and snapshot flipped in turn.
fn for_each_flipped_bit(disk: &MemoryDisk, mut check: impl FnMut(Flipped)) {
    for (dir, extension) in [("log", ".seg"), ("snapshots", ".snap")] {
        for name in files(disk, dir, extension) {
            let clean = get(disk, dir, &name);
            for byte in 0..clean.len() {
                for bit in 0..8 {
                    let damaged = copy(disk);
                    let mut bytes = clean.clone();
                    bytes[byte] ^= 1 << bit;
                    put(&damaged, dir, &name, &bytes);
                    check(Flipped {
                        what: format!("{dir}/{name} byte {byte} bit {bit}"),
                        disk: damaged,
                        dir,
                        name: name.clone(),
                        byte,
                    });
                }
            }
        }
    }
}

/// Whether `error` is a refusal to start because of what is on disk (not an IO failure).
fn is_refusal(error: &StorageError) -> bool {
    matches!(
        error,
        StorageError::Corrupt { .. }
            | StorageError::Missing(_)
            | StorageError::Unsupported { .. }
            | StorageError::Foreign { .. }
            | StorageError::Misnamed { .. }
    )
}
