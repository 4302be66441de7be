//! Hot swaps of a database's module with real components and a real data
//! directory: a compatible swap keeps every row and brings the new table,
//! index and reducer; an incompatible one is refused with a diff and the
//! old module keeps serving; swaps survive restarts and crashes at any
//! step; deleted databases can be published again.

use std::path::Path;

use serde::{Deserialize, Serialize};
use worldline_host::datastore::{IncompatibleChange, plan_migration};
use worldline_host::{
    CallContext, CallError, Database, DurabilityPolicy, Host, HostConfig, HostError, Identity,
    StorageConfig, SwapPolicy, Timestamp, describe_component,
};
use worldline_tests::{
    ALICE, BOB, Message, OWNER, TempDir, User, args, create_database, guest_wasm, rows,
    test_engine, test_engine_config,
};

/// A row of chat-v2's `reaction` table.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Reaction {
    id: u64,
    message_id: u64,
    reactor: [u8; 32],
    emoji: String,
}

fn config() -> HostConfig {
    HostConfig {
        engine: test_engine_config(),
        storage: StorageConfig {
            durability: DurabilityPolicy::Every,
            // Small segments (about one record each), so that snapshots
            // and swaps have old segments to remove.
            max_segment_bytes: 128,
            snapshot_every: None,
            keep_snapshots: 1,
            ..StorageConfig::default()
        },
    }
}

fn at(micros: i64, who: Identity) -> CallContext {
    CallContext {
        timestamp: Some(Timestamp::from_micros_since_epoch(micros)),
        ..CallContext::new(who)
    }
}

fn send(db: &mut Database, text: &str, ctx: CallContext) -> Option<u64> {
    db.call_reducer("send_message", &args(&(text,)), ctx)
        .expect("send_message")
        .offset
}

/// Publishes `chat` with a named user and messages sent at times 1000, 2000 and 3000.
fn chat_with_messages(host: &mut Host) -> &mut Database {
    let db = host
        .publish("chat", &guest_wasm("chat"), OWNER)
        .expect("publish chat");
    db.call_reducer("set_name", &args(&("alice",)), CallContext::new(ALICE))
        .expect("set_name");
    send(db, "one", at(1000, ALICE));
    send(db, "two", at(2000, BOB));
    send(db, "three", at(3000, ALICE));
    db
}

fn texts(db: &Database) -> Vec<String> {
    rows::<Message>(db, "message")
        .into_iter()
        .map(|m| m.text)
        .collect()
}

/// The sorted file names in `databases/chat/<sub>`, without the second
/// copy a module swap writes of its snapshot (`NAME.snap.copy`).
fn files(dir: &Path, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("databases/chat").join(sub))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // A swap snapshot's second copy, and a snapshot recovery set
        // aside, are not snapshots of their own.
        .filter(|name| !name.ends_with(".copy") && !name.ends_with(".skipped"))
        .collect();
    names.sort();
    names
}

fn offset_of(file: &str) -> u64 {
    file.split('.').next().unwrap().parse().unwrap()
}

