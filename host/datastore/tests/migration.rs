//! Schema migrations: which changes are compatible, the readable diff of
//! the incompatible ones, and carrying rows, sequences and indexes over to
//! a new version of the tables.

mod common;

use common::*;
use worldline_datastore::{
    AlgebraicType, CompatibleChange, Datastore, Field, IncompatibleChange, IndexSchema, KeyBound,
    Lifecycle, MigrationError, ModuleSchema, ProcedureSchema, ProductType, ReducerSchema,
    TableSchema, Value, describe_changes, plan_migration,
};

fn column(name: &str, ty: AlgebraicType) -> Field {
    Field {
        name: Some(name.into()),
        ty,
    }
}

/// `tag(name: string primary key, uses: u64)`.
fn tag_schema() -> TableSchema {
    TableSchema {
        name: "tag".into(),
        columns: ProductType {
            fields: vec![
                column("name", AlgebraicType::String),
                column("uses", AlgebraicType::U64),
            ],
        },
        primary_key: Some(0),
        indexes: vec![IndexSchema {
            name: "tag_name_pk".into(),
            columns: vec![0],
            unique: true,
        }],
        auto_inc: vec![],
        public: false,
    }
}

fn reducer(name: &str, params: Vec<Field>) -> ReducerSchema {
    ReducerSchema {
        name: name.into(),
        params: ProductType { fields: params },
        lifecycle: None,
    }
}

/// Version 1: tables `item` and `tag`, reducers `init`, `add` and `drop_all`.
fn v1() -> ModuleSchema {
    ModuleSchema {
        tables: vec![item_schema(), tag_schema()],
        reducers: vec![
            ReducerSchema {
                lifecycle: Some(Lifecycle::Init),
                ..reducer("init", vec![])
            },
            reducer("add", vec![column("sku", AlgebraicType::String)]),
            reducer("drop_all", vec![]),
        ],
        procedures: Vec::new(),
        schedules: Vec::new(),
    }
}

fn plan_lines(old: &ModuleSchema, new: &ModuleSchema) -> Vec<String> {
    let plan = plan_migration(old, new).expect("compatible");
    plan.to_string().lines().map(str::to_owned).collect()
}

fn diff_lines(old: &ModuleSchema, new: &ModuleSchema) -> Vec<String> {
    let diff = plan_migration(old, new).expect_err("incompatible");
    assert_eq!(diff.to_string().lines().count(), diff.changes.len());
    diff.to_string().lines().map(str::to_owned).collect()
}

#[test]
fn the_same_schema_in_another_table_order_needs_no_changes() {
    let old = v1();
    assert!(plan_migration(&old, &old).unwrap().is_empty());
    let mut reordered = v1();
    reordered.tables.reverse();
    reordered.reducers.reverse();
    let plan = plan_migration(&old, &reordered).unwrap();
    assert!(plan.is_empty(), "{plan}");
    assert_eq!(plan.to_string(), "");
}

#[test]
fn compatible_changes_are_planned_with_readable_lines() {
    let old = v1();
    let mut new = v1();
    // A new table, first, so every table id moves.
    new.tables.insert(
        0,
        TableSchema {
            name: "reaction".into(),
            ..tag_schema()
        },
    );
    let item = &mut new.tables[1];
    item.indexes.push(IndexSchema {
        name: "item_rank".into(),
        columns: vec![3],
        unique: false,
    });
    item.indexes.push(IndexSchema {
        name: "item_owner_sku".into(),
        columns: vec![2, 1],
        unique: true,
    });
    item.indexes.remove(BY_OWNER_RANK);
    item.public = false;
    new.tables[2].public = true;
    new.reducers.remove(2); // drop_all
    new.reducers[1]
        .params
        .fields
        .push(column("owner", AlgebraicType::U32));
    new.reducers.push(reducer("react", vec![]));
    let plan = plan_migration(&old, &new).unwrap();
    assert_eq!(
        plan_lines(&old, &new),
        [
            "- index `item_owner_rank` on `item`(owner, rank)",
            "+ index `item_rank` on `item`(rank)",
            "+ unique index `item_owner_sku` on `item`(owner, sku)",
            "~ table `item` is now private",
            "~ table `tag` is now public",
            "+ table `reaction`",
            "~ reducer `add`: parameters (sku: string) -> (sku: string, owner: u32)",
            "- reducer `drop_all`",
            "+ reducer `react`",
        ]
    );
    assert!(!plan.is_additive());
    let additive: Vec<bool> = plan
        .changes
        .iter()
        .map(CompatibleChange::is_additive)
        .collect();
    assert_eq!(
        additive,
        [false, true, true, false, true, true, false, false, true]
    );
    assert_eq!(
        plan.changes[1],
        CompatibleChange::IndexAdded {
            table: "item".into(),
            index: "item_rank".into(),
            columns: vec!["rank".into()],
            unique: false,
        }
    );
}

