//! Fuzzing the JSON argument converter (issue #9, "Tests that make this
//! stick"): random JSON against random types and reducer parameter lists
//! is a value or a typed error, never a panic; whatever reads, writes and
//! reads back the same; values convert to JSON and back unchanged, also for
//! types nested as deep as a schema allows.
//!
//! CI runs about a thousand cases per property. To fuzz longer, set the
//! case count, e.g. `PROPTEST_CASES=20000 cargo test -p worldline-datastore
//! --test fuzz_json`.

mod common;

use common::arbitrary::{
    any_json, any_product, any_type, bytes, cases, nested_type, typed_value, value_of,
};
use proptest::prelude::*;
use serde_json::Value as Json;
use worldline_datastore::{
    AlgebraicType as T, JsonError, MAX_NESTING_DEPTH, json_to_args, json_to_value, row_to_json,
    value_to_json,
};

proptest! {
    #![proptest_config(cases(1024))]

    /// Bytes -> JSON -> JSON text -> JSON -> bytes gives the codec's bytes
    /// back, and the JSON written the second time is the same.
    #[test]
    fn json_round_trips_agree_with_the_codec((ty, value) in typed_value()) {
        let encoded = bytes(&value);
        let json = value_to_json(&ty, &encoded)?;
        let text = serde_json::to_string(&json).unwrap();
        let parsed: Json = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&parsed, &json);
        let reencoded = json_to_value(&ty, &parsed)?;
        prop_assert_eq!(&reencoded, &encoded);
        prop_assert_eq!(value_to_json(&ty, &reencoded)?, json);
    }

    /// Arguments as an object (when every parameter is named) or as an
    /// array encode as the codec encodes the product of their values.
    #[test]
    fn arguments_round_trip((params, value) in any_product(any_type()).prop_flat_map(|params| {
        let values = value_of(&T::Product(params.clone()));
        (Just(params), values)
    })) {
        let ty = T::Product(params.clone());
        let params = &params;
        let encoded = bytes(&value);
        let as_object = row_to_json(params, &encoded)?;
        let as_array = match value_to_json(&ty, &encoded)? {
            Json::Object(map) => Json::Array(
                params.fields.iter().map(|f| map[f.name.as_deref().unwrap()].clone()).collect(),
            ),
            json => json,
        };
        if params.fields.iter().all(|f| f.name.is_some()) {
            prop_assert_eq!(json_to_args(params, &as_object)?, encoded.clone());
        }
        prop_assert_eq!(json_to_args(params, &as_array)?, encoded);
    }

    /// Any JSON against any type is a value or an error, never a panic,
    /// and whatever it reads as writes and reads back the same.
    #[test]
    fn random_json_never_panics(ty in any_type(), json in any_json()) {
        if let Ok(encoded) = json_to_value(&ty, &json) {
            let written = value_to_json(&ty, &encoded)?;
            prop_assert_eq!(json_to_value(&ty, &written)?, encoded);
        }
        if let T::Product(params) = &ty {
            let _ = json_to_args(params, &json);
        }
    }

    /// Any bytes against any type are JSON or a decode error, never a panic.
    #[test]
    fn random_bytes_never_panic(ty in any_type(), bytes in prop::collection::vec(any::<u8>(), 0..48)) {
        match value_to_json(&ty, &bytes) {
            // Not always the same bytes: the decoder accepts over-long varints and any NaN.
            Ok(json) => prop_assert_eq!(value_to_json(&ty, &json_to_value(&ty, &json)?)?, json),
            Err(e) => prop_assert!(matches!(e, JsonError::Decode(_))),
        }
        if let T::Product(columns) = &ty {
            let _ = row_to_json(columns, &bytes);
        }
    }

    /// Any schema type survives serde JSON.
    #[test]
    fn types_round_trip_through_serde(ty in any_type()) {
        let text = serde_json::to_string(&ty).unwrap();
        prop_assert_eq!(serde_json::from_str::<T>(&text).unwrap(), ty);
    }

    /// Values of types as deep as a schema allows convert to JSON and back
    /// (#9 item 1: every walk is bounded by the type's depth), and random
    /// JSON against such types is a value or an error.
    #[test]
    fn types_at_the_nesting_limit_convert_both_ways(
        (ty, value) in (1..=MAX_NESTING_DEPTH).prop_flat_map(nested_type).prop_flat_map(|ty| {
            let values = value_of(&ty);
            (Just(ty), values)
        }),
        json in any_json(),
    ) {
        let encoded = bytes(&value);
        let written = value_to_json(&ty, &encoded)?;
        prop_assert_eq!(json_to_value(&ty, &written)?, encoded);
        if let Ok(read) = json_to_value(&ty, &json) {
            prop_assert_eq!(json_to_value(&ty, &value_to_json(&ty, &read)?)?, read);
        }
    }
}
