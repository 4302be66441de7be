//! JSON <-> postcard conversion: every type, every error message shape and
//! the serde form of schemas. The property tests (round trips agree with the
//! postcard codec, no input panics) are in `fuzz_json.rs`.

use serde_json::{Value as Json, json};
use worldline_datastore::{
    AlgebraicType as T, Field, IndexSchema, JsonError, JsonProblem, Lifecycle, ModuleSchema,
    PathSegment, ProductType, ReducerSchema, SumType, TableSchema, Value, Variant, encode_value,
    json_to_args, json_to_value, row_to_json, value_to_json,
};

fn bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

fn field(name: &str, ty: T) -> Field {
    Field {
        name: Some(name.into()),
        ty,
    }
}

fn unnamed(ty: T) -> Field {
    Field { name: None, ty }
}

fn record(fields: Vec<Field>) -> ProductType {
    ProductType { fields }
}

fn unit() -> T {
    T::Product(ProductType::default())
}

fn option(ty: T) -> T {
    T::Option(Box::new(ty))
}

fn array(ty: T) -> T {
    T::Array(Box::new(ty))
}

/// `{Idle | Circle(f64) | Rect(w: u32, h: u32)}`
fn shape() -> T {
    T::Sum(SumType {
        variants: vec![
            Variant {
                name: "Idle".into(),
                ty: unit(),
            },
            Variant {
                name: "Circle".into(),
                ty: T::F64,
            },
            Variant {
                name: "Rect".into(),
                ty: T::Product(record(vec![field("w", T::U32), field("h", T::U32)])),
            },
        ],
    })
}

/// JSON in, bytes compared with the codec's encoding of `expected`, and
/// back out to `json_out`.
#[track_caller]
fn reads_as(ty: &T, json_in: Json, expected: Value, json_out: Json) {
    let encoded =
        json_to_value(ty, &json_in).unwrap_or_else(|e| panic!("{json_in} as {ty} failed: {e}"));
    assert_eq!(encoded, bytes(&expected), "{json_in} as {ty}");
    assert_eq!(
        value_to_json(ty, &encoded).unwrap(),
        json_out,
        "{json_in} as {ty}"
    );
}

/// A value that reads as `expected` and is written back unchanged.
#[track_caller]
fn round_trips(ty: &T, json: Json, expected: Value) {
    reads_as(ty, json.clone(), expected, json);
}

#[track_caller]
fn error(ty: &T, json: Json) -> String {
    json_to_value(ty, &json)
        .expect_err(&format!("{json} as {ty} should fail"))
        .to_string()
}

#[track_caller]
fn args_error(params: &ProductType, json: Json) -> String {
    json_to_args(params, &json)
        .expect_err(&format!("{json} as {params} should fail"))
        .to_string()
}

#[test]
fn bools() {
    round_trips(&T::Bool, json!(true), Value::Bool(true));
    round_trips(&T::Bool, json!(false), Value::Bool(false));
    assert_eq!(error(&T::Bool, json!(1)), "expected bool, found 1");
    assert_eq!(
        error(&T::Bool, json!("true")),
        "expected bool, found string \"true\""
    );
}

#[test]
fn integers_are_range_checked_at_both_ends() {
    let cases: Vec<(T, Value, Value, Json, Json)> = vec![
        (T::U8, Value::U8(0), Value::U8(255), json!(-1), json!(256)),
        (
            T::U16,
            Value::U16(0),
            Value::U16(u16::MAX),
            json!(-1),
            json!(65536),
        ),
        (
            T::U32,
            Value::U32(0),
            Value::U32(u32::MAX),
            json!(-1),
            json!(4294967296u64),
        ),
        (
            T::U64,
            Value::U64(0),
            Value::U64(u64::MAX),
            json!(-1),
            json!("18446744073709551616"),
        ),
        (
            T::I8,
            Value::I8(i8::MIN),
            Value::I8(i8::MAX),
            json!(-129),
            json!(128),
        ),
        (
            T::I16,
            Value::I16(i16::MIN),
            Value::I16(i16::MAX),
            json!(-32769),
            json!(32768),
        ),
        (
            T::I32,
            Value::I32(i32::MIN),
            Value::I32(i32::MAX),
            json!(-2147483649i64),
            json!(2147483648u64),
        ),
        (
            T::I64,
            Value::I64(i64::MIN),
            Value::I64(i64::MAX),
            json!("-9223372036854775809"),
            json!(9223372036854775808u64),
        ),
        (
            T::Timestamp,
            Value::Timestamp(i64::MIN),
            Value::Timestamp(i64::MAX),
            json!("-9223372036854775809"),
            json!(9223372036854775808u64),
        ),
    ];
    for (ty, min, max, below, above) in cases {
        let as_json = |v: &Value| value_to_json(&ty, &bytes(v)).unwrap();
        round_trips(&ty, as_json(&min), min.clone());
        round_trips(&ty, as_json(&max), max.clone());
        assert!(as_json(&max).is_number(), "{ty} max is a number");
        for outside in [below, above] {
            let message = error(&ty, outside.clone());
            assert!(
                message.ends_with("(out of range)"),
                "{outside} as {ty}: {message}"
            );
        }
    }
    assert_eq!(
        error(&T::U8, json!(300)),
        "expected u8, found 300 (out of range)"
    );
    assert_eq!(
        error(&T::U8, json!("-1")),
        "expected u8, found string \"-1\" (out of range)"
    );
}

