//! `schema.json`: a start whose module describes other tables than it did
//! when it became the database's module is refused, and nothing is changed
//! by the refusal; other reducers over the same tables are taken.

use worldline_datastore::{AlgebraicType, IndexSchema, ModuleSchema};

use super::super::published_schema::SCHEMA_FILE;
use super::{MemoryDisk, config, database_with, open, open_described, publish, schema, values};
use crate::storage::StorageError;

/// The schema with table `t`'s column `n` of type `ty` and, if `indexed`, a unique index on it.
fn schema_with(ty: AlgebraicType, indexed: bool) -> ModuleSchema {
    let mut schema = schema();
    let table = &mut schema.tables[0];
    table.columns.fields[0].ty = ty;
    if indexed {
        table.indexes.push(IndexSchema {
            name: "t_n".into(),
            columns: vec![0],
            unique: true,
        });
    }
    schema
}

fn stored(disk: &MemoryDisk) -> Option<Vec<u8>> {
    disk.root().read(SCHEMA_FILE).ok()
}

/// Asserts that opening the database on `disk` is refused, naming `schema.json` as corrupt.
fn assert_refused_as_corrupt_record(disk: &MemoryDisk) {
    let error = open(disk, config(None, 1 << 20)).err().expect("refused");
    assert!(
        matches!(&error, StorageError::Corrupt { file, .. } if file == SCHEMA_FILE),
        "{error}"
    );
}