#[test]
fn a_lifecycle_change_is_a_reducer_change() {
    let old = v1();
    let mut new = v1();
    new.reducers[2].lifecycle = Some(Lifecycle::ClientConnected);
    assert_eq!(
        plan_lines(&old, &new),
        ["~ reducer `drop_all`: lifecycle none -> client_connected"]
    );
}

// A hook moved to a reducer of another name (`publish` printed only
// "- reducer `connected`" and "+ reducer `connected2`") says which hook
// each side was.
#[test]
fn a_hook_moved_to_another_reducer_names_the_hook_on_both_sides() {
    let mut old = v1();
    let mut connected = reducer("connected", vec![]);
    connected.lifecycle = Some(Lifecycle::ClientConnected);
    old.reducers.push(connected.clone());
    let mut new = v1();
    connected.name = "connected2".into();
    new.reducers.push(connected);
    assert_eq!(
        plan_lines(&old, &new),
        [
            "- reducer `connected` (was lifecycle client_connected)",
            "+ reducer `connected2` (lifecycle client_connected)",
        ]
    );
}

fn procedure(name: &str, params: Vec<Field>, returns: AlgebraicType) -> ProcedureSchema {
    ProcedureSchema {
        name: name.into(),
        params: ProductType { fields: params },
        returns,
    }
}

#[test]
fn procedures_added_removed_and_changed_are_listed() {
    let mut old = v1();
    old.procedures = vec![
        procedure(
            "fetch",
            vec![column("url", AlgebraicType::String)],
            AlgebraicType::U64,
        ),
        procedure("total", vec![], AlgebraicType::U64),
        procedure("ping", vec![], AlgebraicType::U64),
        procedure("gone", vec![], AlgebraicType::U64),
    ];
    let mut new = old.clone();
    new.procedures.remove(3); // gone
    new.procedures[0]
        .params
        .fields
        .push(column("retries", AlgebraicType::U8));
    new.procedures[0].returns = AlgebraicType::String;
    new.procedures[1].returns = AlgebraicType::I64;
    new.procedures
        .push(procedure("refresh", vec![], AlgebraicType::U64));
    let plan = plan_migration(&old, &new).unwrap();
    assert_eq!(
        plan_lines(&old, &new),
        [
            "~ procedure `fetch`: parameters (url: string) -> (url: string, retries: u8), \
             returns u64 -> string",
            "~ procedure `total`: returns u64 -> i64",
            "- procedure `gone`",
            "+ procedure `refresh`",
        ]
    );
    let additive: Vec<bool> = plan
        .changes
        .iter()
        .map(CompatibleChange::is_additive)
        .collect();
    assert_eq!(additive, [false, false, false, true]);
}

#[test]
fn every_incompatible_change_is_listed() {
    let old = v1();
    let mut new = v1();
    new.tables.remove(1); // tag
    let item = &mut new.tables[0];
    // sku becomes a u64, owner is renamed to holder, rank is dropped and
    // a new column is added.
    item.columns.fields[1].ty = AlgebraicType::U64;
    item.columns.fields[2].name = Some("holder".into());
    item.columns.fields[3] = column(
        "color",
        AlgebraicType::Option(Box::new(AlgebraicType::String)),
    );
    item.indexes.truncate(2);
    // A compatible change alongside is not reported as a problem.
    new.reducers.push(reducer("react", vec![]));
    let diff = plan_migration(&old, &new).unwrap_err();
    assert_eq!(
        diff_lines(&old, &new),
        [
            "~ table `item`: column `rank` removed",
            "~ table `item`: column `owner` renamed to `holder`",
            "~ table `item`: column `color` (Option<string>) added",
            "~ table `item`: column `sku` changed type from string to u64",
            "- table `tag` (removed; its rows would be lost)",
        ]
    );
    assert!(diff.changes.contains(&IncompatibleChange::TableRemoved {
        table: "tag".into()
    }));
    assert!(
        diff.changes
            .contains(&IncompatibleChange::ColumnTypeChanged {
                table: "item".into(),
                column: "sku".into(),
                from: AlgebraicType::String,
                to: AlgebraicType::U64,
            })
    );
}