#[test]
fn integers_are_also_read_from_decimal_strings_and_integral_floats() {
    reads_as(&T::U8, json!("200"), Value::U8(200), json!(200));
    reads_as(&T::I32, json!("-7"), Value::I32(-7), json!(-7));
    reads_as(&T::I32, json!("+7"), Value::I32(7), json!(7));
    reads_as(&T::U64, json!("-0"), Value::U64(0), json!(0));
    reads_as(&T::I64, json!(5.0), Value::I64(5), json!(5));
    reads_as(&T::I64, json!(-1e3), Value::I64(-1000), json!(-1000));
    reads_as(&T::U64, json!(-0.0), Value::U64(0), json!(0));
    reads_as(
        &T::U64,
        json!(9007199254740991.0),
        Value::U64((1 << 53) - 1),
        json!(9007199254740991u64),
    );
    assert_eq!(error(&T::I64, json!(1.5)), "expected i64, found 1.5");
    assert_eq!(
        error(&T::I64, json!("abc")),
        "expected i64, found string \"abc\""
    );
    assert_eq!(error(&T::I64, json!("")), "expected i64, found string \"\"");
    assert_eq!(
        error(&T::I64, json!(" 1")),
        "expected i64, found string \" 1\""
    );
    assert_eq!(error(&T::U32, json!(null)), "expected u32, found null");
    assert_eq!(
        error(&T::U32, json!([1])),
        "expected u32, found an array of 1 element"
    );
    // From 2^53 on a JSON float is not exact, in range or not: 2^53 + 1
    // is read as 2^53, so 2^53 itself is refused too.
    assert_eq!(
        error(&T::U64, serde_json::from_str("9007199254740993.0").unwrap()),
        "expected u64, found 9007199254740992.0 (too large to be exact as a JSON number; \
         write it as a decimal string)"
    );
    assert_eq!(
        error(&T::I64, json!(-9007199254740992.0)),
        "expected i64, found -9007199254740992.0 (too large to be exact as a JSON number; \
         write it as a decimal string)"
    );
    // Far beyond it, in range or not.
    assert_eq!(
        error(&T::U64, json!(1e19)),
        "expected u64, found 1e+19 (too large to be exact as a JSON number; \
         write it as a decimal string)"
    );
    assert_eq!(
        error(&T::U64, json!(1e20)),
        "expected u64, found 1e+20 (out of range)"
    );
    assert_eq!(
        error(&T::I8, json!(-1e300)),
        "expected i8, found -1e+300 (out of range)"
    );
    assert!(error(&T::I128, json!(-1e300)).contains("decimal string"));
    let huge = "9".repeat(1000);
    assert!(error(&T::U128, json!(huge)).ends_with("\"... (out of range)"));
}

#[test]
fn wide_integers_beyond_64_bits_are_decimal_strings() {
    round_trips(&T::U128, json!(u64::MAX), Value::U128(u64::MAX.into()));
    round_trips(
        &T::U128,
        json!("18446744073709551616"),
        Value::U128(1 << 64),
    );
    round_trips(
        &T::U128,
        json!(u128::MAX.to_string()),
        Value::U128(u128::MAX),
    );
    round_trips(&T::I128, json!(i64::MIN), Value::I128(i64::MIN.into()));
    round_trips(&T::I128, json!(u64::MAX), Value::I128(u64::MAX.into()));
    round_trips(
        &T::I128,
        json!(i128::MIN.to_string()),
        Value::I128(i128::MIN),
    );
    round_trips(
        &T::I128,
        json!(i128::MAX.to_string()),
        Value::I128(i128::MAX),
    );
    round_trips(
        &T::I128,
        json!("-9223372036854775809"),
        Value::I128(i128::from(i64::MIN) - 1),
    );
    reads_as(&T::U128, json!("5"), Value::U128(5), json!(5));
    assert_eq!(
        error(&T::U128, json!("340282366920938463463374607431768211456")),
        "expected u128, found string \"340282366920938463463374607431768211456\" (out of range)"
    );
    assert_eq!(
        error(&T::I128, json!("-170141183460469231731687303715884105729")),
        "expected i128, found string \"-170141183460469231731687303715884105729\" (out of range)"
    );
    assert_eq!(
        error(&T::U128, json!("1e3")),
        "expected u128, found string \"1e3\""
    );
}