#[test]
fn a_start_whose_describe_changed_is_refused_and_changes_nothing() {
    let disk = database_with(3, config(None, 1 << 20));
    let recorded = stored(&disk).expect("publishing records the schema");

    for (changed, expected) in [
        (
            schema_with(AlgebraicType::U64, true),
            "+ unique index `t_n`",
        ),
        (schema_with(AlgebraicType::String, false), "`n`"),
    ] {
        let error = open_described(&disk, config(None, 1 << 20), &changed)
            .err()
            .expect("a changed description is refused");
        let StorageError::DescribeChanged(message) = &error else {
            panic!("expected DescribeChanged, got {error}");
        };
        assert!(
            message.contains("`describe` must be deterministic"),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
        assert_eq!(stored(&disk).as_ref(), Some(&recorded), "the record stays");
    }

    // The order of the tables is part of the description too.
    let mut reordered = schema();
    let mut second = reordered.tables[0].clone();
    second.name = "u".into();
    reordered.tables.insert(0, second);
    let error = open_described(&disk, config(None, 1 << 20), &reordered)
        .err()
        .expect("another table list is refused");
    assert!(matches!(error, StorageError::DescribeChanged(_)), "{error}");

    let (db, _) = open(&disk, config(None, 1 << 20)).expect("the published description opens");
    assert_eq!(
        values(&db.datastore),
        vec![0, 1, 2],
        "every transaction is there"
    );
}

// An outsider's module whose `describe` flipped a reducer's parameter type
// at random left its database unavailable at the next start, and only
// deleting the data brought it back; the stored rows fit either way.
#[test]
fn a_start_whose_describe_changed_only_its_reducers_opens_and_records_them() {
    use worldline_datastore::{Field, ProductType, ReducerSchema};
    let disk = database_with(3, config(None, 1 << 20));
    let recorded = stored(&disk).expect("publishing records the schema");
    let mut changed = schema();
    changed.reducers.push(ReducerSchema {
        name: "weird".into(),
        params: ProductType {
            fields: vec![Field {
                name: Some("w".into()),
                ty: AlgebraicType::U64,
            }],
        },
        lifecycle: None,
    });
    let (db, _) =
        open_described(&disk, config(None, 1 << 20), &changed).expect("the same tables open");
    assert_eq!(values(&db.datastore), vec![0, 1, 2]);
    drop(db);
    let now = stored(&disk).expect("a record");
    assert_ne!(now, recorded, "the new description is recorded");
    assert!(String::from_utf8_lossy(&now).contains("weird"));
}

#[test]
fn a_database_without_a_record_gets_one_at_its_next_start() {
    let disk = database_with(2, config(None, 1 << 20));
    let recorded = stored(&disk).expect("publishing records the schema");
    disk.root()
        .remove(SCHEMA_FILE)
        .expect("removing schema.json");

    let (db, _) = open(&disk, config(None, 1 << 20)).expect("opens without a record");
    drop(db);
    assert_eq!(stored(&disk), Some(recorded), "the start recorded it again");
    let changed = schema_with(AlgebraicType::U64, true);
    assert!(open_described(&disk, config(None, 1 << 20), &changed).is_err());
}

#[test]
fn a_record_of_another_module_is_replaced_by_this_ones() {
    let disk = database_with(1, config(None, 1 << 20));
    publish(&disk, b"module two");
    let other = schema_with(AlgebraicType::U64, true);
    // The record is of module one; module two describes `other`, and is not held to it.
    let (db, _) = open_described(&disk, config(None, 1 << 20), &other).expect("module two opens");
    drop(db);
    assert!(
        open(&disk, config(None, 1 << 20)).is_err(),
        "module two is now held to the description it gave"
    );
}

#[test]
fn a_swap_records_the_new_modules_description() {
    let disk = database_with(2, config(None, 1 << 20));
    let (mut db, _) = open(&disk, config(None, 1 << 20)).expect("open");
    let indexed = schema_with(AlgebraicType::U64, true);
    db.swap_described(b"module two", &indexed).expect("swap");
    db.commit().expect("commit after the swap");
    drop(db);

    assert!(
        open(&disk, config(None, 1 << 20)).is_err(),
        "the old description is not the new module's"
    );
    let (db, _) = open_described(&disk, config(None, 1 << 20), &indexed).expect("reopen");
    assert_eq!(values(&db.datastore), vec![0, 1, 2]);
}

#[test]
fn an_oversized_record_is_refused_as_corrupt() {
    let disk = database_with(0, config(None, 1 << 20));
    let root = disk.root();
    let mut file = root.create(SCHEMA_FILE).expect("create");
    file.set_len((64 << 20) + 1).expect("grow");
    assert_refused_as_corrupt_record(&disk);
}

#[test]
fn the_record_may_be_reformatted_but_not_garbled() {
    let disk = database_with(1, config(None, 1 << 20));
    let recorded = stored(&disk).expect("recorded");
    let value: serde_json::Value = serde_json::from_slice(&recorded).expect("JSON");
    let pretty = serde_json::to_vec_pretty(&value).expect("pretty");
    crate::storage::write_durably(&*disk.root(), "", SCHEMA_FILE, &pretty).expect("rewrite");
    drop(open(&disk, config(None, 1 << 20)).expect("the same description, reformatted"));

    crate::storage::write_durably(&*disk.root(), "", SCHEMA_FILE, b"{\"module_sha256\": 1")
        .expect("rewrite");
    assert_refused_as_corrupt_record(&disk);
}

#[test]
fn without_a_record_rows_are_validated_against_what_the_module_describes() {
    let disk = database_with(3, config(None, 1 << 20));
    disk.root()
        .remove(SCHEMA_FILE)
        .expect("removing schema.json");
    // Row 1 is the varint byte 1: as a string, a length with no byte after it.
    let error = open_described(
        &disk,
        config(None, 1 << 20),
        &schema_with(AlgebraicType::String, false),
    )
    .err()
    .expect("rows that do not fit the description are refused, not trusted");
    assert!(
        matches!(&error, StorageError::Corrupt { reason, .. } if reason.contains("does not apply")),
        "{error}"
    );
}

#[test]
fn a_garbled_record_is_refused_naming_where_it_breaks() {
    let disk = database_with(0, config(None, 1 << 20));
    let mut recorded = stored(&disk).expect("recorded");
    // A newline, then the record cut in the middle of the second line.
    recorded.insert(1, b'\n');
    recorded.truncate(40);
    crate::storage::write_durably(&*disk.root(), "", SCHEMA_FILE, &recorded).expect("rewrite");
    let error = open(&disk, config(None, 1 << 20)).err().expect("refused");
    let StorageError::Corrupt { file, offset, .. } = &error else {
        panic!("expected Corrupt, got {error}");
    };
    assert_eq!(file, SCHEMA_FILE);
    // serde_json places an early end at the last byte read.
    assert_eq!(*offset, 39, "{error}");
}

// A module put in place by hand whose tables the stored rows do not fit is
// refused, and the refusal leaves `schema.json` as it was (it recorded the
// refused module's description first, so the file no longer named the
// module the data belongs to); putting the right module back opens.
#[test]
fn a_start_refused_for_rows_that_do_not_fit_leaves_the_record() {
    let disk = database_with(3, config(None, 1 << 20));
    let recorded = stored(&disk).expect("recorded");
    let module_one = disk.root().read("module.wasm").expect("module.wasm");
    publish(&disk, b"module two");
    let strings = schema_with(AlgebraicType::String, false);
    assert!(open_described(&disk, config(None, 1 << 20), &strings).is_err());
    assert_eq!(
        stored(&disk),
        Some(recorded),
        "a refused start changed the record"
    );
    publish(&disk, &module_one);
    let (db, _) = open(&disk, config(None, 1 << 20)).expect("module one opens again");
    assert_eq!(values(&db.datastore), vec![0, 1, 2]);
}
