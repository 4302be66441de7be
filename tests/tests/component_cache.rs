//! The compiled-component cache (#10 item 6): a component compiled once is
//! loaded, not compiled, on restart; a damaged entry is never loaded but
//! recompiled; concurrent writers of one entry both succeed; the cache
//! keeps to its byte budget and is private to the server's user.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use worldline_host::{CacheStats, CallContext, Database, Engine, EngineConfig, Host, HostConfig};
use worldline_tests::{
    ALICE, OWNER, TempDir, args, file_mode as mode, guest_wasm, test_engine_config,
};

fn config() -> HostConfig {
    HostConfig {
        engine: test_engine_config(),
        ..HostConfig::default()
    }
}

fn stats(host: &Host) -> CacheStats {
    host.engine()
        .component_cache_stats()
        .expect("a host has a component cache")
}

fn cache_dir(data: &Path) -> PathBuf {
    data.join("cache/components")
}

/// The cache's entries (not temporary files).
fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .expect("listing the cache")
        .map(|e| e.expect("entry").path())
        .collect();
    found.sort();
    found
}

/// A host in `dir` with the bank published and seeded.
fn publish_bank(dir: &Path) -> Host {
    let mut host = Host::open(dir, config()).expect("open");
    host.publish("bank", &guest_wasm("bank"), OWNER)
        .expect("publish")
        .call_reducer("seed", &args(&(3u32, 100i64)), CallContext::new(OWNER))
        .expect("seed");
    host
}

/// The bank still serves after a restart.
fn transfer(host: &mut Host) {
    host.database_mut("bank")
        .expect("the bank was recovered")
        .call_reducer(
            "transfer",
            &args(&(0u32, 1u32, 1i64)),
            CallContext::new(ALICE),
        )
        .expect("transfer");
}

// #10 item 6
#[test]
fn a_restart_loads_the_published_component_from_the_cache_without_compiling() {
    let dir = TempDir::new("worldline-cache-restart");
    let host = publish_bank(dir.path());
    let first = stats(&host);
    assert_eq!((first.hits, first.misses, first.damaged), (0, 1, 0));
    drop(host);

    let cache = cache_dir(dir.path());
    let stored = entries(&cache);
    assert_eq!(stored.len(), 1, "one entry: {stored:?}");
    assert!(stored[0].to_string_lossy().ends_with(".cwasm"));
    assert_eq!(mode(&cache), 0o700, "the cache directory is private");
    assert_eq!(mode(&dir.path().join("cache")), 0o700);
    assert_eq!(mode(&stored[0]), 0o600, "cache entries are private");

    let mut host = Host::open(dir.path(), config()).expect("reopen");
    let second = stats(&host);
    assert_eq!(
        (
            second.hits,
            second.misses,
            second.damaged,
            second.store_failures
        ),
        (1, 0, 0, 0),
        "the restart compiled nothing"
    );
    transfer(&mut host);
}

/// Damages the only cache entry with `damage`, then checks that the host
/// starts, discards the entry, compiles the component again and stores a
/// sound entry that the next start loads.
fn recovers_from(name: &str, damage: impl FnOnce(&Path)) {
    let dir = TempDir::new(name);
    drop(publish_bank(dir.path()));
    let stored = entries(&cache_dir(dir.path()));
    assert_eq!(stored.len(), 1);
    damage(&stored[0]);

    let mut host =
        Host::open(dir.path(), config()).expect("a damaged cache does not stop the host");
    let after = stats(&host);
    assert_eq!(
        (after.hits, after.misses, after.damaged),
        (0, 0, 1),
        "the damaged entry was discarded, not loaded"
    );
    transfer(&mut host);
    drop(host);

    let host = Host::open(dir.path(), config()).expect("reopen");
    assert_eq!(
        stats(&host).hits,
        1,
        "the recompiled entry was stored again"
    );
}

// #10 item 6
#[test]
fn a_cache_entry_with_a_flipped_byte_is_recompiled_and_the_database_starts() {
    recovers_from("worldline-cache-flip", |entry| {
        let mut bytes = std::fs::read(entry).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(entry, bytes).unwrap();
    });
}