#[test]
fn floats_write_non_finite_values_as_strings() {
    round_trips(&T::F64, json!(1.5), Value::F64(1.5));
    round_trips(&T::F64, json!(-0.0), Value::F64(-0.0));
    round_trips(&T::F64, json!(f64::MAX), Value::F64(f64::MAX));
    round_trips(&T::F64, json!(5e-324), Value::F64(5e-324));
    reads_as(&T::F64, json!(2), Value::F64(2.0), json!(2.0));
    reads_as(&T::F64, json!("0.25"), Value::F64(0.25), json!(0.25));
    round_trips(&T::F64, json!("NaN"), Value::F64(f64::NAN));
    round_trips(&T::F64, json!("inf"), Value::F64(f64::INFINITY));
    round_trips(&T::F64, json!("-inf"), Value::F64(f64::NEG_INFINITY));
    reads_as(
        &T::F64,
        json!("-Infinity"),
        Value::F64(f64::NEG_INFINITY),
        json!("-inf"),
    );
    reads_as(&T::F32, json!("nan"), Value::F32(f32::NAN), json!("NaN"));
    round_trips(&T::F32, json!("inf"), Value::F32(f32::INFINITY));
    // An f32 is written as its shortest decimal, not its exact f64 widening.
    round_trips(&T::F32, json!(0.1), Value::F32(0.1));
    reads_as(
        &T::F32,
        json!(f64::from(f32::MAX)),
        Value::F32(f32::MAX),
        json!(3.4028235e38),
    );
    reads_as(&T::F64, json!("-NaN"), Value::F64(f64::NAN), json!("NaN"));
    reads_as(&T::F32, json!(1e-50), Value::F32(0.0), json!(0.0));
    // The shortest decimal of this f32 would round (via f64) to its neighbour,
    // so it is written exactly instead.
    let tricky = f32::from_bits(0x15ae43fd);
    let written = value_to_json(&T::F32, &bytes(&Value::F32(tricky))).unwrap();
    assert_eq!(written, json!(f64::from(tricky)));
    let reread = json_to_value(&T::F32, &written).unwrap();
    assert_eq!(reread, bytes(&Value::F32(tricky)));

    assert_eq!(
        error(&T::F32, json!(1e39)),
        "expected f32, found 1e+39 (out of range)"
    );
    assert_eq!(
        error(&T::F64, json!("1e400")),
        "expected f64, found string \"1e400\" (out of range)"
    );
    assert_eq!(
        error(&T::F64, json!("one")),
        "expected f64, found string \"one\""
    );
    assert_eq!(error(&T::F64, json!(true)), "expected f64, found true");
}

#[test]
fn strings() {
    round_trips(&T::String, json!(""), Value::String("".into()));
    round_trips(
        &T::String,
        json!("héllo \"\u{1F600}\"\n"),
        Value::String("héllo \"\u{1F600}\"\n".into()),
    );
    assert_eq!(error(&T::String, json!(5)), "expected string, found 5");
    assert_eq!(
        error(&T::String, json!({"a": 1, "b": 2, "c": 3, "d": 4})),
        "expected string, found an object with keys \"a\", \"b\", \"c\", ..."
    );
    assert_eq!(
        error(&T::String, json!({})),
        "expected string, found an empty object"
    );
}

#[test]
fn identities_and_connection_ids_are_hex() {
    let mut id = [0u8; 32];
    id.iter_mut().zip(0u8..).for_each(|(b, i)| *b = i * 8);
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    round_trips(&T::Identity, json!(format!("0x{hex}")), Value::Identity(id));
    reads_as(
        &T::Identity,
        json!(hex.to_uppercase()),
        Value::Identity(id),
        json!(format!("0x{hex}")),
    );
    reads_as(
        &T::Identity,
        json!(format!("0X{hex}")),
        Value::Identity(id),
        json!(format!("0x{hex}")),
    );
    round_trips(
        &T::ConnectionId,
        json!(format!("0x{}", "ab".repeat(16))),
        Value::ConnectionId([0xab; 16]),
    );
    assert_eq!(
        error(&T::Identity, json!("0x1234")),
        "expected identity (64 hex digits, optionally after 0x), found string \"0x1234\""
    );
    assert!(
        error(&T::Identity, json!(format!("0x{}", "g".repeat(64))))
            .starts_with("expected identity")
    );
    assert!(error(&T::Identity, json!("é".repeat(32))).starts_with("expected identity"));
    assert_eq!(
        error(&T::ConnectionId, json!(hex)),
        format!(
            "expected connection_id (32 hex digits, optionally after 0x), found string \"{}\"...",
            &hex[..40]
        )
    );
}