#[test]
fn reordered_columns_primary_key_and_auto_increment_changes_are_incompatible() {
    let old = v1();
    let mut new = v1();
    let item = &mut new.tables[0];
    item.columns.fields.swap(2, 3); // owner and rank trade places
    item.auto_inc.clear();
    let tag = &mut new.tables[1];
    tag.indexes.push(IndexSchema {
        name: "tag_uses_key".into(),
        columns: vec![1],
        unique: true,
    });
    tag.primary_key = Some(1);
    assert_eq!(
        diff_lines(&old, &new),
        [
            "~ table `item`: columns reordered from (id, sku, owner, rank) to (id, sku, rank, owner)",
            "~ table `item`: auto-increment columns changed from (id) to ()",
            "~ table `tag`: primary key changed from (name) to (uses)",
        ]
    );
    // Dropping the primary key altogether.
    let mut new = v1();
    new.tables[1].primary_key = None;
    assert_eq!(
        diff_lines(&old, &new),
        ["~ table `tag`: primary key changed from (name) to none"]
    );
}

fn insert_items(store: &mut Datastore, items: &[(&str, u32, i32)]) {
    store.begin().unwrap();
    for &(sku, owner, rank) in items {
        store
            .insert(ITEM, &Item::new(0, sku, owner, rank).encode())
            .unwrap();
    }
    store.commit();
}

fn items(store: &Datastore, table: usize) -> Vec<Item> {
    store.rows(table).unwrap().map(Item::decode).collect()
}

/// Version 2 of the tables: `tag` first and public, `item` without its
/// `(owner, rank)` index but with a btree index on `rank`.
fn v2_tables() -> Vec<TableSchema> {
    let mut item = item_schema();
    item.indexes[BY_OWNER_RANK] = IndexSchema {
        name: "item_rank".into(),
        columns: vec![3],
        unique: false,
    };
    vec![
        TableSchema {
            public: true,
            ..tag_schema()
        },
        item,
    ]
}

#[test]
fn rows_sequences_and_new_indexes_carry_over_by_table_name() {
    let mut store = Datastore::new(vec![item_schema(), tag_schema()]);
    insert_items(&mut store, &[("a", 1, 30), ("b", 2, 10), ("c", 1, 20)]);
    // Delete one, so the order and the sequence are not just 1, 2, 3.
    store.begin().unwrap();
    store.delete(ITEM, BY_ID, &key(&[Value::U32(2)])).unwrap();
    store
        .insert(ITEM, &Item::new(0, "d", 3, 5).encode())
        .unwrap();
    store.commit();
    let before = items(&store, ITEM);

    let mut migrated = store.migrate(&v2_tables()).expect("migrate");
    assert!(!migrated.in_transaction());
    assert_eq!(migrated.tables(), v2_tables().as_slice());
    assert_eq!(migrated.count(0).unwrap(), 0, "tag is empty");
    assert_eq!(items(&migrated, 1), before, "rows keep insertion order");
    // The old datastore is untouched.
    assert_eq!(items(&store, ITEM), before);

    // The sequence continues after 4.
    migrated.begin().unwrap();
    let stored = migrated
        .insert(1, &Item::new(0, "e", 9, 1).encode())
        .unwrap();
    migrated.commit();
    assert_eq!(Item::decode(&stored).id, 5);

    // The new index is built from the old rows and kept up to date.
    let cursor = migrated
        .scan_index(1, 2, &KeyBound::Unbounded, &KeyBound::Unbounded)
        .unwrap();
    let by_rank: Vec<String> = drain(&migrated, cursor, 10)
        .into_iter()
        .map(|i| i.sku)
        .collect();
    assert_eq!(by_rank, ["e", "d", "c", "a"]);
    // Unique indexes still hold.
    migrated.begin().unwrap();
    let duplicate = migrated.insert(1, &Item::new(0, "a", 7, 7).encode());
    assert!(duplicate.is_err(), "{duplicate:?}");
    migrated.rollback();
    // And the sequences as snapshots see them: table 1's only sequence.
    let sequences = migrated.sequences();
    assert_eq!(sequences.len(), 1);
    assert_eq!((sequences[0].table, sequences[0].next), (1, 6));
}

