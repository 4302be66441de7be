//! Random types, values of them, and JSON, for the property tests and
//! fuzz targets of the codec and the JSON conversion.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value as Json;
use worldline_datastore::{AlgebraicType as T, Field, ProductType, SumType, Value, Variant};

/// `cases` cases, unless the `PROPTEST_CASES` environment variable says otherwise.
pub fn cases(cases: u32) -> Config {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => Config::default(),
        Err(_) => Config::with_cases(cases),
    }
}

/// The postcard bytes of `value`.
pub fn bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    worldline_datastore::encode_value(value, &mut out);
    out
}

/// Random types, a few levels deep: structs (all fields named), tuples
/// (none named), mixed products, and sums with distinct variant names.
pub fn any_type() -> impl Strategy<Value = T> {
    let leaf = prop_oneof![
        Just(T::Bool),
        Just(T::U8),
        Just(T::U16),
        Just(T::U32),
        Just(T::U64),
        Just(T::U128),
        Just(T::I8),
        Just(T::I16),
        Just(T::I32),
        Just(T::I64),
        Just(T::I128),
        Just(T::F32),
        Just(T::F64),
        Just(T::String),
        Just(T::Identity),
        Just(T::ConnectionId),
        Just(T::Timestamp),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| T::Option(Box::new(t))),
            inner.clone().prop_map(|t| T::Array(Box::new(t))),
            any_product(inner.clone()).prop_map(T::Product),
            prop::collection::vec(
                prop_oneof![inner, Just(T::Product(ProductType::default()))],
                1..4
            )
            .prop_map(|types| {
                T::Sum(SumType {
                    variants: types
                        .into_iter()
                        .enumerate()
                        .map(|(i, ty)| Variant {
                            name: format!("V{i}"),
                            ty,
                        })
                        .collect(),
                })
            }),
        ]
    })
}

/// Random products of `types`: structs (every field named), tuples (no
/// field named) or a mix.
pub fn any_product(types: impl Strategy<Value = T>) -> impl Strategy<Value = ProductType> {
    (prop::collection::vec(types, 0..4), 0..3usize).prop_map(|(types, naming)| ProductType {
        fields: types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| Field {
                name: match naming {
                    0 => Some(format!("f{i}")),
                    1 => None,
                    _ => (i % 2 == 0).then(|| format!("f{i}")),
                },
                ty,
            })
            .collect(),
    })
}

/// Random values of type `ty`. NaNs are the canonical NaN, the one `"NaN"` reads as.
pub fn value_of(ty: &T) -> BoxedStrategy<Value> {
    match ty {
        T::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        T::U8 => any::<u8>().prop_map(Value::U8).boxed(),
        T::U16 => any::<u16>().prop_map(Value::U16).boxed(),
        T::U32 => any::<u32>().prop_map(Value::U32).boxed(),
        T::U64 => any::<u64>().prop_map(Value::U64).boxed(),
        T::U128 => any::<u128>().prop_map(Value::U128).boxed(),
        T::I8 => any::<i8>().prop_map(Value::I8).boxed(),
        T::I16 => any::<i16>().prop_map(Value::I16).boxed(),
        T::I32 => any::<i32>().prop_map(Value::I32).boxed(),
        T::I64 => any::<i64>().prop_map(Value::I64).boxed(),
        T::I128 => any::<i128>().prop_map(Value::I128).boxed(),
        T::F32 => any::<u32>()
            .prop_map(|bits| {
                let v = f32::from_bits(bits);
                Value::F32(if v.is_nan() { f32::NAN } else { v })
            })
            .boxed(),
        T::F64 => any::<u64>()
            .prop_map(|bits| {
                let v = f64::from_bits(bits);
                Value::F64(if v.is_nan() { f64::NAN } else { v })
            })
            .boxed(),
        T::String => ".{0,8}".prop_map(|s| Value::String(s.into())).boxed(),
        T::Identity => any::<[u8; 32]>().prop_map(Value::Identity).boxed(),
        T::ConnectionId => any::<[u8; 16]>().prop_map(Value::ConnectionId).boxed(),
        T::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
        T::Option(inner) => prop::option::of(value_of(inner))
            .prop_map(|v| Value::Option(v.map(Box::new)))
            .boxed(),
        T::Array(inner) => prop::collection::vec(value_of(inner), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        T::Product(product) => product
            .fields
            .iter()
            .map(|f| value_of(&f.ty))
            .collect::<Vec<_>>()
            .prop_map(Value::Product)
            .boxed(),
        T::Sum(sum) => {
            let cases: Vec<_> = sum
                .variants
                .iter()
                .zip(0u32..)
                .map(|(v, tag)| value_of(&v.ty).prop_map(move |p| Value::Sum(tag, Box::new(p))))
                .collect();
            prop::strategy::Union::new(cases).boxed()
        }
    }
}

pub fn typed_value() -> impl Strategy<Value = (T, Value)> {
    any_type().prop_flat_map(|ty| {
        let values = value_of(&ty);
        (Just(ty), values)
    })
}

/// Random JSON, a few levels deep.
pub fn any_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        "[a-zA-Z0-9 ._:+-]{0,12}".prop_map(Json::String),
        prop_oneof![
            Just("NaN"),
            Just("inf"),
            Just("0x00"),
            Just("V0"),
            Just("V1"),
            Just("f0"),
            Just("some"),
            Just("1970-01-01T00:00:00Z"),
            Just("340282366920938463463374607431768211455"),
        ]
        .prop_map(Json::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("f0".to_owned()),
                        Just("f1".to_owned()),
                        Just("V0".to_owned()),
                        Just("V1".to_owned()),
                        Just("some".to_owned()),
                        "[a-z]{1,3}",
                    ],
                    inner
                ),
                0..3
            )
            .prop_map(|entries| Json::Object(entries.into_iter().collect())),
        ]
    })
}

/// A leaf type wrapped `depth - 1` times in options, arrays, one-field
/// structs, one-case sums or two-field tuples (with a `u8` beside it):
/// a type exactly `depth` levels deep. At most four of the wrappers are
/// arrays, so that random values of it stay small.
pub fn nested_type(depth: usize) -> impl Strategy<Value = T> {
    (
        prop_oneof![
            Just(T::U8),
            Just(T::String),
            Just(T::Identity),
            Just(T::F64)
        ],
        prop::collection::vec(0..5u8, depth - 1),
    )
        .prop_map(|(leaf, wrappers)| {
            let mut arrays = 0;
            wrappers
                .into_iter()
                .fold(leaf, |ty, wrapper| match wrapper {
                    1 if arrays < 4 => {
                        arrays += 1;
                        T::Array(Box::new(ty))
                    }
                    0 | 1 => T::Option(Box::new(ty)),
                    2 => T::Product(ProductType {
                        fields: vec![Field {
                            name: Some("inner".into()),
                            ty,
                        }],
                    }),
                    3 => T::Sum(SumType {
                        variants: vec![Variant {
                            name: "Inner".into(),
                            ty,
                        }],
                    }),
                    _ => T::Product(ProductType {
                        fields: vec![
                            Field {
                                name: None,
                                ty: T::U8,
                            },
                            Field { name: None, ty },
                        ],
                    }),
                })
        })
}