#[test]
fn timestamps_are_microseconds_or_rfc3339() {
    round_trips(&T::Timestamp, json!(0), Value::Timestamp(0));
    round_trips(&T::Timestamp, json!(-1), Value::Timestamp(-1));
    let cases = [
        ("1970-01-01T00:00:00Z", 0),
        ("2024-02-29T12:30:00.25+01:00", 1_709_206_200_250_000),
        ("2024-02-29t11:30:00.250000999z", 1_709_206_200_250_000),
        ("2024-02-29 06:00:00.25-05:30", 1_709_206_200_250_000),
        ("1969-12-31T23:59:59.5Z", -500_000),
        ("2000-03-01T00:00:00Z", 951_868_800_000_000),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000_000),
        ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
    ];
    for (text, micros) in cases {
        reads_as(
            &T::Timestamp,
            json!(text),
            Value::Timestamp(micros),
            json!(micros),
        );
    }
    for bad in [
        "2023-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:60Z",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+01",
        "2024-01-01",
        "2024-1-01T00:00:00Z",
        "２０２４-01-01T00:00:00Z",
        "",
    ] {
        assert_eq!(
            error(&T::Timestamp, json!(bad)),
            format!(
                "expected timestamp (microseconds since the Unix epoch, or an RFC 3339 \
                 date-time), found string {bad:?}"
            )
        );
    }
}

#[test]
fn options_are_null_or_the_value() {
    let ty = option(T::U8);
    round_trips(&ty, json!(null), Value::Option(None));
    round_trips(&ty, json!(5), Value::Option(Some(Box::new(Value::U8(5)))));
    assert_eq!(error(&ty, json!("x")), "expected u8, found string \"x\"");
    // Nested options spell out `some`, or `null` would be ambiguous.
    let nested = option(option(T::U8));
    round_trips(&nested, json!(null), Value::Option(None));
    round_trips(
        &nested,
        json!({"some": null}),
        Value::Option(Some(Box::new(Value::Option(None)))),
    );
    round_trips(
        &nested,
        json!({"some": 7}),
        Value::Option(Some(Box::new(Value::Option(Some(Box::new(Value::U8(7))))))),
    );
    assert_eq!(
        error(&nested, json!(7)),
        "expected Option<Option<u8>> (null or {\"some\": value}), found 7"
    );
}

#[test]
fn arrays() {
    let ty = array(T::I16);
    round_trips(&ty, json!([]), Value::Array(vec![]));
    round_trips(
        &ty,
        json!([1, -2]),
        Value::Array(vec![Value::I16(1), Value::I16(-2)]),
    );
    assert_eq!(
        error(&ty, json!([1, 2, "x"])),
        "element [2]: expected i16, found string \"x\""
    );
    assert_eq!(
        error(&ty, json!("0x0102")),
        "expected Array<i16>, found string \"0x0102\""
    );
    let grid = array(array(T::U8));
    assert_eq!(
        error(&grid, json!([[1], [2, 300]])),
        "element [1][1]: expected u8, found 300 (out of range)"
    );
}

#[test]
fn structs_are_objects_tuples_are_arrays() {
    let point = T::Product(record(vec![field("x", T::I32), field("y", T::I32)]));
    let xy = Value::Product(vec![Value::I32(1), Value::I32(-2)]);
    round_trips(&point, json!({"x": 1, "y": -2}), xy.clone());
    reads_as(&point, json!([1, -2]), xy.clone(), json!({"x": 1, "y": -2}));
    assert_eq!(
        error(&point, json!({"x": 1})),
        "missing field `y` of type i32"
    );
    assert_eq!(
        error(&point, json!({"x": 1, "y": 2, "z": 3})),
        "unknown field `z`; the fields are (x: i32, y: i32)"
    );
    assert_eq!(
        error(&point, json!({"x": 1, "y": "two"})),
        "field `y`: expected i32, found string \"two\""
    );
    assert_eq!(
        error(&point, json!([1])),
        "expected (x: i32, y: i32), found an array of 1 element"
    );
    assert_eq!(
        error(&point, json!(1)),
        "expected (x: i32, y: i32), found 1"
    );

    let pair = T::Product(record(vec![unnamed(T::U8), unnamed(T::String)]));
    round_trips(
        &pair,
        json!([1, "a"]),
        Value::Product(vec![Value::U8(1), Value::String("a".into())]),
    );
    assert_eq!(
        error(&pair, json!({"0": 1, "1": "a"})),
        "expected (u8, string), found an object with keys \"0\", \"1\""
    );
    assert_eq!(
        error(&pair, json!([1, 2])),
        "element [1]: expected string, found 2"
    );
    // Some fields named, some not: positional.
    let mixed = T::Product(record(vec![field("a", T::U8), unnamed(T::Bool)]));
    round_trips(
        &mixed,
        json!([1, true]),
        Value::Product(vec![Value::U8(1), Value::Bool(true)]),
    );
    assert_eq!(
        error(&mixed, json!([300, true])),
        "field `a`: expected u8, found 300 (out of range)"
    );

    round_trips(&unit(), json!({}), Value::Product(vec![]));
    reads_as(&unit(), json!([]), Value::Product(vec![]), json!({}));
    assert_eq!(error(&unit(), json!(null)), "expected (), found null");

    let outer = T::Product(record(vec![
        field("id", T::U32),
        field("at", point.clone()),
        field("tags", array(point)),
    ]));
    assert_eq!(
        error(
            &outer,
            json!({"id": 1, "at": {"x": 0, "y": 0}, "tags": [{"x": 0, "y": 0}, {"x": 0, "y": 1.5}]})
        ),
        "field `tags`[1].`y`: expected i32, found 1.5"
    );
}