#[test]
fn an_exhausted_sequence_stays_exhausted() {
    let mut store = store();
    store.begin().unwrap();
    store
        .insert(ITEM, &Item::new(u32::MAX, "max", 1, 1).encode())
        .unwrap();
    store.commit();
    let mut migrated = store.migrate(&[item_schema()]).unwrap();
    assert_eq!(migrated.sequences(), store.sequences());
    migrated.begin().unwrap();
    let error = migrated
        .insert(ITEM, &Item::new(0, "next", 1, 1).encode())
        .unwrap_err();
    assert!(error.message.contains("no values left"), "{error}");
}

#[test]
fn a_new_unique_index_that_rows_violate_fails_and_changes_nothing() {
    let mut store = store();
    insert_items(&mut store, &[("a", 1, 5), ("b", 2, 5), ("c", 1, 5)]);
    let mut tables = vec![item_schema()];
    tables[0].indexes.push(IndexSchema {
        name: "item_owner_rank_key".into(),
        columns: vec![2, 3],
        unique: true,
    });
    let error = store.migrate(&tables).unwrap_err();
    assert_eq!(
        error,
        MigrationError::UniqueViolation {
            table: "item".into(),
            index: "item_owner_rank_key".into(),
            key: "(1, 5)".into(),
        }
    );
    assert_eq!(
        error.to_string(),
        "cannot build unique index `item_owner_rank_key` on table `item`: \
         two rows have the key (1, 5)"
    );
    assert_eq!(store.tables(), [item_schema()].as_slice());
    assert_eq!(items(&store, ITEM).len(), 3);
    // Without the duplicate the same index builds.
    store.begin().unwrap();
    store.delete(ITEM, BY_ID, &key(&[Value::U32(3)])).unwrap();
    store.commit();
    let migrated = store.migrate(&tables).expect("no duplicates left");
    assert_eq!(
        migrated
            .find(ITEM, 3, &key(&[Value::U32(2), Value::I32(5)]))
            .unwrap()
            .map(|row| Item::decode(&row).sku),
        Some("b".into())
    );
}

#[test]
fn migrating_inside_a_transaction_or_to_a_bad_schema_is_refused() {
    let mut store = store();
    store.begin().unwrap();
    assert_eq!(
        store.migrate(&[item_schema()]).unwrap_err(),
        MigrationError::InTransaction
    );
    store.rollback();

    let mut removed_column = item_schema();
    removed_column.columns.fields.pop();
    removed_column.indexes.pop();
    match store.migrate(&[removed_column]).unwrap_err() {
        MigrationError::Incompatible(diff) => assert_eq!(
            diff.changes,
            [IncompatibleChange::ColumnRemoved {
                table: "item".into(),
                column: "rank".into()
            }]
        ),
        other => panic!("expected an incompatible schema, got {other}"),
    }
    // Dropping a table loses rows.
    assert!(matches!(
        store.migrate(&[]).unwrap_err(),
        MigrationError::Incompatible(_)
    ));

    // An index on a column that does not exist is an error, not a panic.
    let mut invalid = item_schema();
    invalid.indexes[BY_OWNER_RANK].columns = vec![2, 9];
    let error = store.migrate(&[invalid]).unwrap_err();
    assert!(matches!(error, MigrationError::InvalidSchema(_)), "{error}");
    assert!(
        error.to_string().contains("column 9 does not exist"),
        "{error}"
    );
}

// Two descriptions that should be the same (a `describe` that is not
// deterministic) are told apart by every change, the compatible ones too:
// a table renamed shows both its old and its new name.
#[test]
fn describe_changes_lists_the_compatible_changes_beside_the_incompatible() {
    let old = v1();
    let mut new = v1();
    new.tables[1].name = "label".into();
    assert_eq!(
        describe_changes(&old, &new)
            .expect("changes")
            .lines()
            .collect::<Vec<_>>(),
        [
            "- table `tag` (removed; its rows would be lost)",
            "+ table `label`"
        ]
    );
    assert_eq!(describe_changes(&old, &v1()), None);
}