// #10 item 6
#[test]
fn a_truncated_cache_entry_is_recompiled_and_the_database_starts() {
    recovers_from("worldline-cache-truncated", |entry| {
        let len = std::fs::metadata(entry).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(entry)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
}

// #10 item 6
#[test]
fn a_cache_entry_cut_inside_its_header_or_of_another_format_is_recompiled() {
    recovers_from("worldline-cache-header", |entry| {
        std::fs::write(entry, b"WLCWASM1 short").unwrap();
    });
    recovers_from("worldline-cache-foreign", |entry| {
        let mut bytes = std::fs::read(entry).unwrap();
        bytes[..8].copy_from_slice(b"NOTMAGIC");
        std::fs::write(entry, bytes).unwrap();
    });
}

// #10 item 6
#[test]
fn two_engines_storing_the_same_entry_at_once_both_succeed() {
    let dir = TempDir::new("worldline-cache-concurrent");
    let cache = cache_dir(dir.path());
    let wasm = Arc::new(guest_wasm("bank"));
    let barrier = Arc::new(Barrier::new(2));
    let engines: Vec<Engine> = (0..2)
        .map(|_| {
            Engine::new(test_engine_config())
                .and_then(|engine| engine.with_component_cache(&cache))
                .expect("engine")
        })
        .collect();
    let threads: Vec<_> = engines
        .iter()
        .cloned()
        .map(|engine| {
            let (wasm, barrier) = (wasm.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                Database::create(&engine, &wasm, OWNER).map(drop)
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no panic").expect("create");
    }
    for engine in &engines {
        let stats = engine.component_cache_stats().unwrap();
        assert_eq!(stats.hits + stats.misses, 1, "{stats:?}");
        assert_eq!((stats.damaged, stats.store_failures), (0, 0), "{stats:?}");
    }
    let stored = entries(&cache);
    assert_eq!(stored.len(), 1, "one entry, no temporary files: {stored:?}");

    let engine = Engine::new(test_engine_config())
        .and_then(|engine| engine.with_component_cache(&cache))
        .unwrap();
    Database::create(&engine, &wasm, OWNER).expect("create from the cache");
    assert_eq!(engine.component_cache_stats().unwrap().hits, 1);
}

// #10 item 6
#[test]
fn the_cache_keeps_to_its_byte_budget_evicting_the_least_recently_used() {
    let dir = TempDir::new("worldline-cache-budget");
    let cache = cache_dir(dir.path());
    let unbounded = Engine::new(test_engine_config())
        .and_then(|engine| engine.with_component_cache(&cache))
        .unwrap();
    Database::create(&unbounded, &guest_wasm("bank"), OWNER).unwrap();
    let bank_entry = entries(&cache);
    Database::create(&unbounded, &guest_wasm("chat"), OWNER).unwrap();
    let mut chat_entry = entries(&cache);
    chat_entry.retain(|entry| !bank_entry.contains(entry));
    let size = |entry: &PathBuf| std::fs::metadata(entry).unwrap().len();
    let (bank_bytes, chat_bytes) = (size(&bank_entry[0]), size(&chat_entry[0]));
    std::fs::remove_file(&chat_entry[0]).unwrap();

    // One byte short of room for both: caching chat again evicts the bank,
    // the least recently used entry.
    let tight = Engine::new(EngineConfig {
        component_cache_bytes: bank_bytes + chat_bytes - 1,
        ..test_engine_config()
    })
    .and_then(|engine| engine.with_component_cache(&cache))
    .unwrap();
    Database::create(&tight, &guest_wasm("chat"), OWNER).unwrap();
    let stats = tight.component_cache_stats().unwrap();
    assert_eq!((stats.misses, stats.evicted), (1, 1), "{stats:?}");
    assert_eq!(entries(&cache), chat_entry, "the older entry went");

    // A budget of 0 turns the cache off.
    let off = Engine::new(EngineConfig {
        component_cache_bytes: 0,
        ..test_engine_config()
    })
    .and_then(|engine| engine.with_component_cache(&cache))
    .unwrap();
    assert_eq!(off.component_cache_stats(), None);
}

// #10 item 6
#[test]
fn a_swapped_in_module_is_cached_and_loads_from_the_cache_after_a_restart() {
    let dir = TempDir::new("worldline-cache-swap");
    let mut host = Host::open(dir.path(), config()).expect("open");
    host.publish("chat", &guest_wasm("chat"), OWNER)
        .expect("publish");
    let v2 = guest_wasm("chat-v2");
    let swap = |host: &mut Host, wasm: &[u8]| {
        host.database_mut("chat")
            .unwrap()
            .hot_swap(wasm, Default::default())
            .expect("swap")
    };
    swap(&mut host, &v2);
    assert_eq!(stats(&host).misses, 2);
    drop(host);
    // After a restart, the swapped-in module loads from the cache.
    let host = Host::open(dir.path(), config()).expect("reopen");
    assert_eq!((stats(&host).hits, stats(&host).misses), (1, 0));
}

/// A compile killed while storing its entry left its temporary file in
/// the cache until it was an hour old and something else was stored. Now
/// the next start deletes the temporary files of processes no longer
/// running, and keeps those of running ones (a writer at work).
#[test]
fn a_start_deletes_temporary_files_left_by_killed_writers() {
    let dir = TempDir::new("worldline-cache-leftovers");
    drop(publish_bank(dir.path()));
    let cache = cache_dir(dir.path());
    let mut gone = std::process::Command::new("true")
        .spawn()
        .expect("running `true`");
    gone.wait().expect("reaping it");
    let leftover = |pid: u32| cache.join(format!(".{}.cwasm.{pid}.0.tmp", "ab".repeat(32)));
    let killed = leftover(gone.id());
    let running = leftover(std::process::id());
    for file in [&killed, &running] {
        std::fs::write(file, vec![0u8; 4096]).expect("a half-written entry");
    }
    let host = Host::open(dir.path(), config()).expect("reopen");
    assert!(!killed.exists(), "a dead writer's file is deleted");
    assert!(running.exists(), "a running writer's file is kept");
    assert_eq!(stats(&host).hits, 1, "the sound entry still loads");
}