#[test]
fn sums_are_tagged_objects_and_unit_variants_strings() {
    let ty = shape();
    round_trips(
        &ty,
        json!("Idle"),
        Value::Sum(0, Box::new(Value::Product(vec![]))),
    );
    reads_as(
        &ty,
        json!({"Idle": {}}),
        Value::Sum(0, Box::new(Value::Product(vec![]))),
        json!("Idle"),
    );
    reads_as(
        &ty,
        json!({"Idle": []}),
        Value::Sum(0, Box::new(Value::Product(vec![]))),
        json!("Idle"),
    );
    round_trips(
        &ty,
        json!({"Circle": 2.5}),
        Value::Sum(1, Box::new(Value::F64(2.5))),
    );
    round_trips(
        &ty,
        json!({"Rect": {"w": 3, "h": 4}}),
        Value::Sum(
            2,
            Box::new(Value::Product(vec![Value::U32(3), Value::U32(4)])),
        ),
    );
    let variants = "{Idle | Circle(f64) | Rect(w: u32, h: u32)}";
    assert_eq!(
        error(&ty, json!("Square")),
        format!("unknown variant `Square`; the variants are {variants}")
    );
    assert_eq!(
        error(&ty, json!("Circle")),
        "variant `Circle` needs a payload: write {\"Circle\": f64}"
    );
    assert_eq!(
        error(&ty, json!({"Circle": 1, "Idle": {}})),
        format!(
            "expected {variants} (\"Variant\" or {{\"Variant\": payload}}), \
             found an object with keys \"Circle\", \"Idle\""
        )
    );
    assert_eq!(
        error(&ty, json!(2)),
        format!("expected {variants} (\"Variant\" or {{\"Variant\": payload}}), found 2")
    );
    assert_eq!(
        error(&ty, json!({"Rect": {"w": 3, "h": -4}})),
        "variant `Rect`.`h`: expected u32, found -4 (out of range)"
    );
    assert_eq!(
        error(&ty, json!({"Idle": 1})),
        "variant `Idle`: expected (), found 1"
    );
}

/// `transfer(from: u32, to: (id: u32, memo: Option<string>), amount: i64)`
fn transfer() -> ProductType {
    record(vec![
        field("from", T::U32),
        field(
            "to",
            T::Product(record(vec![
                field("id", T::U32),
                field("memo", option(T::String)),
            ])),
        ),
        field("amount", T::I64),
    ])
}

#[test]
fn arguments_are_positional_or_named() {
    let params = transfer();
    let expected = bytes(&Value::Product(vec![
        Value::U32(1),
        Value::Product(vec![Value::U32(2), Value::Option(None)]),
        Value::I64(-5),
    ]));
    let positional = json!([1, {"id": 2, "memo": null}, -5]);
    assert_eq!(json_to_args(&params, &positional).unwrap(), expected);
    let named = json!({"amount": "-5", "to": [2, null], "from": 1});
    assert_eq!(json_to_args(&params, &named).unwrap(), expected);
    // The arguments read back as an object keyed by parameter name.
    assert_eq!(
        row_to_json(&params, &expected).unwrap(),
        json!({"from": 1, "to": {"id": 2, "memo": null}, "amount": -5})
    );

    assert_eq!(
        args_error(&params, json!([1, {"id": 2, "memo": null}, "abc"])),
        "argument `amount`: expected i64, found string \"abc\""
    );
    assert_eq!(
        args_error(&params, json!([1, {"id": 4294967296u64, "memo": null}, 1])),
        "argument `to`.`id`: expected u32, found 4294967296 (out of range)"
    );
    assert_eq!(
        args_error(
            &params,
            json!({"from": 1, "to": {"id": 1, "memo": 7}, "amount": 1})
        ),
        "argument `to`.`memo`: expected string, found 7"
    );
    assert_eq!(
        args_error(&params, json!([1, 2, 3, 4])),
        "expected 3 arguments (from: u32, to: (id: u32, memo: Option<string>), amount: i64), \
         found 4"
    );
    assert_eq!(
        args_error(&params, json!({"from": 1, "amount": 1})),
        "missing argument `to` of type (id: u32, memo: Option<string>)"
    );
    assert_eq!(
        args_error(&params, json!({"from": 1, "too": 2, "amount": 1})),
        "unknown argument `too`; the parameters are \
         (from: u32, to: (id: u32, memo: Option<string>), amount: i64)"
    );
    assert_eq!(
        args_error(&params, json!(5)),
        "expected 3 arguments (from: u32, to: (id: u32, memo: Option<string>), amount: i64), \
         found 1"
    );

    let two = record(vec![field("from", T::U32), field("to", T::U32)]);
    assert_eq!(
        args_error(&two, json!([1, 2, 3])),
        "expected 2 arguments (from: u32, to: u32), found 3"
    );
    let the_json = JsonError::Invalid {
        path: vec![],
        problem: JsonProblem::ArgumentCount {
            expected: 2,
            params: "(from: u32, to: u32)".into(),
            found: 3,
        },
    };
    assert_eq!(json_to_args(&two, &json!([1, 2, 3])), Err(the_json));
}