fn sorted_lines(text: impl std::fmt::Display) -> Vec<String> {
    let mut lines: Vec<String> = text.to_string().lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn a_compatible_swap_keeps_every_row_and_adds_the_new_table_index_and_reducer() {
    let dir = TempDir::new("worldline-swap");
    let mut host = Host::open(dir.path(), config()).unwrap();
    let db = chat_with_messages(&mut host);
    let users_before = db.rows("user").unwrap();
    let messages_before = db.rows("message").unwrap();
    let last_offset = send(db, "four", at(4000, BOB)).unwrap();

    let plan = db
        .hot_swap(&guest_wasm("chat-v2"), SwapPolicy::Additive)
        .expect("a compatible swap");
    assert_eq!(
        sorted_lines(&plan),
        [
            "+ index `message_sent_idx` on `message`(sent)",
            "+ reducer `forget_before`",
            "+ reducer `init` (lifecycle init)",
            "+ reducer `react`",
            "+ table `reaction`",
        ]
    );
    assert!(plan.is_additive());

    // Every row is still there, and `init` did not post its welcome message.
    assert_eq!(db.rows("user").unwrap(), users_before);
    assert_eq!(db.rows("message").unwrap()[..3], messages_before[..]);
    assert_eq!(texts(db), ["one", "two", "three", "four"]);
    assert!(db.schema().table_id("reaction").is_some());
    // The module log carries over.
    assert!(
        db.log()
            .records()
            .any(|r| r.message.starts_with("message 1 from")),
        "the old module's log lines are kept"
    );

    // The new reducer and table work.
    let outcome = db
        .call_reducer("react", &args(&(2u64, "+1")), CallContext::new(ALICE))
        .expect("react");
    // The offsets continue: the swap's own record took the one in between.
    assert_eq!(outcome.offset, Some(last_offset + 2));
    assert_eq!(
        rows::<Reaction>(db, "reaction"),
        [Reaction {
            id: 1,
            message_id: 2,
            reactor: ALICE.to_bytes(),
            emoji: "+1".into()
        }]
    );
    match db.call_reducer("react", &args(&(99u64, "?")), CallContext::new(ALICE)) {
        Err(CallError::Failed(message)) => assert!(message.contains("99"), "{message}"),
        other => panic!("reacting to a missing message: {other:?}"),
    }
    // The sequence of message ids continues.
    send(db, "five", at(5000, ALICE));
    let ids: Vec<u64> = rows::<Message>(db, "message")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    // The new index on `sent` was built from the old rows.
    db.call_reducer(
        "forget_before",
        &args(&(2500i64,)), // a timestamp is encoded as its i64 microseconds
        CallContext::new(OWNER),
    )
    .expect("forget_before");
    assert_eq!(texts(db), ["three", "four", "five"]);

    // On disk: one snapshot (the swap's, with its copy), and the log starts
    // at the swap.
    let snapshots = files(dir.path(), "snapshots");
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let snapshots_dir = dir.path().join("databases/chat/snapshots");
    assert_eq!(
        std::fs::read(snapshots_dir.join(format!("{}.copy", snapshots[0]))).unwrap(),
        std::fs::read(snapshots_dir.join(&snapshots[0])).unwrap(),
        "the swap snapshot's copy"
    );
    assert_eq!(offset_of(&snapshots[0]), last_offset + 2);
    let segments = files(dir.path(), "log");
    assert_eq!(offset_of(&segments[0]), last_offset + 1, "{segments:?}");
    assert_eq!(
        std::fs::read(dir.path().join("databases/chat/module.wasm")).unwrap(),
        guest_wasm("chat-v2")
    );

    // A restart brings back the new module and every row.
    let (messages, users, reactions) = {
        let db = host.database("chat").unwrap();
        (
            db.rows("message").unwrap(),
            db.rows("user").unwrap(),
            db.rows("reaction").unwrap(),
        )
    };
    drop(host);
    let mut host = Host::open(dir.path(), config()).unwrap();
    let report = &host.recovery_reports()[0].1;
    assert_eq!(report.snapshot, Some(last_offset + 2), "{report:?}");
    let db = host.database_mut("chat").unwrap();
    assert!(db.schema().reducer_id("react").is_some());
    assert_eq!(db.rows("message").unwrap(), messages);
    assert_eq!(db.rows("user").unwrap(), users);
    assert_eq!(db.rows("reaction").unwrap(), reactions);
    db.call_reducer("react", &args(&(5u64, "!")), CallContext::new(BOB))
        .expect("react after a restart");
    send(db, "six", at(6000, BOB));
    let ids: Vec<u64> = rows::<Message>(db, "message")
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [3, 4, 5, 6]);
    let reaction_ids: Vec<u64> = rows::<Reaction>(db, "reaction")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(reaction_ids, [1, 2]);
}

#[test]
fn an_incompatible_swap_is_refused_with_a_diff_and_the_old_module_keeps_serving() {
    let dir = TempDir::new("worldline-swap-refused");
    let mut host = Host::open(dir.path(), config()).unwrap();
    let db = chat_with_messages(&mut host);
    let schema = db.schema().clone();
    let snapshots = files(dir.path(), "snapshots");
    let segments = files(dir.path(), "log");

    let diff = match db.hot_swap(&guest_wasm("chat-breaking"), SwapPolicy::Compatible) {
        Err(HostError::IncompatibleSchema(diff)) => diff,
        Err(other) => panic!("expected an incompatible schema, got {other}"),
        Ok(plan) => panic!("an incompatible module was swapped in: {plan}"),
    };
    assert_eq!(
        sorted_lines(&diff),
        [
            "- table `user` (removed; its rows would be lost)",
            "~ table `message`: column `text` changed type from string to u64",
        ],
        "the diff lists every incompatible change and nothing else"
    );
    assert!(diff.changes.contains(&IncompatibleChange::TableRemoved {
        table: "user".into()
    }));
    let error = HostError::IncompatibleSchema(diff).to_string();
    assert!(error.contains("column `text` changed type"), "{error}");

    // Bytes that are not a component are refused too.
    assert!(matches!(
        db.hot_swap(b"not a component", SwapPolicy::Compatible),
        Err(HostError::InvalidComponent(_))
    ));

    // Nothing changed, in memory or on disk, and the old module serves on.
    assert_eq!(db.schema(), &schema);
    assert_eq!(files(dir.path(), "snapshots"), snapshots);
    assert_eq!(files(dir.path(), "log"), segments);
    send(db, "still here", at(4000, BOB));
    assert_eq!(texts(db), ["one", "two", "three", "still here"]);
    assert_eq!(
        std::fs::read(dir.path().join("databases/chat/module.wasm")).unwrap(),
        guest_wasm("chat")
    );
    drop(host);
    let host = Host::open(dir.path(), config()).unwrap();
    let db = host.database("chat").unwrap();
    assert_eq!(db.schema(), &schema);
    assert_eq!(texts(db), ["one", "two", "three", "still here"]);
}

