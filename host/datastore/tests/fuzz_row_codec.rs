//! Fuzzing the row codec against a schema (issue #9, "Tests that make this
//! stick"): random bytes, and valid encodings with a byte flipped, dropped
//! or added, decode as a value or a typed error against random types, never
//! a panic; what decodes re-encodes to bytes that decode to the same value;
//! valid values round-trip; a table takes random bytes as a row or refuses
//! them, and gives back exactly the rows it took; and types nested as deep
//! as a schema allows decode on a quarter of a database thread's stack.
//!
//! CI runs about a thousand cases per property. To fuzz longer, set the
//! case count, e.g. `PROPTEST_CASES=20000 cargo test -p worldline-datastore
//! --test fuzz_row_codec`.

mod common;

use common::arbitrary::{any_product, any_type, bytes, cases, nested_type, typed_value, value_of};
use proptest::prelude::*;
use worldline_datastore::{
    AlgebraicType as T, Datastore, IndexSchema, MAX_NESTING_DEPTH, ProductType, TableSchema, Value,
    decode_product, decode_value,
};

/// What decoding `input` as `ty` must satisfy: it fails, or it consumes a
/// prefix whose value re-encodes to bytes that decode to the same value
/// and are no longer than that prefix.
fn check_decode(ty: &T, input: &[u8]) -> Result<(), TestCaseError> {
    let mut rest = input;
    if let Ok(value) = decode_value(ty, &mut rest) {
        let consumed = input.len() - rest.len();
        let encoded = bytes(&value);
        prop_assert!(encoded.len() <= consumed, "{value} from {input:?}");
        let mut again = &encoded[..];
        prop_assert_eq!(decode_value(ty, &mut again)?, value);
        prop_assert!(again.is_empty());
    }
    if let T::Product(product) = ty
        && let Ok(fields) = decode_product(product, input)
    {
        let encoded = bytes(&Value::Product(fields.clone()));
        prop_assert_eq!(decode_product(product, &encoded)?, fields);
    }
    Ok(())
}

/// A valid encoding with one edit: a byte flipped, the input cut, or a byte added.
fn mutated() -> impl Strategy<Value = (T, Vec<u8>)> {
    (
        typed_value(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0..3u8,
    )
        .prop_map(|((ty, value), at, byte, edit)| {
            let mut encoded = bytes(&value);
            let position = at.index(encoded.len() + 1);
            match edit {
                0 if position < encoded.len() => encoded[position] ^= byte | 1,
                1 => encoded.truncate(position),
                _ => encoded.insert(position, byte),
            }
            (ty, encoded)
        })
}

/// A public table with the given columns (named `c0`, `c1`, ...) and, if
/// there is a column, an index on the first, unique or not.
fn table(columns: ProductType, unique: bool) -> TableSchema {
    let mut columns = columns;
    for (i, field) in columns.fields.iter_mut().enumerate() {
        field.name = Some(format!("c{i}"));
    }
    let indexes = if columns.fields.is_empty() {
        vec![]
    } else {
        vec![IndexSchema {
            name: "first".into(),
            columns: vec![0],
            unique,
        }]
    };
    TableSchema {
        name: "t".into(),
        primary_key: None,
        indexes,
        auto_inc: vec![],
        public: true,
        columns,
    }
}

proptest! {
    #![proptest_config(cases(1024))]

    /// Random bytes against a random type.
    #[test]
    fn random_bytes_decode_or_fail(ty in any_type(), input in prop::collection::vec(any::<u8>(), 0..64)) {
        check_decode(&ty, &input)?;
    }

    /// Valid encodings with one byte flipped, cut or added.
    #[test]
    fn damaged_encodings_decode_or_fail((ty, input) in mutated()) {
        check_decode(&ty, &input)?;
    }

    /// Valid values decode to themselves, with the bytes after them left over.
    #[test]
    fn valid_values_round_trip((ty, value) in typed_value(), tail in prop::collection::vec(any::<u8>(), 0..4)) {
        let mut input = bytes(&value);
        input.extend(&tail);
        let mut rest = &input[..];
        prop_assert_eq!(decode_value(&ty, &mut rest)?, value);
        prop_assert_eq!(rest, &tail[..]);
    }

    /// A table takes random bytes as a row or refuses them (no panic), and
    /// its rows are exactly the valid rows it took, in order.
    #[test]
    fn tables_take_valid_rows_and_refuse_the_rest(
        (columns, rows) in any_product(any_type()).prop_flat_map(|columns| {
            let row = value_of(&T::Product(columns.clone())).prop_map(|row| bytes(&row));
            let noise = prop::collection::vec(any::<u8>(), 0..24);
            let rows = prop::collection::vec(prop_oneof![row, noise], 0..8);
            (Just(columns), rows)
        }),
        unique in any::<bool>(),
    ) {
        let schema = table(columns, unique);
        let mut store = Datastore::new(vec![schema.clone()]);
        store.begin().unwrap();
        let mut taken = Vec::new();
        for row in &rows {
            let valid = decode_product(&schema.columns, row).is_ok();
            match store.insert(0, row) {
                Ok(stored) => {
                    prop_assert!(valid);
                    prop_assert_eq!(&*stored, &row[..]);
                    taken.push(row.clone());
                }
                // A valid row is refused only as a duplicate key.
                Err(e) => prop_assert!(!valid || unique, "{e}"),
            }
        }
        store.commit();
        let stored: Vec<Vec<u8>> = store.rows(0).unwrap().map(|row| row.to_vec()).collect();
        prop_assert_eq!(stored, taken);
    }

    /// Types as deep as a schema allows decode random bytes and round-trip
    /// values on a thread with a 512 KiB stack, a quarter of a database
    /// thread's, in a debug build (#9 item 1: every walk over a
    /// value is bounded by its type's depth).
    #[test]
    fn types_at_the_nesting_limit_decode_on_a_small_stack(
        (ty, value) in nested_type(MAX_NESTING_DEPTH).prop_flat_map(|ty| {
            let values = value_of(&ty);
            (Just(ty), values)
        }),
        noise in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let outcome = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                check_decode(&ty, &noise)?;
                let encoded = bytes(&value);
                prop_assert_eq!(decode_value(&ty, &mut &encoded[..])?, value.clone());
                prop_assert_eq!(value.clone(), value.clone());
                prop_assert!(!value.to_string().is_empty());
                Ok(())
            })
            .unwrap()
            .join()
            .unwrap();
        outcome?;
    }
}