#[test]
fn a_lone_parameter_takes_its_value_on_its_own() {
    let send = record(vec![field("text", T::String)]);
    let hi = bytes(&Value::String("hi".into()));
    for args in [json!("hi"), json!(["hi"]), json!({"text": "hi"})] {
        assert_eq!(json_to_args(&send, &args).unwrap(), hi, "{args}");
    }
    assert_eq!(
        args_error(&send, json!({"txt": "hi"})),
        "unknown argument `txt`; the parameters are (text: string)"
    );
    assert_eq!(
        args_error(&send, json!(5)),
        "argument `text`: expected string, found 5"
    );
    assert_eq!(
        args_error(&send, json!(["a", "b"])),
        "expected 1 argument (text: string), found 2"
    );

    // A lone struct parameter may be given as the struct's object...
    let point = T::Product(record(vec![field("x", T::I32), field("y", T::I32)]));
    let moved = record(vec![field("to", point)]);
    let xy = bytes(&Value::Product(vec![Value::I32(1), Value::I32(2)]));
    for args in [
        json!({"x": 1, "y": 2}),
        json!({"to": {"x": 1, "y": 2}}),
        json!([{"x": 1, "y": 2}]),
        json!([[1, 2]]),
    ] {
        assert_eq!(json_to_args(&moved, &args).unwrap(), xy, "{args}");
    }
    assert_eq!(
        args_error(&moved, json!({"x": 1})),
        "argument `to`: missing field `y` of type i32"
    );
    // ... and a lone sum parameter as a variant.
    let draw = record(vec![field("shape", shape())]);
    assert_eq!(
        json_to_args(&draw, &json!({"Circle": 1})).unwrap(),
        bytes(&Value::Sum(1, Box::new(Value::F64(1.0))))
    );
    // An array is always the list of arguments.
    let sum = record(vec![field("xs", array(T::U8))]);
    assert_eq!(
        json_to_args(&sum, &json!([[1, 2]])).unwrap(),
        bytes(&Value::Array(vec![Value::U8(1), Value::U8(2)]))
    );
    assert_eq!(
        args_error(&sum, json!([1, 2])),
        "expected 1 argument (xs: Array<u8>), found 2"
    );
}

#[test]
fn no_parameters_take_an_empty_array_or_object() {
    let none = ProductType::default();
    assert_eq!(json_to_args(&none, &json!([])).unwrap(), Vec::<u8>::new());
    assert_eq!(json_to_args(&none, &json!({})).unwrap(), Vec::<u8>::new());
    assert_eq!(
        args_error(&none, json!([1])),
        "expected no arguments, found 1"
    );
    assert_eq!(
        args_error(&none, json!(null)),
        "expected no arguments, found 1"
    );
    assert_eq!(
        args_error(&none, json!({"x": 1})),
        "unknown argument `x`; the parameters are ()"
    );
}

#[test]
fn unnamed_parameters_are_positional() {
    let params = record(vec![unnamed(T::U8), unnamed(T::U8)]);
    assert_eq!(json_to_args(&params, &json!([1, 2])).unwrap(), vec![1, 2]);
    assert_eq!(
        args_error(&params, json!([1, -2])),
        "argument `#1`: expected u8, found -2 (out of range)"
    );
    assert_eq!(
        args_error(&params, json!({"a": 1})),
        "expected (u8, u8), found an object with keys \"a\""
    );
}