#[test]
fn an_in_memory_database_swaps_too_and_describe_previews_the_plan() {
    let engine = test_engine();
    let mut db = create_database(&engine, "chat");
    db.call_reducer("set_name", &args(&("bob",)), CallContext::new(BOB))
        .unwrap();
    send(&mut db, "hi", at(10, BOB));

    // A tool can read a component's schema and preview the plan without a database.
    let v2 = describe_component(&engine, &guest_wasm("chat-v2")).expect("describe chat-v2");
    assert!(v2.table_id("reaction").is_some());
    let preview = plan_migration(db.schema(), &v2).expect("compatible");
    assert!(matches!(
        describe_component(&engine, b"junk"),
        Err(HostError::InvalidComponent(_))
    ));
    let breaking = describe_component(&engine, &guest_wasm("chat-breaking")).unwrap();
    assert_eq!(
        plan_migration(db.schema(), &breaking)
            .unwrap_err()
            .changes
            .len(),
        2
    );

    let plan = db
        .hot_swap(&guest_wasm("chat-v2"), SwapPolicy::Compatible)
        .unwrap();
    assert_eq!(plan, preview);
    assert_eq!(db.schema(), &v2);
    assert_eq!(texts(&db), ["hi"]);
    assert_eq!(
        rows::<User>(&db, "user"),
        [User {
            identity: BOB.to_bytes(),
            name: Some("bob".into()),
            online: false
        }]
    );
    db.call_reducer("react", &args(&(1u64, "wave")), CallContext::new(ALICE))
        .unwrap();
    assert_eq!(db.rows("reaction").unwrap().len(), 1);
    // Swapping to the same module changes nothing.
    let plan = db
        .hot_swap(&guest_wasm("chat-v2"), SwapPolicy::Additive)
        .unwrap();
    assert!(plan.is_empty(), "{plan}");
    assert_eq!(db.rows("reaction").unwrap().len(), 1);
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A crash during a swap, simulated without hooks: a swap only adds files
/// until it replaces `module.wasm` (a log segment holding the swap's empty
/// record, then a snapshot tagged with the new module), so a copy of the
/// directory from before the swap plus those files is the state a crash
/// just before the replacement leaves behind; adding the new `module.wasm`
/// gives the state of a crash just after it (before old files are pruned).
#[test]
fn a_crash_on_either_side_of_the_module_replacement_recovers_one_module_with_every_row() {
    let swapped = TempDir::new("worldline-swap-crash");
    let (messages, users) = {
        let mut host = Host::open(swapped.path(), config()).unwrap();
        let db = chat_with_messages(&mut host);
        // A snapshot at the very offset the swap starts from: the swap must
        // not replace it, as the old module may need it after a crash.
        db.snapshot().unwrap();
        (db.rows("message").unwrap(), db.rows("user").unwrap())
    };
    let segments_before = files(swapped.path(), "log");
    let snapshots_before = files(swapped.path(), "snapshots");
    assert_eq!(snapshots_before.len(), 1);
    let swap_offset = offset_of(&snapshots_before[0]);
    assert!(
        offset_of(&segments_before[0]) > 0,
        "the snapshot let older segments go: {segments_before:?}"
    );
    let before = TempDir::new("worldline-swap-crash-before");
    copy_tree(swapped.path(), before.path());
    {
        let mut host = Host::open(swapped.path(), config()).unwrap();
        host.database_mut("chat")
            .unwrap()
            .hot_swap(&guest_wasm("chat-v2"), SwapPolicy::Compatible)
            .expect("swap");
    }
    let new_snapshot = files(swapped.path(), "snapshots").pop().unwrap();
    assert_eq!(offset_of(&new_snapshot), swap_offset + 1);
    let new_segment = files(swapped.path(), "log").pop().unwrap();
    assert_eq!(offset_of(&new_segment), swap_offset);
    let database = |root: &Path| root.join("databases/chat");
    for (sub, name) in [("snapshots", &new_snapshot), ("log", &new_segment)] {
        std::fs::copy(
            database(swapped.path()).join(sub).join(name),
            database(before.path()).join(sub).join(name),
        )
        .unwrap();
    }
    // The same state, then `module.wasm` replaced: just after the commit point.
    let after = TempDir::new("worldline-swap-crash-after");
    copy_tree(before.path(), after.path());
    std::fs::copy(
        database(swapped.path()).join("module.wasm"),
        database(after.path()).join("module.wasm"),
    )
    .unwrap();

    // Before the replacement: the old module, from its own snapshot and the log.
    {
        let mut host =
            Host::open(before.path(), config()).expect("recovery before the commit point");
        let report = &host.recovery_reports()[0].1;
        assert_eq!(report.snapshot, Some(swap_offset), "{report:?}");
        assert_eq!(report.replayed, 1, "the swap's empty record: {report:?}");
        let db = host.database_mut("chat").unwrap();
        assert!(db.schema().table_id("reaction").is_none(), "the old module");
        assert_eq!(db.rows("message").unwrap(), messages);
        assert_eq!(db.rows("user").unwrap(), users);
        assert_eq!(
            send(db, "after the crash", at(4000, BOB)),
            Some(swap_offset + 1)
        );
        // Swapping again works, and sticks.
        db.hot_swap(&guest_wasm("chat-v2"), SwapPolicy::Compatible)
            .expect("swap after the crash");
        assert_eq!(texts(db), ["one", "two", "three", "after the crash"]);
    }
    let host = Host::open(before.path(), config()).unwrap();
    let db = host.database("chat").unwrap();
    assert!(db.schema().table_id("reaction").is_some());
    assert_eq!(texts(db), ["one", "two", "three", "after the crash"]);
    assert_eq!(files(before.path(), "snapshots").len(), 1);

    // After the replacement: the new module, from the new snapshot.
    let mut host = Host::open(after.path(), config()).expect("recovery after the commit point");
    let report = &host.recovery_reports()[0].1;
    assert_eq!(report.snapshot, Some(swap_offset + 1), "{report:?}");
    assert_eq!(report.replayed, 0, "{report:?}");
    let db = host.database_mut("chat").unwrap();
    assert!(db.schema().table_id("reaction").is_some(), "the new module");
    assert_eq!(db.rows("message").unwrap(), messages);
    assert_eq!(db.rows("user").unwrap(), users);
    db.call_reducer("react", &args(&(1u64, "ok")), CallContext::new(ALICE))
        .expect("react");
}

#[test]
fn a_deleted_database_is_gone_and_its_name_can_be_published_again() {
    let dir = TempDir::new("worldline-delete");
    let mut host = Host::open(dir.path(), config()).unwrap();
    chat_with_messages(&mut host);
    host.publish("bank", &guest_wasm("bank"), OWNER).unwrap();

    host.delete_database("chat").expect("delete");
    assert!(host.database("chat").is_none());
    assert!(!dir.path().join("databases/chat").exists());
    assert_eq!(host.database_names().collect::<Vec<_>>(), ["bank"]);
    for unknown in ["chat", "nope", "../bank", ""] {
        assert!(
            matches!(
                host.delete_database(unknown),
                Err(HostError::NoSuchDatabase(name)) if name == unknown
            ),
            "{unknown}"
        );
    }

    // The name is free: publishing it again starts from nothing.
    let db = host.publish("chat", &guest_wasm("chat"), OWNER).unwrap();
    assert!(texts(db).is_empty());
    send(db, "fresh", at(1, ALICE));
    drop(host);
    let mut host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(texts(host.database("chat").unwrap()), ["fresh"]);

    // A database handed out must be dropped (its log closed) before it is deleted.
    let taken = host.take_database("chat").unwrap();
    assert!(matches!(
        host.delete_database("chat"),
        Err(HostError::DatabaseInUse(_))
    ));
    drop(taken);
    host.delete_database("chat")
        .expect("delete a dropped database");
    host.publish("chat", &guest_wasm("chat-v2"), OWNER)
        .expect("publish again");
    assert_eq!(texts(host.database("chat").unwrap()), ["welcome"]);
    drop(host);
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(host.database_names().collect::<Vec<_>>(), ["bank", "chat"]);
}

#[test]
fn an_interrupted_deletion_is_finished_on_open() {
    let dir = TempDir::new("worldline-delete-interrupted");
    {
        let mut host = Host::open(dir.path(), config()).unwrap();
        chat_with_messages(&mut host);
    }
    // A crash after the rename and before the removal leaves this behind.
    std::fs::rename(
        dir.path().join("databases/chat"),
        dir.path().join("databases/.deleted-chat"),
    )
    .unwrap();
    let host = Host::open(dir.path(), config()).unwrap();
    assert_eq!(host.database_names().count(), 0);
    assert!(!dir.path().join("databases/.deleted-chat").exists());
}
