//! Shared helpers for Worldline's end-to-end tests, benchmarks and demo:
//! the guest components built by `build.rs`, a host engine with test limits,
//! and the row types of the example modules, mirrored on the host side.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use worldline_host::{Database, Engine, EngineConfig, Identity};

pub mod db_thread;
pub mod gate;
pub mod http_stub;
pub mod live;
pub mod parity;
pub mod process;
pub mod raw;
pub mod raw_c;
pub mod twins;

/// Where `build.rs` put the guest components.
pub const GUEST_DIR: &str = env!("WORLDLINE_GUEST_DIR");

/// The path of a guest component built from `guest-rust/`, by package name
/// (e.g. `"bank"` or `"chat-v2"`; cargo names the file after the library,
/// whose name has `_` for every `-` of the package's).
pub fn guest_path(name: &str) -> PathBuf {
    PathBuf::from(GUEST_DIR).join(format!("{}.wasm", name.replace('-', "_")))
}

/// The bytes of a guest component built from `guest-rust/`.
pub fn guest_wasm(name: &str) -> Vec<u8> {
    let path = guest_path(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("reading guest component {}: {e}", path.display()))
}

/// The limits the tests run modules under: short enough that a runaway
/// reducer is stopped quickly, generous enough for every honest one.
pub fn test_engine_config() -> EngineConfig {
    EngineConfig {
        reducer_deadline: Duration::from_millis(500),
        memory_limit_bytes: 64 << 20,
        ..EngineConfig::default()
    }
}

/// An engine with [`test_engine_config`].
pub fn test_engine() -> Engine {
    Engine::new(test_engine_config()).expect("creating the wasm engine")
}

/// An engine with [`test_engine_config`]'s limits but a deadline that an
/// honest reducer meets even on a machine busy with other builds and
/// tests: for suites that run no runaway reducer.
pub fn patient_engine() -> Engine {
    Engine::new(EngineConfig {
        reducer_deadline: Duration::from_secs(10),
        ..test_engine_config()
    })
    .expect("creating the wasm engine")
}

/// The owner of every test database.
pub const OWNER: Identity = Identity::from_bytes([0x0A; 32]);

/// A second identity, for calls by someone other than the owner.
pub const ALICE: Identity = Identity::from_bytes([0xA1; 32]);

/// A third identity.
pub const BOB: Identity = Identity::from_bytes([0xB0; 32]);

/// Creates a database from a guest component, owned by [`OWNER`].
pub fn create_database(engine: &Engine, guest: &str) -> Database {
    Database::create(engine, &guest_wasm(guest), OWNER)
        .unwrap_or_else(|e| panic!("creating a database from `{guest}`: {e}"))
}

/// Postcard-encodes reducer arguments (a tuple of them).
pub fn args<T: Serialize>(args: &T) -> Vec<u8> {
    postcard::to_allocvec(args).expect("encoding reducer arguments")
}

/// Reads every committed row of `table`, decoded as `T`.
pub fn rows<T: DeserializeOwned>(db: &Database, table: &str) -> Vec<T> {
    db.rows(table)
        .unwrap_or_else(|e| panic!("reading table `{table}`: {e}"))
        .iter()
        .map(|row| {
            postcard::from_bytes(row).unwrap_or_else(|e| panic!("decoding a row of `{table}`: {e}"))
        })
        .collect()
}

/// The `features` test module's items (sku, owner, rank, price), added in
/// this order so that their ids are 1..: the Rust and C++ suites stock both
/// builds with them.
pub const FEATURE_ITEMS: &[(&str, u32, i32, u64)] = &[
    ("a", 1, 3, 500),
    ("b", 2, 1, 100),
    ("c", 1, -2, 300),
    ("d", 1, 7, 300),
    ("e", 3, 0, 900),
    ("f", 1, 5, 50),
];

/// A row of the bank module's `account` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account number.
    pub id: u32,
    /// Its balance.
    pub balance: i64,
}

/// A row of the chat module's `user` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's identity bytes.
    pub identity: [u8; 32],
    /// The name the user set, if any.
    pub name: Option<String>,
    /// Whether the user is connected.
    pub online: bool,
}

/// A row of the chat module's `message` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Auto-incremented message id.
    pub id: u64,
    /// The sender's identity bytes.
    pub sender: [u8; 32],
    /// When it was sent, in microseconds since the Unix epoch.
    pub sent: i64,
    /// The text.
    pub text: String,
}

/// What the crash tests and their harness process agree on.
pub mod crash {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// The database the harness publishes.
    pub const DATABASE: &str = "bank";
    /// Accounts seeded.
    pub const ACCOUNTS: u32 = 16;
    /// Each account's opening balance.
    pub const INITIAL_BALANCE: i64 = 100;

    /// The endless sequence of transfers `(from, to, amount)` the harness makes with `seed`.
    pub fn transfers(seed: u64) -> impl Iterator<Item = (u32, u32, i64)> {
        let mut rng = StdRng::seed_from_u64(seed);
        std::iter::repeat_with(move || {
            let from = rng.random_range(0..ACCOUNTS);
            let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
            (from, to, rng.random_range(1..=40))
        })
    }

    /// Applies a transfer as the bank module does: nothing happens when the
    /// source lacks the funds.
    pub fn apply(balances: &mut [i64], (from, to, amount): (u32, u32, i64)) {
        if balances[from as usize] >= amount {
            balances[from as usize] -= amount;
            balances[to as usize] += amount;
        }
    }

    /// The balances in the answer to `SELECT * FROM account` over HTTP (a
    /// JSON `SqlResult`), in the order of the accounts' ids.
    pub fn balances_in_sql_answer(body: &str) -> Vec<i64> {
        let answer: serde_json::Value = serde_json::from_str(body).expect("a JSON SQL answer");
        let mut rows: Vec<(u64, i64)> = answer["tables"][0]["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| {
                (
                    row[0].as_u64().expect("an id"),
                    row[1].as_i64().expect("a balance"),
                )
            })
            .collect();
        rows.sort_unstable();
        rows.into_iter().map(|(_, balance)| balance).collect()
    }
}

/// The resident memory of this process (the server and the clients of the
/// tests in it), in bytes (Linux: `VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> u64 {
    process_status_bytes("VmRSS")
}

/// The most this process has held resident so far, in bytes (`VmHWM`).
pub fn peak_resident_bytes() -> u64 {
    process_status_bytes("VmHWM")
}

/// The figure of `/proc/self/status` named `field` (given in KiB), in bytes.
fn process_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let line = status
        .lines()
        .find(|l| {
            l.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .unwrap_or_else(|| panic!("a {field} line"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of KiB");
    kib * 1024
}

/// Every file under `dir`, as (path relative to it, bytes), sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("listing a directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("reading a file");
                let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
                found.push((relative, bytes));
            }
        }
    }
    found.sort();
    found
}

/// The permission bits (`rwx` for user, group and others) of `path`.
pub fn file_mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("reading the metadata of {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A fresh, empty directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let unique = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temporary directory");
        Self(path)
    }

    /// The directory's path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