#[test]
fn error_paths_are_typed() {
    let err = json_to_args(&transfer(), &json!([1, {"id": -1, "memo": null}, 1])).unwrap_err();
    assert_eq!(
        err,
        JsonError::Invalid {
            path: vec![
                PathSegment::Argument("to".into()),
                PathSegment::Field("id".into())
            ],
            problem: JsonProblem::OutOfRange {
                expected: "u32".into(),
                found: "-1".into()
            },
        }
    );
    let grid = array(T::Product(record(vec![unnamed(shape())])));
    let err = json_to_value(&grid, &json!([[{"Rect": [1, true]}]])).unwrap_err();
    let JsonError::Invalid { path, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        path,
        &[
            PathSegment::Element(0),
            PathSegment::Element(0),
            PathSegment::Variant("Rect".into()),
            PathSegment::Field("h".into()),
        ]
    );
    assert_eq!(
        err.to_string(),
        "element [0][0].`Rect`.`h`: expected u32, found true"
    );
}

#[test]
fn long_names_and_strings_are_cut_short_in_messages() {
    let long = "x".repeat(100);
    let point = T::Product(record(vec![field("x", T::I32)]));
    let object = Json::Object([(long.clone(), json!(1))].into_iter().collect());
    assert_eq!(
        error(&point, object),
        format!(
            "unknown field `{}...`; the fields are (x: i32)",
            "x".repeat(40)
        )
    );
    assert_eq!(
        error(&T::U8, json!(long)),
        format!("expected u8, found string \"{}\"...", "x".repeat(40))
    );
    assert_eq!(
        error(&T::U8, json!("é\"\n")),
        "expected u8, found string \"é\\\"\\n\""
    );
}

#[test]
fn rows_are_objects_keyed_by_column() {
    let columns = record(vec![
        field("id", T::U32),
        field("owner", T::Identity),
        field("shape", shape()),
        field("note", option(T::String)),
        field("at", T::Timestamp),
    ]);
    let row = Value::Product(vec![
        Value::U32(7),
        Value::Identity([0xff; 32]),
        Value::Sum(0, Box::new(Value::Product(vec![]))),
        Value::Option(Some(Box::new(Value::String("n".into())))),
        Value::Timestamp(1_700_000_000_000_000),
    ]);
    let json = row_to_json(&columns, &bytes(&row)).unwrap();
    assert_eq!(
        json,
        json!({
            "id": 7,
            "owner": format!("0x{}", "ff".repeat(32)),
            "shape": "Idle",
            "note": "n",
            "at": 1_700_000_000_000_000i64,
        })
    );
    assert_eq!(
        json_to_value(&T::Product(columns.clone()), &json).unwrap(),
        bytes(&row)
    );
    let columns_without_names = record(vec![unnamed(T::U8)]);
    assert_eq!(
        row_to_json(&columns_without_names, &[5]).unwrap(),
        json!({"#0": 5})
    );
}

#[test]
fn bad_bytes_are_decode_errors() {
    let columns = record(vec![field("id", T::U32), field("name", T::String)]);
    let err = |bytes: &[u8]| row_to_json(&columns, bytes).unwrap_err();
    assert_eq!(
        err(&[1]).to_string(),
        "column \"name\": expected string, input ended inside a varint"
    );
    assert!(matches!(err(&[1]), JsonError::Decode(_)));
    assert_eq!(
        err(&[1, 0, 9]).to_string(),
        "trailing 1 bytes after the last column"
    );
    assert_eq!(
        value_to_json(&T::U8, &[1, 2]).unwrap_err().to_string(),
        "trailing 1 bytes after the last value"
    );
    assert_eq!(
        value_to_json(&T::Bool, &[2]).unwrap_err().to_string(),
        "expected bool, found byte 2, not 0 or 1"
    );
    assert_eq!(
        value_to_json(&shape(), &[3]).unwrap_err().to_string(),
        "expected {Idle | Circle(f64) | Rect(w: u32, h: u32)}, case 3 does not exist (3 cases)"
    );
}

#[test]
fn deeply_nested_json_is_an_error_not_a_crash() {
    // Far deeper than types may nest (64) or serde_json parses (128), yet
    // shallow enough for serde_json's own recursive drop.
    let mut deep = json!(1);
    for _ in 0..1_000 {
        deep = json!([deep]);
    }
    assert!(json_to_value(&array(T::U8), &deep).is_err());
    assert!(json_to_args(&record(vec![field("x", T::U8)]), &deep).is_err());
    let mut deep_object = json!(1);
    for _ in 0..1_000 {
        deep_object = json!({ "Rect": deep_object });
    }
    assert!(json_to_value(&shape(), &deep_object).is_err());
    // serde_json itself refuses text nested past its recursion limit.
    let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(serde_json::from_str::<Json>(&text).is_err());
}

/// `accounts(id: u32 auto-inc primary key, owner: identity, shape, tags)`
/// and three reducers, one of each kind of parameter list.
fn schema() -> ModuleSchema {
    ModuleSchema {
        tables: vec![TableSchema {
            name: "accounts".into(),
            columns: record(vec![
                field("id", T::U32),
                field("owner", T::Identity),
                field("shape", shape()),
                field("tags", array(option(T::String))),
                field(
                    "pair",
                    T::Product(record(vec![unnamed(T::I128), unnamed(T::ConnectionId)])),
                ),
            ]),
            primary_key: Some(0),
            indexes: vec![
                IndexSchema {
                    name: "accounts_id".into(),
                    columns: vec![0],
                    unique: true,
                },
                IndexSchema {
                    name: "accounts_owner_id".into(),
                    columns: vec![1, 0],
                    unique: false,
                },
            ],
            auto_inc: vec![0],
            public: true,
        }],
        reducers: vec![
            ReducerSchema {
                name: "init".into(),
                params: ProductType::default(),
                lifecycle: Some(Lifecycle::Init),
            },
            ReducerSchema {
                name: "on_disconnect".into(),
                params: ProductType::default(),
                lifecycle: Some(Lifecycle::ClientDisconnected),
            },
            ReducerSchema {
                name: "transfer".into(),
                params: transfer(),
                lifecycle: None,
            },
        ],
        procedures: Vec::new(),
        schedules: Vec::new(),
    }
}

#[test]
fn schemas_round_trip_through_json() {
    let schema = schema();
    assert_eq!(schema.validate(), Ok(()));
    let text = serde_json::to_string_pretty(&schema).unwrap();
    let back: ModuleSchema = serde_json::from_str(&text).unwrap();
    assert_eq!(back, schema);
}

#[test]
fn schema_json_reads_naturally() {
    let json = serde_json::to_value(schema()).unwrap();
    assert_eq!(
        json["tables"][0]["columns"][2],
        json!({"name": "shape", "type": {"sum": [
            {"name": "Idle", "type": {"product": []}},
            {"name": "Circle", "type": "f64"},
            {"name": "Rect", "type": {"product": [
                {"name": "w", "type": "u32"},
                {"name": "h", "type": "u32"},
            ]}},
        ]}})
    );
    assert_eq!(
        json["tables"][0]["columns"][3],
        json!({"name": "tags", "type": {"array": {"option": "string"}}})
    );
    assert_eq!(
        json["tables"][0]["columns"][4]["type"],
        json!({"product": [{"name": null, "type": "i128"}, {"name": null, "type": "connection_id"}]})
    );
    assert_eq!(
        json["tables"][0]["indexes"][1],
        json!({"name": "accounts_owner_id", "columns": [1, 0], "unique": false})
    );
    let table = json["tables"][0].as_object().unwrap();
    let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "auto_inc",
            "columns",
            "indexes",
            "name",
            "primary_key",
            "public"
        ]
    );
    assert_eq!(json["tables"][0]["primary_key"], json!(0));
    assert_eq!(json["reducers"][0]["lifecycle"], json!("init"));
    assert_eq!(
        json["reducers"][1]["lifecycle"],
        json!("client_disconnected")
    );
    assert_eq!(json["reducers"][2]["lifecycle"], json!(null));
    assert_eq!(
        json["reducers"][2]["params"][0],
        json!({"name": "from", "type": "u32"})
    );

    let names = [
        (T::Bool, "bool"),
        (T::U8, "u8"),
        (T::U16, "u16"),
        (T::U32, "u32"),
        (T::U64, "u64"),
        (T::U128, "u128"),
        (T::I8, "i8"),
        (T::I16, "i16"),
        (T::I32, "i32"),
        (T::I64, "i64"),
        (T::I128, "i128"),
        (T::F32, "f32"),
        (T::F64, "f64"),
        (T::String, "string"),
        (T::Identity, "identity"),
        (T::ConnectionId, "connection_id"),
        (T::Timestamp, "timestamp"),
    ];
    for (ty, name) in names {
        assert_eq!(serde_json::to_value(&ty).unwrap(), json!(name));
        assert_eq!(serde_json::from_value::<T>(json!(name)).unwrap(), ty);
    }
    assert_eq!(
        serde_json::to_value(option(T::String)).unwrap(),
        json!({"option": "string"})
    );
    assert_eq!(
        serde_json::to_value(Lifecycle::ClientConnected).unwrap(),
        json!("client_connected")
    );
}

#[test]
fn schema_json_is_read_leniently_and_checked_by_validate() {
    // A tuple field's `name` may be left out; unknown keys are ignored.
    let field: Field = serde_json::from_value(json!({"type": "u8", "doc": "x"})).unwrap();
    assert_eq!(field, unnamed(T::U8));
    assert!(serde_json::from_value::<T>(json!("u256")).is_err());
    assert!(serde_json::from_value::<T>(json!({"option": "u8", "array": "u8"})).is_err());
    // Reading does not validate: a schema from JSON still goes through `validate`.
    let mut bad = serde_json::to_value(schema()).unwrap();
    bad["tables"][0]["primary_key"] = json!(9);
    let bad: ModuleSchema = serde_json::from_value(bad).unwrap();
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "table `accounts`: primary key index 9 does not exist"
    );
}
